//! Tasks interrupted at each of their durable writes in turn (before it, or after it), as a
//! process that dies there, then delivered again over what was left: the repository must end
//! complete and acceptable to a client, and the task must answer as if nothing had happened.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use rstuf_engine::Engine;
use rstuf_engine::TaskError;
use rstuf_engine::TaskOutcome;
use rstuf_engine::bootstrap::bootstrap;
use rstuf_engine::signing::sign_metadata;
use rstuf_engine::testing::{Interruption, MemoryRepo};
use serde_json::{Value, json};

use common::{ONLINE, TASK, now, payload, pre, repo, root_key, signature_over};

type Run = Result<TaskOutcome, TaskError>;

/// What the interrupted run left.
struct Left {
    files: BTreeMap<String, Vec<u8>>,
    settings: BTreeMap<String, Value>,
}
type Step = for<'a> fn(&'a Engine) -> Pin<Box<dyn Future<Output = Run> + Send + 'a>>;

/// For each write `first` makes, before and after it: a fresh repository set up by `setup`,
/// `first` interrupted there, `again` run by a new process over what was left, and `check`
/// on the outcome. Returns how many interruptions were tried.
async fn at_every_write(
    setup: Step,
    first: Step,
    again: Step,
    check: fn(&MemoryRepo, &Left, &TaskOutcome),
) -> u64 {
    at_every_write_on(repo, setup, first, again, check).await
}

/// [`at_every_write`] on repositories made by `make`.
async fn at_every_write_on(
    make: fn() -> MemoryRepo,
    setup: Step,
    first: Step,
    again: Step,
    check: fn(&MemoryRepo, &Left, &TaskOutcome),
) -> u64 {
    let mut tried = 0;
    for nth in 1.. {
        for after in [false, true] {
            let repo = make();
            pre(&repo).await;
            let out = setup(&repo.engine()).await.unwrap();
            assert!(out.status(), "setup: {out:?}");
            let cut = Interruption::at(nth, after);
            let interrupted = Engine::new(cut.ports(repo.ports()));
            let result = first(&interrupted).await;
            if !cut.happened() {
                assert!(result.unwrap().status(), "uninterrupted run failed");
                return tried;
            }
            assert!(result.is_err(), "write {nth} (after: {after}): {result:?}");
            tried += 1;
            let left = Left {
                files: repo.store.files(),
                settings: repo.settings.all(),
            };
            // A new process: nothing parsed is kept.
            let out = again(&Engine::new(repo.ports())).await.unwrap();
            check(&repo, &left, &out);
        }
    }
    unreachable!()
}

fn nothing(_: &Engine) -> Pin<Box<dyn Future<Output = Run> + Send + '_>> {
    Box::pin(async { Ok(TaskOutcome::ok("nothing", None)) })
}

fn bins(engine: &Engine) -> Pin<Box<dyn Future<Output = Run> + Send + '_>> {
    Box::pin(bootstrap(engine, &BINS, TASK))
}

fn custom(engine: &Engine) -> Pin<Box<dyn Future<Output = Run> + Send + '_>> {
    Box::pin(bootstrap(engine, &CUSTOM, TASK))
}

/// The custom payload as another bootstrap task.
fn other_custom(engine: &Engine) -> Pin<Box<dyn Future<Output = Run> + Send + '_>> {
    Box::pin(bootstrap(engine, &CUSTOM, OTHER))
}

/// Another bootstrap task's id.
const OTHER: &str = "0ther0000000000000000000000000000";

fn ceremony(engine: &Engine) -> Pin<Box<dyn Future<Output = Run> + Send + '_>> {
    Box::pin(bootstrap(engine, &CEREMONY, TASK))
}

/// The second root signature of the ceremony: the one that meets the threshold.
fn last_root_signature(engine: &Engine) -> Pin<Box<dyn Future<Output = Run> + Send + '_>> {
    const JH: &str = "c6d8bf2e4f48b41ac2ce8eca21415ca8ef68c133b47fc33df03d4070a7e1e9cc";
    Box::pin(async move {
        let root = &CEREMONY["metadata"]["root"];
        let signature = signature_over(root, JH, &root_key("JH.ed25519"));
        sign_metadata(engine, &json!({"role": "root", "signature": signature})).await
    })
}

static BINS: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| payload("payload_bins.json"));
static CUSTOM: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| payload("payload_custom_targets.json"));
static CEREMONY: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| payload("ceremony-payload.json"));

