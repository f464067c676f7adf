//! `bootstrap` over in-memory ports with the RSTUF API's real payloads.

mod common;

use chrono::{TimeZone, Utc};
use rstuf_engine::bootstrap::bootstrap;
use rstuf_engine::testing::MemoryRepo;
use rstuf_metadata::audit::{AuditOptions, audit};
use serde_json::{Value, json};

use common::{ONLINE, TASK, fixtures, now, payload, pre, repo, root_key, signature_over};

#[tokio::test]
async fn bins_bootstrap_with_threshold_met_publishes_every_role() {
    let repo = repo();
    pre(&repo).await;
    let out = bootstrap(&repo.engine(), &payload("payload_bins.json"), TASK)
        .await
        .unwrap();
    assert_eq!(out.message, "Bootstrap Processed");
    assert_eq!(out.error, None);
    assert_eq!(
        out.details,
        Some(json!({"bootstrap": format!("Bootstrap finished {TASK}")}))
    );

    // Leaves first, root last; the same file names as the reference worker.
    let log = repo.store.write_log();
    assert_eq!(
        log,
        [
            "1.bins-0.json",
            "1.bins-1.json",
            "1.bins-2.json",
            "1.bins-3.json",
            "1.targets.json",
            "1.snapshot.json",
            "timestamp.json",
            "1.root.json"
        ]
    );
    let report = audit(
        &repo.store.files(),
        &AuditOptions {
            reference_time: now(),
            trusted_root: None,
        },
    );
    assert!(report.accepted(), "{report:#?}");

    let s = repo.settings.all();
    assert_eq!(s["BOOTSTRAP"], json!(TASK));
    assert_eq!(s["NUMBER_OF_DELEGATED_BINS"], json!(4));
    assert_eq!(s["BINS_EXPIRATION"], json!(1));
    assert_eq!(s["ROOT_THRESHOLD"], json!(2));
    assert_eq!(s["TARGETS_ONLINE_KEY"], json!(true));
    assert_eq!(s["ROOT_SIGNING"], Value::Null);
    assert_eq!(s["ONLINE_KEY"]["keyid"], json!(ONLINE));
    assert_eq!(
        s["ONLINE_KEY"]["x-rstuf-online-key-uri"],
        json!(format!("fn:{ONLINE}"))
    );
    assert_eq!(s["TRUSTED_ROOT"]["signed"]["_type"], json!("root"));
    assert_eq!(
        s["TRUSTED_TARGETS"]["signed"]["delegations"]["succinct_roles"]["bit_length"],
        json!(2)
    );
    let rows = repo.index.roles();
    assert_eq!(rows.len(), 4);
    assert!(rows.values().all(|r| r.version == 1 && r.active));
}

#[tokio::test]
async fn ceremony_bootstrap_waits_for_root_signatures() {
    let repo = repo();
    pre(&repo).await;
    let p = payload("ceremony-payload.json");
    let out = bootstrap(&repo.engine(), &p, TASK).await.unwrap();
    assert_eq!(
        out.details,
        Some(json!({"bootstrap": "Root v1 is pending signature"}))
    );
    let s = repo.settings.all();
    assert_eq!(s["BOOTSTRAP"], json!(format!("signing-{TASK}")));
    assert_eq!(s["ROOT_SIGNING"], p["metadata"]["root"]);
    assert!(
        repo.store.files().is_empty(),
        "nothing is published while signatures are pending"
    );
    assert!(repo.index.roles().is_empty());

    // A second bootstrap is refused and changes nothing.
    let before = repo.settings.all();
    let out = bootstrap(&repo.engine(), &payload("payload_bins.json"), "other")
        .await
        .unwrap();
    assert_eq!(out.message, "Bootstrap Failed");
    assert_eq!(
        out.error,
        Some(format!("Bootstrap state is signing-{TASK}"))
    );
    assert_eq!(repo.settings.all(), before);
}

