//! Unit tests of the payload types.

use super::*;
use serde_json::json;

fn from_value<P: Payload>(v: Value) -> Result<P, PayloadError> {
    P::parse(Some(&v))
}

#[test]
fn target_paths_are_valid_or_not_built() {
    for ok in [
        "a",
        "a/b",
        "dir/file-1.0.tar.gz",
        "é/ü",
        "a.b/..c",
        "...",
        "a b",
    ] {
        let path: TargetPath = ok.parse().unwrap();
        assert_eq!(path.as_str(), ok);
        assert_eq!(TargetPath::try_from(ok.to_string()).unwrap(), path);
        assert_eq!(
            serde_json::from_value::<TargetPath>(json!(ok)).unwrap(),
            path
        );
        assert_eq!(serde_json::to_value(&path).unwrap(), json!(ok));
        assert_eq!(path.to_string(), ok);
    }
    let cases = [
        ("", PathError::Empty),
        ("/etc/passwd", PathError::Absolute),
        ("/", PathError::Absolute),
        ("a\\b", PathError::Character('\\')),
        ("a\u{0}b", PathError::Character('\u{0}')),
        ("a\nb", PathError::Character('\n')),
        ("a\u{7f}", PathError::Character('\u{7f}')),
        ("a\u{85}", PathError::Character('\u{85}')),
        ("a//b", PathError::Segment),
        ("a/", PathError::Segment),
        ("./a", PathError::Segment),
        ("a/./b", PathError::Segment),
        ("..", PathError::Segment),
        ("a/../../etc", PathError::Segment),
        (".", PathError::Segment),
    ];
    for (bad, want) in cases {
        assert_eq!(bad.parse::<TargetPath>(), Err(want.clone()), "{bad:?}");
        assert_eq!(TargetPath::try_from(bad.to_string()), Err(want.clone()));
        let err = serde_json::from_value::<TargetPath>(json!(bad)).unwrap_err();
        assert_eq!(err.to_string(), want.to_string(), "{bad:?}");
    }
    // Not a string at all.
    assert!(serde_json::from_value::<TargetPath>(json!(7)).is_err());
    assert_eq!(PathError::Empty.to_string(), "the path is empty");
    assert_eq!(
        PathError::Character('\\').to_string(),
        "the path contains the character '\\\\'"
    );
}

