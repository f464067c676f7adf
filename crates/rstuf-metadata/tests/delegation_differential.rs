//! TAP 15 hash bins and delegated path matching against python-tuf's `SuccinctRoles` and
//! `DelegatedRole.is_delegated_path`.

use rstuf_test_support as support;

use rstuf_metadata::pattern::is_delegated_path;
use rstuf_metadata::succinct::SuccinctRoles;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use common::{BIN_COUNTS, assert_no_differences, table_cases, tricky_names};
use support::Rng;

mod common;

fn random_paths(rng: &mut Rng, n: usize) -> Vec<String> {
    let alphabet = [
        "a", "b", "z", "0", "9", "/", ".", "-", "_", " ", "é", "日", "😀", "A", "tar", ".gz",
    ];
    let mut paths: Vec<String> = (0..n).map(|_| rng.string(&alphabet, 0, 24)).collect();
    paths.extend([
        "".to_string(),
        "file1.tar.gz".into(),
        "a/b/c.txt".into(),
        "file 1.txt".into(),
    ]);
    paths
}

fn random_patterns(rng: &mut Rng, n: usize) -> Vec<(String, String)> {
    let pat_alphabet = [
        "a", "b", "c", "-", "!", "]", "[", "*", "?", "/", "^", "\\", "z",
    ];
    let target_alphabet = [
        "a", "b", "c", "-", "!", "]", "[", "/", "^", "\\", "z", "*", "?",
    ];
    (0..n)
        .map(|_| {
            (
                rng.string(&pat_alphabet, 0, 8),
                rng.string(&target_alphabet, 0, 6),
            )
        })
        .collect()
}

#[test]
fn bins_and_patterns_match_python_tuf() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let paths = random_paths(&mut rng, 10_000);
    let names = tricky_names();
    let bit_lengths: Vec<u32> = BIN_COUNTS
        .iter()
        .map(|n| SuccinctRoles::bit_length_for_bins(*n).unwrap())
        .collect();
    let mut patterns = table_cases();
    let table_len = patterns.len();
    patterns.extend(random_patterns(&mut rng, 5_000));
    let prefixes: Vec<(Vec<String>, String)> = paths
        .iter()
        .take(500)
        .enumerate()
        .map(|(i, p)| {
            let h = hex::encode(Sha256::digest(p.as_bytes()));
            let ps = match i % 4 {
                0 => vec![h[..2].to_string()],
                1 => vec!["00".into(), "ff".into()],
                2 => vec![h[..1].to_string(), "zz".into()],
                _ => vec![],
            };
            (ps, p.clone())
        })
        .collect();
    let log2: Vec<u64> = (2..=65_536u64)
        .chain([100_000, 1 << 20, (1 << 29) - 1, 1 << 29, (1 << 31) + 1])
        .collect();
    let request = json!({
        "bins": {"bit_lengths": bit_lengths, "paths": paths, "names": names},
        "patterns": patterns,
        "prefixes": prefixes,
        "log2": log2,
    });
    let out = support::run_python(
        "delegation_oracle.py",
        &[],
        &serde_json::to_vec(&request).unwrap(),
    );
    let answers: Value = serde_json::from_slice(&out).unwrap();

    for bit_length in &bit_lengths {
        let sr = SuccinctRoles::new(vec![], 1, *bit_length, "bins");
        let py = &answers["bins"][bit_length.to_string()];
        let ours: Vec<String> = paths.iter().map(|p| sr.role_for_target(p)).collect();
        assert_eq!(
            serde_json::to_value(&ours).unwrap(),
            py["for_target"],
            "bins at bit_length {bit_length}"
        );
        let all: Vec<String> = sr.role_names().collect();
        assert_eq!(all.len() as u64, py["count"].as_u64().unwrap());
        assert_eq!(all[0], py["first"].as_str().unwrap());
        assert_eq!(all.last().unwrap(), py["last"].as_str().unwrap());
        assert_eq!(
            hex::encode(Sha256::digest(all.join("\n").as_bytes())),
            py["all_sha256"].as_str().unwrap()
        );
        for (i, name) in names.iter().enumerate() {
            if !name.is_ascii() {
                continue; // Python's int() also reads non-ASCII digits; we refuse them.
            }
            assert_eq!(
                Value::Bool(sr.is_delegated_role(name)),
                py["is_delegated"][i],
                "is_delegated_role({name:?}) at bit_length {bit_length}"
            );
        }
    }

    let mut differences = Vec::new();
    for (i, (pattern, target)) in patterns.iter().enumerate() {
        let ours = is_delegated_path(target, Some(std::slice::from_ref(pattern)), None);
        if Value::Bool(ours) != answers["patterns"][i] {
            differences.push(format!(
                "{}pattern {pattern:?} target {target:?}: ours {ours}",
                if i < table_len { "table " } else { "" }
            ));
        }
    }
    assert_no_differences("patterns", &differences);
    for (i, (ps, target)) in prefixes.iter().enumerate() {
        assert_eq!(
            Value::Bool(is_delegated_path(target, None, Some(ps))),
            answers["prefixes"][i],
            "{ps:?} {target:?}"
        );
    }
    for (i, n) in log2.iter().enumerate() {
        let want = answers["log2"][i].as_u64().unwrap() as u32;
        assert_eq!(
            SuccinctRoles::bit_length_for_bins(*n),
            Some(want),
            "log2({n})"
        );
    }
}