#[tokio::test]
async fn bad_payloads_are_refused_and_change_nothing_but_the_lock() {
    let good = payload("payload_bins.json");
    let mutate = |f: &dyn Fn(&mut Value)| {
        let mut p = good.clone();
        f(&mut p);
        p
    };
    let cases: Vec<(Value, &str, bool)> = vec![
        (
            mutate(&|p| {
                p.as_object_mut().unwrap().remove("settings");
            }),
            "No 'settings' in the payload",
            false,
        ),
        (
            mutate(&|p| {
                p.as_object_mut().unwrap().remove("metadata");
            }),
            "No 'metadata' in the payload",
            false,
        ),
        (
            mutate(&|p| p["metadata"]["root"]["signatures"] = json!([])),
            "Metadata requires at least one valid signature",
            true,
        ),
        (
            mutate(&|p| p["metadata"]["root"]["signatures"][0]["sig"] = json!("zz")),
            "Bootstrap has invalid signature(s)",
            true,
        ),
        (
            mutate(&|p| p["metadata"]["root"]["signed"]["version"] = json!(1.5)),
            "Invalid root metadata",
            true,
        ),
        (
            mutate(&|p| p["metadata"]["root"]["signed"]["expires"] = json!("soon")),
            "Invalid root metadata",
            true,
        ),
        (
            mutate(&|p| p["settings"]["roles"]["bins"]["number_of_delegated_bins"] = json!(1)),
            "number_of_delegated_bins",
            true,
        ),
        (
            mutate(&|p| p["settings"]["roles"]["bins"]["number_of_delegated_bins"] = json!(16385)),
            "number_of_delegated_bins",
            true,
        ),
        (
            mutate(&|p| p["settings"]["roles"]["timestamp"]["expiration"] = json!(0)),
            "timestamp.expiration",
            true,
        ),
        (
            mutate(&|p| p["settings"]["roles"]["delegations"] = json!({"keys": {}, "roles": []})),
            "both hash bin delegation",
            true,
        ),
        (
            mutate(&|p| {
                p["settings"]["roles"]
                    .as_object_mut()
                    .unwrap()
                    .remove("bins");
            }),
            "Exactly one of 'bins' and 'delegations'",
            true,
        ),
    ];
    for (p, expected, unlocks) in cases {
        let repo = repo();
        pre(&repo).await;
        let out = bootstrap(&repo.engine(), &p, TASK).await.unwrap();
        assert_eq!(out.message, "Bootstrap Failed", "{expected}");
        let error = out.error.unwrap();
        assert!(
            error.contains(expected),
            "{error:?} does not contain {expected:?}"
        );
        assert!(repo.store.files().is_empty(), "{expected}: files written");
        assert!(repo.index.roles().is_empty(), "{expected}: rows written");
        let s = repo.settings.all();
        let lock = if unlocks {
            Value::Null
        } else {
            json!(format!("pre-{TASK}"))
        };
        assert_eq!(
            s,
            [("BOOTSTRAP".to_string(), lock)].into(),
            "{expected}: settings changed"
        );
    }
}

#[tokio::test]
async fn an_online_key_without_a_usable_signer_is_refused_before_anything_is_written() {
    let repo = MemoryRepo::new(now()); // no private key registered
    pre(&repo).await;
    let out = bootstrap(&repo.engine(), &payload("payload_bins.json"), TASK)
        .await
        .unwrap();
    assert!(
        out.error
            .unwrap()
            .starts_with(&format!("Online key {ONLINE}"))
    );
    assert!(repo.store.files().is_empty());
    assert_eq!(repo.settings.all()["BOOTSTRAP"], Value::Null);
}

