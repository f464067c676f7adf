//! Threshold verification with python-tuf's rules (`get_verification_result` /
//! `verify_delegate`): count the distinct key ids authorised for the role, present in the key
//! map, with a signature in the envelope that verifies over the canonical `signed` bytes.

use std::collections::{BTreeMap, BTreeSet};

use crate::keys::Key;
use crate::schema::{Metadata, Root, SchemaError, Signature, Signed, Targets};

/// The outcome of checking one role's signatures against its delegator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationResult {
    /// Signatures needed.
    pub threshold: u64,
    /// Authorised key ids whose signature verified.
    pub signed: BTreeSet<String>,
    /// Authorised key ids without a valid signature, with the reason.
    pub unsigned: BTreeMap<String, String>,
}

impl VerificationResult {
    /// Whether the threshold is met.
    pub fn verified(&self) -> bool {
        self.signed.len() as u64 >= self.threshold
    }
}

/// Why a role is not trusted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The delegator does not delegate this role.
    #[error("{0} is not delegated by this role")]
    NotDelegated(String),
    /// Too few valid signatures.
    #[error(
        "{role} was signed by {signed}/{threshold} keys{}",
        describe_unsigned(unsigned)
    )]
    Unsigned {
        /// The role checked.
        role: String,
        /// Valid signatures from authorised keys.
        signed: usize,
        /// Required.
        threshold: u64,
        /// Why the others did not count.
        unsigned: BTreeMap<String, String>,
    },
    /// The payload has no canonical form.
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

fn describe_unsigned(unsigned: &BTreeMap<String, String>) -> String {
    if unsigned.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = unsigned
        .iter()
        .map(|(k, why)| format!("{}: {why}", short(k)))
        .collect();
    format!(" ({})", parts.join("; "))
}

fn short(keyid: &str) -> &str {
    keyid.get(..8).unwrap_or(keyid)
}

/// Counts valid signatures on `payload` from the authorised `keyids`.
pub fn verify_threshold(
    keyids: &[String],
    threshold: u64,
    keys: &BTreeMap<String, Key>,
    payload: &[u8],
    signatures: &[Signature],
) -> VerificationResult {
    let mut signed = BTreeSet::new();
    let mut unsigned = BTreeMap::new();
    for keyid in keyids {
        if signed.contains(keyid) || unsigned.contains_key(keyid) {
            continue;
        }
        let Some(key) = keys.get(keyid) else {
            unsigned.insert(keyid.clone(), "key not found".to_string());
            continue;
        };
        let Some(sig) = signatures.iter().find(|s| &s.keyid == keyid) else {
            unsigned.insert(keyid.clone(), "no signature".to_string());
            continue;
        };
        let outcome = hex::decode(&sig.sig)
            .map_err(|_| "signature is not hex".to_string())
            .and_then(|bytes| {
                key.verify_signature(payload, &bytes)
                    .map_err(|e| e.to_string())
            });
        match outcome {
            Ok(()) => {
                signed.insert(keyid.clone());
            }
            Err(why) => {
                unsigned.insert(keyid.clone(), why);
            }
        }
    }
    VerificationResult {
        threshold,
        signed,
        unsigned,
    }
}

/// Whether `signature` is a valid signature on `payload` by one of the authorised `keyids`
/// (a signing event checks each signature it is sent this way).
pub fn signed_by_one_of(
    keyids: &[String],
    keys: &BTreeMap<String, Key>,
    payload: &[u8],
    signature: &Signature,
) -> bool {
    keyids.contains(&signature.keyid)
        && verify_threshold(
            std::slice::from_ref(&signature.keyid),
            1,
            keys,
            payload,
            std::slice::from_ref(signature),
        )
        .verified()
}

