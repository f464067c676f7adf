//! Keys and signatures against securesystemslib, in both directions, for every scheme.

use rstuf_test_support as support;

use rstuf_metadata::keys::{Key, KeyError, PrivateKey};
use serde_json::{Value, json};

use support::{SCHEMES, key_for_scheme as key_for};

#[test]
fn securesystemslib_verifies_our_signatures_and_we_verify_theirs() {
    let msg = br#"{"_type":"targets","delegations":{"succinct_roles":{"bit_length":2}},"x":"\u00e9 \"q\""}"#;
    let mut verify = Vec::new();
    let mut expected = Vec::new();
    for scheme in SCHEMES {
        let key = key_for(scheme);
        let public = key.public_key();
        assert_eq!(public.scheme, scheme);
        let keyid = public.compute_keyid();
        let sig = key.sign(msg).unwrap();
        public.verify_signature(msg, &sig).unwrap();
        verify.push(json!({"keyid": keyid, "key": public, "msg": hex::encode(msg), "sig": hex::encode(&sig)}));
        expected.push((true, keyid.clone()));
        // A flipped message byte must be refused by Python too.
        let mut other = msg.to_vec();
        other[3] ^= 1;
        verify.push(json!({"keyid": keyid, "key": public, "msg": hex::encode(&other), "sig": hex::encode(&sig)}));
        expected.push((false, keyid));
    }
    let mut sign: Vec<Value> = SCHEMES
        .iter()
        .map(|s| json!({"scheme": s, "msg": hex::encode(msg)}))
        .collect();
    for s in ["rsassa-pss-sha256", "rsassa-pss-sha512"] {
        sign.push(json!({"scheme": format!("{s}-maxsalt"), "msg": hex::encode(msg)}));
    }
    let request = json!({"verify": verify, "sign": sign});
    let out = support::run_python(
        "keys_oracle.py",
        &[],
        &serde_json::to_vec(&request).unwrap(),
    );
    let answers: Value = serde_json::from_slice(&out).unwrap();

    for (i, (ok, keyid)) in expected.iter().enumerate() {
        let a = &answers["verify"][i];
        assert_eq!(
            a["ok"],
            Value::Bool(*ok),
            "securesystemslib on case {i}: {}",
            verify[i]["key"]["scheme"]
        );
        assert_eq!(
            a["keyid"].as_str(),
            Some(keyid.as_str()),
            "keyid of case {i}"
        );
    }
    let signed = answers["sign"].as_array().unwrap();
    assert_eq!(signed.len(), sign.len());
    for (i, item) in signed.iter().enumerate() {
        let key: Key = serde_json::from_value(item["key"].clone()).unwrap();
        assert_eq!(
            key.compute_keyid(),
            item["keyid"].as_str().unwrap(),
            "keyid of Python key {i}"
        );
        let sig = hex::decode(item["sig"].as_str().unwrap()).unwrap();
        key.verify_signature(msg, &sig)
            .unwrap_or_else(|e| panic!("Python signature {} refused: {e}", sign[i]["scheme"]));
        let mut bad = sig.clone();
        let last = bad.len() - 1;
        bad[last / 2] ^= 0x10;
        assert!(
            key.verify_signature(msg, &bad).is_err(),
            "tampered {} accepted",
            sign[i]["scheme"]
        );
    }
}

#[test]
fn bad_keys_and_signatures_are_errors_not_panics() {
    let ed = PrivateKey::generate_ed25519();
    let public = ed.public_key();
    let msg = b"payload";
    let sig = ed.sign(msg).unwrap();
    assert!(matches!(
        public.verify_signature(msg, &sig[..63]),
        Err(KeyError::MalformedSignature(_))
    ));
    assert!(matches!(
        public.verify_signature(msg, &[]),
        Err(KeyError::MalformedSignature(_))
    ));
    let p256 = PrivateKey::generate_ecdsa_p256().public_key();
    assert!(matches!(
        p256.verify_signature(msg, &sig),
        Err(KeyError::MalformedSignature(_))
    ));
    let mut unknown = public.clone();
    unknown.keytype = "dsa".into();
    assert!(matches!(
        unknown.verify_signature(msg, &sig),
        Err(KeyError::Unsupported { .. })
    ));
    let mut wrong_scheme = p256.clone();
    wrong_scheme.scheme = "ecdsa-sha2-nistp384".into();
    assert!(wrong_scheme.verify_signature(msg, &sig).is_err());
    let mut bad_hex = public.clone();
    bad_hex.keyval.insert("public".into(), json!("zz"));
    assert!(matches!(
        bad_hex.verifier(),
        Err(KeyError::MalformedPublicKey(_))
    ));
    let mut short = public.clone();
    short.keyval.insert("public".into(), json!("abcd"));
    assert!(short.verifier().is_err());
    let mut no_public = public;
    no_public.keyval.clear();
    assert!(no_public.verifier().is_err());
    assert!(PrivateKey::from_pem(b"not a pem", None).is_err());
    assert!(
        PrivateKey::from_pem(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            None
        )
        .is_err()
    );
    // An ed25519 key cannot be switched to an RSA scheme.
    assert!(ed.with_scheme("rsassa-pss-sha256").is_err());
}

#[test]
fn pkcs8_pem_we_write_is_read_by_securesystemslib_as_the_same_key() {
    let keys = [
        key_for("ed25519"),
        key_for("ecdsa-sha2-nistp256"),
        key_for("ecdsa-sha2-nistp384"),
        key_for("rsassa-pss-sha256"),
    ];
    let pems: Vec<String> = keys
        .iter()
        .map(|k| k.to_pkcs8_pem().unwrap().to_string())
        .collect();
    for (key, pem) in keys.iter().zip(&pems) {
        assert!(
            pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
            "{pem:.40}"
        );
        let again = PrivateKey::from_pem(pem.as_bytes(), None).unwrap();
        assert_eq!(again.public_key(), key.public_key());
    }
    let msg = b"online key";
    let request = json!({"pems": pems, "msg": hex::encode(msg)});
    let out = support::run_python("pem_oracle.py", &[], &serde_json::to_vec(&request).unwrap());
    let answers: Vec<Value> = serde_json::from_slice(&out).unwrap();
    assert_eq!(answers.len(), keys.len());
    for (key, answer) in keys.iter().zip(&answers) {
        let public = key.public_key();
        let theirs: Key = serde_json::from_value(answer["key"].clone()).unwrap();
        assert_eq!(theirs, public, "securesystemslib reads another key");
        assert_eq!(
            answer["keyid"].as_str(),
            Some(public.compute_keyid().as_str())
        );
        let sig = hex::decode(answer["sig"].as_str().unwrap()).unwrap();
        public.verify_signature(msg, &sig).unwrap();
    }
}
