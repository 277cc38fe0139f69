//! Each namespace's quotas, history retention and whether it requires review: the
//! node's defaults, the namespaces' own settings mirrored from the database, and the
//! check a write passes before it reaches the store.
//!
//! Quotas are checked against what the node's cache holds when the write is checked,
//! so two writers racing for the last slot may both land (a namespace can go a
//! config or two over); what they bound is growth, not an exact count.

use cairn_core::Namespace;
use cairn_store::{NamespaceLimits, NamespaceRecord};
use dashmap::DashMap;

use crate::cache::Usage;

/// The node's defaults for namespaces that set none; 0 is unlimited.
#[derive(Debug, Clone, Copy, Default)]
pub struct Defaults {
    pub max_configs: u64,
    pub max_total_bytes: u64,
    pub history_max_revisions: u64,
    pub history_max_days: u64,
}

/// A namespace's limits in force: its own, else the node's. 0 is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    pub max_configs: u64,
    /// Never above the node's `max_content_bytes`.
    pub max_config_bytes: u64,
    pub max_total_bytes: u64,
    pub history_max_revisions: u64,
    pub history_max_days: u64,
}

/// Why a write would break a namespace's quota.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("namespace {namespace} {what}; its quota {name} is {limit}: {hint}")]
pub struct QuotaExceeded {
    pub namespace: Namespace,
    /// What the write would make of it, e.g. "would hold 101 configs".
    pub what: String,
    pub name: &'static str,
    pub limit: u64,
    pub hint: &'static str,
}

pub struct Limits {
    defaults: Defaults,
    max_content_bytes: u64,
    own: DashMap<Namespace, NamespaceLimits>,
    /// The namespaces that require review before release.
    reviewed: dashmap::DashSet<Namespace>,
}

/// What a write adds to a namespace.
#[derive(Debug, Clone, Copy, Default)]
pub struct Growth {
    /// Configs that do not exist yet.
    pub new_configs: u64,
    /// Bytes of content added, less the bytes of the versions they replace (may be
    /// negative).
    pub bytes: i64,
    /// The largest single content written.
    pub largest: u64,
}

impl Limits {
    pub fn new(defaults: Defaults, max_content_bytes: usize) -> Self {
        Limits {
            defaults,
            max_content_bytes: max_content_bytes as u64,
            own: DashMap::new(),
            reviewed: dashmap::DashSet::new(),
        }
    }

    /// Takes every namespace's own limits from `records` (all namespaces).
    pub fn refresh(&self, records: &[NamespaceRecord]) {
        self.own
            .retain(|name, _| records.iter().any(|r| &r.name == name));
        for record in records {
            self.own.insert(record.name.clone(), record.limits);
            if record.require_review {
                self.reviewed.insert(record.name.clone());
            } else {
                self.reviewed.remove(&record.name);
            }
        }
        self.reviewed
            .retain(|name| records.iter().any(|r| &r.name == name));
    }

    /// Whether a person's change in `namespace` must be reviewed before release.
    pub fn requires_review(&self, namespace: &Namespace) -> bool {
        self.reviewed.contains(namespace)
    }

    /// Whether `namespace` existed at the last refresh.
    pub fn knows(&self, namespace: &Namespace) -> bool {
        self.own.contains_key(namespace)
    }

    pub fn effective(&self, namespace: &Namespace) -> Effective {
        let own = self.own.get(namespace).map(|l| *l).unwrap_or_default();
        let d = &self.defaults;
        let max_config_bytes = match own.max_config_bytes {
            Some(n) if n > 0 => n.min(self.max_content_bytes),
            _ => self.max_content_bytes,
        };
        Effective {
            max_configs: own.max_configs.unwrap_or(d.max_configs),
            max_config_bytes,
            max_total_bytes: own.max_total_bytes.unwrap_or(d.max_total_bytes),
            history_max_revisions: own.history_max_revisions.unwrap_or(d.history_max_revisions),
            history_max_days: own.history_max_days.unwrap_or(d.history_max_days),
        }
    }

