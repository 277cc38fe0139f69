//! Who may do what: every grant and role membership, mirrored in memory so that a check
//! never touches the database, and the one check every surface's request goes through.
//! The rules themselves (levels, scopes, which grant decides) are `cairn_core::grant`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use cairn_core::grant::{self, Level, Rule};
use cairn_core::{ConfigKey, Namespace, RoleName, Username};
use cairn_store::{GrantRecord, RoleMember, Store, StoreError, Subject, TokenRecord};

use crate::auth::{Caller, Role};

/// The grants and memberships as last read, with each user's rules (their own and their
/// roles') gathered for checks.
#[derive(Default)]
pub struct Policy {
    pub grants: Vec<GrantRecord>,
    pub members: Vec<RoleMember>,
    /// Service tokens, by the digest of the token.
    pub tokens: HashMap<String, TokenRecord>,
    rules: HashMap<Username, Vec<Rule>>,
}

/// The name a service token acts under: grants, checks and the audit log see it as
/// this user, which no account can have (`:` is not allowed in a token's name, and
/// accounts named `token:…` are refused).
pub fn token_user(name: &str) -> Option<Username> {
    Username::parse(&format!("{TOKEN_PREFIX}{name}")).ok()
}

/// What a service token's user name starts with.
pub const TOKEN_PREFIX: &str = "token:";

impl Policy {
    fn build(grants: Vec<GrantRecord>, members: Vec<RoleMember>, tokens: Vec<TokenRecord>) -> Self {
        let mut rules: HashMap<Username, Vec<Rule>> = HashMap::new();
        for token in &tokens {
            let Some(user) = token_user(&token.name) else {
                continue;
            };
            let scoped = token.scopes.iter().filter_map(|(ns, level)| {
                Some(Rule {
                    scope: grant::Scope::namespace(ns).ok()?,
                    level: *level,
                })
            });
            rules.entry(user).or_default().extend(scoped);
        }
        let mut by_role: HashMap<&RoleName, Vec<Rule>> = HashMap::new();
        for g in &grants {
            let rule = Rule {
                scope: g.scope.clone(),
                level: g.level,
            };
            match &g.subject {
                Subject::User(u) => rules.entry(u.clone()).or_default().push(rule),
                Subject::Role(r) => by_role.entry(r).or_default().push(rule),
            }
        }
        for m in &members {
            if let Some(granted) = by_role.get(&m.role) {
                rules
                    .entry(m.username.clone())
                    .or_default()
                    .extend(granted.iter().cloned());
            }
        }
        Self {
            grants,
            members,
            tokens: tokens.into_iter().map(|t| (t.digest.clone(), t)).collect(),
            rules,
        }
    }

    /// A user's rules: their own grants and those of every role they belong to.
    pub fn rules(&self, user: &Username) -> &[Rule] {
        self.rules.get(user).map_or(&[], Vec::as_slice)
    }

    /// The roles `user` is a member of.
    pub fn roles_of(&self, user: &Username) -> Vec<RoleName> {
        self.members
            .iter()
            .filter(|m| &m.username == user)
            .map(|m| m.role.clone())
            .collect()
    }
}

/// A refusal: who may not do what, and what would allow it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{who} may not {action} {target}; that needs {need} access there (an admin grants it with `cairn grant`)")]
pub struct Denied {
    pub who: String,
    pub action: &'static str,
    pub target: String,
    pub need: Level,
}

/// Every grant and membership, as last read from the database.
pub struct Access {
    store: Arc<dyn Store>,
    policy: RwLock<Arc<Policy>>,
}

impl Access {
    pub async fn load(store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let access = Self {
            store,
            policy: RwLock::default(),
        };
        access.reload().await?;
        Ok(access)
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy.read().expect("policy poisoned").clone()
    }

    /// Re-reads grants and memberships; true when they changed.
    pub async fn reload(&self) -> Result<bool, StoreError> {
        let grants = self.store.grants().await?;
        let members = self.store.role_members().await?;
        let tokens = self.store.tokens().await?;
        let mut current = self.policy.write().expect("policy poisoned");
        // When a token was last used is not a change of who may do what.
        let same_tokens = current.tokens.len() == tokens.len()
            && tokens.iter().all(|t| {
                current
                    .tokens
                    .get(&t.digest)
                    .is_some_and(|c| c.name == t.name && c.scopes == t.scopes)
            });
        if current.grants == grants && current.members == members && same_tokens {
            return Ok(false);
        }
        *current = Arc::new(Policy::build(grants, members, tokens));
        Ok(true)
    }

