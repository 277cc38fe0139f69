//! Gray (canary) release rules: which clients get a config's gray content instead of
//! its main content. A client matches when its IP is listed, or when it declares at least
//! one of the rule's labels (as Apollo's gray rules do). Rules with neither match nobody.

use std::fmt;
use std::net::IpAddr;

use crate::names::Tag;

/// A `key=value` pair a client declares about itself, e.g. `zone=eu-1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    pub key: String,
    pub value: String,
}

impl Label {
    /// Parses `key=value`; both sides follow the name rules (letters, digits, `_.:-`).
    pub fn parse(text: &str) -> Result<Label, GrayError> {
        let (key, value) = text
            .trim()
            .split_once('=')
            .ok_or_else(|| GrayError::Label(text.chars().take(80).collect()))?;
        let check = |part: &str| {
            Tag::parse(part.trim()).map_err(|_| GrayError::Label(text.chars().take(80).collect()))
        };
        Ok(Label {
            key: check(key)?.as_str().to_owned(),
            value: check(value)?.as_str().to_owned(),
        })
    }

    /// Parses a comma-separated list of labels, as clients send them in one header.
    pub fn parse_list(text: &str) -> Result<Vec<Label>, GrayError> {
        text.split(',')
            .filter(|part| !part.trim().is_empty())
            .map(Label::parse)
            .collect()
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// Why gray rules or client labels were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrayError {
    #[error("{0:?} is not an IP address")]
    Ip(String),
    #[error("{0:?} is not a label; expected key=value with letters, digits and _ . : -")]
    Label(String),
    #[error("a gray release needs at least one IP or label to match clients by")]
    NoRules,
    #[error("{0} IPs and labels given; the limit is {MAX_RULES}")]
    TooMany(usize),
    #[error("the IPs and labels take {0} bytes; the limit is {MAX_RULES_TEXT}")]
    TooLong(usize),
}

/// The most IPs plus labels one gray release may list.
pub const MAX_RULES: usize = 1000;

/// The most bytes the stored text of one release's rules may take, so that it fits
/// every backend's text column (MySQL's `TEXT` holds 64 KiB) with the history comment
/// that repeats it.
pub const MAX_RULES_TEXT: usize = 16 * 1024;

/// Who a client is, as far as gray rules care.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub labels: Vec<Label>,
}

impl ClientInfo {
    pub fn new(ip: Option<IpAddr>, labels: Vec<Label>) -> Self {
        Self {
            ip: ip.map(|ip| ip.to_canonical()),
            labels,
        }
    }
}

/// The clients a gray release is for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrayRules {
    pub ips: Vec<IpAddr>,
    pub labels: Vec<Label>,
}

impl GrayRules {
    /// Validated rules from the text a user gave; at least one rule is required.
    pub fn parse(ips: &[String], labels: &[String]) -> Result<GrayRules, GrayError> {
        let count = ips.len() + labels.len();
        if count > MAX_RULES {
            return Err(GrayError::TooMany(count));
        }
        let mut rules = GrayRules {
            ips: ips
                .iter()
                .map(|ip| {
                    ip.trim()
                        .parse::<IpAddr>()
                        .map(|ip| ip.to_canonical())
                        .map_err(|_| GrayError::Ip(ip.chars().take(80).collect()))
                })
                .collect::<Result<_, _>>()?,
            labels: labels
                .iter()
                .map(|l| Label::parse(l))
                .collect::<Result<_, _>>()?,
        };
        rules.ips.sort();
        rules.ips.dedup();
        rules.labels.sort();
        rules.labels.dedup();
        if rules.ips.is_empty() && rules.labels.is_empty() {
            return Err(GrayError::NoRules);
        }
        let text = rules.ips_text().len() + rules.labels_text().len();
        if text > MAX_RULES_TEXT {
            return Err(GrayError::TooLong(text));
        }
        Ok(rules)
    }

    /// Whether `client` gets the gray content.
    pub fn matches(&self, client: &ClientInfo) -> bool {
        client.ip.is_some_and(|ip| self.ips.contains(&ip))
            || client.labels.iter().any(|l| self.labels.contains(l))
    }

