//! Delegated path matching exactly as python-tuf 7 does it (`DelegatedRole.is_delegated_path`).
//!
//! A target path and a pattern are split on `/`; they match when they have the same number of
//! segments and each segment matches with Python's `fnmatch.fnmatch` (case-sensitive on
//! POSIX). `*` therefore never crosses a `/`. Hash-prefix roles match when the hex sha256 of the
//! path starts with one of the prefixes.
//!
//! [`fnmatch`] reproduces CPython 3.11's `fnmatch.translate` followed by `re` semantics: the
//! bracket-expression quirks (a `]` right after `[` or `[!` is literal, an unterminated `[` is
//! literal, reversed ranges are dropped, `^` is literal, `-` first or last is literal, backslash
//! is not an escape, `*` and `?` match newlines) are all kept. So is the oddest one: translate
//! drops a reversed range *before* it looks for the leading `!`, so `[z-a!b]` becomes `[^b]`,
//! a negated set, while `[b-a^c]` stays the literal set `{^, c}`.

use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// `*`: any run of characters (consecutive stars are one).
    Star,
    /// `?`: any one character.
    Any,
    /// A literal character.
    Char(char),
    /// A bracket expression.
    Set {
        negated: bool,
        items: Vec<(char, char)>,
    },
    /// A bracket expression that can never match.
    Never,
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Star | Token::Any => true,
            Token::Char(x) => *x == c,
            Token::Set { negated, items } => {
                items.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
            Token::Never => false,
        }
    }
}

/// `fnmatch.translate`: pattern to tokens.
fn translate(pat: &[char]) -> Vec<Token> {
    let mut res = Vec::new();
    let n = pat.len();
    let mut i = 0;
    while i < n {
        let c = pat[i];
        i += 1;
        match c {
            '*' => {
                if res.last() != Some(&Token::Star) {
                    res.push(Token::Star);
                }
            }
            '?' => res.push(Token::Any),
            '[' => {
                let mut j = i;
                if j < n && pat[j] == '!' {
                    j += 1;
                }
                if j < n && pat[j] == ']' {
                    j += 1;
                }
                while j < n && pat[j] != ']' {
                    j += 1;
                }
                if j >= n {
                    res.push(Token::Char('['));
                    continue;
                }
                res.push(bracket(pat, i, j));
                i = j + 1;
            }
            other => res.push(Token::Char(other)),
        }
    }
    res
}

/// The class between `pat[i]` (just after `[`) and `pat[j]` (the closing `]`), built as
/// `fnmatch.translate` builds its regex text and then read with `sre_parse`'s class rules.
fn bracket(pat: &[char], mut i: usize, j: usize) -> Token {
    let stuff: Vec<char> = pat[i..j].to_vec();
    // The class body as regex text, with `\` escapes as translate writes them.
    let mut body: Vec<char> = Vec::new();
    let escape = |s: &[char], out: &mut Vec<char>, escape_hyphen: bool| {
        for &ch in s {
            if ch == '\\' || (escape_hyphen && ch == '-') || matches!(ch, '&' | '~' | '|') {
                out.push('\\');
            }
            out.push(ch);
        }
    };
    if !stuff.contains(&'-') {
        escape(&stuff, &mut body, false);
    } else {
        let mut chunks: Vec<Vec<char>> = Vec::new();
        let mut k = if pat[i] == '!' { i + 2 } else { i + 1 };
        loop {
            let found = (k..j).find(|&x| pat[x] == '-');
            let Some(at) = found else { break };
            chunks.push(pat[i..at].to_vec());
            i = at + 1;
            k = at + 3;
        }
        let chunk = pat[i..j].to_vec();
        if !chunk.is_empty() {
            chunks.push(chunk);
        } else if let Some(last) = chunks.last_mut() {
            last.push('-');
        }
        // Remove empty ranges, from the end, as translate does.
        let mut k = chunks.len().saturating_sub(1);
        while k > 0 {
            let prev_last = *chunks[k - 1].last().expect("chunks are non-empty here");
            if prev_last > chunks[k][0] {
                let tail: Vec<char> = chunks[k][1..].to_vec();
                chunks[k - 1].pop();
                chunks[k - 1].extend(tail);
                chunks.remove(k);
            }
            k -= 1;
        }
        for (n, c) in chunks.iter().enumerate() {
            if n > 0 {
                body.push('-');
            }
            escape(c, &mut body, true);
        }
    }
    if body.is_empty() {
        return Token::Never;
    }
    if body == ['!'] {
        return Token::Any;
    }
    let negated = body[0] == '!';
    if negated {
        body.remove(0);
    }
    // `^` and `[` at the start are escaped by translate; they are literals either way.
    Token::Set {
        negated,
        items: parse_class(&body),
    }
}

/// Reads a regex class body (without `[`, `^` and `]`) with `sre_parse` rules, for the only
/// escapes translate produces (`\` followed by a punctuation character means that character).
fn parse_class(body: &[char]) -> Vec<(char, char)> {
    let mut items = Vec::new();
    let mut p = 0;
    let next = |p: &mut usize| -> Option<char> {
        let c = *body.get(*p)?;
        *p += 1;
        if c == '\\' {
            let e = *body.get(*p)?;
            *p += 1;
            Some(e)
        } else {
            Some(c)
        }
    };
    while p < body.len() {
        let Some(lo) = next(&mut p) else { break };
        if body.get(p) == Some(&'-') && p + 1 < body.len() {
            p += 1;
            let hi = next(&mut p).expect("checked above");
            if lo <= hi {
                items.push((lo, hi));
            }
        } else if body.get(p) == Some(&'-') {
            // A trailing `-` is literal.
            p += 1;
            items.push((lo, lo));
            items.push(('-', '-'));
        } else {
            items.push((lo, lo));
        }
    }
    items
}

