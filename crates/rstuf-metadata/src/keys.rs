//! Public keys as they appear in TUF metadata, private keys for signing, key ids.
//!
//! Schemes follow securesystemslib: `ed25519` (hex public key, raw 64-byte signatures),
//! `ecdsa-sha2-nistp256` / `-nistp384` (SubjectPublicKeyInfo PEM, DER signatures),
//! `rsassa-pss-sha*` (signed with salt length = digest length, verified with any salt length,
//! like `PSS.AUTO`) and `rsa-pkcs1v15-sha*`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use signature::{Signer as _, Verifier as _};
use spki::{DecodePublicKey, EncodePublicKey};

/// A public key in TUF metadata (`keys` of root, `delegations.keys` of targets).
///
/// Key ids are the map keys around this struct and are never recomputed for keys we load:
/// RSTUF keys carry `x-rstuf-*` fields, and other tools computed their ids in other ways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// `ed25519`, `ecdsa`, `ecdsa-sha2-nistp256`, `rsa`, ...
    pub keytype: String,
    /// The signature scheme, for example `rsassa-pss-sha256`.
    pub scheme: String,
    /// Key material; `public` holds hex (ed25519) or SubjectPublicKeyInfo PEM (rsa, ecdsa).
    pub keyval: BTreeMap<String, Value>,
    /// Fields we do not model, such as `x-rstuf-online-key-uri`, kept for round trips.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

/// What went wrong with a key or a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A key type and scheme pair we do not support.
    #[error("unsupported key type {keytype:?} with scheme {scheme:?}")]
    Unsupported {
        /// The key type.
        keytype: String,
        /// The scheme.
        scheme: String,
    },
    /// The public key material cannot be decoded.
    #[error("malformed public key: {0}")]
    MalformedPublicKey(String),
    /// The private key cannot be decoded.
    #[error("malformed private key: {0}")]
    MalformedPrivateKey(String),
    /// An encrypted private key and no password, or the wrong one.
    #[error("cannot decrypt private key: {0}")]
    Decrypt(String),
    /// The signature bytes are not a signature of this scheme.
    #[error("malformed signature: {0}")]
    MalformedSignature(String),
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// The signer failed.
    #[error("signing failed: {0}")]
    Signing(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn from_suffix(s: &str) -> Option<Hash> {
        match s {
            "sha224" => Some(Hash::Sha224),
            "sha256" => Some(Hash::Sha256),
            "sha384" => Some(Hash::Sha384),
            "sha512" => Some(Hash::Sha512),
            _ => None,
        }
    }
}

/// A parsed scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Ed25519,
    EcdsaP256,
    EcdsaP384,
    RsaPss(Hash),
    RsaPkcs1v15(Hash),
}

impl Scheme {
    fn parse(keytype: &str, scheme: &str) -> Result<Scheme, KeyError> {
        let unsupported = || KeyError::Unsupported {
            keytype: keytype.to_string(),
            scheme: scheme.to_string(),
        };
        match (keytype, scheme) {
            ("ed25519", "ed25519") => Ok(Scheme::Ed25519),
            ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => Ok(Scheme::EcdsaP256),
            ("ecdsa" | "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384") => Ok(Scheme::EcdsaP384),
            ("rsa", s) => {
                if let Some(h) = s.strip_prefix("rsassa-pss-") {
                    Hash::from_suffix(h)
                        .map(Scheme::RsaPss)
                        .ok_or_else(unsupported)
                } else if let Some(h) = s.strip_prefix("rsa-pkcs1v15-") {
                    Hash::from_suffix(h)
                        .map(Scheme::RsaPkcs1v15)
                        .ok_or_else(unsupported)
                } else {
                    Err(unsupported())
                }
            }
            _ => Err(unsupported()),
        }
    }
}

/// A public key decoded once, ready to verify many signatures.
#[derive(Clone)]
pub struct Verifier {
    scheme: Scheme,
    inner: VerifierKey,
}