/// The repository is bootstrapped with `roles` (the names of its role rows), every file is
/// acceptable to a client starting from `1.root.json`, and the settings that follow root
/// name what storage holds.
fn complete(repo: &MemoryRepo, task: &str, roles: &[&str]) {
    let files = repo.store.files();
    common::accepted(&files, now());
    let s = repo.settings.all();
    assert_eq!(s["BOOTSTRAP"], json!(task));
    assert!(s.get("ROOT_SIGNING").is_none_or(Value::is_null), "{s:?}");
    assert_eq!(s["ONLINE_KEY"]["keyid"], json!(ONLINE));
    let stored = |name: &str| serde_json::from_slice::<Value>(&files[name]).unwrap();
    assert_eq!(s["TRUSTED_TARGETS"], stored("1.targets.json"));
    assert_eq!(s["TRUSTED_ROOT"]["signed"], stored("1.root.json")["signed"]);
    let rows = repo.index.roles();
    assert_eq!(rows.keys().map(String::as_str).collect::<Vec<_>>(), roles);
    assert!(rows.values().all(|r| r.version == 1 && r.active));
}

fn bins_complete(repo: &MemoryRepo, _: &Left, out: &TaskOutcome) {
    assert!(out.status(), "{out:?}");
    assert_eq!(
        out.details,
        Some(json!({"bootstrap": format!("Bootstrap finished {TASK}")}))
    );
    complete(repo, TASK, &["bins-0", "bins-1", "bins-2", "bins-3"]);
    let s = repo.settings.all();
    assert_eq!(s["NUMBER_OF_DELEGATED_BINS"], json!(4));
    assert!(s.get("DELEGATIONS").is_none_or(Value::is_null));
}

fn custom_complete(repo: &MemoryRepo, task: &str) {
    complete(repo, task, &["default", "production"]);
    let s = repo.settings.all();
    assert!(s.get("NUMBER_OF_DELEGATED_BINS").is_none_or(Value::is_null));
    assert_eq!(s["DELEGATIONS"], CUSTOM["settings"]["roles"]["delegations"]);
    assert_eq!(s["PRODUCTION_SIGNING"]["signed"]["version"], json!(1));
}

#[tokio::test]
async fn a_bootstrap_interrupted_anywhere_completes_when_delivered_again() {
    let tried = at_every_write(nothing, bins, bins, bins_complete).await;
    assert!(tried > 20, "{tried}");
    let tried = at_every_write(nothing, custom, custom, |repo, _, out| {
        assert!(out.status(), "{out:?}");
        custom_complete(repo, TASK);
    })
    .await;
    assert!(tried > 20, "{tried}");
}

