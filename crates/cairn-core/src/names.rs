//! Validated names. A namespace, group, data id or user name is parsed once, at the
//! edge, into a newtype; code behind the edge never re-checks a string.

use std::fmt;
use std::sync::Arc;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{kind} must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} is {len} characters long; the limit is {max}")]
    TooLong {
        kind: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{kind} {value:?} contains {ch:?}; allowed are letters, digits and _ . : -")]
    BadChar {
        kind: &'static str,
        value: String,
        ch: char,
    },
}

fn check(kind: &'static str, value: &str, max: usize) -> Result<(), NameError> {
    check_with(kind, value, max, false)
}

/// Checks a name, or with `wildcards` a pattern of names in which `*` stands for any run
/// of characters.
pub(crate) fn check_with(
    kind: &'static str,
    value: &str,
    max: usize,
    wildcards: bool,
) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { kind });
    }
    let len = value.chars().count();
    if len > max {
        return Err(NameError::TooLong { kind, len, max });
    }
    if let Some(ch) = value.chars().find(|c| {
        !(c.is_ascii_alphanumeric()
            || matches!(c, '_' | '.' | ':' | '-')
            || (wildcards && *c == '*'))
    }) {
        return Err(NameError::BadChar {
            kind,
            value: value.chars().take(64).collect(),
            ch,
        });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, Eq, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        // By the text, as equality compares it.
        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.0.hash(state)
            }
        }

        // The same shared text is equal without reading it: a node hands the keys it
        // caches to the watches of them, which compare them on every wake.
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
            }
        }

        impl $name {
            /// The longest accepted value, in characters.
            pub const MAX_LEN: usize = $max;

            /// Parses and validates a name.
            pub fn parse(value: &str) -> Result<Self, NameError> {
                check($kind, value, $max)?;
                Ok(Self(Arc::from(value)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// An isolation boundary: an environment or a tenant. Nacos calls it the tenant.
    Namespace,
    "namespace",
    128
);
name_type!(
    /// Usually the application a config belongs to.
    Group,
    "group",
    128
);
name_type!(
    /// The config "file" inside a group, e.g. `application.yaml`.
    DataId,
    "data id",
    256
);
name_type!(
    /// A label attached to a config for search, e.g. `team-payments`.
    Tag,
    "tag",
    64
);
name_type!(
    /// A user's login name.
    Username,
    "user name",
    64
);

name_type!(
    /// A named role: a set of grants given to the users who are its members.
    RoleName,
    "role name",
    64
);

impl Namespace {
    /// The namespace every install has and that cannot be deleted.
    pub const PUBLIC: &'static str = "public";

    pub fn public() -> Self {
        Self(Arc::from(Self::PUBLIC))
    }

    pub fn is_public(&self) -> bool {
        &*self.0 == Self::PUBLIC
    }
}

impl Group {
    pub const DEFAULT: &'static str = "DEFAULT_GROUP";
}

/// The address of one config: namespace / group / data id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfigKey {
    pub namespace: Namespace,
    pub group: Group,
    pub data_id: DataId,
}

impl ConfigKey {
    pub fn new(namespace: Namespace, group: Group, data_id: DataId) -> Self {
        Self {
            namespace,
            group,
            data_id,
        }
    }

    /// Parses the three parts, reporting the first that is invalid.
    pub fn parse(namespace: &str, group: &str, data_id: &str) -> Result<Self, NameError> {
        Ok(Self::new(
            Namespace::parse(namespace)?,
            Group::parse(group)?,
            DataId::parse(data_id)?,
        ))
    }

    /// Parses `namespace/group/data_id`, the form the CLI and the stream endpoint use.
    pub fn parse_path(path: &str) -> Result<Self, KeyPathError> {
        let mut parts = path.splitn(3, '/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(ns), Some(group), Some(data_id)) => {
                Self::parse(ns, group, data_id).map_err(KeyPathError::Name)
            }
            _ => Err(KeyPathError::Shape(path.chars().take(200).collect())),
        }
    }
}

/// Why a `namespace/group/data_id` path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyPathError {
    #[error("{0:?} is not of the form namespace/group/data_id")]
    Shape(String),
    #[error(transparent)]
    Name(NameError),
}

impl fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.group, self.data_id)
    }
}

impl fmt::Debug for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        assert!(DataId::parse("app-1_prod.v2:yaml").is_ok());
        assert!(Namespace::parse("public").unwrap().is_public());
    }

    #[test]
    fn refuses_empty_long_and_odd_names() {
        assert_eq!(Group::parse(""), Err(NameError::Empty { kind: "group" }));
        let long = "a".repeat(129);
        assert!(matches!(
            Namespace::parse(&long),
            Err(NameError::TooLong {
                len: 129,
                max: 128,
                ..
            })
        ));
        assert!(DataId::parse(&"a".repeat(256)).is_ok());
        for bad in ["a/b", "a b", "ä", "a\n", "../x", "a*"] {
            let err = DataId::parse(bad).unwrap_err();
            assert!(matches!(err, NameError::BadChar { .. }), "{bad:?}: {err}");
        }
    }

    #[test]
    fn key_paths() {
        let key = ConfigKey::parse_path("public/DEFAULT_GROUP/app.yaml").unwrap();
        assert_eq!(key.to_string(), "public/DEFAULT_GROUP/app.yaml");
        assert!(matches!(
            ConfigKey::parse_path("public/app.yaml"),
            Err(KeyPathError::Shape(_))
        ));
        // A slash inside the data id is not allowed, so a fourth segment is an error.
        assert!(matches!(
            ConfigKey::parse_path("a/b/c/d"),
            Err(KeyPathError::Name(NameError::BadChar { ch: '/', .. }))
        ));
    }

    proptest! {
        #[test]
        fn parse_accepts_exactly_the_alphabet(s in "\\PC{0,40}") {
            let ok = !s.is_empty()
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c));
            prop_assert_eq!(Group::parse(&s).is_ok(), ok);
        }
    }
}