#[test]
fn add_payloads_are_typed_with_the_texts_the_api_shows() {
    let ok: AddArtifacts = from_value(json!({"artifacts": [
        {"path": "a/b", "info": {"length": 3, "hashes": {"sha256": "ab"}, "custom": {"k": 1}}},
        {"path": "c", "info": {"length": 0, "hashes": {"sha256": "cd"}}, "extra": true}
    ], "publish_artifacts": false, "task_id": "x"}))
    .unwrap();
    assert_eq!(ok.artifacts.len(), 2);
    assert_eq!(ok.artifacts[0].path.as_str(), "a/b");
    assert_eq!(ok.artifacts[0].info.length, 3);
    assert_eq!(ok.artifacts[0].info.unrecognized["custom"], json!({"k": 1}));
    assert!(!ok.publish_artifacts);

    let err = |v: Value| from_value::<AddArtifacts>(v).unwrap_err();
    assert_eq!(err(json!({})), PayloadError::Missing("artifacts"));
    assert_eq!(err(json!(null)), PayloadError::Missing("artifacts"));
    assert_eq!(err(json!([1, 2])), PayloadError::Missing("artifacts"));
    assert_eq!(err(json!("x")), PayloadError::Missing("artifacts"));
    assert_eq!(
        err(json!({"artifacts": null})),
        PayloadError::ArtifactsNotAList
    );
    assert_eq!(
        err(json!({"artifacts": {}})),
        PayloadError::ArtifactsNotAList
    );
    let e = err(json!({"artifacts": [{"path": 7, "info": {}}]}));
    assert_eq!(
        e.to_string(),
        "Invalid artifact #0: 'path' must be a string"
    );
    assert_eq!(
        e,
        PayloadError::Artifact(ArtifactError {
            name: "#0".into(),
            problem: ArtifactProblem::PathNotAString
        })
    );
    let e = err(json!({"artifacts": [3]}));
    assert_eq!(
        e.to_string(),
        "Invalid artifact #0: 'path' must be a string"
    );
    let e = err(json!({"artifacts": [{"path": "a//b", "info": {}}]}));
    assert_eq!(
        e,
        PayloadError::Artifact(ArtifactError {
            name: "\"a//b\"".into(),
            problem: ArtifactProblem::Path(PathError::Segment)
        })
    );
    // Hostile values: a length beyond u64, a huge float, deep nesting in custom.
    for (info, want) in [
        (
            json!({"length": 1e300, "hashes": {"sha256": "aa"}}),
            "found 1e+300 at length",
        ),
        (
            json!({"length": -1, "hashes": {"sha256": "aa"}}),
            "info.length must be a non-negative integer",
        ),
        (
            json!({"length": [1], "hashes": {"sha256": "aa"}}),
            "info.length must be a non-negative integer",
        ),
        (
            json!({"length": 1, "hashes": ["aa"]}),
            "info.hashes must be an object",
        ),
        (
            json!({"length": 1, "hashes": {"": "aa"}}),
            "info.hashes. must",
        ),
    ] {
        let e = err(json!({"artifacts": [{"path": "p", "info": info}]}));
        assert!(e.to_string().contains(want), "{e}");
        assert!(matches!(
            e,
            PayloadError::Artifact(ArtifactError {
                problem: ArtifactProblem::Info(_),
                ..
            })
        ));
    }
    let text = r#"{"artifacts": [{"path": "p", "info": {"length": 184467440737095516150, "hashes": {"sha256": "aa"}}}]}"#;
    let e = AddArtifacts::parse(Some(text)).unwrap_err();
    assert!(
        e.to_string().starts_with("Invalid artifact \"p\": info"),
        "{e}"
    );
    let e = AddArtifacts::parse(Some("{\"artifacts\": [")).unwrap_err();
    assert!(matches!(e, PayloadError::Unreadable(_)), "{e}");
}

#[test]
fn remove_payloads() {
    let ok: RemoveArtifacts =
        from_value(json!({"artifacts": ["b", "a", "/not/a/path"], "publish_artifacts": true}))
            .unwrap();
    assert_eq!(ok.artifacts, ["b", "a", "/not/a/path"]);
    assert!(ok.publish_artifacts);
    let err = |v: Value| from_value::<RemoveArtifacts>(v).unwrap_err().to_string();
    assert_eq!(err(json!({})), "No 'artifacts' in the payload");
    assert_eq!(
        err(json!({"artifacts": []})),
        "At list one artifact is required"
    );
    assert_eq!(err(json!({"artifacts": "a"})), "'artifacts' must be a list");
    assert_eq!(
        err(json!({"artifacts": ["a", {"path": "b"}]})),
        "Invalid artifact #1: paths must be strings"
    );
}

