//! Tables and checks shared by the differential tests against the Python oracles (each test
//! binary uses part of them).

#![allow(dead_code)]

/// The bin counts RSTUF deployments use, up to 65,536.
pub const BIN_COUNTS: [u64; 6] = [2, 16, 256, 4096, 16384, 65536];

/// The hand-written glob cases of `glob_cases.json`, grouped by what they test.
#[derive(serde::Deserialize)]
struct GlobCases {
    groups: Vec<GlobGroup>,
}

#[derive(serde::Deserialize)]
struct GlobGroup {
    /// Each pattern with the targets it is tried on.
    cases: Vec<(String, Vec<String>)>,
}

/// Every (pattern, target) pair of the hand-written glob table (`glob_cases.json`: globbing
/// basics, every bracket-expression quirk of CPython 3.11's `fnmatch.translate`, segment
/// counting, case, unicode), in the file's order.
pub fn table_cases() -> Vec<(String, String)> {
    let table: GlobCases =
        serde_json::from_str(include_str!("glob_cases.json")).expect("glob_cases.json");
    table
        .groups
        .into_iter()
        .flat_map(|g| g.cases)
        .flat_map(|(p, ts)| ts.into_iter().map(move |t| (p.clone(), t)))
        .collect()
}

/// Names around the edges of `int(suffix, 16)` and of the prefix check.
pub fn tricky_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "bins-0",
        "bins-1",
        "bins-f",
        "bins-F",
        "bins-00",
        "bins-0f",
        "bins-ff",
        "bins-FF",
        "bins-fF",
        "bins-100",
        "bins-fff",
        "bins-FFF",
        "bins-1000",
        "bins-0000",
        "bins-3fff",
        "bins-4000",
        "bins-ffff",
        "bins-FFFF",
        "bins-10000",
        "bins-fffff",
        "bins-",
        "bins",
        "bins--",
        "bins--0",
        "bins--1",
        "bins--00",
        "bins--01",
        "bins-+1",
        "bins-+01",
        "bins-+f",
        "bins- 1",
        "bins-1 ",
        "bins- 1 ",
        "bins-  ",
        "bins-\t1",
        "bins-1\n",
        "bins-\u{b}1",
        "bins-\u{c}1",
        "bins-\u{1c}1",
        "bins-1\u{1f}",
        "bins-\u{85}1",
        "bins-\u{a0}1",
        "bins-\u{3000}1",
        "bins-\u{200b}1",
        "bins-0x",
        "bins-0x1",
        "bins-0X1",
        "bins-0x_",
        "bins-0x_1",
        "bins-0x__1",
        "bins-0xf",
        "bins-0xff",
        "bins--0x1",
        "bins-0b1",
        "bins-_",
        "bins-_1",
        "bins-1_",
        "bins-1_1",
        "bins-1__1",
        "bins-f_f",
        "bins-g",
        "bins-0g",
        "bins-gg",
        "bins-\u{0}",
        "bins-1\u{0}",
        "bins-\u{7f}",
        "bins-é",
        "bins-\u{661}",
        "bins-\u{661}\u{662}",
        "bins-\u{660}x1",
        "bins-\u{ff11}",
        "bins-\u{ff11}f",
        "bins-\u{ff21}",
        "bins-\u{1d7ce}",
        "bins-\u{2460}",
        "bins-\u{b2}",
        "bins-1\u{301}",
        "Bins-0",
        "BINS-00",
        "bin-00",
        "bins_00",
        "binss-00",
        "xbins-00",
        "bins-00-00",
        "bins/00",
        "",
        "-",
        "-0",
        "0",
        "targets",
        "root",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for w in 1..=9 {
        for d in ["0", "1", "7", "8", "f", "F"] {
            names.push(format!("bins-{}", d.repeat(w)));
        }
        names.push(format!("bins-{}", "0".repeat(w - 1) + "g"));
    }
    names
}

/// Fails on any difference with the oracle, printing how many and the first ones.
pub fn assert_no_differences(what: &str, differences: &[String]) {
    assert!(
        differences.is_empty(),
        "{what}: {} differences with python, first ones:\n{}",
        differences.len(),
        differences[..differences.len().min(20)].join("\n")
    );
}
