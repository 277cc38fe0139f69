//! Per-namespace grants: what a user (or a role's members) may do with which configs,
//! and which of several matching grants decides. Pure rules; the server keeps the
//! grants and asks these functions.

use std::fmt;

use crate::names::{check_with, DataId, Group, NameError, Namespace};
use crate::pattern::Wildcard;

/// What a grant allows. Each level includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Nothing: narrows a broader grant (`dev:*:*` write, `dev:secrets:*` none).
    None,
    /// Read and watch.
    Read,
    /// Also read sensitive configs (flagged so, or named `cipher-…` as Nacos does).
    ReadSecret,
    /// Also publish, delete, roll back and take gray-release steps.
    Write,
    /// Also approve or reject other people's change requests where review is required.
    Approve,
    /// Also manage the namespace's grants and settings.
    Admin,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Read => "read",
            Level::ReadSecret => "read-secret",
            Level::Write => "write",
            Level::Approve => "approve",
            Level::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "none" => Some(Level::None),
            "read" => Some(Level::Read),
            "read-secret" => Some(Level::ReadSecret),
            "write" => Some(Level::Write),
            "approve" => Some(Level::Approve),
            "admin" => Some(Level::Admin),
            _ => None,
        }
    }
}

/// Whether a data id is sensitive by name: Nacos's convention for contents its clients
/// decrypt themselves (`cipher-aes-…`, `cipher-kms-aes-256-…`).
pub fn is_cipher_data_id(data_id: &str) -> bool {
    data_id.starts_with("cipher-")
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One part of a scope: a name, or a pattern where `*` matches any run of characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Part {
    text: String,
    pattern: Wildcard,
}

impl Part {
    fn parse(kind: &'static str, text: &str, max: usize) -> Result<Self, NameError> {
        check_with(kind, text, max, true)?;
        Ok(Self {
            text: text.to_owned(),
            pattern: Wildcard::new(text),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn is_any(&self) -> bool {
        self.text.chars().all(|c| c == '*')
    }

    fn matches(&self, name: &str) -> bool {
        self.pattern.matches(name)
    }

    /// How narrowly this part matches: an exact name beats any pattern, a pattern with
    /// more literal characters beats one with fewer, and `*` comes last.
    fn specificity(&self) -> (u8, usize) {
        if !self.text.contains('*') {
            (2, self.text.len())
        } else if self.is_any() {
            (0, 0)
        } else {
            (1, self.text.chars().filter(|c| *c != '*').count())
        }
    }
}

/// Which configs a grant covers: a namespace, group and data id, each a name or a
/// pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub namespace: Part,
    pub group: Part,
    pub data_id: Part,
}

impl Scope {
    pub fn parse(namespace: &str, group: &str, data_id: &str) -> Result<Self, NameError> {
        Ok(Self {
            namespace: Part::parse("namespace pattern", namespace, Namespace::MAX_LEN)?,
            group: Part::parse("group pattern", group, Group::MAX_LEN)?,
            data_id: Part::parse("data id pattern", data_id, DataId::MAX_LEN)?,
        })
    }

    /// A whole namespace (or every namespace a pattern matches).
    pub fn namespace(namespace: &str) -> Result<Self, NameError> {
        Self::parse(namespace, "*", "*")
    }

    pub fn matches(&self, namespace: &str, group: &str, data_id: &str) -> bool {
        self.namespace.matches(namespace)
            && self.group.matches(group)
            && self.data_id.matches(data_id)
    }

    /// Whether this scope covers a whole namespace rather than part of one.
    pub fn is_whole_namespace(&self) -> bool {
        self.group.is_any() && self.data_id.is_any()
    }

    fn specificity(&self) -> [(u8, usize); 3] {
        [
            self.namespace.specificity(),
            self.group.specificity(),
            self.data_id.specificity(),
        ]
    }
}

impl fmt::Display for Scope {
    /// `namespace:group:dataId`, as Nacos writes a permission's resource.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.namespace.text, self.group.text, self.data_id.text
        )
    }
}

/// A grant as the rules see it: a scope and a level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub scope: Scope,
    pub level: Level,
}

/// What `rules` allow for one config: the level of the most specific matching rule.
/// Rules equally specific (from different roles, say) add up: the highest level wins.
/// No matching rule: nothing.
pub fn level_of(rules: &[Rule], namespace: &str, group: &str, data_id: &str) -> Level {
    decide(
        rules
            .iter()
            .filter(|r| r.scope.matches(namespace, group, data_id)),
    )
}

/// What `rules` allow for a namespace as a whole (its settings and grants): only rules
/// that cover whole namespaces count.
pub fn namespace_level(rules: &[Rule], namespace: &str) -> Level {
    decide(
        rules
            .iter()
            .filter(|r| r.scope.is_whole_namespace() && r.scope.namespace.matches(namespace)),
    )
}

