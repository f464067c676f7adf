//! TAP 15 succinct hash bins against python-tuf 7's `SuccinctRoles`, and RSTUF's
//! `int(math.log(n, 2))` against CPython (oracle: `tests/python/succinct_oracle.py`).
//!
//! Every comparison counts the differences and fails on any, printing the first few.

use rstuf_metadata::succinct::SuccinctRoles;
use rstuf_test_support as support;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use common::{BIN_COUNTS, assert_no_differences, tricky_names};
use support::Rng;

mod common;

fn bins(bit_length: u32) -> SuccinctRoles {
    SuccinctRoles::new(vec!["k".into()], 1, bit_length, "bins")
}

fn deployed_bit_lengths() -> Vec<u32> {
    let bits: Vec<u32> = BIN_COUNTS
        .iter()
        .map(|n| SuccinctRoles::bit_length_for_bins(*n).expect("at least 2 bins"))
        .collect();
    assert_eq!(bits, [1, 4, 8, 12, 14, 16]);
    bits
}

/// 10,000 seeded random target paths (ASCII, spaces, slashes, dots, accents, CJK, emoji,
/// combining marks, control characters) plus hand-picked ones, the empty string included.
fn random_paths(seed: u64, n: usize) -> Vec<String> {
    let mut rng = Rng(seed);
    let alphabet = [
        "a",
        "b",
        "z",
        "0",
        "9",
        "A",
        "Z",
        "/",
        "/",
        ".",
        "-",
        "_",
        " ",
        "%",
        "+",
        "~",
        "é",
        "e\u{301}",
        "日",
        "本",
        "😀",
        "\u{10ffff}",
        "\t",
        "\n",
        "tar",
        ".gz",
        "..",
        "//",
    ];
    let mut paths: Vec<String> = [
        "",
        "/",
        "//",
        " ",
        "file1.tar.gz",
        "file2.tar.gz",
        "file3.tar.gz",
        "a/b/c.txt",
        "file 1.txt",
        "/leading/slash",
        "trailing/slash/",
        "日本語/ファイル.txt",
        "😀",
        "a\nb",
        "%2F",
        "..",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    while paths.len() < n {
        paths.push(rng.string(&alphabet, 0, 30));
    }
    paths
}

/// Differences between our answers and Python's, as printable lines.
fn differences<T: serde::Serialize + std::fmt::Debug>(
    what: &str,
    inputs: &[impl std::fmt::Debug],
    ours: &[T],
    theirs: &Value,
) -> Vec<String> {
    let theirs = theirs.as_array().expect("a list from the oracle");
    assert_eq!(theirs.len(), ours.len(), "{what}: answer count");
    inputs
        .iter()
        .zip(ours)
        .zip(theirs)
        .filter(|((_, o), t)| serde_json::to_value(o).unwrap() != **t)
        .map(|((i, o), t)| format!("{what} {i:?}: ours {o:?}, python-tuf {t}"))
        .collect()
}

/// Asks `succinct_oracle.py` to answer `request`.
fn oracle(request: Value) -> Value {
    support::python_json("succinct_oracle.py", &[], &request)
}

#[test]
fn role_for_target_matches_python_tuf() {
    let paths = random_paths(0x7a91_5b15, 10_000);
    let few = &paths[..1_000];
    let deployed = deployed_bit_lengths();
    let all_lengths: Vec<u32> = (1..=32).collect();
    let big = oracle(json!({"op": "for_target", "bit_lengths": deployed, "paths": paths}));
    let every = oracle(json!({"op": "for_target", "bit_lengths": all_lengths, "paths": few}));
    let mut diffs = Vec::new();
    let mut compared = 0;
    for (lengths, paths, answers) in [(&deployed, &paths[..], &big), (&all_lengths, few, &every)] {
        for &b in lengths {
            let sr = bins(b);
            let ours: Vec<String> = paths.iter().map(|p| sr.role_for_target(p)).collect();
            compared += ours.len();
            diffs.extend(differences(
                &format!("bit_length {b} path"),
                paths,
                &ours,
                &answers[b.to_string()],
            ));
        }
    }
    assert_eq!(compared, 6 * 10_000 + 32 * 1_000);
    assert_no_differences("role_for_target", &diffs);
}

#[test]
fn role_names_match_python_tuf_get_roles() {
    let mut lengths = deployed_bit_lengths();
    lengths.extend([2, 3, 5, 6, 7, 9, 10, 11, 13, 15, 17, 20]);
    let full_up_to = 65_536;
    let answers = oracle(json!({"op": "roles", "bit_lengths": lengths, "full_up_to": full_up_to}));
    let mut diffs = Vec::new();
    for b in lengths {
        let sr = bins(b);
        let py = &answers[b.to_string()];
        let ours: Vec<String> = sr.role_names().collect();
        let count = py["count"].as_u64().unwrap();
        if ours.len() as u64 != count || sr.number_of_bins() != count {
            diffs.push(format!(
                "bit_length {b}: {} names, number_of_bins {}, python-tuf {count}",
                ours.len(),
                sr.number_of_bins()
            ));
        }
        let sha = hex::encode(Sha256::digest(ours.join("\n").as_bytes()));
        if sha != py["sha256"] || ours[0] != py["first"] || *ours.last().unwrap() != py["last"] {
            diffs.push(format!("bit_length {b}: names differ ({sha})"));
        }
        if count <= full_up_to {
            let theirs = py["all"].as_array().expect("the full list");
            let indices: Vec<usize> = (0..ours.len()).collect();
            diffs.extend(differences(
                &format!("bit_length {b} bin"),
                &indices,
                &ours,
                &Value::Array(theirs.clone()),
            ));
            // role_name(i) is the i-th name, and the width is python-tuf's suffix_len.
            let width = ours[0].len() - "bins-".len();
            if width != sr.suffix_len() {
                diffs.push(format!("bit_length {b}: suffix_len {}", sr.suffix_len()));
            }
        }
    }
    assert_no_differences("role names", &diffs);
}

#[test]
fn is_delegated_role_matches_python_tuf() {
    let mut rng = Rng(0xde1e_6a7e);
    let mut names = tricky_names();
    // Valid names of every width, and near misses built from int()'s alphabet.
    let suffix_alphabet = [
        "0", "1", "7", "9", "a", "f", "A", "F", "g", "G", "x", "X", "_", "-", "+", " ", "\t",
        "\u{b}", "\u{1c}", "\u{a0}", "\u{3000}", "\u{660}", "\u{661}", "\u{669}", "\u{ff10}",
        "\u{ff21}", "\u{0}", "é",
    ];
    let prefixes = [
        "bins-", "bins-", "bins-", "bins", "bins--", "Bins-", "bin-", "",
    ];
    for b in 1..=32 {
        let sr = bins(b);
        for _ in 0..20 {
            let index = (rng.next() >> (64 - b)) as u32;
            names.push(sr.role_name(index));
        }
    }
    for _ in 0..4_000 {
        let prefix = *rng.pick(&prefixes);
        let len = rng.below(10);
        names.push(format!(
            "{prefix}{}",
            rng.string(&suffix_alphabet, len, len)
        ));
    }
    let lengths: Vec<u32> = (1..=32).collect();
    let answers = oracle(json!({"op": "is_delegated", "bit_lengths": lengths, "names": names}));
    let mut diffs = Vec::new();
    let mut accepted = 0;
    for b in lengths {
        let sr = bins(b);
        let ours: Vec<bool> = names.iter().map(|n| sr.is_delegated_role(n)).collect();
        accepted += ours.iter().filter(|x| **x).count();
        diffs.extend(differences(
            &format!("bit_length {b} name"),
            &names,
            &ours,
            &answers[b.to_string()],
        ));
    }
    // Both answers occur plenty, so the comparison means something.
    assert!(accepted > 1_000, "only {accepted} names accepted");
    assert_no_differences("is_delegated_role", &diffs);
}

#[test]
fn bit_length_for_bins_matches_python_math_log() {
    let mut rng = Rng(0x1062);
    let mut numbers: Vec<u64> = (2..=65_536).collect();
    for k in 1..64 {
        let p = 1u64 << k;
        numbers.extend([p - 1, p, p + 1]);
    }
    for k in 1..20 {
        numbers.push(10u64.pow(k));
    }
    for _ in 0..5_000 {
        let shift = rng.below(63) as u32;
        numbers.push((rng.next() >> shift).max(2));
    }
    numbers.extend([(1 << 53) + 1, (1 << 54) - 1, u64::MAX - 1, u64::MAX]);
    numbers.retain(|n| *n >= 2);
    let answers = oracle(json!({"op": "log2", "numbers": numbers}));
    let ours: Vec<Option<u32>> = numbers
        .iter()
        .map(|n| SuccinctRoles::bit_length_for_bins(*n))
        .collect();
    assert_no_differences("log2", &differences("log2", &numbers, &ours, &answers));
    // Below 2 bins there is no bit length (Python gives 0 for 1 and raises for 0).
    assert_eq!(SuccinctRoles::bit_length_for_bins(1), None);
    assert_eq!(SuccinctRoles::bit_length_for_bins(0), None);
}

#[test]
fn validate_matches_python_tuf_constructor() {
    let lengths: Vec<u32> = (0..=70).collect();
    let answers = oracle(json!({"op": "construct", "bit_lengths": lengths}));
    let ours: Vec<bool> = lengths
        .iter()
        .map(|b| bins(*b).validate().is_ok())
        .collect();
    assert_no_differences(
        "construct",
        &differences("bit_length", &lengths, &ours, &answers),
    );
}
