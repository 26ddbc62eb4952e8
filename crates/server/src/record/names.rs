//! Which streams are recorded: `[record] streams`, patterns over stream names where `*`
//! matches any run of characters. A leading `live/` is allowed (`"live/*"`), because that is
//! how an operator sees a stream in its publish URL.

use super::RecordError;

/// The patterns, checked once when the configuration is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePatterns(Vec<String>);

impl NamePatterns {
    /// Checks every pattern: after an optional `live/`, 1–64 characters of a stream name
    /// (`A-Z a-z 0-9 _ -`) or `*`.
    pub fn new(patterns: &[String]) -> Result<Self, RecordError> {
        let mut out = Vec::with_capacity(patterns.len());
        for p in patterns {
            let bare = p.strip_prefix("live/").unwrap_or(p);
            let ok = (1..=64).contains(&bare.len())
                && bare
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'*');
            if !ok {
                return Err(RecordError::Pattern(format!(
                    "{p:?}: expected a stream name where * matches any characters, e.g. \"show-*\" or \"live/*\""
                )));
            }
            out.push(bare.to_owned());
        }
        Ok(Self(out))
    }

    /// True if `name` matches one of the patterns.
    pub fn matches(&self, name: &str) -> bool {
        self.0.iter().any(|p| glob(p.as_bytes(), name.as_bytes()))
    }
}

/// `*`-only glob, linear in practice: on a mismatch after a `*`, the star takes one more
/// character and the rest is tried again (the classic two-pointer walk; no recursion, so a
/// pattern of many stars cannot blow the stack).
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(p: &[&str]) -> NamePatterns {
        NamePatterns::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn stars_match_any_run_and_live_is_optional() {
        let p = pats(&["live/show-*", "demo", "*-hd"]);
        for yes in ["show-1", "show-", "demo", "news-hd", "-hd"] {
            assert!(p.matches(yes), "{yes}");
        }
        for no in ["show", "demo2", "xdemo", "news-hd2", "live"] {
            assert!(!p.matches(no), "{no}");
        }
        assert!(pats(&["*"]).matches("anything"));
        assert!(pats(&["a*b*c"]).matches("aXbYbZc"));
        assert!(!pats(&["a*b*c"]).matches("aXbYbZ"));
        assert!(!pats(&[]).matches("a"));
        // Many stars against a long miss stays quick (no backtracking blow-up).
        let long = "a".repeat(64);
        assert!(!pats(&["*a*a*a*a*a*a*a*a*a*a*b"]).matches(&long));
    }

    #[test]
    fn bad_patterns_are_refused_with_the_reason() {
        let long = "x".repeat(65);
        for bad in ["", "live/", "a/b", "../x", "a b", long.as_str()] {
            let e = NamePatterns::new(&[bad.to_string()])
                .unwrap_err()
                .to_string();
            assert!(e.contains("stream name"), "{bad}: {e}");
        }
    }
}