    /// What `caller` may do with the config `key`.
    pub fn level(&self, caller: &Caller, key: &ConfigKey) -> Level {
        self.reader(caller).level(key)
    }

    /// What `caller` may do with a namespace as a whole (its settings and grants).
    pub fn namespace_level(&self, caller: &Caller, namespace: &Namespace) -> Level {
        if caller.role == Role::Admin {
            return Level::Admin;
        }
        grant::namespace_level(self.policy().rules(&caller.username), namespace.as_str())
    }

    /// Whether `caller` may read anything in `namespace`: whether it shows in their lists.
    pub fn sees_namespace(&self, caller: &Caller, namespace: &Namespace) -> bool {
        self.reader(caller).sees_namespace(namespace)
    }

    /// Succeeds when `caller` may read something in `namespace`.
    pub fn require_visible(&self, caller: &Caller, namespace: &Namespace) -> Result<(), Denied> {
        if self.sees_namespace(caller, namespace) {
            Ok(())
        } else {
            Err(Denied {
                who: caller.username.to_string(),
                action: "read",
                target: format!("namespace {namespace}"),
                need: Level::Read,
            })
        }
    }

    /// A checker for many keys at once (a list, a watch of many keys): one policy
    /// snapshot for all of them.
    pub fn reader(&self, caller: &Caller) -> Reader {
        Reader {
            admin: caller.role == Role::Admin,
            policy: self.policy(),
            user: caller.username.clone(),
        }
    }

    /// Succeeds when `caller` has at least `need` on `key`.
    pub fn require(&self, caller: &Caller, key: &ConfigKey, need: Level) -> Result<(), Denied> {
        if self.level(caller, key) >= need {
            Ok(())
        } else {
            Err(Denied {
                who: caller.username.to_string(),
                action: action_of(need),
                target: format!("config {key}"),
                need,
            })
        }
    }

    /// Succeeds when `caller` has at least `need` on `namespace` as a whole.
    pub fn require_namespace(
        &self,
        caller: &Caller,
        namespace: &Namespace,
        need: Level,
    ) -> Result<(), Denied> {
        if self.namespace_level(caller, namespace) >= need {
            Ok(())
        } else {
            Err(Denied {
                who: caller.username.to_string(),
                action: action_of(need),
                target: format!("namespace {namespace}"),
                need,
            })
        }
    }
}

/// Whether a config's content is sensitive: marked so, or named as Nacos names
/// encrypted configs (`cipher-…`).
pub fn is_sensitive(key: &ConfigKey, marked: bool) -> bool {
    marked || grant::is_cipher_data_id(key.data_id.as_str())
}

/// The level reading a config's content needs: `read-secret` when it is sensitive.
pub fn needed_to_read(key: &ConfigKey, marked: bool) -> Level {
    if is_sensitive(key, marked) {
        Level::ReadSecret
    } else {
        Level::Read
    }
}

fn action_of(need: Level) -> &'static str {
    match need {
        Level::None | Level::Read => "read",
        Level::ReadSecret => "read the sensitive",
        Level::Write => "change",
        Level::Approve => "approve changes to",
        Level::Admin => "administer",
    }
}

/// One caller's rights over one policy snapshot.
pub struct Reader {
    admin: bool,
    policy: Arc<Policy>,
    user: Username,
}

impl Reader {
    pub fn level(&self, key: &ConfigKey) -> Level {
        if self.admin {
            return Level::Admin;
        }
        grant::level_of(
            self.policy.rules(&self.user),
            key.namespace.as_str(),
            key.group.as_str(),
            key.data_id.as_str(),
        )
    }

    pub fn may_read(&self, key: &ConfigKey) -> bool {
        self.level(key) >= Level::Read
    }

    /// Whether the caller may read `config`'s content: a sensitive one needs
    /// `read-secret`.
    pub fn may_read_content(&self, config: &cairn_store::ConfigRecord) -> bool {
        self.level(&config.key) >= needed_to_read(&config.key, config.sensitive)
    }

    pub fn sees_namespace(&self, namespace: &Namespace) -> bool {
        self.admin || grant::sees_namespace(self.policy.rules(&self.user), namespace.as_str())
    }
}