#[tokio::test]
async fn another_payload_bootstraps_unless_the_interrupted_root_was_published() {
    at_every_write(nothing, bins, other_custom, |repo, left, out| {
        let files = repo.store.files();
        let state = repo.settings.all()["BOOTSTRAP"].clone();
        if left.settings["BOOTSTRAP"] == json!(TASK) {
            // The first bootstrap had finished all but its last write.
            assert_eq!(
                out.error.as_deref(),
                Some(format!("Bootstrap state is {TASK}").as_str())
            );
        } else if left.files.contains_key("1.root.json") {
            // Same root, other delegations: the published bins stay, and the refusal says why
            // and releases the bootstrap.
            assert!(!out.status(), "{state}: {out:?}");
            let error = out.error.as_deref().unwrap();
            assert!(error.contains("other delegations"), "{error}");
            assert!(files.contains_key("1.bins-0.json"));
            assert_eq!(state, Value::Null);
            // Nothing else changed: no setting of the refused payload was written.
            let mut settings = repo.settings.all();
            settings.remove("BOOTSTRAP");
            let mut before = left.settings.clone();
            before.remove("BOOTSTRAP");
            assert_eq!(settings, before);
            assert_eq!(files, left.files);
        } else {
            assert!(out.status(), "{out:?}");
            custom_complete(repo, OTHER);
            assert!(!files.keys().any(|f| f.contains("bins")), "{files:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn the_payload_that_published_a_root_finishes_after_another_was_refused() {
    // Interrupted just after 1.root.json was written: the first write after which it exists.
    for nth in 1..200 {
        let repo = repo();
        pre(&repo).await;
        let cut = Interruption::at(nth, true);
        assert!(bins(&Engine::new(cut.ports(repo.ports()))).await.is_err());
        if !repo.store.files().contains_key("1.root.json") {
            continue;
        }
        let out = other_custom(&Engine::new(repo.ports())).await.unwrap();
        assert!(!out.status(), "{out:?}");
        // The operator sends the first payload again.
        pre(&repo).await;
        let out = bins(&Engine::new(repo.ports())).await.unwrap();
        let left = Left {
            files: repo.store.files(),
            settings: repo.settings.all(),
        };
        bins_complete(&repo, &left, &out);
        return;
    }
    panic!("1.root.json was never written");
}

#[tokio::test]
async fn a_ceremony_interrupted_anywhere_completes_when_delivered_again() {
    // The waiting bootstrap itself.
    at_every_write(nothing, ceremony, ceremony, |repo, _, out| {
        assert!(out.status(), "{out:?}");
        assert_eq!(
            repo.settings.all()["BOOTSTRAP"],
            json!(format!("signing-{TASK}"))
        );
        assert!(repo.store.files().is_empty());
    })
    .await;
    // The signature that meets the threshold and publishes everything.
    let tried = at_every_write(
        ceremony,
        last_root_signature,
        last_root_signature,
        |repo, _, out| {
            assert!(out.status(), "{out:?}");
            complete(repo, TASK, &["bins-0", "bins-1"]);
            let root: Value = serde_json::from_slice(&repo.store.files()["1.root.json"]).unwrap();
            assert_eq!(root["signatures"].as_array().unwrap().len(), 2);
        },
    )
    .await;
    assert!(tried > 10, "{tried}");
}

// After the bootstrap: rotation, delegations and signing events.

const NEW_ONLINE: &str = "cb20fa1061dde8e6267e0bef0981766aaadae168e917030f7f26edc7a0bab9c2";
const JC: &str = "2f685fa7546f1856b123223ab086b3def14c89d24eef18f49c32508c2f60e241";
const JH: &str = "c6d8bf2e4f48b41ac2ce8eca21415ca8ef68c133b47fc33df03d4070a7e1e9cc";

fn repo_with_both_keys() -> MemoryRepo {
    let repo = repo();
    repo.signers.add(NEW_ONLINE, common::key(NEW_ONLINE));
    repo
}

/// Every file acceptable to a client from `1.root.json`, and `ROOT_SIGNING` clear.
fn accepted_now(repo: &MemoryRepo) {
    common::accepted(&repo.store.files(), now());
}

fn rotate(engine: &Engine) -> Pin<Box<dyn Future<Output = Run> + Send + '_>> {
    Box::pin(async move {
        let update = common::fixture("api-payloads/metadata/update-root-payload.json");
        rstuf_engine::rotation::metadata_update(engine, &update).await
    })
}

#[tokio::test]
async fn a_root_rotation_interrupted_anywhere_completes_when_delivered_again() {
    let tried = at_every_write_on(repo_with_both_keys, bins, rotate, rotate, |repo, _, out| {
        assert!(out.status(), "{out:?}");
        assert_eq!(out.details, Some(json!({"role": "root"})));
        let s = repo.settings.all();
        assert_eq!(s["TRUSTED_ROOT"]["signed"]["version"], json!(2));
        assert_eq!(s["ONLINE_KEY"]["keyid"], json!(NEW_ONLINE));
        assert!(s.get("ROOT_SIGNING").is_none_or(Value::is_null), "{s:?}");
        assert!(repo.store.files().contains_key("2.root.json"));
        accepted_now(repo);
    })
    .await;
    assert!(tried > 10, "{tried}");
}

fn delegate<'a>(
    engine: &'a Engine,
    action: &'a str,
    delegations: Value,
) -> Pin<Box<dyn Future<Output = Run> + Send + 'a>> {
    Box::pin(async move {
        let payload = json!({"action": action, "delegations": delegations});
        rstuf_engine::delegation::metadata_delegation(engine, &payload).await
    })
}

fn dev(paths: &[&str]) -> Value {
    json!({"keys": {}, "roles": [{"name": "dev", "terminating": true, "keyids": [],
        "threshold": 1, "x-rstuf-expire-policy": 30, "paths": paths}]})
}

fn add_dev(engine: &Engine) -> Pin<Box<dyn Future<Output = Run> + Send + '_>> {
    delegate(engine, "add", dev(&["dev/*"]))
}

fn custom_with_dev(engine: &Engine) -> Pin<Box<dyn Future<Output = Run> + Send + '_>> {
    Box::pin(async move {
        let out = custom(engine).await?;
        assert!(out.status(), "{out:?}");
        add_dev(engine).await
    })
}

fn update_dev(engine: &Engine) -> Pin<Box<dyn Future<Output = Run> + Send + '_>> {
    delegate(engine, "update", dev(&["dev/*", "qa/*"]))
}

fn delete_dev(engine: &Engine) -> Pin<Box<dyn Future<Output = Run> + Send + '_>> {
    delegate(engine, "delete", json!({"roles": [{"name": "dev"}]}))
}

/// The latest published targets (what `TRUSTED_TARGETS` holds).
fn trusted_targets(repo: &MemoryRepo) -> Value {
    repo.settings.all()["TRUSTED_TARGETS"].clone()
}

fn delegated_dev(out: &TaskOutcome) {
    assert!(out.status(), "{out:?}");
    assert_eq!(
        out.details,
        Some(json!({"delegated_roles": ["dev"], "failed_roles": []}))
    );
}