#[test]
fn update_settings_keeps_the_order_of_json_text() {
    let text = r#"{"settings": {"expiration": {"targets": 100, "snapshot": 50, "timestamp": 20, "bins": 5}}}"#;
    let parsed = UpdateSettings::parse(Some(text)).unwrap();
    let roles: Vec<&str> = parsed.expiration.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(roles, ["targets", "snapshot", "timestamp", "bins"]);
    // A key given twice: its last value, at its first place.
    let parsed = UpdateSettings::parse(Some(
        r#"{"settings": {"expiration": {"b": 1, "a": 2, "b": 3}}}"#,
    ))
    .unwrap();
    assert_eq!(parsed.expiration, [("b".into(), 3), ("a".into(), 2)]);

    let err = |v: Value| from_value::<UpdateSettings>(v).unwrap_err().to_string();
    assert_eq!(err(json!({})), "No 'settings' in the payload");
    assert_eq!(
        err(json!({"settings": {}})),
        "No 'expiration' in the payload"
    );
    assert_eq!(
        err(json!({"settings": 3})),
        "No 'expiration' in the payload"
    );
    assert_eq!(
        err(json!({"settings": {"expiration": [1]}})),
        "'expiration' must map role names to days"
    );
    assert_eq!(
        err(json!({"settings": {"expiration": {}}})),
        "No role provided for expiration policy change"
    );
    for days in [
        json!(0),
        json!(-3),
        json!(1.5),
        json!("7"),
        json!(36_501),
        json!(u64::MAX),
    ] {
        assert_eq!(
            err(json!({"settings": {"expiration": {"targets": days}}})),
            format!(
                "Invalid expiration for targets: {days} is not a whole number of days between 1 and 36500"
            )
        );
    }
}

#[test]
fn the_other_payloads() {
    let force: ForceOnlineUpdate = from_value(json!({"roles": ["targets", "bins"]})).unwrap();
    assert_eq!(force.roles, ["targets", "bins"]);
    assert_eq!(
        from_value::<ForceOnlineUpdate>(json!({"roles": null})).unwrap(),
        ForceOnlineUpdate::default()
    );
    for bad in [json!({"roles": "bins"}), json!({"roles": [1]})] {
        assert_eq!(
            from_value::<ForceOnlineUpdate>(bad).unwrap_err(),
            PayloadError::RolesNotNames
        );
    }
    assert!(BumpOnlineRoles::parse::<Value>(None).unwrap().expired);
    assert!(
        !from_value::<BumpOnlineRoles>(json!({"expired": false}))
            .unwrap()
            .expired
    );

    let sign: SignMetadata =
        from_value(json!({"role": "root", "signature": {"keyid": "k", "sig": "ab", "bundle": {}}}))
            .unwrap();
    assert_eq!(sign.signature.keyid, "k");
    assert!(sign.signature.unrecognized.contains_key("bundle"));
    assert_eq!(
        from_value::<SignMetadata>(json!({"signature": {}})).unwrap_err(),
        PayloadError::Missing("role")
    );
    assert_eq!(
        from_value::<SignMetadata>(json!({"role": "root", "signature": {"keyid": 1}}))
            .unwrap_err()
            .to_string(),
        "No valid 'signature' ({\"keyid\", \"sig\"}) in the payload"
    );

    assert_eq!(
        from_value::<DeleteSignMetadata>(json!({"role": null})).unwrap_err(),
        PayloadError::NoRoleToDelete
    );
    assert_eq!(
        from_value::<DeleteSignMetadata>(json!({"role": 5}))
            .unwrap_err()
            .to_string(),
        "The role must be a role name, not 5"
    );

    assert_eq!(
        from_value::<MetadataUpdate>(json!({"metadata": {"targets": {}}})).unwrap_err(),
        PayloadError::UnsupportedMetadata
    );
    assert!(
        from_value::<MetadataUpdate>(json!({"metadata": {"root": {}}}))
            .unwrap_err()
            .to_string()
            .starts_with("Failed to verify the trust: ")
    );

    assert_eq!(
        from_value::<MetadataDelegation>(json!({"action": "remove", "delegations": {}}))
            .unwrap_err()
            .to_string(),
        "metadata delegation supports 'add', 'update', 'delete'"
    );
    assert_eq!(
        from_value::<MetadataDelegation>(json!({"action": "add", "delegations": []})).unwrap_err(),
        PayloadError::Missing("delegations")
    );

    assert_eq!(
        from_value::<Bootstrap>(json!({"metadata": {}})).unwrap_err(),
        PayloadError::Missing("settings")
    );
    assert_eq!(
        from_value::<Bootstrap>(json!({"settings": {}})).unwrap_err(),
        PayloadError::Missing("metadata")
    );
}