fn reference_file(name: &str) -> Value {
    let p = fixtures()
        .join("reference-worker/custom-storage")
        .join(name);
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[tokio::test]
async fn custom_bootstrap_publishes_online_roles_and_leaves_offline_ones_pending() {
    let repo = repo();
    pre(&repo).await;
    let p = payload("payload_custom_targets.json");
    let out = bootstrap(&repo.engine(), &p, TASK).await.unwrap();
    assert_eq!(out.error, None, "{out:?}");
    assert_eq!(
        out.details,
        Some(json!({"bootstrap": format!("Bootstrap finished {TASK}")}))
    );

    // The reference's files (C_bootstrap transcript), written leaves first.
    assert_eq!(
        repo.store.write_log(),
        [
            "1.default.json",
            "1.targets.json",
            "1.snapshot.json",
            "timestamp.json",
            "1.root.json"
        ]
    );
    let files = repo.store.files();
    let get = |name: &str| -> Value { serde_json::from_slice(&files[name]).unwrap() };
    // Targets delegates exactly as the reference's: online key plus the roles' keys, roles in
    // payload order, `default` given the online key.
    assert_eq!(
        get("1.targets.json")["signed"]["delegations"],
        reference_file("1.targets.json")["signed"]["delegations"]
    );
    assert_eq!(
        get("1.snapshot.json")["signed"]["meta"],
        json!({"default.json": {"version": 1}, "targets.json": {"version": 1}})
    );
    let default = get("1.default.json");
    assert_eq!(default["signed"]["targets"], json!({}));
    assert_eq!(default["signed"]["expires"], json!("2025-06-02T12:00:00Z"));
    let report = audit(
        &files,
        &AuditOptions {
            reference_time: now(),
            trusted_root: None,
        },
    );
    assert!(report.accepted(), "{report:#?}");

    let s = repo.settings.all();
    assert_eq!(s["BOOTSTRAP"], json!(TASK));
    assert_eq!(s["DEFAULT_EXPIRATION"], json!(1));
    assert_eq!(s["PRODUCTION_EXPIRATION"], json!(7));
    assert_eq!(s["DELEGATIONS"], p["settings"]["roles"]["delegations"]);
    for bins_key in [
        "BINS_EXPIRATION",
        "NUMBER_OF_DELEGATED_BINS",
        "BINS_THRESHOLD",
    ] {
        assert!(!s.contains_key(bins_key), "{bins_key}");
    }
    // production (JC + JH, threshold 2) waits for its keys, valid for its policy from now
    // (the reference's pending roles expired at creation).
    assert_eq!(
        s["PRODUCTION_SIGNING"],
        json!({"signatures": [], "signed": {"_type": "targets", "expires": "2025-06-08T12:00:00Z",
            "spec_version": "1.0.31", "targets": {}, "version": 1}})
    );
    assert!(!s.contains_key("DEFAULT_SIGNING"));
    assert_eq!(
        s["TRUSTED_TARGETS"],
        serde_json::from_slice::<Value>(&files["1.targets.json"]).unwrap()
    );
    let rows = repo.index.roles();
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["default", "production"]);
    assert_eq!(
        rows["production"].expires,
        Utc.with_ymd_and_hms(2025, 6, 8, 12, 0, 0).unwrap()
    );
}

#[tokio::test]
async fn bad_custom_delegations_are_refused_before_anything_is_written() {
    let good = payload("payload_custom_targets.json");
    let role = |f: &dyn Fn(&mut Value)| {
        let mut p = good.clone();
        f(&mut p["settings"]["roles"]["delegations"]["roles"][1]);
        p
    };
    let cases: Vec<(Value, &str)> = vec![
        (role(&|r| r["name"] = json!("../escape")), "not allowed"),
        (role(&|r| r["name"] = json!("a/b")), "not allowed"),
        (
            role(&|r| r["name"] = json!("2024rel")),
            "start with a digit",
        ),
        (role(&|r| r["name"] = json!("snapshot")), "reserved"),
        (role(&|r| r["name"] = json!("Root")), "reserved"),
        (role(&|r| r["name"] = json!("DEFAULT")), "used twice"),
        (role(&|r| r["name"] = json!(7)), "Invalid delegations"),
        (
            role(&|r| {
                r.as_object_mut().unwrap().remove("x-rstuf-expire-policy");
            }),
            "x-rstuf-expire-policy",
        ),
        (
            role(&|r| r["x-rstuf-expire-policy"] = json!(0)),
            "x-rstuf-expire-policy",
        ),
        (role(&|r| r["threshold"] = json!(3)), "threshold 3"),
        (role(&|r| r["keyids"] = json!([])), "threshold must be 1"),
        (
            role(&|r| r["keyids"][0] = json!("ab".repeat(32))),
            "not in the delegation keys",
        ),
        (role(&|r| r["paths"] = json!([])), "non-empty list"),
        (
            role(&|r| r["path_hash_prefixes"] = json!(["zz"])),
            "non-empty list",
        ),
        (
            {
                let mut p = good.clone();
                p["settings"]["roles"]["delegations"]["roles"] = json!([]);
                p
            },
            "at least one role",
        ),
    ];
    for (p, expected) in cases {
        let repo = repo();
        pre(&repo).await;
        let out = bootstrap(&repo.engine(), &p, TASK).await.unwrap();
        assert_eq!(out.message, "Bootstrap Failed", "{expected}");
        let error = out.error.unwrap();
        assert!(
            error.contains(expected),
            "{error:?} does not contain {expected:?}"
        );
        assert!(repo.store.files().is_empty(), "{expected}: files written");
        assert!(repo.index.roles().is_empty(), "{expected}: rows written");
        assert_eq!(
            repo.settings.all(),
            [("BOOTSTRAP".to_string(), Value::Null)].into(),
            "{expected}: settings changed"
        );
    }
}