/// Whether all of `name` matches the tokens.
///
/// CPython matches `*` pieces with atomic `(?>.*?fixed)` groups and the last one with `.*fixed`.
/// Every token other than `*` consumes exactly one character, so taking the leftmost match of
/// each fixed piece is always right, and that is what classic wildcard matching with a single
/// backtrack point (the latest `*`) does: O(len(name) * len(tokens)), never exponential.
/// Works on byte offsets into `name`, so the name is not copied.
fn match_tokens(tokens: &[Token], name: &str) -> bool {
    let (mut t, mut s) = (0, 0);
    // (token after the latest star, byte offset where that star's match currently ends).
    let mut star: Option<(usize, usize)> = None;
    while let Some(c) = name[s..].chars().next() {
        match tokens.get(t) {
            Some(Token::Star) => {
                star = Some((t + 1, s));
                t += 1;
            }
            Some(tok) if tok.matches(c) => {
                t += 1;
                s += c.len_utf8();
            }
            _ => {
                let Some((after_star, end)) = star else {
                    return false;
                };
                // Let the star swallow one more character and retry the fixed piece.
                let swallowed = name[end..].chars().next().map_or(0, char::len_utf8);
                t = after_star;
                s = end + swallowed;
                star = Some((after_star, s));
            }
        }
    }
    tokens[t..].iter().all(|tok| *tok == Token::Star)
}

/// Python's `fnmatch.fnmatch(name, pattern)` on POSIX, which is `fnmatch.fnmatchcase`:
/// case-sensitive, `/` not special, `*` and `?` match any character including newline.
pub fn fnmatch(name: &str, pattern: &str) -> bool {
    let pat: Vec<char> = pattern.chars().collect();
    match_tokens(&translate(&pat), name)
}

/// python-tuf `DelegatedRole._is_target_in_pathpattern`: `target` and `pattern` split on `/`
/// have the same number of segments and each target segment matches its pattern segment.
pub fn is_target_in_pathpattern(target: &str, pattern: &str) -> bool {
    if target.matches('/').count() != pattern.matches('/').count() {
        return false;
    }
    target
        .split('/')
        .zip(pattern.split('/'))
        .all(|(t, p)| fnmatch(t, p))
}

/// Whether the lowercase hex sha256 of `target`'s UTF-8 bytes starts with any of `prefixes`
/// (so an empty prefix matches everything and an uppercase one nothing).
pub fn matches_hash_prefix(target: &str, prefixes: &[String]) -> bool {
    let hash = hex::encode(Sha256::digest(target.as_bytes()));
    prefixes.iter().any(|p| hash.starts_with(p.as_str()))
}

/// python-tuf `DelegatedRole.is_delegated_path`: the hash prefixes decide when they are set
/// (python-tuf refuses a role with both), else any of the path patterns; neither is false.
pub fn is_delegated_path(
    target: &str,
    paths: Option<&[String]>,
    path_hash_prefixes: Option<&[String]>,
) -> bool {
    if let Some(prefixes) = path_hash_prefixes {
        return matches_hash_prefix(target, prefixes);
    }
    paths.is_some_and(|ps| ps.iter().any(|p| is_target_in_pathpattern(target, p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globbing_basics() {
        for (name, pattern, matches) in [
            ("file.tar.gz", "*.tar.gz", true),
            ("", "*", true),
            ("", "?", false),
            ("a", "[abc]", true),
            ("a", "[!abc]", false),
            ("]", "[]]", true),
            ("x", "[!]]", true),
            ("-", "[a-]", true),
            ("a", "[z-a]", false),
            ("q", "[!z-a]", true),
            ("c", "[z-a!b]", true),
            ("b", "[z-a!b]", false),
            ("!", "[z-a!b]", true),
            ("^", "[b-a^c]", true),
            ("a", "[b-a^c]", false),
            ("^", "[^a]", true),
            ("[abc", "[abc", true),
            ("\\", "\\", true),
            ("A", "a", false),
            ("aaaaaaaaaaaaaaaaaaaaaaaaab", "*a*a*a*a*a*a*b", true),
            ("a\nb", "a*b", true),
            ("日本語", "?本*", true),
            ("日本語", "??", false),
        ] {
            assert_eq!(
                fnmatch(name, pattern),
                matches,
                "fnmatch({name:?}, {pattern:?})"
            );
        }
    }

    #[test]
    fn pathological_patterns_stay_fast() {
        let name = "a".repeat(20_000);
        let pattern = "*a".repeat(50) + "*b";
        let started = std::time::Instant::now();
        assert!(!fnmatch(&name, &pattern));
        assert!(fnmatch(&(name.clone() + "b"), &pattern));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn segments_do_not_cross_slashes() {
        assert!(is_target_in_pathpattern("a/b.txt", "a/*"));
        assert!(!is_target_in_pathpattern("a/b/c.txt", "a/*"));
        assert!(!is_target_in_pathpattern("other/dir/file", "*"));
        assert!(is_target_in_pathpattern("x/y", "*/*"));
    }
}