#[derive(Clone)]
enum VerifierKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Rsa(rsa::PublicKey),
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Verifier({:?})", self.scheme)
    }
}

impl Key {
    /// The key id securesystemslib computes for a new key: hex sha256 of the canonical JSON
    /// of `{"keytype", "scheme", "keyval"}` (no other fields).
    pub fn compute_keyid(&self) -> String {
        let value = serde_json::json!({
            "keytype": self.keytype,
            "scheme": self.scheme,
            "keyval": self.keyval,
        });
        let canonical = crate::cjson::encode_canonical(&value).expect("key fields hold no floats");
        hex::encode(Sha256::digest(&canonical))
    }

    /// A key from a SubjectPublicKeyInfo PEM, as securesystemslib's `SSlibKey.from_crypto`
    /// builds it: ed25519 keys get a hex `public`, ECDSA and RSA keys a normalised PEM.
    /// `scheme` defaults to `ed25519`, `ecdsa-sha2-nistp256/384` or `rsassa-pss-sha256`.
    pub fn from_public_pem(pem: &str, scheme: Option<&str>) -> Result<Key, KeyError> {
        let bad = |e: &dyn fmt::Display| KeyError::MalformedPublicKey(e.to_string());
        let (keytype, default_scheme, public) =
            if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
                ("ed25519", "ed25519", hex::encode(k.as_bytes()))
            } else if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
                ("ecdsa", "ecdsa-sha2-nistp256", pem_public(&k))
            } else if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_pem(pem) {
                ("ecdsa", "ecdsa-sha2-nistp384", pem_public(&k))
            } else {
                let k = rsa::PublicKey::from_public_key_pem(pem).map_err(|e| bad(&e))?;
                ("rsa", "rsassa-pss-sha256", pem_public(&k))
            };
        let scheme = scheme.unwrap_or(default_scheme);
        Scheme::parse(keytype, scheme)?;
        let mut keyval = BTreeMap::new();
        keyval.insert("public".to_string(), Value::String(public));
        Ok(Key {
            keytype: keytype.to_string(),
            scheme: scheme.to_string(),
            keyval,
            unrecognized: BTreeMap::new(),
        })
    }

    /// `keyval.public` as a string.
    pub fn public(&self) -> Result<&str, KeyError> {
        self.keyval
            .get("public")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                KeyError::MalformedPublicKey("keyval.public is missing or not a string".into())
            })
    }

    /// Decodes the key for verification.
    pub fn verifier(&self) -> Result<Verifier, KeyError> {
        let scheme = Scheme::parse(&self.keytype, &self.scheme)?;
        let public = self.public()?;
        let bad = |e: &dyn fmt::Display| KeyError::MalformedPublicKey(e.to_string());
        let inner = match scheme {
            Scheme::Ed25519 => {
                let bytes = hex::decode(public).map_err(|e| bad(&e))?;
                let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
                    KeyError::MalformedPublicKey("ed25519 key is not 32 bytes".into())
                })?;
                VerifierKey::Ed25519(
                    ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|e| bad(&e))?,
                )
            }
            Scheme::EcdsaP256 => VerifierKey::P256(
                p256::ecdsa::VerifyingKey::from_public_key_pem(public).map_err(|e| bad(&e))?,
            ),
            Scheme::EcdsaP384 => VerifierKey::P384(
                p384::ecdsa::VerifyingKey::from_public_key_pem(public).map_err(|e| bad(&e))?,
            ),
            Scheme::RsaPss(_) | Scheme::RsaPkcs1v15(_) => {
                VerifierKey::Rsa(rsa::PublicKey::from_public_key_pem(public).map_err(|e| bad(&e))?)
            }
        };
        Ok(Verifier { scheme, inner })
    }

    /// Verifies raw signature bytes over `msg`.
    pub fn verify_signature(&self, msg: &[u8], sig: &[u8]) -> Result<(), KeyError> {
        self.verifier()?.verify(msg, sig)
    }
}