#[tokio::test]
async fn deleting_root_signing_stops_the_bootstrap_and_a_new_one_is_accepted() {
    use rstuf_engine::ports::SettingsStore;
    use rstuf_engine::signing::delete_sign_metadata;
    let repo = repo();
    pre(&repo).await;
    bootstrap(&repo.engine(), &payload("ceremony-payload.json"), TASK)
        .await
        .unwrap();

    // Refusals first: nothing changes.
    let before = repo.settings.all();
    for (p, message, error) in [
        (
            json!({}),
            "Deletion of metadata pending signatures failed",
            "No role provided for deletion.",
        ),
        (
            json!({"role": "targets"}),
            "Deletion of targets metadata failed.",
            "The targets role is not in a signing process.",
        ),
    ] {
        let out = delete_sign_metadata(&repo.engine(), &p).await.unwrap();
        assert_eq!(out.message, message);
        assert_eq!(out.error.as_deref(), Some(error));
        assert_eq!(repo.settings.all(), before);
    }

    let out = delete_sign_metadata(&repo.engine(), &json!({"role": "root"}))
        .await
        .unwrap();
    assert!(out.status(), "{out:?}");
    assert_eq!(
        out.message,
        "Deletion of root metadata successful, signing process stopped"
    );
    assert_eq!(
        out.details,
        Some(json!({"bootstrap": "Bootstrap process has been stopped"}))
    );
    let s = repo.settings.all();
    assert_eq!(s["ROOT_SIGNING"], Value::Null);
    assert_eq!(s["BOOTSTRAP"], Value::Null);
    assert!(repo.store.files().is_empty());

    // The API takes the lock again and a new bootstrap finishes.
    repo.settings
        .set("BOOTSTRAP", json!("pre-second"))
        .await
        .unwrap();
    let out = bootstrap(&repo.engine(), &payload("payload_bins.json"), "second")
        .await
        .unwrap();
    assert!(out.status(), "{out:?}");
    assert_eq!(repo.settings.all()["BOOTSTRAP"], json!("second"));
}

