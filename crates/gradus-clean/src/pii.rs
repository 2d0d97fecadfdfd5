//! Personal data scrubbing: e-mail addresses and IP addresses become placeholders, and
//! each replacement is counted so the report can say how much was removed.

use std::net::Ipv6Addr;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde::{Deserialize, Serialize};

/// Placeholder for an e-mail address.
pub const EMAIL_PLACEHOLDER: &str = "<EMAIL>";
/// Placeholder for an IPv4 or IPv6 address.
pub const IP_PLACEHOLDER: &str = "<IP_ADDRESS>";

#[allow(clippy::unwrap_used)] // literal patterns, covered by the tests
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}").unwrap()
});

#[allow(clippy::unwrap_used)]
static IPV4: LazyLock<Regex> = LazyLock::new(|| {
    // ASCII word boundaries keep the regex on its fast DFA path.
    Regex::new(r"(?-u:\b)(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?-u:\b)").unwrap()
});

/// Which kinds of personal data are replaced (`[pii]` in the pipeline TOML).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PiiConfig {
    pub emails: bool,
    pub ip_addresses: bool,
}

impl Default for PiiConfig {
    fn default() -> Self {
        Self {
            emails: true,
            ip_addresses: true,
        }
    }
}

/// The scrubbed text and the replacements made.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scrubbed {
    pub text: String,
    pub emails: u32,
    pub ipv4: u32,
    pub ipv6: u32,
}

impl PiiConfig {
    pub fn apply(&self, text: &str) -> Scrubbed {
        let mut out = Scrubbed {
            text: text.to_owned(),
            ..Scrubbed::default()
        };
        // Cheap pre-checks skip the regexes on most documents.
        if self.emails && out.text.contains('@') {
            let (t, n) = replace_counted(&EMAIL, &out.text, EMAIL_PLACEHOLDER, |_| true);
            (out.text, out.emails) = (t, n);
        }
        if self.ip_addresses && out.text.contains('.') {
            let (t, n) = replace_counted(&IPV4, &out.text, IP_PLACEHOLDER, |_| true);
            (out.text, out.ipv4) = (t, n);
        }
        if self.ip_addresses && out.text.contains(':') {
            (out.text, out.ipv6) = replace_ipv6(&out.text);
        }
        out
    }
}

/// Replaces IPv6 addresses: maximal runs of hex digits and colons with at least two
/// colons, not inside a word, that parse as an address (so `12:30:45` and `std::vec`
/// stay).
fn replace_ipv6(text: &str) -> (String, u32) {
    let is_part = |c: char| c.is_ascii_hexdigit() || c == ':';
    let mut out = String::with_capacity(text.len());
    let mut n = 0;
    let mut rest = text;
    while let Some(start) = rest.find(is_part) {
        let end = rest[start..]
            .find(|c: char| !is_part(c))
            .map_or(rest.len(), |e| start + e);
        let run = &rest[start..end];
        let before = rest[..start].chars().next_back();
        let after = rest[end..].chars().next();
        let in_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        let is_address = run.matches(':').count() >= 2
            && run != "::"
            && !in_word(before)
            && !in_word(after)
            && run.parse::<Ipv6Addr>().is_ok();
        out.push_str(&rest[..start]);
        if is_address {
            out.push_str(IP_PLACEHOLDER);
            n += 1;
        } else {
            out.push_str(run);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    (out, n)
}

/// Replaces the matches of `re` that pass `accept` with `placeholder`.
fn replace_counted(
    re: &Regex,
    text: &str,
    placeholder: &str,
    accept: impl Fn(&str) -> bool,
) -> (String, u32) {
    let mut n = 0;
    let replaced = re.replace_all(text, |c: &Captures<'_>| {
        let m = &c[0];
        if accept(m) {
            n += 1;
            placeholder.to_owned()
        } else {
            m.to_owned()
        }
    });
    (replaced.into_owned(), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_ips_are_replaced_and_counted() {
        let s = PiiConfig::default().apply(
            "Write to jane.doe+news@example.co.uk or admin@host.org. \
             Server 192.168.0.1, not 999.1.1.1; v6 2001:db8::8a2e:370:7334 and ::1.",
        );
        assert_eq!(
            s.text,
            "Write to <EMAIL> or <EMAIL>. \
             Server <IP_ADDRESS>, not 999.1.1.1; v6 <IP_ADDRESS> and <IP_ADDRESS>."
        );
        assert_eq!((s.emails, s.ipv4, s.ipv6), (2, 1, 2));
    }

    #[test]
    fn times_and_versions_are_left_alone() {
        let text = "Meet at 12:30:45, version 1.2.3, ratio 3:2, C++ std::vector.";
        let s = PiiConfig::default().apply(text);
        assert_eq!(s.text, text);
        assert_eq!((s.emails, s.ipv4, s.ipv6), (0, 0, 0));
    }

    #[test]
    fn kinds_can_be_turned_off() {
        let cfg = PiiConfig {
            emails: false,
            ip_addresses: true,
        };
        let s = cfg.apply("a@b.com at 10.0.0.1");
        assert_eq!(s.text, "a@b.com at <IP_ADDRESS>");
    }
}
