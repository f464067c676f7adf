//! Online-key signers from key URIs, with the fixture online keys.

use rstuf_adapters::signers::KeyUriSigners;
use rstuf_engine::ports::SignerResolver;
use rstuf_metadata::keys::Key;
use rstuf_test_support as support;
use serde_json::json;

const RSA: &str = "0d9d3d4bad91c455bc03921daa95774576b86625ac45570d0cac025b08e65043";
const EC: &str = "cb20fa1061dde8e6267e0bef0981766aaadae168e917030f7f26edc7a0bab9c2";

fn key(id: &str, uri: &str) -> Key {
    let pem = std::fs::read_to_string(support::fixture(&format!("keys/{id}.pub"))).unwrap();
    let mut k = Key::from_public_pem(&pem, None).unwrap();
    k.unrecognized
        .insert("x-rstuf-online-key-uri".into(), json!(uri));
    assert_eq!(k.compute_keyid(), id);
    k
}

#[tokio::test]
async fn fn_file2_and_envvar_uris_give_working_signers() {
    let keys_dir = support::fixture("keys");
    let signers = KeyUriSigners::new(Some(keys_dir.clone()));
    for (id, uri) in [
        (RSA, format!("fn:{RSA}")),
        (EC, format!("file2:{}", keys_dir.join(EC).display())),
    ] {
        let k = key(id, &uri);
        let s = signers
            .resolve(id, &k)
            .await
            .unwrap_or_else(|e| panic!("{uri}: {e}"));
        let sig = s.sign(b"payload").await.unwrap();
        k.verify_signature(b"payload", &sig).unwrap();
    }
    let pem = std::fs::read_to_string(keys_dir.join(EC)).unwrap();
    let env =
        std::sync::Arc::new(move |name: &str| (name == "ONLINE_KEY_PEM").then(|| pem.clone()));
    let k = key(EC, "envvar:ONLINE_KEY_PEM");
    let s = KeyUriSigners::new(None)
        .with_env(env)
        .resolve(EC, &k)
        .await
        .unwrap();
    k.verify_signature(b"x", &s.sign(b"x").await.unwrap())
        .unwrap();
}

#[tokio::test]
async fn bad_uris_are_refused_with_a_clear_error() {
    let signers = KeyUriSigners::new(Some(support::fixture("keys")));
    let cases = [
        (format!("fn:{EC}"), "is not the private half"),
        ("fn:".to_string(), "bad uri"),
        ("fn:../keys/x".to_string(), "bad uri"),
        ("fn:missing".to_string(), "cannot read online key"),
        ("awskms:alias/x".to_string(), "not supported by this build"),
        ("nocolon".to_string(), "bad online key URI"),
        ("envvar:RSTUF_TEST_UNSET_VARIABLE".to_string(), "is not set"),
    ];
    for (uri, expected) in cases {
        let err = signers
            .resolve(RSA, &key(RSA, &uri))
            .await
            .expect_err("refused");
        assert!(err.message.contains(expected), "{uri}: {err}");
    }
    let mut no_uri = key(RSA, "x");
    no_uri.unrecognized.clear();
    let err = signers.resolve(RSA, &no_uri).await.expect_err("refused");
    assert!(err.message.contains("has no x-rstuf-online-key-uri"));
    let err = KeyUriSigners::new(None)
        .resolve(RSA, &key(RSA, &format!("fn:{RSA}")))
        .await
        .expect_err("refused");
    assert!(err.message.contains("RSTUF_ONLINE_KEY_DIR"));
}
