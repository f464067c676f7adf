//! Delegated path matching against python-tuf 7's `DelegatedRole.is_delegated_path` (paths
//! and path_hash_prefixes roles) and Python's `fnmatch.fnmatch`
//! (oracle: `tests/python/pattern_oracle.py`).
//!
//! Every comparison counts the differences and fails on any, printing the first few.

use rstuf_metadata::pattern::{fnmatch, is_delegated_path, is_target_in_pathpattern};
use rstuf_test_support as support;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use common::{assert_no_differences, table_cases};
use support::Rng;

mod common;

/// A target built from a pattern, so random cases match often enough to be interesting.
fn instantiate(rng: &mut Rng, pattern: &str, alphabet: &[&str]) -> String {
    let mut out = String::new();
    for c in pattern.chars() {
        match c {
            '*' => out.push_str(&rng.string(alphabet, 0, 3)),
            '?' => out.push_str(rng.pick::<&str>(alphabet)),
            '[' | ']' | '!' | '-' if rng.below(2) == 0 => out.push_str(rng.pick::<&str>(alphabet)),
            c => out.push(c),
        }
    }
    if rng.below(4) == 0 {
        out.push_str(rng.pick::<&str>(alphabet));
    }
    out
}

fn random_cases(seed: u64, n: usize) -> Vec<(String, String)> {
    let mut rng = Rng(seed);
    let pattern_alphabet = [
        "a", "b", "c", "z", "-", "!", "]", "[", "[", "*", "*", "?", "/", "^", "\\", ".", "é", "\n",
    ];
    let target_alphabet = [
        "a", "b", "c", "z", "-", "!", "]", "[", "/", "^", "\\", "*", "?", ".", "é", "\n", "A",
    ];
    (0..n)
        .map(|_| {
            let pattern = rng.string(&pattern_alphabet, 0, 9);
            let target = if rng.below(2) == 0 {
                instantiate(&mut rng, &pattern, &target_alphabet)
            } else {
                rng.string(&target_alphabet, 0, 7)
            };
            (pattern, target)
        })
        .collect()
}

/// Asks `pattern_oracle.py` to answer `request`.
fn oracle(request: Value) -> Value {
    support::python_json("pattern_oracle.py", &[], &request)
}

/// Compares `is_delegated_path` for roles with `paths` against python-tuf.
fn compare_paths(cases: &[(Vec<String>, String)]) -> (Vec<String>, usize) {
    let answers = oracle(json!({"op": "paths", "cases": cases}));
    let answers = answers.as_array().expect("a list");
    assert_eq!(answers.len(), cases.len());
    let mut diffs = Vec::new();
    let mut matched = 0;
    for ((patterns, target), theirs) in cases.iter().zip(answers) {
        let ours = is_delegated_path(target, Some(patterns.as_slice()), None);
        matched += usize::from(ours);
        if Value::Bool(ours) != *theirs {
            diffs.push(format!(
                "paths {patterns:?} target {target:?}: ours {ours}, python-tuf {theirs}"
            ));
        }
        // The single-pattern building block agrees with the role-level answer.
        if let [p] = &patterns[..] {
            assert_eq!(is_target_in_pathpattern(target, p), ours);
        }
    }
    (diffs, matched)
}

#[test]
fn table_of_tricky_patterns_matches_python_tuf() {
    let cases: Vec<(Vec<String>, String)> = table_cases()
        .into_iter()
        .map(|(p, t)| (vec![p], t))
        .collect();
    assert!(cases.len() >= 300, "{} table cases", cases.len());
    let (diffs, matched) = compare_paths(&cases);
    assert_no_differences("table", &diffs);
    assert!(
        matched > 50 && matched < cases.len() - 50,
        "{matched} matched"
    );
}

#[test]
fn random_patterns_match_python_tuf() {
    let cases: Vec<(Vec<String>, String)> = random_cases(0x00f4_a7c4, 6_000)
        .into_iter()
        .map(|(p, t)| (vec![p], t))
        .collect();
    let (diffs, matched) = compare_paths(&cases);
    assert_no_differences("random", &diffs);
    assert!(matched > 500, "only {matched} of the random cases matched");
}

