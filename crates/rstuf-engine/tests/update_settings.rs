//! `update_settings` over in-memory ports: the reference's messages and details, and every
//! refusal leaves the settings as they were.

use chrono::{TimeZone, Utc};
use rstuf_engine::ports::SettingsStore;
use rstuf_engine::testing::MemoryRepo;
use rstuf_engine::update_settings::update_settings;
use serde_json::{Value, json};

async fn repo() -> MemoryRepo {
    let repo = MemoryRepo::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    for (key, days) in [
        ("ROOT_EXPIRATION", 365),
        ("TARGETS_EXPIRATION", 365),
        ("SNAPSHOT_EXPIRATION", 1),
        ("TIMESTAMP_EXPIRATION", 1),
        ("BINS_EXPIRATION", 1),
        ("TEAM-A_EXPIRATION", 30),
    ] {
        repo.settings.set(key, json!(days)).await.unwrap();
    }
    repo
}

#[tokio::test]
async fn updates_the_roles_that_have_a_policy_and_lists_the_others() {
    let repo = repo().await;
    let out = update_settings(
        &repo.engine(),
        &json!({"settings": {"expiration": {"targets": 100, "snapshot": 50, "timestamp": 20,
            "bins": 5, "team-a": 7}}}),
    )
    .await
    .unwrap();
    assert!(out.status(), "{out:?}");
    assert_eq!(out.message, "Update Settings Succeded");
    let details = out.details.unwrap();
    let mut updated: Vec<String> =
        serde_json::from_value(details["updated_roles"].clone()).unwrap();
    updated.sort();
    assert_eq!(
        updated,
        ["bins", "snapshot", "targets", "team-a", "timestamp"]
    );
    assert_eq!(details["invalid_roles"], json!([]));
    let all = repo.settings.all();
    assert_eq!(all["TARGETS_EXPIRATION"], json!(100));
    assert_eq!(all["BINS_EXPIRATION"], json!(5));
    assert_eq!(all["TEAM-A_EXPIRATION"], json!(7));
    assert_eq!(all["ROOT_EXPIRATION"], json!(365));

    // The reference's observed example: the key as given, unknown roles listed.
    let out = update_settings(
        &repo.engine(),
        &json!({"settings": {"expiration": {"foo": 3, "BINS": 2}}}),
    )
    .await
    .unwrap();
    assert_eq!(
        out.details.unwrap(),
        json!({"updated_roles": ["BINS"], "invalid_roles": ["foo"]})
    );
    assert_eq!(repo.settings.all()["BINS_EXPIRATION"], json!(2));
    assert!(!repo.settings.all().contains_key("FOO_EXPIRATION"));
}

#[tokio::test]
async fn refusals_change_nothing() {
    let repo = repo().await;
    let before = repo.settings.all();
    let cases: [(Value, &str); 9] = [
        (json!({}), "No 'settings' in the payload"),
        (json!({"settings": {}}), "No 'expiration' in the payload"),
        (
            json!({"settings": {"expiration": {}}}),
            "No role provided for expiration policy change",
        ),
        (
            json!({"settings": {"expiration": [1]}}),
            "'expiration' must map role names to days",
        ),
        (
            json!({"settings": {"expiration": {"bins": 0, "targets": 9}}}),
            "Invalid expiration for bins",
        ),
        (
            json!({"settings": {"expiration": {"bins": -1}}}),
            "Invalid expiration for bins",
        ),
        (
            json!({"settings": {"expiration": {"bins": "3"}}}),
            "Invalid expiration for bins",
        ),
        (
            json!({"settings": {"expiration": {"bins": 1.5}}}),
            "Invalid expiration for bins",
        ),
        (
            json!({"settings": {"expiration": {"targets": 99999999}}}),
            "Invalid expiration for targets",
        ),
    ];
    for (payload, error) in cases {
        let out = update_settings(&repo.engine(), &payload).await.unwrap();
        assert!(!out.status(), "{payload}");
        assert_eq!(out.message, "Update Settings Failed");
        assert!(
            out.error.as_deref().unwrap().starts_with(error),
            "{payload}: {:?}",
            out.error
        );
        assert_eq!(out.details, None);
        assert_eq!(repo.settings.all(), before, "{payload}");
    }
}

/// The roles come back in payload order, as the reference answers (its dict keeps the order
/// of the JSON it decoded): a payload read as JSON text through `Action::run` keeps it.
#[tokio::test]
async fn roles_come_back_in_payload_order() {
    use rstuf_engine::action::{Action, Reply};
    use rstuf_engine::artifacts::Unwatched;

    let repo = repo().await;
    let payload = r#"{"settings": {"expiration": {"timestamp": 20, "zeta": 1, "targets": 100,
        "BINS": 5, "alpha": 2, "snapshot": 50, "team-a": 7}}, "task_id": "t"}"#;
    let reply = Action::UpdateSettings
        .run(&repo.engine(), Some(payload), "t", &Unwatched)
        .await
        .unwrap();
    let Reply::Outcome(out) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(out.message, "Update Settings Succeded");
    assert_eq!(
        out.details.unwrap(),
        json!({"updated_roles": ["timestamp", "targets", "BINS", "snapshot", "team-a"],
            "invalid_roles": ["zeta", "alpha"]})
    );
    assert_eq!(repo.settings.all()["BINS_EXPIRATION"], json!(5));
    // A refusal through the same path: the first invalid value in payload order.
    let reply = Action::UpdateSettings
        .run(
            &repo.engine(),
            Some(r#"{"settings": {"expiration": {"targets": 0, "bins": -1}}}"#),
            "t",
            &Unwatched,
        )
        .await
        .unwrap();
    let Reply::Outcome(out) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(
        out.error.as_deref(),
        Some("Invalid expiration for targets: 0 is not a whole number of days between 1 and 36500")
    );
}
