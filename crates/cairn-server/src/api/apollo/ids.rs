//! Apollo's notification ids, per client, and its case-insensitive namespace lookup:
//! state only the Apollo surface needs, kept beside it and fed by the commit path (an
//! [`Observer`]) so it moves with every change, whichever surface or node made it.
//!
//! A notification id is the sequence of the last change to what *this* client reads of
//! a key: a gray release, and its end, count only for the clients it is for. The ends
//! of the last few gray releases per key are remembered with their rules, so an end is
//! told to the right clients.

use cairn_core::{ClientInfo, ConfigKey, GrayRules, Group, Namespace, Revision};
use dashmap::DashMap;

use crate::cache::KeyState;
use crate::commit::{Applied, Observer};

/// Which parts of a client's identity it stated itself (see [`Index::notification_ids`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stated {
    pub ip: bool,
    pub labels: bool,
}

/// How many ended gray releases are remembered per key.
const ENDS_KEPT: usize = 8;

/// A key's ended gray releases: the last few with their rules, and the newest of those
/// forgotten.
#[derive(Default)]
struct Ends {
    kept: Vec<(i64, GrayRules)>,
    dropped_through: i64,
}

/// A key's notification ids for one client (see [`Index::notification_ids`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotificationIds {
    pub mine: i64,
    pub newest: i64,
}

impl NotificationIds {
    /// The id to answer a client holding `held` with: its own, unless it holds an id
    /// that none of its changes explains (it read a release since ended or replaced
    /// that this node no longer knows it matched), which gets the newest change, once.
    pub fn for_held(self, held: i64) -> i64 {
        if held > self.mine && held < self.newest {
            self.newest
        } else {
            self.mine
        }
    }

    /// The ids of a namespace that spans several keys (clusters): the fallback above
    /// applies to the namespace as a whole, whose held id is the highest of its keys'.
    pub fn merge(self, other: NotificationIds) -> NotificationIds {
        NotificationIds {
            mine: self.mine.max(other.mine),
            newest: self.newest.max(other.newest),
        }
    }
}

/// A key with its data id in lower case, for lookups that ignore case (Apollo's).
type FoldedKey = (Namespace, Group, String);

fn folded(key: &ConfigKey) -> FoldedKey {
    (
        key.namespace.clone(),
        key.group.clone(),
        key.data_id.as_str().to_ascii_lowercase(),
    )
}

/// The Apollo surface's own view of the changes.
#[derive(Default)]
pub struct Index {
    /// Per key, the last few changes that ended or replaced a gray release, each with
    /// the rules of the release it ended.
    ended: DashMap<ConfigKey, Ends, foldhash::fast::RandomState>,
    /// Present configs by case-folded key.
    folded: DashMap<FoldedKey, ConfigKey>,
}

impl Index {
    /// The index of a node whose cache holds `present`.
    pub fn load<'a>(present: impl IntoIterator<Item = &'a ConfigKey>) -> Self {
        Self {
            ended: DashMap::default(),
            folded: present
                .into_iter()
                .map(|key| (folded(key), key.clone()))
                .collect(),
        }
    }

    /// The key of a present config whose data id equals `key`'s ignoring case.
    pub fn find_ignoring_case(&self, key: &ConfigKey) -> Option<ConfigKey> {
        self.folded.get(&folded(key)).map(|k| k.value().clone())
    }

    /// The sequence of the last change to what `client` reads of the key `state`
    /// describes, and the sequence of the key's last change of any kind. `said` tells
    /// which parts of its identity the client stated; for a part it did not (many
    /// Apollo clients send neither IP nor label on long polls, and the connection's
    /// address may be a proxy's), every release with rules of that kind counts as its
    /// own, so a client is never left unnotified.
    pub fn notification_ids(
        &self,
        key: &ConfigKey,
        state: &KeyState,
        client: &ClientInfo,
        said: Stated,
    ) -> Option<NotificationIds> {
        let for_client = |rules: &GrayRules| {
            rules.matches(client)
                || (!said.ip && !rules.ips.is_empty())
                || (!said.labels && !rules.labels.is_empty())
        };
        let gray = state
            .gray
            .as_ref()
            .filter(|g| for_client(&g.rules))
            .map(|g| g.revision.get());
        let ended = if self.ended.is_empty() {
            None
        } else {
            self.ended.get(key).and_then(|ends| {
                ends.kept
                    .iter()
                    .filter(|(_, rules)| for_client(rules))
                    .map(|(seq, _)| *seq)
                    // Whom a forgotten end was for is unknown: it counts for all.
                    .chain((ends.dropped_through > 0).then_some(ends.dropped_through))
                    .max()
            })
        };
        // Notification ids are the change-log sequences of the changes they stand for.
        let config = state.config.map(Revision::get);
        let mine = [config, gray, ended].into_iter().flatten().max()?;
        Some(NotificationIds {
            mine,
            newest: state.epoch.map_or(mine, Revision::get).max(mine),
        })
    }

    fn note_ended(&self, key: &ConfigKey, seq: i64, rules: &GrayRules) {
        let mut ends = self.ended.entry(key.clone()).or_default();
        ends.kept.push((seq, rules.clone()));
        if ends.kept.len() > ENDS_KEPT {
            ends.kept.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
            if let Some((dropped, _)) = ends.kept.pop() {
                ends.dropped_through = ends.dropped_through.max(dropped);
            }
        }
    }
}

