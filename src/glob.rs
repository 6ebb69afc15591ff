//! Redis's glob matching (`stringmatchlen` in Redis's util.c), byte for
//! byte: `*`, `?`, `[abc]`, `[^x]`, `[a-z]` (reversed ranges too), `\`
//! escapes, and its edge cases (an unterminated `[` matches what it
//! collected; bytes compare as C's signed `char`, as Redis does). Used by
//! KEYS and SCAN MATCH. Knows nothing else.
//!
//! Time is bounded as in Redis 7: once a `*` failed to match the rest of
//! the pattern from every position, earlier `*`s are not retried
//! (`skipLongerMatches`), so a pattern like `a*a*a*a*b` is polynomial.

/// True when `string` matches the glob `pattern` (case-sensitive).
pub fn matches(pattern: &[u8], string: &[u8]) -> bool {
    let mut skip = false;
    match_impl(pattern, string, &mut skip)
}

/// The byte at `i`, or 0 past the end (Redis's patterns are NUL-terminated
/// and its loop reads one byte past them in places).
#[inline]
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

/// A byte as C's (signed) `char` promoted to `int`.
#[inline]
fn c_char(b: u8) -> i32 {
    b as i8 as i32
}

fn match_impl(pattern: &[u8], string: &[u8], skip_longer: &mut bool) -> bool {
    let (mut p, mut s) = (0usize, 0usize);
    let (plen, slen) = (pattern.len(), string.len());
    while p < plen && s < slen {
        match pattern[p] {
            b'*' => {
                while p < plen && at(pattern, p + 1) == b'*' {
                    p += 1;
                }
                if plen - p == 1 {
                    return true;
                }
                while s < slen {
                    if match_impl(&pattern[p + 1..], &string[s..], skip_longer) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s += 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => s += 1,
            b'[' => {
                p += 1;
                let not = at(pattern, p) == b'^';
                if not {
                    p += 1;
                }
                let mut matched = false;
                loop {
                    if at(pattern, p) == b'\\' && plen.saturating_sub(p) >= 2 {
                        p += 1;
                        if pattern[p] == string[s] {
                            matched = true;
                        }
                    } else if at(pattern, p) == b']' {
                        break;
                    } else if p >= plen {
                        // Unterminated: step back so the `p += 1` below
                        // leaves the pattern at its end.
                        p -= 1;
                        break;
                    } else if plen - p >= 3 && pattern[p + 1] == b'-' {
                        let (mut start, mut end) = (c_char(pattern[p]), c_char(pattern[p + 2]));
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        let c = c_char(string[s]);
                        p += 2;
                        if c >= start && c <= end {
                            matched = true;
                        }
                    } else if pattern[p] == string[s] {
                        matched = true;
                    }
                    p += 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s += 1;
            }
            c => {
                let c = if c == b'\\' && plen - p >= 2 {
                    p += 1;
                    pattern[p]
                } else {
                    c
                };
                if c != string[s] {
                    return false;
                }
                s += 1;
            }
        }
        p += 1;
        if s == slen {
            while at(pattern, p) == b'*' {
                p += 1;
            }
            break;
        }
    }
    p >= plen && s == slen
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn redis_glob_rules() {
        let yes = [
            ("*", "anything"),
            ("h?llo", "hello"),
            ("h*llo", "heeeello"),
            ("h[ae]llo", "hallo"),
            ("h[^e]llo", "hallo"),
            ("h[a-b]llo", "hbllo"),
            ("h[b-a]llo", "hallo"),
            ("a\\*b", "a*b"),
            ("a\\?", "a?"),
            ("[\\]]", "]"),
            ("user:*:name", "user:42:name"),
            ("a[b", "ab"),
            ("a**b", "ab"),
            ("*a*", "banana"),
            ("x*", "x"),
        ];
        for (p, s) in yes {
            assert!(matches(p.as_bytes(), s.as_bytes()), "{p} ~ {s}");
        }
        let no = [
            ("h?llo", "hllo"),
            ("h[^e]llo", "hello"),
            ("h[a-b]llo", "hcllo"),
            ("a\\*b", "axb"),
            ("abc", "ab"),
            ("ab", "abc"),
            ("?", ""),
            ("ab[", "abc"),
            ("[a]", ""),
            ("", "a"),
            (
                "a*a*a*a*a*a*a*a*b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            ),
        ];
        for (p, s) in no {
            assert!(!matches(p.as_bytes(), s.as_bytes()), "{p} !~ {s}");
        }
        assert!(matches(b"", b""));
        // As in Redis, a lone `*` does not match the empty key here: KEYS
        // and SCAN treat the pattern `*` as "no pattern" before matching.
        assert!(!matches(b"*", b""));
    }
}
