//! Tables and checks shared by the differential tests against the Python oracles (each test
//! binary uses part of them).

#![allow(dead_code)]

/// The bin counts RSTUF deployments use, up to 65,536.
pub const BIN_COUNTS: [u64; 6] = [2, 16, 256, 4096, 16384, 65536];

/// Hand-written (pattern, targets) table: globbing basics, every bracket-expression quirk of
/// CPython 3.11's `fnmatch.translate`, segment counting, case, unicode.
pub const TABLE: &[(&str, &[&str])] = &[
    // `*` within one segment, including the empty string and newlines.
    (
        "*",
        &[
            "",
            "a",
            "a/b",
            "/",
            "file.tar.gz",
            ".hidden",
            "a\nb",
            "\n",
            " ",
        ],
    ),
    (
        "*.tar.gz",
        &[
            "x.tar.gz",
            ".tar.gz",
            "x.tar.gz/y",
            "dir/x.tar.gz",
            "x.TAR.GZ",
            "x.tar.gzz",
            "x.tar.g",
        ],
    ),
    ("*.*", &["a.b", "ab", ".", "a.", ".b", "a/b.c"]),
    (".*", &[".x", "x", ".", ".."]),
    ("*a", &["a", "ba", "ab", "aaa", ""]),
    ("a*", &["a", "ab", "ba", "a/b"]),
    ("a*b*c", &["abc", "aXbYc", "acb", "abcbc", "ab/c"]),
    (
        "*a*a*a*a*b",
        &[
            "aaaaaaaaaaaaaaaaaaaaaaaa",
            "aaaaab",
            "aaaab",
            "ab",
            "aaaaaaaaab",
        ],
    ),
    ("*ab*ab", &["abab", "ababab", "aabab", "abba", "abaab"]),
    ("**", &["x", "", "x/y"]),
    ("a**b", &["ab", "axxb", "a/b"]),
    // `?` is exactly one code point.
    ("?", &["a", "", "ab", "é", "e\u{301}", "😀", "\n", "/"]),
    ("??", &["ab", "a", "abc", "日本"]),
    ("a?c", &["abc", "ac", "a/c", "a\nc", "abbc"]),
    ("?*", &["", "a", "ab"]),
    ("*?", &["", "a", "ab"]),
    // Segments: counts must be equal and `*` never crosses a `/`.
    ("a/*", &["a/b", "a/", "a/b/c", "b/a", "a", "a/.x"]),
    ("*/*", &["a/b", "/", "a/b/c", "ab", "/a", "a/"]),
    ("a/*/c", &["a/b/c", "a//c", "a/b/d/c", "a/b/c/"]),
    ("*/*/*", &["a/b/c", "//", "a/b", "a/b/c/d"]),
    ("a//b", &["a//b", "a/b", "a/x/b", "a///b"]),
    ("/a", &["/a", "a", "//a"]),
    ("a/", &["a/", "a", "a//"]),
    ("/", &["/", "", "a/b"]),
    ("", &["", "a", "/"]),
    ("/*", &["/x", "x", "/"]),
    ("*/", &["x/", "x", "/"]),
    (
        "dir/*.txt",
        &["dir/a.txt", "dir/sub/a.txt", "Dir/a.txt", "dir/.txt"],
    ),
    ("?/?", &["a/b", "ab/c", "/"]),
    // Bracket expressions.
    ("[abc]", &["a", "b", "c", "d", "ab", "", "A"]),
    ("[!abc]", &["a", "d", "!", "", "A", "\n"]),
    ("[a-c]", &["a", "b", "c", "d", "-"]),
    ("[!a-c]", &["a", "d", "-"]),
    ("[a-cx-z]", &["b", "y", "d", "-"]),
    ("[a-c-e]", &["a", "b", "-", "d", "e"]),
    ("[]]", &["]", "[", "]]", ""]),
    ("[]a]", &["]", "a", "b"]),
    ("[!]]", &["]", "a", "!"]),
    ("[!]a]", &["]", "a", "b"]),
    ("[]-a]", &["]", "^", "a", "-", "b"]),
    ("[!]-a]", &["]", "^", "a", "-", "b"]),
    ("[]-]", &["]", "-", "a"]),
    ("[a-]", &["a", "-", "b"]),
    ("[-a]", &["a", "-", "b"]),
    ("[!-a]", &["a", "-", "b"]),
    ("[!a-]", &["a", "-", "b"]),
    ("[-]", &["-", "a"]),
    ("[!-]", &["-", "a"]),
    ("[--]", &["-", "a"]),
    ("[---]", &["-", "a", ","]),
    ("[--0]", &["-", ".", "/", "0", "1"]),
    ("[a--]", &["a", "-", "b"]),
    ("[a--b]", &["a", "-", "b", "c"]),
    ("[z-a]", &["a", "z", "m", "-", ""]),
    ("[!z-a]", &["a", "z", "m", "-"]),
    ("[b-a]x", &["ax", "bx", "x"]),
    ("[b-ac]", &["a", "b", "c"]),
    ("[ab-a]", &["a", "b", "-"]),
    ("[a-ab-a]", &["a", "b"]),
    // Dropping a reversed first range can expose a `!`, `^` or `[` at the start of the set:
    // `[z-a!b]` becomes `[^b]` (negated!), `[b-a^c]` a literal `^`.
    ("[z-a!b]", &["!", "b", "c", "a"]),
    ("[z-a!a-c]", &["!", "b", "d", "-"]),
    ("[b-a!]", &["!", "x", "b"]),
    ("[b-a^c]", &["^", "c", "a"]),
    ("[b-a[c]", &["[", "c", "a"]),
    ("[^a]", &["^", "a", "b"]),
    ("[!^a]", &["^", "a", "b"]),
    ("[^-a]", &["^", "_", "a", "-"]),
    ("[a^]", &["^", "a", "b"]),
    ("[[]", &["[", "]"]),
    ("[[a]", &["[", "a", "b"]),
    ("[!]", &["!", "[!]"]),
    ("[]", &["[]", "]", ""]),
    ("[!", &["[!", "!"]),
    ("[abc", &["[abc", "a", "[", "abc"]),
    ("a[bc", &["a[bc", "ab"]),
    ("[a/b]", &["a", "/", "[a/b]", "[a/b]"]),
    ("[!/]", &["a", "/"]),
    ("x[!/]y", &["xay", "x/y"]),
    ("[\\]", &["\\", "]"]),
    ("[\\a]", &["\\", "a", "b"]),
    ("[a\\-z]", &["a", "\\", "m", "z", "-", "b"]),
    ("[\\-a]", &["\\", "]", "a", "-"]),
    ("[&&a]", &["&", "a", "b"]),
    ("[a&&b]", &["&", "a", "b"]),
    ("[|~]", &["|", "~", "a"]),
    ("[~~]", &["~"]),
    ("[a||b]", &["|", "b"]),
    ("[é-ü]", &["ñ", "e", "ü", "é"]),
    ("[日本]", &["日", "本", "語"]),
    ("[😀-😂]", &["😁", "😃"]),
    ("[.]", &[".", "a"]),
    ("[*]", &["*", "a"]),
    ("[?]", &["?", "a"]),
    ("[\n]", &["\n", "n"]),
    ("[[:alpha:]]", &["a", "[", ":", "a]", ":]"]),
    // Backslash is not an escape.
    ("\\*", &["\\*", "*", "\\x", "\\"]),
    ("\\?", &["\\?", "?", "\\a"]),
    ("\\[a]", &["\\a", "[a]"]),
    ("a\\b", &["a\\b", "ab"]),
    // Case is significant, regex metacharacters are literal.
    ("A*", &["a", "A", "Abc"]),
    ("file.TXT", &["file.txt", "file.TXT"]),
    ("a.c", &["a.c", "abc"]),
    ("a+b", &["a+b", "aab"]),
    ("(a|b)", &["(a|b)", "a"]),
    ("^a$", &["^a$", "a"]),
    ("a{2}", &["a{2}", "aa"]),
    ("$", &["$", ""]),
    // Unicode is matched by code point, without normalisation.
    ("é", &["é", "e\u{301}"]),
    ("e?", &["e\u{301}", "é"]),
    ("日本/*", &["日本/語", "日本/", "日本"]),
];

/// Every (pattern, target) pair of [`TABLE`], in its order.
pub fn table_cases() -> Vec<(String, String)> {
    TABLE
        .iter()
        .flat_map(|(p, ts)| ts.iter().map(move |t| (p.to_string(), t.to_string())))
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