macro_rules! rsa_verify {
    ($module:ident, $ctor:ident, $hash:expr, $key:expr, $msg:expr, $sig:expr) => {{
        let sig = rsa::$module::Signature::try_from($sig)
            .map_err(|e| KeyError::MalformedSignature(e.to_string()))?;
        let key = $key.clone();
        let ok = match $hash {
            Hash::Sha224 => rsa::$module::VerifyingKey::<Sha224>::$ctor(key).verify($msg, &sig),
            Hash::Sha256 => rsa::$module::VerifyingKey::<Sha256>::$ctor(key).verify($msg, &sig),
            Hash::Sha384 => rsa::$module::VerifyingKey::<Sha384>::$ctor(key).verify($msg, &sig),
            Hash::Sha512 => rsa::$module::VerifyingKey::<Sha512>::$ctor(key).verify($msg, &sig),
        };
        ok.map_err(|_| KeyError::BadSignature)
    }};
}

impl Verifier {
    /// Verifies raw signature bytes over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), KeyError> {
        match (&self.inner, self.scheme) {
            (VerifierKey::Ed25519(k), _) => {
                let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|_| {
                    KeyError::MalformedSignature(format!(
                        "ed25519 signature of {} bytes",
                        sig.len()
                    ))
                })?;
                k.verify(msg, &sig).map_err(|_| KeyError::BadSignature)
            }
            (VerifierKey::P256(k), _) => {
                let sig = p256::ecdsa::Signature::from_der(sig).map_err(|e| {
                    KeyError::MalformedSignature(format!("not a DER ECDSA signature: {e}"))
                })?;
                k.verify(msg, &sig).map_err(|_| KeyError::BadSignature)
            }
            (VerifierKey::P384(k), _) => {
                let sig = p384::ecdsa::Signature::from_der(sig).map_err(|e| {
                    KeyError::MalformedSignature(format!("not a DER ECDSA signature: {e}"))
                })?;
                k.verify(msg, &sig).map_err(|_| KeyError::BadSignature)
            }
            (VerifierKey::Rsa(k), Scheme::RsaPss(h)) => {
                rsa_verify!(pss, new_with_auto_salt_len, h, k, msg, sig)
            }
            (VerifierKey::Rsa(k), Scheme::RsaPkcs1v15(h)) => {
                rsa_verify!(pkcs1v15, new, h, k, msg, sig)
            }
            (VerifierKey::Rsa(_), _) => unreachable!("RSA keys only get RSA schemes"),
        }
    }
}

/// A private key that signs with one scheme.
pub struct PrivateKey {
    scheme: Scheme,
    inner: SignerKey,
    public: Key,
}

enum SignerKey {
    Ed25519(Box<ed25519_dalek::SigningKey>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Rsa(Box<rsa::PrivateKey>),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("scheme", &self.public.scheme)
            .field("keyid", &self.public.compute_keyid())
            .finish_non_exhaustive()
    }
}

fn pem_public<K: EncodePublicKey>(k: &K) -> String {
    k.to_public_key_pem(spki::der::pem::LineEnding::LF)
        .expect("public keys encode")
}

fn public_key_for(inner: &SignerKey, scheme: Scheme) -> Key {
    let (keytype, scheme_name, public) = match inner {
        SignerKey::Ed25519(k) => (
            "ed25519",
            "ed25519".to_string(),
            hex::encode(k.verifying_key().as_bytes()),
        ),
        SignerKey::P256(k) => (
            "ecdsa",
            "ecdsa-sha2-nistp256".to_string(),
            pem_public(k.verifying_key()),
        ),
        SignerKey::P384(k) => (
            "ecdsa",
            "ecdsa-sha2-nistp384".to_string(),
            pem_public(k.verifying_key()),
        ),
        SignerKey::Rsa(k) => {
            let name = match scheme {
                Scheme::RsaPss(h) => format!("rsassa-pss-{}", hash_name(h)),
                Scheme::RsaPkcs1v15(h) => format!("rsa-pkcs1v15-{}", hash_name(h)),
                _ => unreachable!("RSA keys only get RSA schemes"),
            };
            ("rsa", name, pem_public(&k.to_public_key()))
        }
    };
    let mut keyval = BTreeMap::new();
    keyval.insert("public".to_string(), Value::String(public));
    Key {
        keytype: keytype.to_string(),
        scheme: scheme_name,
        keyval,
        unrecognized: BTreeMap::new(),
    }
}