/// Checks `md` against a role's keys and threshold; `Ok` carries the details.
pub fn verify_role<T: Signed>(
    role: &str,
    keyids: &[String],
    threshold: u64,
    keys: &BTreeMap<String, Key>,
    md: &Metadata<T>,
) -> Result<VerificationResult, VerifyError> {
    let payload = md.signed_bytes()?;
    let result = verify_threshold(keyids, threshold, keys, &payload, &md.signatures);
    if result.verified() {
        Ok(result)
    } else {
        Err(VerifyError::Unsigned {
            role: role.to_string(),
            signed: result.signed.len(),
            threshold,
            unsigned: result.unsigned,
        })
    }
}

/// What a delegator assigns to a role: the authorised key ids, the threshold, and the keys
/// to check them with.
type Delegated<'a> = (&'a [String], u64, &'a BTreeMap<String, Key>);

impl Root {
    fn delegated(&self, role: &str) -> Option<Delegated<'_>> {
        let r = self.roles.get(role)?;
        Some((&r.keyids, r.threshold, &self.keys))
    }
}

impl Targets {
    fn delegated(&self, role: &str) -> Option<Delegated<'_>> {
        let delegations = self.delegations.as_ref()?;
        let d = delegations.delegation(role)?;
        Some((d.keyids, d.threshold, &delegations.keys))
    }
}

/// `verify_delegate` on each delegator: [`verify_role`] with what its `delegated` finds, or
/// `NotDelegated` when it delegates nothing to the role.
macro_rules! verify_delegate {
    ($($delegator:ty => $doc:literal),* $(,)?) => {$(
        impl $delegator {
            #[doc = $doc]
            pub fn verify_delegate<T: Signed>(
                &self,
                role: &str,
                md: &Metadata<T>,
            ) -> Result<VerificationResult, VerifyError> {
                let (keyids, threshold, keys) = self
                    .delegated(role)
                    .ok_or_else(|| VerifyError::NotDelegated(role.to_string()))?;
                verify_role(role, keyids, threshold, keys, md)
            }
        }
    )*};
}

verify_delegate!(
    Root => "python-tuf `Root.verify_delegate`: is `md` signed by the threshold of keys root \
             assigns to top-level role `role`?",
    Targets => "python-tuf `Targets.verify_delegate` for a custom role or a hash bin.",
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PrivateKey;

    fn setup() -> (PrivateKey, String, BTreeMap<String, Key>) {
        let key = PrivateKey::generate_ed25519();
        let keyid = key.public_key().compute_keyid();
        let keys = BTreeMap::from([(keyid.clone(), key.public_key())]);
        (key, keyid, keys)
    }

    #[test]
    fn counts_distinct_authorised_valid_signatures() {
        let (key, keyid, keys) = setup();
        let (other, other_id, _) = setup();
        let payload = b"payload";
        let good = Signature::new(keyid.clone(), &key.sign(payload).unwrap());
        let stranger = Signature::new(other_id.clone(), &other.sign(payload).unwrap());
        let ids = [keyid.clone(), other_id.clone()];
        let r = verify_threshold(&ids, 1, &keys, payload, &[good.clone(), stranger]);
        assert!(r.verified());
        assert_eq!(r.unsigned[&other_id], "key not found");
        let r = verify_threshold(&ids, 2, &keys, payload, std::slice::from_ref(&good));
        assert!(!r.verified());
        // A signature by a key that is not authorised for the role does not count.
        let r = verify_threshold(std::slice::from_ref(&other_id), 1, &keys, payload, &[good]);
        assert!(!r.verified());
    }

    #[test]
    fn malformed_signatures_do_not_verify_and_do_not_panic() {
        let (key, keyid, keys) = setup();
        let sig = key.sign(b"payload").unwrap();
        let ids = [keyid.clone()];
        for bad in [
            "zz".to_string(),
            "abc".to_string(),
            String::new(),
            hex::encode(&sig[..40]),
            hex::encode([sig.as_slice(), b"x"].concat()),
        ] {
            let s = Signature {
                keyid: keyid.clone(),
                sig: bad.clone(),
                unrecognized: BTreeMap::new(),
            };
            let r = verify_threshold(&ids, 1, &keys, b"payload", &[s]);
            assert!(!r.verified(), "{bad:?} verified");
            assert!(!r.unsigned[&keyid].is_empty());
        }
    }
}
