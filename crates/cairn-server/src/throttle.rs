//! Login throttling. After a few failed logins for one user name, or many from one
//! address, each further attempt must wait, twice as long after every failure; a waiting
//! attempt is refused before any password is hashed, so guessing costs the node almost
//! nothing and a real user is slowed only after their own mistakes.

use std::net::IpAddr;

/// Failed logins a user name may have before attempts wait.
const USER_FREE: u32 = 5;
/// Failed logins one address may have (over any names) before attempts wait; higher,
/// since many people can share an address.
const SOURCE_FREE: u32 = 20;
/// The longest wait.
const MAX_WAIT_MS: i64 = 5 * 60 * 1000;
/// Failures this old are forgotten.
const FORGET_MS: i64 = 15 * 60 * 1000;
/// Names and addresses remembered at once; the least used go first when full.
const CAPACITY: usize = 100_000;

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Source(IpAddr),
}

#[derive(Clone, Copy, Default)]
struct Failures {
    count: u32,
    last_ms: i64,
}

impl Failures {
    /// Until when attempts wait, in Unix milliseconds.
    fn until(&self, free: u32) -> i64 {
        if self.count < free {
            return 0;
        }
        let wait = (1000_i64 << (self.count - free).min(20)).min(MAX_WAIT_MS);
        self.last_ms + wait
    }
}

pub struct LoginThrottle {
    seen: quick_cache::sync::Cache<Key, Failures>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            seen: quick_cache::sync::Cache::new(CAPACITY),
        }
    }
}

impl LoginThrottle {
    fn keys(user: &str, source: Option<IpAddr>) -> impl Iterator<Item = (Key, u32)> {
        std::iter::once((Key::User(user.to_owned()), USER_FREE))
            .chain(source.map(|ip| (Key::Source(ip), SOURCE_FREE)))
    }

    /// `Err(seconds)` when an attempt for `user` from `source` must wait that long.
    pub fn check(&self, user: &str, source: Option<IpAddr>, now_ms: i64) -> Result<(), u64> {
        for (key, free) in Self::keys(user, source) {
            let Some(failures) = self.seen.get(&key) else {
                continue;
            };
            if now_ms - failures.last_ms > FORGET_MS {
                continue;
            }
            let until = failures.until(free);
            if now_ms < until {
                return Err(((until - now_ms) as u64).div_ceil(1000));
            }
        }
        Ok(())
    }

    pub fn failed(&self, user: &str, source: Option<IpAddr>, now_ms: i64) {
        for (key, _) in Self::keys(user, source) {
            let mut failures = self.seen.get(&key).unwrap_or_default();
            if now_ms - failures.last_ms > FORGET_MS {
                failures = Failures::default();
            }
            failures.count += 1;
            failures.last_ms = now_ms;
            self.seen.insert(key, failures);
        }
    }

    /// A correct password clears its user name's failures (not its address's: one
    /// account of an attacker's own must not reset the address).
    pub fn succeeded(&self, user: &str) {
        self.seen.remove(&Key::User(user.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_waits_after_five_failures_twice_as_long_each_time() {
        let t = LoginThrottle::default();
        for i in 0..5 {
            assert_eq!(t.check("bob", None, 1_000 + i), Ok(()));
            t.failed("bob", None, 1_000 + i);
        }
        assert_eq!(t.check("bob", None, 1_005), Err(1));
        assert_eq!(t.check("bob", None, 2_004), Ok(()));
        t.failed("bob", None, 2_004);
        assert_eq!(t.check("bob", None, 2_005), Err(2));
        assert_eq!(
            t.check("alice", None, 2_005),
            Ok(()),
            "other names are not slowed"
        );
        t.succeeded("bob");
        assert_eq!(t.check("bob", None, 2_005), Ok(()));
    }

    #[test]
    fn an_address_waits_after_many_failures_over_any_names() {
        let t = LoginThrottle::default();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        for i in 0..20 {
            t.failed(&format!("user{i}"), Some(ip), 1_000);
        }
        assert_eq!(t.check("someone-else", Some(ip), 1_001), Err(1));
        assert_eq!(t.check("someone-else", None, 1_001), Ok(()));
        t.succeeded("someone-else");
        assert_eq!(
            t.check("someone-else", Some(ip), 1_001),
            Err(1),
            "a success elsewhere does not reset the address"
        );
    }

    #[test]
    fn old_failures_are_forgotten_and_waits_are_capped() {
        let t = LoginThrottle::default();
        for _ in 0..40 {
            t.failed("bob", None, 0);
        }
        assert_eq!(t.check("bob", None, 1), Err(300));
        assert_eq!(t.check("bob", None, FORGET_MS + 1), Ok(()));
        t.failed("bob", None, FORGET_MS + 1);
        assert_eq!(
            t.check("bob", None, FORGET_MS + 2),
            Ok(()),
            "counting starts again"
        );
    }
}