impl Observer for Index {
    fn applied(&self, event: Applied<'_>) {
        match event {
            Applied::Present(key) => {
                self.folded.insert(folded(key), key.clone());
            }
            Applied::Removed { key, seq } => {
                let seq = seq.get();
                // Ends up to the deletion no longer matter (its sequence is everyone's
                // change); dropping the entry keeps the wake path's no-gray shortcut.
                if let Some(mut ends) = self.ended.get_mut(key) {
                    ends.kept.retain(|(ended, _)| *ended > seq);
                }
                self.ended.remove_if(key, |_, ends| {
                    ends.kept.is_empty() && ends.dropped_through <= seq
                });
                self.folded.remove_if(&folded(key), |_, k| k == key);
            }
            Applied::GrayEnded { key, seq, release } => {
                self.note_ended(key, seq.get(), &release.rules)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cairn_core::{Format, Label};
    use cairn_store::GrayRecord;

    use super::*;
    use crate::cache::{rev, test_record, Cache};
    use crate::commit::{Change, Commits};

    fn key() -> ConfigKey {
        ConfigKey::parse("public", "g", "d").unwrap()
    }

    fn main(revision: i64) -> Change {
        Change::Config(Arc::new(test_record(key(), revision, "main")))
    }

    fn gray(revision: i64, label: &str) -> Change {
        Change::Gray(Arc::new(GrayRecord {
            key: key(),
            content: "gray".into(),
            format: Format::Text,
            md5: cairn_core::md5::md5_hex("gray"),
            revision: rev(revision),
            rules: GrayRules::parse(&[], &[label.into()]).unwrap(),
            created_by: "a".into(),
            created_at: 0,
        }))
    }

    fn end(seq: i64) -> Change {
        Change::GrayEnded {
            key: key(),
            seq: rev(seq),
        }
    }

    fn labelled(label: &str) -> ClientInfo {
        ClientInfo::new(None, vec![Label::parse(label).unwrap()])
    }

    const STATED: Stated = Stated {
        ip: true,
        labels: true,
    };

    /// A node's commit path with the index observing it.
    fn node() -> (Commits, Arc<Index>) {
        let index = Arc::new(Index::default());
        let commits = Commits::new(Cache::default(), 0, vec![index.clone()]);
        (commits, index)
    }

    fn ids(commits: &Commits, index: &Index, client: &ClientInfo, said: Stated) -> NotificationIds {
        let state = commits.cache().key_state(&key());
        index
            .notification_ids(&key(), &state, client, said)
            .unwrap()
    }

    #[test]
    fn notification_ids_move_only_for_the_clients_a_change_is_for() {
        let (commits, index) = node();
        let (canary, other) = (labelled("canary=true"), ClientInfo::default());
        let id = |client: &ClientInfo, held| ids(&commits, &index, client, STATED).for_held(held);
        commits.apply(main(1));
        commits.apply(gray(2, "canary=true"));
        assert_eq!((id(&canary, 1), id(&other, 1)), (2, 1));
        // A client that did not say its labels counts as matching a release by label.
        let unstated = Stated {
            ip: true,
            labels: false,
        };
        assert_eq!(ids(&commits, &index, &other, unstated).for_held(1), 2);
        // Its end moves the canary's id, not the other's.
        commits.apply(end(3));
        assert_eq!((id(&canary, 2), id(&other, 1)), (3, 1));
        // A replacement for other clients moves the id of those the first was for.
        commits.apply(gray(4, "canary=true"));
        commits.apply(gray(5, "zone=b"));
        assert_eq!((id(&canary, 4), id(&other, 1)), (5, 1));
        // An id this node cannot explain for the client gets the newest change, once.
        assert_eq!(id(&other, 2), 5);
        assert_eq!(id(&other, 5), 1);
        // A late, older delete does not forget who a release was for.
        commits.apply(end(6));
        assert!(!commits.apply(Change::Deleted {
            key: key(),
            seq: rev(1)
        }));
        assert_eq!(id(&canary, 5), 5, "zone=b's end is not the canary's");
        assert_eq!(id(&labelled("zone=b"), 5), 6);
    }

    #[test]
    fn a_forgotten_end_counts_for_every_client() {
        let (commits, index) = node();
        let canary = labelled("canary=true");
        commits.apply(main(1));
        commits.apply(gray(2, "canary=true"));
        // A main publish while the release is live: the canary holds its id, 3.
        commits.apply(main(3));
        commits.apply(end(4));
        // More releases for others end than the index keeps; the canary's end goes.
        for seq in (5..5 + 2 * ENDS_KEPT as i64).step_by(2) {
            commits.apply(gray(seq, "zone=b"));
            commits.apply(end(seq + 1));
        }
        let ids = ids(&commits, &index, &canary, STATED);
        assert!(ids.for_held(3) > 3, "the canary, which held 3, is told");
        assert_eq!(ids.for_held(ids.newest), ids.mine, "and then left alone");
    }

    #[test]
    fn names_are_found_ignoring_case_while_present() {
        let (commits, index) = node();
        let upper = ConfigKey::parse("public", "g", "D").unwrap();
        assert_eq!(index.find_ignoring_case(&upper), None);
        commits.apply(main(1));
        assert_eq!(index.find_ignoring_case(&upper), Some(key()));
        commits.apply(Change::Deleted {
            key: key(),
            seq: rev(2),
        });
        assert_eq!(index.find_ignoring_case(&upper), None);
    }
}