#[tokio::test]
async fn delegation_changes_interrupted_anywhere_complete_when_delivered_again() {
    at_every_write(custom, add_dev, add_dev, |repo, _, out| {
        delegated_dev(out);
        let roles = &trusted_targets(repo)["signed"]["delegations"]["roles"];
        assert!(roles.as_array().unwrap().iter().any(|r| r["name"] == "dev"));
        assert!(repo.store.files().contains_key("1.dev.json"));
        accepted_now(repo);
    })
    .await;
    at_every_write(custom_with_dev, update_dev, update_dev, |repo, _, out| {
        delegated_dev(out);
        let roles = &trusted_targets(repo)["signed"]["delegations"]["roles"];
        let dev = roles
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "dev");
        assert_eq!(dev.unwrap()["paths"], json!(["dev/*", "qa/*"]));
        accepted_now(repo);
    })
    .await;
    at_every_write(custom_with_dev, delete_dev, delete_dev, |repo, _, out| {
        delegated_dev(out);
        let roles = &trusted_targets(repo)["signed"]["delegations"]["roles"];
        assert!(!roles.as_array().unwrap().iter().any(|r| r["name"] == "dev"));
        assert!(!repo.index.roles()["dev"].active);
        accepted_now(repo);
    })
    .await;
}

fn sign_production<'a>(
    engine: &'a Engine,
    keyid: &'static str,
    file: &'static str,
) -> Pin<Box<dyn Future<Output = Run> + Send + 'a>> {
    Box::pin(async move {
        let pending = engine.settings.get("PRODUCTION_SIGNING").await?;
        // Delivered again after it was published: the pending metadata is gone, the
        // signature is the one sent the first time.
        let pending = pending.filter(|p| !p.is_null()).unwrap_or_else(|| {
            let mut unsigned = PRODUCTION.lock().unwrap().clone().unwrap();
            unsigned["signatures"] = json!([]);
            unsigned
        });
        *PRODUCTION.lock().unwrap() = Some(pending.clone());
        let signature = signature_over(&pending, keyid, &root_key(file));
        sign_metadata(
            engine,
            &json!({"role": "production", "signature": signature}),
        )
        .await
    })
}

/// The pending `production` metadata the last signature was made over.
static PRODUCTION: std::sync::Mutex<Option<Value>> = std::sync::Mutex::new(None);

fn custom_signed_by_jc(engine: &Engine) -> Pin<Box<dyn Future<Output = Run> + Send + '_>> {
    Box::pin(async move {
        let out = custom(engine).await?;
        assert!(out.status(), "{out:?}");
        sign_production(engine, JC, "JC.rsa").await
    })
}

fn sign_by_jh(engine: &Engine) -> Pin<Box<dyn Future<Output = Run> + Send + '_>> {
    sign_production(engine, JH, "JH.ed25519")
}

#[tokio::test]
async fn a_delegated_role_s_last_signature_interrupted_anywhere_publishes_when_delivered_again() {
    let tried = at_every_write(
        custom_signed_by_jc,
        sign_by_jh,
        sign_by_jh,
        |repo, _, out| {
            assert!(out.status(), "{out:?}");
            assert_eq!(
                out.details,
                Some(json!({"update": "Role production signing complete"}))
            );
            let files = repo.store.files();
            let production: Value = serde_json::from_slice(&files["1.production.json"]).unwrap();
            assert_eq!(production["signatures"].as_array().unwrap().len(), 2);
            assert!(
                repo.settings.all()["PRODUCTION_SIGNING"].is_null(),
                "the signing event ended"
            );
            accepted_now(repo);
        },
    )
    .await;
    assert!(tried > 4, "{tried}");
}

fn bump_every_online_role(engine: &Engine) -> Pin<Box<dyn Future<Output = Run> + Send + '_>> {
    use rstuf_engine::bump::{BumpScope, bump_online_roles};
    Box::pin(async move {
        let bumped = bump_online_roles(engine, BumpScope::EveryOnlineRole).await?;
        Ok(TaskOutcome::ok("bumped", Some(json!(bumped))))
    })
}

#[tokio::test]
async fn a_bump_interrupted_anywhere_is_made_by_the_next_one() {
    let tried = at_every_write(
        bins,
        bump_every_online_role,
        bump_every_online_role,
        |repo, left, out| {
            assert!(out.status(), "{out:?}");
            let files = repo.store.files();
            // Every online role has a version past the bootstrap's, none rewritten.
            for role in ["targets", "snapshot", "bins-0", "bins-3"] {
                assert!(files.contains_key(&format!("2.{role}.json")), "{role}");
            }
            for (name, bytes) in &left.files {
                if name != "timestamp.json" {
                    assert_eq!(files.get(name), Some(bytes), "{name} rewritten");
                }
            }
            accepted_now(repo);
        },
    )
    .await;
    assert!(tried >= 6, "{tried}");
}
