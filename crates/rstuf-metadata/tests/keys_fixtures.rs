//! The fixture keys: every PEM private key loads (encrypted ones with `hunter2`) and signs,
//! its public half equals the `.pub` file, and key ids we compute equal those RSTUF used.

use rstuf_test_support as support;

use std::collections::BTreeMap;

use rstuf_metadata::keys::{Key, PrivateKey};
use serde_json::Value;

/// (private key file, public key file, password if encrypted)
///
/// `online-rsa.key` is legacy OpenSSL-encrypted PEM (AES-256-CBC) from RSTUF's own test suite;
/// its password is `strongPass`, not `hunter2` (`openssl rsa -passin pass:strongPass` agrees).
const PEM_KEYS: [(&str, &str, Option<&[u8]>); 6] = [
    (
        "0d9d3d4bad91c455bc03921daa95774576b86625ac45570d0cac025b08e65043",
        "0d9d3d4bad91c455bc03921daa95774576b86625ac45570d0cac025b08e65043.pub",
        None,
    ),
    (
        "cb20fa1061dde8e6267e0bef0981766aaadae168e917030f7f26edc7a0bab9c2",
        "cb20fa1061dde8e6267e0bef0981766aaadae168e917030f7f26edc7a0bab9c2.pub",
        None,
    ),
    ("JC.rsa", "JC.pub", Some(b"hunter2")),
    ("JH.ed25519", "JH.pub", Some(b"hunter2")),
    ("JJ.ecdsa", "JJ.pub", Some(b"hunter2")),
    ("online-rsa.key", "online-rsa.pub", Some(b"strongPass")),
];

fn read(name: &str) -> Vec<u8> {
    std::fs::read(support::fixture(&format!("keys/{name}"))).unwrap()
}

#[test]
fn pem_private_keys_load_sign_and_match_their_public_files() {
    for (private, public, password) in PEM_KEYS {
        let pem = read(private);
        if password.is_some() {
            assert!(
                PrivateKey::from_pem(&pem, None).is_err(),
                "{private} loaded without a password"
            );
            assert!(
                PrivateKey::from_pem(&pem, Some(b"wrong")).is_err(),
                "{private} loaded with a wrong password"
            );
        }
        let key = PrivateKey::from_pem(&pem, password).unwrap_or_else(|e| panic!("{private}: {e}"));
        let from_pub =
            Key::from_public_pem(std::str::from_utf8(&read(public)).unwrap(), None).unwrap();
        assert_eq!(key.public_key(), from_pub, "{private} vs {public}");
        if from_pub.keytype != "ed25519" {
            // Byte-identical PEM, as Python's cryptography writes it (one fixture file lost
            // its final newline, which cryptography always writes).
            let ours = from_pub.public().unwrap();
            assert!(ours.ends_with("-----END PUBLIC KEY-----\n"));
            assert_eq!(
                ours.trim_end(),
                String::from_utf8(read(public)).unwrap().trim_end(),
                "{public}"
            );
        }
        let msg = b"{\"_type\":\"targets\"}";
        let sig = key.sign(msg).unwrap();
        from_pub.verify_signature(msg, &sig).unwrap();
        assert!(
            from_pub
                .verify_signature(b"{\"_type\":\"root\"}", &sig)
                .is_err()
        );
    }
}

#[test]
fn online_keys_are_named_by_their_key_id() {
    for name in [PEM_KEYS[0].0, PEM_KEYS[1].0] {
        let key = PrivateKey::from_pem(&read(name), None).unwrap();
        assert_eq!(key.public_key().compute_keyid(), name);
    }
}

fn collect_keys(v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "keys"
                    && let Value::Object(keys) = child
                {
                    for (id, key) in keys {
                        out.insert(id.clone(), key.clone());
                    }
                }
                collect_keys(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_keys(i, out)),
        _ => {}
    }
}

#[test]
fn computed_key_ids_equal_those_in_the_fixtures() {
    let mut keys = BTreeMap::new();
    let mut files = Vec::new();
    for dir in [
        "api-payloads/bootstrap",
        "api-payloads/metadata",
        "reference-worker/bins-das-storage",
        "reference-worker/custom-storage",
    ] {
        for e in std::fs::read_dir(support::fixture(dir)).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    for f in &files {
        let v: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        collect_keys(&v, &mut keys);
    }
    // Root keys (2 CLI test keys, 2 online keys, a third root key) of the payloads and storage.
    assert!(keys.len() >= 5, "found only {} keys", keys.len());
    for (id, value) in keys {
        let key: Key = serde_json::from_value(value).unwrap();
        assert_eq!(key.compute_keyid(), id, "{} key", key.keytype);
    }
}