fn hash_name(h: Hash) -> &'static str {
    match h {
        Hash::Sha224 => "sha224",
        Hash::Sha256 => "sha256",
        Hash::Sha384 => "sha384",
        Hash::Sha512 => "sha512",
    }
}

fn default_scheme(inner: &SignerKey) -> Scheme {
    match inner {
        SignerKey::Ed25519(_) => Scheme::Ed25519,
        SignerKey::P256(_) => Scheme::EcdsaP256,
        SignerKey::P384(_) => Scheme::EcdsaP384,
        SignerKey::Rsa(_) => Scheme::RsaPss(Hash::Sha256),
    }
}

macro_rules! rsa_sign {
    ($module:ident, $hash:expr, $key:expr, $msg:expr) => {{
        let key = (**$key).clone();
        let sig = match $hash {
            Hash::Sha224 => rsa::$module::SigningKey::<Sha224>::new(key).try_sign($msg),
            Hash::Sha256 => rsa::$module::SigningKey::<Sha256>::new(key).try_sign($msg),
            Hash::Sha384 => rsa::$module::SigningKey::<Sha384>::new(key).try_sign($msg),
            Hash::Sha512 => rsa::$module::SigningKey::<Sha512>::new(key).try_sign($msg),
        };
        sig.map(|s| Box::<[u8]>::from(s).into_vec())
            .map_err(|e| KeyError::Signing(e.to_string()))
    }};
}

impl PrivateKey {
    fn from_inner(inner: SignerKey) -> Self {
        let scheme = default_scheme(&inner);
        let public = public_key_for(&inner, scheme);
        PrivateKey {
            scheme,
            inner,
            public,
        }
    }

    /// A new random ed25519 key.
    pub fn generate_ed25519() -> Self {
        let key = ed25519_dalek::SigningKey::from_bytes(&random_bytes::<32>());
        Self::from_inner(SignerKey::Ed25519(Box::new(key)))
    }