    /// The IPs as stored: comma-separated.
    pub fn ips_text(&self) -> String {
        self.ips
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The labels as stored: comma-separated `key=value`.
    pub fn labels_text(&self) -> String {
        self.labels
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Rules read back from their stored text.
    pub fn from_stored(ips: &str, labels: &str) -> Result<GrayRules, GrayError> {
        let split = |text: &str| -> Vec<String> {
            text.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        GrayRules::parse(&split(ips), &split(labels))
    }
}

impl fmt::Display for GrayRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ips [{}] labels [{}]",
            self.ips_text(),
            self.labels_text()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn client(ip: &str, labels: &str) -> ClientInfo {
        ClientInfo::new(ip.parse().ok(), Label::parse_list(labels).unwrap())
    }

    #[test]
    fn rules_that_would_not_fit_a_column_are_refused() {
        let labels: Vec<String> = (0..400)
            .map(|i| format!("{}={i}", "k".repeat(60)))
            .collect();
        assert!(matches!(
            GrayRules::parse(&[], &labels),
            Err(GrayError::TooLong(_))
        ));
        assert!(GrayRules::parse(&[], &labels[..100]).is_ok());
    }

    #[test]
    fn matches_by_ip_or_by_any_label() {
        let rules = GrayRules::parse(
            &["10.0.0.1".into(), "::1".into()],
            &["zone=eu-1".into(), "canary=true".into()],
        )
        .unwrap();
        assert!(rules.matches(&client("10.0.0.1", "")));
        assert!(rules.matches(&client("::1", "")));
        assert!(rules.matches(&client("10.9.9.9", "zone=eu-1")));
        assert!(rules.matches(&client("", "team=x, canary=true")));
        assert!(!rules.matches(&client("10.0.0.2", "zone=eu-2")));
        assert!(!rules.matches(&client("", "")));
        // An IPv4 peer seen through an IPv6 socket is the same client.
        assert!(rules.matches(&client("::ffff:10.0.0.1", "")));
    }

    #[test]
    fn refuses_bad_rules() {
        assert_eq!(GrayRules::parse(&[], &[]), Err(GrayError::NoRules));
        assert!(matches!(
            GrayRules::parse(&["300.1.1.1".into()], &[]),
            Err(GrayError::Ip(_))
        ));
        assert!(matches!(
            GrayRules::parse(&[], &["zone".into()]),
            Err(GrayError::Label(_))
        ));
        assert!(matches!(
            GrayRules::parse(&[], &["a b=c".into()]),
            Err(GrayError::Label(_))
        ));
        let many: Vec<String> = (0..=MAX_RULES).map(|i| format!("k=v{i}")).collect();
        assert!(matches!(
            GrayRules::parse(&[], &many),
            Err(GrayError::TooMany(_))
        ));
    }

    #[test]
    fn stored_text_round_trips() {
        let rules =
            GrayRules::parse(&["10.0.0.2".into(), "10.0.0.1".into()], &["a=b".into()]).unwrap();
        assert_eq!(rules.ips_text(), "10.0.0.1,10.0.0.2");
        assert_eq!(
            GrayRules::from_stored(&rules.ips_text(), &rules.labels_text()).unwrap(),
            rules
        );
    }

    proptest! {
        #[test]
        fn a_listed_ip_always_matches_and_others_need_a_label(
            listed in proptest::collection::vec(any::<[u8; 4]>(), 1..20),
            other in any::<[u8; 4]>(),
            label in "[a-z]{1,5}=[a-z0-9]{1,5}",
        ) {
            let ips: Vec<String> = listed.iter().map(|o| std::net::Ipv4Addr::from(*o).to_string()).collect();
            let rules = GrayRules::parse(&ips, std::slice::from_ref(&label)).unwrap();
            for ip in &ips {
                prop_assert!(rules.matches(&client(ip, "")));
            }
            let other_ip = std::net::Ipv4Addr::from(other).to_string();
            prop_assert_eq!(rules.matches(&client(&other_ip, "")), ips.contains(&other_ip));
            prop_assert!(rules.matches(&client(&other_ip, &label)));
        }

        #[test]
        fn label_lists_parse_what_they_print(pairs in proptest::collection::vec("[a-z]{1,8}=[a-z0-9.-]{1,8}", 0..8)) {
            let parsed = Label::parse_list(&pairs.join(",")).unwrap();
            let printed: Vec<String> = parsed.iter().map(ToString::to_string).collect();
            prop_assert_eq!(printed, pairs);
        }
    }
}