#[test]
fn roles_with_several_patterns_match_python_tuf() {
    let mut rng = Rng(0x5e70_f9a7);
    let singles = random_cases(0xabc, 3_000);
    let table = table_cases();
    let mut cases: Vec<(Vec<String>, String)> = vec![(vec![], "a".into()), (vec![], "".into())];
    for (i, (pattern, target)) in singles.iter().enumerate() {
        let mut patterns = vec![pattern.clone()];
        for _ in 0..rng.below(3) {
            patterns.push(rng.pick(&table).0.clone());
        }
        if i % 2 == 0 {
            patterns.reverse();
        }
        cases.push((patterns, target.clone()));
    }
    let (diffs, matched) = compare_paths(&cases);
    assert_no_differences("several patterns", &diffs);
    assert!(matched > 300, "only {matched} matched");
}

#[test]
fn fnmatch_on_bare_names_matches_python() {
    let mut cases = table_cases();
    cases.extend(random_cases(0xf11e, 4_000));
    let request: Vec<(&str, &str)> = cases
        .iter()
        .map(|(p, t)| (t.as_str(), p.as_str()))
        .collect();
    let answers = oracle(json!({"op": "fnmatch", "cases": request}));
    let answers = answers.as_array().expect("a list");
    let diffs: Vec<String> = request
        .iter()
        .zip(answers)
        .filter(|((name, pat), theirs)| Value::Bool(fnmatch(name, pat)) != **theirs)
        .map(|((name, pat), theirs)| format!("fnmatch({name:?}, {pat:?}): python {theirs}"))
        .collect();
    assert_no_differences("fnmatch", &diffs);
}

#[test]
fn hash_prefix_roles_match_python_tuf() {
    let mut rng = Rng(0x4a54);
    let alphabet = ["a", "b", "/", ".", " ", "é", "日", "😀", "-", "0"];
    let mut cases: Vec<(Vec<String>, String)> = Vec::new();
    for i in 0..1_500 {
        let target = if i == 0 {
            String::new()
        } else {
            rng.string(&alphabet, 0, 20)
        };
        let h = hex::encode(Sha256::digest(target.as_bytes()));
        let cut = rng.below(65) as usize;
        let other = format!("{:02x}", rng.below(256));
        let prefixes: Vec<String> = match i % 10 {
            0 => vec![h[..cut].to_string()],
            1 => vec![h[..cut].to_uppercase()],
            2 => vec![other.clone()],
            3 => vec![other, h[..2].to_string()],
            4 => vec![],
            5 => vec![String::new()],
            6 => vec![h.clone() + "0"],
            7 => vec![h.clone()],
            8 => vec!["zz".into(), format!(" {}", &h[..2])],
            _ => (0..16).map(|d| format!("{d:x}")).collect(),
        };
        cases.push((prefixes, target));
    }
    let answers = oracle(json!({"op": "prefixes", "cases": cases}));
    let answers = answers.as_array().expect("a list");
    let mut matched = 0;
    let diffs: Vec<String> = cases
        .iter()
        .zip(answers)
        .filter_map(|((prefixes, target), theirs)| {
            let ours = is_delegated_path(target, None, Some(prefixes.as_slice()));
            matched += usize::from(ours);
            // When both are given the prefixes decide, as python-tuf's if/elif does.
            let star = ["*".to_string()];
            let with_paths = is_delegated_path(target, Some(&star), Some(prefixes.as_slice()));
            (Value::Bool(ours) != *theirs || with_paths != ours).then(|| {
                format!("prefixes {prefixes:?} target {target:?}: ours {ours}, python {theirs}")
            })
        })
        .collect();
    assert_no_differences("hash prefixes", &diffs);
    assert!(matched > 300 && matched < 1_200, "{matched} matched");
    assert!(!is_delegated_path("a", None, None));
}