    /// A new random ECDSA P-256 key.
    pub fn generate_ecdsa_p256() -> Self {
        loop {
            // A random 256-bit string is a valid scalar except with negligible probability.
            if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&random_bytes::<32>()) {
                return Self::from_inner(SignerKey::P256(k));
            }
        }
    }

    /// A new random ECDSA P-384 key.
    pub fn generate_ecdsa_p384() -> Self {
        loop {
            if let Ok(k) = p384::ecdsa::SigningKey::from_slice(&random_bytes::<48>()) {
                return Self::from_inner(SignerKey::P384(k));
            }
        }
    }

    /// A new random RSA key of `bits` bits.
    pub fn generate_rsa(bits: usize) -> Result<Self, KeyError> {
        let key = rsa::PrivateKey::new(&mut getrandom::SysRng, bits)
            .map_err(|e| KeyError::MalformedPrivateKey(e.to_string()))?;
        Ok(Self::from_inner(SignerKey::Rsa(Box::new(key))))
    }

    /// The same key signing with another scheme (RSA: `rsassa-pss-sha256/384/512`,
    /// `rsa-pkcs1v15-sha256/384/512`; other key types only have one scheme).
    pub fn with_scheme(mut self, scheme: &str) -> Result<Self, KeyError> {
        let parsed = Scheme::parse(&self.public.keytype, scheme)?;
        if !matches!(
            (&self.inner, parsed),
            (
                SignerKey::Rsa(_),
                Scheme::RsaPss(_) | Scheme::RsaPkcs1v15(_)
            ) | (SignerKey::Ed25519(_), Scheme::Ed25519)
                | (SignerKey::P256(_), Scheme::EcdsaP256)
                | (SignerKey::P384(_), Scheme::EcdsaP384)
        ) {
            return Err(KeyError::Unsupported {
                keytype: self.public.keytype.clone(),
                scheme: scheme.to_string(),
            });
        }
        self.scheme = parsed;
        self.public = public_key_for(&self.inner, parsed);
        Ok(self)
    }

    /// Loads an unencrypted or password-encrypted PEM private key: PKCS#8 (`PRIVATE KEY`,
    /// `ENCRYPTED PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`).
    pub fn from_pem(pem: &[u8], password: Option<&[u8]>) -> Result<Self, KeyError> {
        let text = std::str::from_utf8(pem)
            .map_err(|_| KeyError::MalformedPrivateKey("PEM is not UTF-8".into()))?;
        if text.contains("Proc-Type: 4,ENCRYPTED") {
            let der = legacy_pem::decrypt(text, password)?;
            return Self::from_pkcs1_or_sec1_der(&der);
        }
        let (label, der) = pem_rfc7468::decode_vec(text.trim().as_bytes())
            .map_err(|e| KeyError::MalformedPrivateKey(format!("not a PEM document: {e}")))?;
        match label {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "ENCRYPTED PRIVATE KEY" => {
                let password = password.ok_or_else(|| {
                    KeyError::Decrypt("the key is encrypted and no password was given".into())
                })?;
                let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
                    .map_err(|e| KeyError::MalformedPrivateKey(e.to_string()))?;
                if let pkcs8::pkcs5::EncryptionScheme::Pbes1(alg) = &info.encryption_algorithm {
                    let der =
                        legacy_pem::pbes1_decrypt(alg, password, info.encrypted_data.as_bytes())?;
                    return Self::from_pkcs8_der(&der);
                }
                let doc = info.decrypt(password).map_err(|e| {
                    KeyError::Decrypt(format!("wrong password or unsupported encryption: {e}"))
                })?;
                Self::from_pkcs8_der(doc.as_bytes())
            }
            "RSA PRIVATE KEY" | "EC PRIVATE KEY" => Self::from_pkcs1_or_sec1_der(&der),
            other => Err(KeyError::MalformedPrivateKey(format!(
                "unsupported PEM label {other:?}"
            ))),
        }
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        use pkcs8::DecodePrivateKey;
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_der(der) {
            return Ok(Self::from_inner(SignerKey::Ed25519(Box::new(k))));
        }
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_der(der) {
            return Ok(Self::from_inner(SignerKey::P256(k)));
        }
        if let Ok(k) = p384::ecdsa::SigningKey::from_pkcs8_der(der) {
            return Ok(Self::from_inner(SignerKey::P384(k)));
        }
        rsa::PrivateKey::from_pkcs8_der(der)
            .map(|k| Self::from_inner(SignerKey::Rsa(Box::new(k))))
            .map_err(|_| {
                KeyError::MalformedPrivateKey(
                    "PKCS#8 key is not ed25519, P-256, P-384 or RSA".into(),
                )
            })
    }

    fn from_pkcs1_or_sec1_der(der: &[u8]) -> Result<Self, KeyError> {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        if let Ok(k) = rsa::PrivateKey::from_pkcs1_der(der) {
            return Ok(Self::from_inner(SignerKey::Rsa(Box::new(k))));
        }
        if let Ok(k) = p256::SecretKey::from_sec1_der(der) {
            return Ok(Self::from_inner(SignerKey::P256(k.into())));
        }
        if let Ok(k) = p384::SecretKey::from_sec1_der(der) {
            return Ok(Self::from_inner(SignerKey::P384(k.into())));
        }
        Err(KeyError::MalformedPrivateKey(
            "not a PKCS#1 RSA key or a SEC1 P-256/P-384 key".into(),
        ))
    }

    /// The key as unencrypted PKCS#8 PEM, the form `fn:` online-key URIs load (and the RSTUF
    /// CLI writes). The text is wiped from memory when dropped.
    pub fn to_pkcs8_pem(&self) -> Result<pkcs8::der::zeroize::Zeroizing<String>, KeyError> {
        use pkcs8::EncodePrivateKey;
        let lf = pkcs8::LineEnding::LF;
        let pem = match &self.inner {
            SignerKey::Ed25519(k) => return Ok(ed25519_pkcs8_v1_pem(k)),
            SignerKey::P256(k) => k.to_pkcs8_pem(lf),
            SignerKey::P384(k) => k.to_pkcs8_pem(lf),
            SignerKey::Rsa(k) => k.to_pkcs8_pem(lf),
        };
        pem.map_err(|e| KeyError::MalformedPrivateKey(format!("cannot encode as PKCS#8: {e}")))
    }

    /// The public key, as it goes into metadata (no `x-rstuf-*` fields).
    pub fn public_key(&self) -> Key {
        self.public.clone()
    }

    /// Signs `msg` with the key's scheme.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        match (&self.inner, self.scheme) {
            (SignerKey::Ed25519(k), _) => Ok(k.sign(msg).to_bytes().to_vec()),
            (SignerKey::P256(k), _) => {
                let sig: p256::ecdsa::Signature = k
                    .try_sign(msg)
                    .map_err(|e| KeyError::Signing(e.to_string()))?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            (SignerKey::P384(k), _) => {
                let sig: p384::ecdsa::Signature = k
                    .try_sign(msg)
                    .map_err(|e| KeyError::Signing(e.to_string()))?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            (SignerKey::Rsa(k), Scheme::RsaPss(h)) => rsa_sign!(pss, h, k, msg),
            (SignerKey::Rsa(k), Scheme::RsaPkcs1v15(h)) => rsa_sign!(pkcs1v15, h, k, msg),
            (SignerKey::Rsa(_), _) => unreachable!("RSA keys only get RSA schemes"),
        }
    }
}