/// Whether `rules` let the holder read anything at all in `namespace`: what decides
/// whether a namespace appears in the holder's lists.
pub fn sees_namespace(rules: &[Rule], namespace: &str) -> bool {
    // A rule that allows reading counts unless a whole-namespace rule that allows
    // nothing names the namespace more specifically: that one decides for every key.
    let matching: Vec<&Rule> = rules
        .iter()
        .filter(|r| r.scope.namespace.matches(namespace))
        .collect();
    matching.iter().any(|r| {
        r.level >= Level::Read
            && !matching.iter().any(|w| {
                w.level < Level::Read
                    && w.scope.is_whole_namespace()
                    && w.scope.namespace.specificity() > r.scope.namespace.specificity()
            })
    })
}

fn decide<'a>(matching: impl Iterator<Item = &'a Rule>) -> Level {
    let mut best: Option<([(u8, usize); 3], Level)> = None;
    for rule in matching {
        let specificity = rule.scope.specificity();
        best = match best {
            Some((s, level)) if s > specificity => Some((s, level)),
            Some((s, level)) if s == specificity => Some((s, level.max(rule.level))),
            _ => Some((specificity, rule.level)),
        };
    }
    best.map_or(Level::None, |(_, level)| level)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(ns: &str, group: &str, data_id: &str, level: Level) -> Rule {
        Rule {
            scope: Scope::parse(ns, group, data_id).unwrap(),
            level,
        }
    }

    #[test]
    fn nothing_without_a_grant() {
        assert_eq!(level_of(&[], "dev", "g", "d"), Level::None);
        let rules = [rule("dev", "*", "*", Level::Read)];
        assert_eq!(level_of(&rules, "prod", "g", "d"), Level::None);
        assert_eq!(level_of(&rules, "dev", "g", "d"), Level::Read);
    }

    #[test]
    fn the_most_specific_rule_wins_in_both_directions() {
        let rules = [
            rule("dev", "*", "*", Level::Write),
            rule("dev", "secrets", "*", Level::None),
            rule("dev", "secrets", "public.yaml", Level::Read),
            rule("*", "*", "*", Level::Read),
        ];
        assert_eq!(level_of(&rules, "dev", "app", "x"), Level::Write);
        assert_eq!(level_of(&rules, "dev", "secrets", "x"), Level::None);
        assert_eq!(
            level_of(&rules, "dev", "secrets", "public.yaml"),
            Level::Read
        );
        assert_eq!(level_of(&rules, "prod", "app", "x"), Level::Read);
    }

    #[test]
    fn a_pattern_with_more_literal_text_is_more_specific() {
        let rules = [
            rule("dev", "*", "*.yaml", Level::Read),
            rule("dev", "*", "app-*.yaml", Level::Write),
        ];
        assert_eq!(level_of(&rules, "dev", "g", "app-1.yaml"), Level::Write);
        assert_eq!(level_of(&rules, "dev", "g", "db.yaml"), Level::Read);
        assert_eq!(level_of(&rules, "dev", "g", "db.json"), Level::None);
        // The namespace decides first: an exact namespace beats a pattern whatever the
        // group and data id say.
        let rules = [
            rule("d*", "g", "d", Level::Write),
            rule("dev", "*", "*", Level::Read),
        ];
        assert_eq!(level_of(&rules, "dev", "g", "d"), Level::Read);
    }

    #[test]
    fn equally_specific_rules_add_up() {
        let rules = [
            rule("dev", "*", "*", Level::Read),
            rule("dev", "*", "*", Level::Write),
        ];
        assert_eq!(level_of(&rules, "dev", "g", "d"), Level::Write);
    }

    #[test]
    fn namespace_level_counts_only_whole_namespace_rules() {
        let rules = [
            rule("dev", "*", "*", Level::Write),
            rule("dev", "g", "*", Level::Admin),
        ];
        assert_eq!(namespace_level(&rules, "dev"), Level::Write);
        assert!(sees_namespace(&rules, "dev"));
        assert!(!sees_namespace(&rules, "prod"));
        let none = [rule("prod", "*", "*", Level::None)];
        assert!(!sees_namespace(&none, "prod"));
        // Everywhere but prod: prod is not listed, others are.
        let but = [
            rule("*", "*", "*", Level::Write),
            rule("prod", "*", "*", Level::None),
        ];
        assert!(!sees_namespace(&but, "prod"));
        assert!(sees_namespace(&but, "dev"));
        // …unless a group in prod is given back.
        let back = [
            rule("*", "*", "*", Level::Write),
            rule("prod", "*", "*", Level::None),
            rule("prod", "pay", "*", Level::Read),
        ];
        assert!(sees_namespace(&back, "prod"));
    }

    #[test]
    fn scopes_refuse_what_no_name_could_hold() {
        assert!(Scope::parse("dev", "a/b", "*").is_err());
        assert!(Scope::parse("", "*", "*").is_err());
        assert_eq!(
            Scope::parse("dev", "*", "app-*.yaml").unwrap().to_string(),
            "dev:*:app-*.yaml"
        );
        for level in [
            Level::None,
            Level::Read,
            Level::ReadSecret,
            Level::Write,
            Level::Approve,
            Level::Admin,
        ] {
            assert_eq!(Level::parse(level.as_str()), Some(level));
        }
    }
}