#[tokio::test]
async fn root_signatures_finish_a_waiting_bootstrap() {
    use rstuf_engine::signing::sign_metadata;
    const JH: &str = "c6d8bf2e4f48b41ac2ce8eca21415ca8ef68c133b47fc33df03d4070a7e1e9cc";
    const JJ: &str = "50d7e110ad65f3b2dba5c3cfc8c5ca259be9774cc26be3410044ffd4be3aa5f3";
    let repo = repo();
    pre(&repo).await;
    let p = payload("ceremony-payload.json");
    bootstrap(&repo.engine(), &p, TASK).await.unwrap();
    let pending = repo.settings.all()["ROOT_SIGNING"].clone();

    // Refused, changing nothing: no role, another role, a key outside root, a bad signature.
    let before = repo.settings.all();
    let bad = signature_over(&pending, JH, &root_key("JJ.ecdsa"));
    let online = json!({"keyid": ONLINE, "sig": "00"});
    for (p, error) in [
        (json!({"signature": bad}), "No 'role' in the payload"),
        (json!({"role": "root"}), "No valid 'signature'"),
        (
            json!({"role": "targets", "signature": bad}),
            "No signatures pending for targets",
        ),
        (
            json!({"role": "root", "signature": bad}),
            "Invalid signature",
        ),
        (
            json!({"role": "root", "signature": online}),
            "Invalid signature",
        ),
    ] {
        let out = sign_metadata(&repo.engine(), &p).await.unwrap();
        assert_eq!(out.message, "Signature Failed", "{p}");
        assert!(
            out.error.as_deref().unwrap().starts_with(error),
            "{p}: {out:?}"
        );
        assert_eq!(repo.settings.all(), before, "{p}");
    }

    // The signature already there again: still one short.
    let again = signature_over(&pending, JJ, &root_key("JJ.ecdsa"));
    let out = sign_metadata(&repo.engine(), &json!({"role": "root", "signature": again}))
        .await
        .unwrap();
    assert_eq!(
        out.details,
        Some(json!({"bootstrap": "Root v1 is pending signatures"}))
    );
    assert!(repo.store.files().is_empty());

    // The second key: the bootstrap finishes and every role is published.
    let second = signature_over(&pending, JH, &root_key("JH.ed25519"));
    let out = sign_metadata(
        &repo.engine(),
        &json!({"role": "root", "signature": second}),
    )
    .await
    .unwrap();
    assert!(out.status(), "{out:?}");
    assert_eq!(out.message, "Signature Processed");
    assert_eq!(
        out.details,
        Some(json!({"bootstrap": "Bootstrap Finished"}))
    );
    let s = repo.settings.all();
    assert_eq!(s["BOOTSTRAP"], json!(TASK));
    assert_eq!(s["ROOT_SIGNING"], Value::Null);
    let files = repo.store.files();
    let root: Value = serde_json::from_slice(&files["1.root.json"]).unwrap();
    assert_eq!(root["signatures"].as_array().unwrap().len(), 2);
    assert!(files.contains_key("timestamp.json"));
    let report = audit(
        &files,
        &AuditOptions {
            reference_time: now(),
            trusted_root: None,
        },
    );
    assert!(report.accepted(), "{report:#?}");
}