/// An ed25519 key as PKCS#8 version 1 (RFC 8410: the seed only). `ed25519-dalek` writes
/// version 2 with the public key, in a form OpenSSL and Python's `cryptography` refuse.
fn ed25519_pkcs8_v1_pem(key: &ed25519_dalek::SigningKey) -> pkcs8::der::zeroize::Zeroizing<String> {
    // SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING seed } }
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = pkcs8::der::zeroize::Zeroizing::new(Vec::with_capacity(48));
    der.extend_from_slice(&PREFIX);
    der.extend_from_slice(key.as_bytes());
    let pem = pem_rfc7468::encode_string("PRIVATE KEY", pem_rfc7468::LineEnding::LF, &der)
        .expect("48 bytes always encode");
    pkcs8::der::zeroize::Zeroizing::new(pem)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("system randomness");
    buf
}

mod legacy_pem {
    //! OpenSSL's traditional encrypted PEM (`Proc-Type: 4,ENCRYPTED`, `DEK-Info: AES-*-CBC`),
    //! as written by `openssl rsa -aes256` and found in RSTUF's test keys. The key is OpenSSL's
    //! `EVP_BytesToKey` with MD5, one iteration and the first 8 bytes of the IV as salt.
    use base64ct::{Base64, Encoding};
    use cbc::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
    use md5::{Digest, Md5};

    use super::KeyError;

    fn bytes_to_key(password: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
        let mut key = Vec::with_capacity(len + 16);
        let mut prev: Vec<u8> = Vec::new();
        while key.len() < len {
            let mut h = Md5::new();
            h.update(&prev);
            h.update(password);
            h.update(salt);
            prev = h.finalize().to_vec();
            key.extend_from_slice(&prev);
        }
        key.truncate(len);
        key
    }

