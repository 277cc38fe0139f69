//! Revisions: which version of a config a record, a history entry or a request means.

use std::fmt;
use std::num::NonZeroI64;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A version of a config: the change-log sequence of the write that made it. Every
/// write takes the next sequence, so a greater revision is a later version, across every
/// config of an installation. Always positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Revision(NonZeroI64);

impl Revision {
    /// The revision of change-log sequence `seq`, if it is one (positive).
    pub fn new(seq: i64) -> Option<Revision> {
        NonZeroI64::new(seq).filter(|n| n.get() > 0).map(Revision)
    }

    /// The change-log sequence this revision was written at.
    pub fn get(self) -> i64 {
        self.0.get()
    }
}

/// Why a text or number is not a revision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a revision is a positive whole number, not {0:?}")]
pub struct RevisionError(String);

impl TryFrom<i64> for Revision {
    type Error = RevisionError;

    fn try_from(n: i64) -> Result<Self, Self::Error> {
        Revision::new(n).ok_or_else(|| RevisionError(n.to_string()))
    }
}

impl From<Revision> for i64 {
    fn from(r: Revision) -> i64 {
        r.get()
    }
}

impl FromStr for Revision {
    type Err = RevisionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<i64>()
            .ok()
            .and_then(Revision::new)
            .ok_or_else(|| RevisionError(s.to_owned()))
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_positive_numbers_are_revisions() {
        assert_eq!(Revision::new(7).map(Revision::get), Some(7));
        assert_eq!(Revision::new(0), None);
        assert_eq!(Revision::new(-3), None);
        assert_eq!("12".parse::<Revision>().map(Revision::get), Ok(12));
        for bad in ["0", "-1", "", "1.5", "x", "99999999999999999999"] {
            assert!(bad.parse::<Revision>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn revisions_are_plain_numbers_on_the_wire() {
        let r = Revision::new(42).unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), "42");
        assert_eq!(serde_json::from_str::<Revision>("42").unwrap(), r);
        assert!(serde_json::from_str::<Revision>("0").is_err());
    }

    #[test]
    fn later_writes_have_greater_revisions() {
        assert!(Revision::new(2).unwrap() > Revision::new(1).unwrap());
    }
}