#[tokio::test]
async fn an_offline_role_is_published_when_its_keys_have_signed() {
    use rstuf_engine::signing::sign_metadata;
    const JC: &str = "2f685fa7546f1856b123223ab086b3def14c89d24eef18f49c32508c2f60e241";
    const JH: &str = "c6d8bf2e4f48b41ac2ce8eca21415ca8ef68c133b47fc33df03d4070a7e1e9cc";
    let repo = repo();
    pre(&repo).await;
    bootstrap(
        &repo.engine(),
        &payload("payload_custom_targets.json"),
        TASK,
    )
    .await
    .unwrap();
    let pending = repo.settings.all()["PRODUCTION_SIGNING"].clone();
    let sign = |keyid: &str, file: &str, p: &Value| json!({"role": "production", "signature": signature_over(p, keyid, &root_key(file))});

    // A key of the role, but a signature by another key: refused, nothing changes.
    let before = (repo.settings.all(), repo.store.files());
    let forged = sign(JC, "JH.ed25519", &pending);
    let out = sign_metadata(&repo.engine(), &forged).await.unwrap();
    assert_eq!(out.error.as_deref(), Some("Invalid signature"));
    assert_eq!((repo.settings.all(), repo.store.files()), before);

    let out = sign_metadata(&repo.engine(), &sign(JC, "JC.rsa", &pending))
        .await
        .unwrap();
    assert_eq!(
        out.details,
        Some(json!({"update": "production v1 is pending signatures"}))
    );
    assert!(!repo.store.files().contains_key("1.production.json"));

    // Past its expiry the last signature cannot publish it.
    let pending = repo.settings.all()["PRODUCTION_SIGNING"].clone();
    repo.clock.set(now() + chrono::Duration::days(8));
    let before = (repo.settings.all(), repo.store.files());
    let out = sign_metadata(&repo.engine(), &sign(JH, "JH.ed25519", &pending))
        .await
        .unwrap();
    assert!(out.error.as_deref().unwrap().contains("expired"), "{out:?}");
    assert_eq!((repo.settings.all(), repo.store.files()), before);

    repo.clock.set(now() + chrono::Duration::hours(1));
    let out = sign_metadata(&repo.engine(), &sign(JH, "JH.ed25519", &pending))
        .await
        .unwrap();
    assert!(out.status(), "{out:?}");
    assert_eq!(
        out.details,
        Some(json!({"update": "Role production signing complete"}))
    );
    let files = repo.store.files();
    let production: Value = serde_json::from_slice(&files["1.production.json"]).unwrap();
    assert_eq!(production["signatures"].as_array().unwrap().len(), 2);
    let snapshot: Value = serde_json::from_slice(&files["2.snapshot.json"]).unwrap();
    assert_eq!(
        snapshot["signed"]["meta"]["production.json"],
        json!({"version": 1})
    );
    assert_eq!(repo.settings.all()["PRODUCTION_SIGNING"], Value::Null);
    let report = audit(
        &files,
        &AuditOptions {
            reference_time: now() + chrono::Duration::hours(1),
            trusted_root: None,
        },
    );
    assert!(report.accepted(), "{report:#?}");
    // The same signature delivered again (its task was not acknowledged): answered as when it
    // completed the role, nothing written.
    let files = repo.store.files();
    let out = sign_metadata(&repo.engine(), &sign(JH, "JH.ed25519", &pending))
        .await
        .unwrap();
    assert_eq!(
        out.details,
        Some(json!({"update": "Role production signing complete"}))
    );
    assert_eq!(repo.store.files(), files);
    // Any other signature finds no event.
    const JJ: &str = "50d7e110ad65f3b2dba5c3cfc8c5ca259be9774cc26be3410044ffd4be3aa5f3";
    assert_eq!(
        sign_metadata(&repo.engine(), &sign(JJ, "JJ.ecdsa", &pending))
            .await
            .unwrap()
            .error
            .as_deref(),
        Some("No signatures pending for production")
    );
}

/// Defect 27: signatures sent while no bootstrap is waiting for them, or not hex at all, are
/// refused with a clear error and change nothing.
#[tokio::test]
async fn stray_and_malformed_signatures_are_refused() {
    use rstuf_engine::ports::SettingsStore;
    use rstuf_engine::signing::sign_metadata;
    let repo = repo();
    pre(&repo).await;
    bootstrap(&repo.engine(), &payload("ceremony-payload.json"), TASK)
        .await
        .unwrap();
    let keyid = "c6d8bf2e4f48b41ac2ce8eca21415ca8ef68c133b47fc33df03d4070a7e1e9cc";
    let before = repo.settings.all();
    let out = sign_metadata(
        &repo.engine(),
        &json!({"role": "root", "signature": {"keyid": keyid, "sig": "not hex!"}}),
    )
    .await
    .unwrap();
    assert_eq!(out.error.as_deref(), Some("Invalid signature"));
    assert_eq!(repo.settings.all(), before);

    for state in [json!("pre-other"), Value::Null] {
        repo.settings.set("BOOTSTRAP", state.clone()).await.unwrap();
        let before = repo.settings.all();
        let out = sign_metadata(
            &repo.engine(),
            &json!({"role": "root", "signature": {"keyid": keyid, "sig": "00"}}),
        )
        .await
        .unwrap();
        assert_eq!(
            out.error.as_deref(),
            Some("root can be signed only after the bootstrap finished"),
            "{state}"
        );
        assert_eq!(repo.settings.all(), before);
        assert!(repo.store.files().is_empty());
    }
}