    fn cbc<C>(key: &[u8], iv: &[u8], data: &[u8]) -> Result<Vec<u8>, KeyError>
    where
        cbc::Decryptor<C>: KeyIvInit + BlockModeDecrypt,
        C: cbc::cipher::BlockCipherDecrypt,
    {
        cbc::Decryptor::<C>::new_from_slices(key, iv)
            .map_err(|_| KeyError::MalformedPrivateKey("bad DEK-Info IV".into()))?
            .decrypt_padded_vec::<Pkcs7>(data)
            .map_err(|_| KeyError::Decrypt("wrong password".into()))
    }

    /// PKCS#5 PBES1 (`pbeWithMD5AndDES-CBC`, `pbeWithSHA1AndDES-CBC`), which older
    /// `cryptography`/OpenSSL versions wrote for encrypted PKCS#8 keys: PBKDF1 gives the DES key
    /// and IV.
    pub(super) fn pbes1_decrypt(
        alg: &pkcs8::pkcs5::pbes1::Algorithm,
        password: &[u8],
        data: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        use pkcs8::pkcs5::pbes1::EncryptionScheme as S;
        let salt = &alg.parameters.salt;
        let rounds = usize::from(alg.parameters.iteration_count.max(1));
        let dk: Vec<u8> = match alg.encryption {
            S::PbeWithMd5AndDesCbc => {
                let mut t = Md5::new()
                    .chain_update(password)
                    .chain_update(salt)
                    .finalize()
                    .to_vec();
                for _ in 1..rounds {
                    t = Md5::digest(&t).to_vec();
                }
                t
            }
            S::PbeWithSha1AndDesCbc => {
                let mut t = sha1::Sha1::new()
                    .chain_update(password)
                    .chain_update(salt)
                    .finalize()
                    .to_vec();
                for _ in 1..rounds {
                    t = sha1::Sha1::digest(&t).to_vec();
                }
                t
            }
            other => {
                return Err(KeyError::Decrypt(format!(
                    "unsupported PBES1 scheme {other:?}"
                )));
            }
        };
        cbc::<des::Des>(&dk[..8], &dk[8..16], data)
    }

    pub(super) fn decrypt(text: &str, password: Option<&[u8]>) -> Result<Vec<u8>, KeyError> {
        let password = password.ok_or_else(|| {
            KeyError::Decrypt("the key is encrypted and no password was given".into())
        })?;
        let malformed = |m: &str| KeyError::MalformedPrivateKey(format!("encrypted PEM: {m}"));
        let mut dek = None;
        let mut body = String::new();
        let mut in_body = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with("-----BEGIN") {
                in_body = true;
            } else if line.starts_with("-----END") {
                break;
            } else if let Some(v) = line.strip_prefix("DEK-Info:") {
                dek = Some(v.trim().to_string());
            } else if in_body && !line.contains(':') {
                body.push_str(line);
            }
        }
        let dek = dek.ok_or_else(|| malformed("no DEK-Info header"))?;
        let (cipher, iv_hex) = dek
            .split_once(',')
            .ok_or_else(|| malformed("bad DEK-Info"))?;
        let iv = hex::decode(iv_hex.trim()).map_err(|_| malformed("IV is not hex"))?;
        if iv.len() != 16 {
            return Err(malformed("IV is not 16 bytes"));
        }
        let data = Base64::decode_vec(&body).map_err(|_| malformed("body is not base64"))?;
        let key_len = match cipher {
            "AES-128-CBC" => 16,
            "AES-192-CBC" => 24,
            "AES-256-CBC" => 32,
            other => return Err(malformed(&format!("unsupported cipher {other}"))),
        };
        let key = bytes_to_key(password, &iv[..8], key_len);
        match key_len {
            16 => cbc::<aes::Aes128>(&key, &iv, &data),
            24 => cbc::<aes::Aes192>(&key, &iv, &data),
            _ => cbc::<aes::Aes256>(&key, &iv, &data),
        }
    }
}
