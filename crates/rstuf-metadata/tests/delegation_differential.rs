//! TAP 15 hash bins and delegated path matching against python-tuf's `SuccinctRoles` and
//! `DelegatedRole.is_delegated_path`.

use rstuf_test_support as support;

use rstuf_metadata::pattern::is_delegated_path;
use rstuf_metadata::succinct::SuccinctRoles;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use support::Rng;

const BIN_COUNTS: [u64; 6] = [2, 16, 256, 4096, 16384, 65536];

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

fn tricky_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "bins-0",
        "bins-1",
        "bins-f",
        "bins-00",
        "bins-ff",
        "bins-FF",
        "bins-100",
        "bins-0000",
        "bins-3fff",
        "bins-4000",
        "bins-ffff",
        "bins-fffff",
        "bins-",
        "bins",
        "bins--0",
        "bins--1",
        "bins-+1",
        "bins- 1",
        "bins-1 ",
        "bins-0x1",
        "bins-0x",
        "bins-_1",
        "bins-1_",
        "bins-1_1",
        "bins-g",
        "bins-0g",
        "Bins-0",
        "bin-00",
        "bins-\t1",
        "bins-١",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for w in 1..=5 {
        names.push(format!("bins-{}", "0".repeat(w)));
        names.push(format!("bins-{}", "f".repeat(w)));
    }
    names
}

fn tricky_patterns() -> Vec<(String, String)> {
    let table: &[(&str, &[&str])] = &[
        ("*", &["", "a", "a/b", "file.tar.gz", ".hidden", "a\nb"]),
        (
            "*.tar.gz",
            &[
                "x.tar.gz",
                ".tar.gz",
                "x.tar.gz/y",
                "dir/x.tar.gz",
                "x.TAR.GZ",
            ],
        ),
        ("a/*", &["a/b", "a/", "a/b/c", "b/a", "a"]),
        ("*/*", &["a/b", "/", "a/b/c", "ab"]),
        ("a/*/c", &["a/b/c", "a//c", "a/b/d/c"]),
        ("[abc]", &["a", "b", "d", "ab", ""]),
        ("[!abc]", &["a", "d", "!", ""]),
        ("[]]", &["]", "[", "]]"]),
        ("[!]]", &["]", "a", "!"]),
        ("[a-]", &["a", "-", "b"]),
        ("[-a]", &["a", "-", "b"]),
        ("[z-a]", &["a", "z", "m", "-"]),
        ("[!z-a]", &["a", "z", "m", "-"]),
        ("[^a]", &["^", "a", "b"]),
        ("[abc", &["[abc", "a"]),
        ("[a-c-e]", &["b", "-", "d", "e"]),
        ("[a-cx-z]", &["b", "y", "d"]),
        ("[--0]", &["-", ".", "/", "0", "1"]),
        ("[\\]", &["\\", "]"]),
        ("[a\\-z]", &["a", "\\", "m", "z", "-"]),
        ("[&&a]", &["&", "a"]),
        ("[|~]", &["|", "~"]),
        ("[[]", &["[", "]"]),
        ("[é-ü]", &["ñ", "e", "ü"]),
        ("?", &["a", "", "ab", "é", "😀"]),
        ("??", &["ab", "a"]),
        ("\\*", &["\\*", "*", "\\x"]),
        ("a?c", &["abc", "ac", "a/c"]),
        ("A*", &["a", "A", "Abc"]),
        ("a//b", &["a//b", "a/b", "a/x/b"]),
        ("/a", &["/a", "a"]),
        ("a/", &["a/", "a"]),
        ("**", &["x", "x/y"]),
        ("*a*a*a*a*b", &["aaaaaaaaaaaaaaaaaaaaaaaa", "aaaaab", "ab"]),
        (".*", &[".x", "x", "."]),
        ("*.*", &["a.b", "ab", "."]),
        ("x[!/]y", &["xay", "x/y"]),
        ("", &["", "a"]),
        ("é", &["é", "e\u{301}"]),
    ];
    let mut pairs = Vec::new();
    for (p, targets) in table {
        for t in *targets {
            pairs.push((p.to_string(), t.to_string()));
        }
    }
    pairs
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
    let mut patterns = tricky_patterns();
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
    assert!(
        differences.is_empty(),
        "{} differences: {:?}",
        differences.len(),
        &differences[..differences.len().min(10)]
    );
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