    /// Whether `namespace`, holding `used`, may grow by `growth`. A write that does not
    /// grow what is over a quota (a smaller replacement, in a namespace whose quota was
    /// lowered below its use) passes, so that a namespace over its quota can be cleaned up.
    pub fn check(
        &self,
        namespace: &Namespace,
        used: Usage,
        growth: Growth,
    ) -> Result<(), QuotaExceeded> {
        let limits = self.effective(namespace);
        let exceeded = |what: String, name, limit, hint| QuotaExceeded {
            namespace: namespace.clone(),
            what,
            name,
            limit,
            hint,
        };
        // The per-config bound is the node's own `max_content_bytes` unless the
        // namespace set a lower one; the node's bound is checked, and named, earlier.
        if limits.max_config_bytes < self.max_content_bytes
            && growth.largest > limits.max_config_bytes
        {
            return Err(exceeded(
                format!(
                    "takes configs of at most this size; this one is {} bytes",
                    growth.largest
                ),
                "max_config_bytes",
                limits.max_config_bytes,
                "make the config smaller, or ask an admin to raise the quota",
            ));
        }
        let configs = used.configs + growth.new_configs;
        if limits.max_configs > 0 && growth.new_configs > 0 && configs > limits.max_configs {
            return Err(exceeded(
                format!("holds {} configs and would hold {configs}", used.configs),
                "max_configs",
                limits.max_configs,
                "delete configs it no longer needs, or ask an admin to raise the quota",
            ));
        }
        let bytes = (used.bytes as i64 + growth.bytes).max(0) as u64;
        if limits.max_total_bytes > 0 && growth.bytes > 0 && bytes > limits.max_total_bytes {
            return Err(exceeded(
                format!(
                    "holds {} bytes of content and would hold {bytes}",
                    used.bytes
                ),
                "max_total_bytes",
                limits.max_total_bytes,
                "delete or shrink configs, or ask an admin to raise the quota",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(own: NamespaceLimits) -> (Limits, Namespace) {
        let defaults = Defaults {
            max_configs: 3,
            max_total_bytes: 100,
            ..Defaults::default()
        };
        let limits = Limits::new(defaults, 50);
        let dev = Namespace::parse("dev").unwrap();
        limits.refresh(&[NamespaceRecord {
            name: dev.clone(),
            display_name: String::new(),
            description: String::new(),
            created_at: 0,
            apollo_anonymous: Vec::new(),
            limits: own,
            require_review: false,
        }]);
        (limits, dev)
    }

    fn used(configs: u64, bytes: u64) -> Usage {
        Usage { configs, bytes }
    }

    fn grow(new_configs: u64, bytes: i64, largest: u64) -> Growth {
        Growth {
            new_configs,
            bytes,
            largest,
        }
    }

    #[test]
    fn defaults_apply_where_a_namespace_sets_nothing() {
        let (l, dev) = limits(NamespaceLimits::default());
        assert!(l.check(&dev, used(2, 10), grow(1, 10, 10)).is_ok());
        let e = l.check(&dev, used(3, 10), grow(1, 10, 10)).unwrap_err();
        assert_eq!(e.name, "max_configs");
        assert_eq!(
            e.to_string(),
            "namespace dev holds 3 configs and would hold 4; its quota max_configs is 3: \
             delete configs it no longer needs, or ask an admin to raise the quota"
        );
        // Replacing a config adds none.
        assert!(l.check(&dev, used(3, 10), grow(0, 5, 15)).is_ok());
        let e = l.check(&dev, used(2, 95), grow(0, 10, 10)).unwrap_err();
        assert_eq!((e.name, e.limit), ("max_total_bytes", 100));
    }

    #[test]
    fn a_namespace_overrides_and_unlimits() {
        let own = NamespaceLimits {
            max_configs: Some(0),
            max_config_bytes: Some(20),
            max_total_bytes: Some(1_000),
            ..NamespaceLimits::default()
        };
        let (l, dev) = limits(own);
        assert!(l.check(&dev, used(1_000, 10), grow(1, 10, 10)).is_ok());
        let e = l.check(&dev, used(0, 0), grow(1, 21, 21)).unwrap_err();
        assert_eq!((e.name, e.limit), ("max_config_bytes", 20));
        // A namespace cannot raise the node's own per-config bound.
        let (l, dev) = limits(NamespaceLimits {
            max_config_bytes: Some(1_000),
            ..NamespaceLimits::default()
        });
        assert_eq!(l.effective(&dev).max_config_bytes, 50);
    }

    #[test]
    fn a_namespace_over_its_quota_can_still_shrink() {
        let (l, dev) = limits(NamespaceLimits::default());
        assert!(l.check(&dev, used(10, 500), grow(0, -100, 10)).is_ok());
        assert!(l.check(&dev, used(10, 500), grow(1, 1, 1)).is_err());
    }
}
