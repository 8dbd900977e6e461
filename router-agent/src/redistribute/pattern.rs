//! Interface-name patterns: `*` (any run, empty included) and `?` (one character), nothing
//! else. Hand-rolled: a glob this small is not worth a crate (globset pulls regex).

use std::fmt;

/// A validated interface-name pattern, e.g. `cali*`, `tap?`, `eth2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// Refuses what cannot match an interface name: empty, longer than IFNAMSIZ - 1 (15),
    /// or characters the kernel does not allow in a name (`/`, whitespace, NUL).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("an empty pattern matches no interface".into());
        }
        if text.len() >= libc::IFNAMSIZ {
            return Err(format!(
                "{text:?} is longer than an interface name can be ({} characters)",
                libc::IFNAMSIZ - 1
            ));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| *c == '/' || c.is_whitespace() || *c == '\0' || *c == ':')
        {
            return Err(format!(
                "{text:?}: {bad:?} cannot be in an interface name (patterns use only * and ?)"
            ));
        }
        if text.contains(['[', ']', '{', '}']) {
            return Err(format!(
                "{text:?}: only * and ? are wildcards (no [...] or {{...}})"
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        glob_match(self.0.as_bytes(), name.as_bytes())
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Iterative glob with single-star backtracking: linear in practice, never exponential.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Where the last `*` was, and the name position it is currently taken to end at.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(b'?') => {
                p += 1;
                n += 1;
            }
            Some(c) if *c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                // Let the last star swallow one more character and retry.
                Some((sp, sn)) => {
                    star = Some((sp, sn + 1));
                    p = sp + 1;
                    n = sn + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        Pattern::parse(pattern).unwrap().matches(name)
    }

    #[test]
    fn literal_star_and_question_mark() {
        assert!(m("eth2", "eth2"));
        assert!(!m("eth2", "eth20"));
        assert!(!m("eth2", "eth"));
        assert!(m("cali*", "cali"));
        assert!(m("cali*", "cali12ab34"));
        assert!(!m("cali*", "xcali1"));
        assert!(m("tap?", "tap0"));
        assert!(!m("tap?", "tap"));
        assert!(!m("tap?", "tap10"));
        assert!(m("*", "lo"));
        assert!(m("*c0", "veth-c0"));
        assert!(!m("*c0", "veth-c1"));
        assert!(m("v*-*0", "veth-c0"));
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(!m("a*b*c", "aXbYbZ"));
        assert!(m("**", "x"));
    }

    #[test]
    fn backtracking_is_not_exponential() {
        let name = "a".repeat(15);
        assert!(!m("*a*a*a*a*a*a*b", &name));
    }

    #[test]
    fn refusals_explain() {
        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse("a23456789012345").is_ok());
        let long = Pattern::parse("a234567890123456").unwrap_err();
        assert!(long.contains("longer"), "{long}");
        assert!(Pattern::parse("eth/0").is_err());
        assert!(Pattern::parse("eth 0").is_err());
        let class = Pattern::parse("eth[0-3]").unwrap_err();
        assert!(class.contains("only * and ?"), "{class}");
    }
}
