//! The layered configuration manager: one view of a process's configuration merged
//! from several sources (remote Cairn configs, command-line arguments, environment
//! variables, local files) by priority, read lock-free, kept current as the sources
//! change, and reporting each change as one batch of per-key events.
//!
//! ```no_run
//! # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
//! use cairn_client::{Key, layered::Manager};
//! #[derive(serde::Deserialize)]
//! struct Registry { interval: u64, servers: Vec<String> }
//!
//! let config = Manager::builder()
//!     .remote(&client, Key::parse("public/DEFAULT_GROUP/app.yaml")?)
//!     .args(std::env::args())           // --registry.interval=5
//!     .env("APP_")                      // APP_REGISTRY__INTERVAL=5
//!     .file("config/app.yaml")          // watched for edits
//!     .build()
//!     .await?;
//! let interval: u64 = config.get("registry.interval")?;
//! let registry = config.handle::<Registry>("registry")?; // always the current value
//! config.on_prefix("registry.", |events| println!("{} keys changed", events.len()));
//! # Ok(()) }
//! ```

mod sources;
mod tree;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use arc_swap::ArcSwap;
use serde::de::DeserializeOwned;
pub use serde_json::Value;

use crate::{lenient, Client, Error, Key, Result};
use tree::Flat;

/// The kinds of source, each with a priority (higher wins). By default remote Cairn
/// configs win over command-line arguments, which win over environment variables,
/// which win over local files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// Configs read from a Cairn server and watched. Default priority 40.
    Remote,
    /// `--key=value` command-line arguments. Default priority 30.
    Args,
    /// Environment variables with a prefix. Default priority 20.
    Env,
    /// Local files, watched for changes. Default priority 10.
    File,
}

impl SourceKind {
    fn default_priority(self) -> i32 {
        match self {
            SourceKind::Remote => 40,
            SourceKind::Args => 30,
            SourceKind::Env => 20,
            SourceKind::File => 10,
        }
    }
}

/// How a source's content becomes keys.
#[derive(Debug, Clone)]
pub(crate) enum Mode {
    /// Every leaf under its dotted path.
    Flatten,
    /// The whole parsed document as one value under this key, so that it only ever
    /// changes as a whole.
    Whole(String),
}

/// A source as configured.
#[derive(Clone)]
pub(crate) enum Spec {
    Remote {
        client: Client,
        key: Key,
        mode: Mode,
    },
    Args(Vec<String>),
    Env(Vec<(String, String)>, String),
    File {
        path: PathBuf,
        mode: Mode,
    },
}

impl Spec {
    fn kind(&self) -> SourceKind {
        match self {
            Spec::Remote { .. } => SourceKind::Remote,
            Spec::Args(_) => SourceKind::Args,
            Spec::Env(..) => SourceKind::Env,
            Spec::File { .. } => SourceKind::File,
        }
    }
}

/// How a key changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The key had no value before.
    Added,
    /// The key's value is different.
    Updated,
    /// The key has no value any more.
    Deleted,
}

/// One key's change in the merged configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The dotted key.
    pub key: String,
    /// Added, updated or deleted.
    pub kind: EventKind,
    /// The value before (`None` when added).
    pub old: Option<Value>,
    /// The value now (`None` when deleted).
    pub new: Option<Value>,
}

/// Builds a [`Manager`] from its sources.
#[derive(Default)]
pub struct ManagerBuilder {
    specs: Vec<Spec>,
    priorities: BTreeMap<&'static str, i32>,
}

fn kind_name(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Remote => "remote",
        SourceKind::Args => "args",
        SourceKind::Env => "env",
        SourceKind::File => "file",
    }
}

impl ManagerBuilder {
    /// A config on a Cairn server, flattened to dotted keys (yaml, json, toml or
    /// properties) and watched through `client`'s one long-poll loop. The client's
    /// snapshot and failover directories apply: with no server at start-up its
    /// snapshot is used, and a failover file wins over the server.
    pub fn remote(mut self, client: &Client, key: Key) -> Self {
        self.specs.push(Spec::Remote {
            client: client.clone(),
            key,
            mode: Mode::Flatten,
        });
        self
    }

    /// A config on a Cairn server kept whole: its parsed document (or its text, for
    /// text formats) is the one value of key `name`, so it only ever changes at once.
    /// A lower-priority source's keys below `name` are hidden by it; a higher-priority
    /// source's keys below `name` (`routes./a` from the command line) win over the
    /// matching part of it.
    pub fn remote_whole(mut self, client: &Client, key: Key, name: impl Into<String>) -> Self {
        self.specs.push(Spec::Remote {
            client: client.clone(),
            key,
            mode: Mode::Whole(name.into()),
        });
        self
    }

    /// Command-line arguments of the form `--key=value` (e.g. `std::env::args()`);
    /// anything else is ignored, so the same arguments can go to a parser of their own.
    pub fn args(mut self, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.specs
            .push(Spec::Args(args.into_iter().map(Into::into).collect()));
        self
    }

    /// Environment variables starting with `prefix`: `APP_REGISTRY__INTERVAL=5` with
    /// prefix `APP_` is `registry.interval` (lower-cased, `__` for `.`). Where another
    /// source has the key spelled otherwise, the variable matches it ignoring case, `-`
    /// and `_`: `APP_POOL__MAX_SIZE` overrides `pool.maxSize` and `pool.max-size`.
    /// Variables whose name or value is not valid UTF-8 are skipped.
    pub fn env(self, prefix: impl Into<String>) -> Self {
        let vars = std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        });
        self.env_from(prefix, vars)
    }

    /// Like [`ManagerBuilder::env`], from the given variables instead of the process's.
    pub fn env_from(
        mut self,
        prefix: impl Into<String>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        self.specs
            .push(Spec::Env(vars.into_iter().collect(), prefix.into()));
        self
    }

    /// A local file (yaml, json, toml or properties, by its extension), flattened to
    /// dotted keys and watched: each save is one batch of events. It must exist at
    /// start-up; if it is removed later its keys are deleted.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.specs.push(Spec::File {
            path: path.into(),
            mode: Mode::Flatten,
        });
        self
    }

    /// A local file kept whole as the one value of key `name`, and watched.
    pub fn file_whole(mut self, path: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        self.specs.push(Spec::File {
            path: path.into(),
            mode: Mode::Whole(name.into()),
        });
        self
    }

    /// Sets the priority of every source of `kind` (higher wins; see [`SourceKind`] for
    /// the defaults). Among sources of equal priority the one added later wins.
    pub fn priority(mut self, kind: SourceKind, priority: i32) -> Self {
        self.priorities.insert(kind_name(kind), priority);
        self
    }

    /// Reads every source and starts watching the ones that change. Fails when a
    /// source cannot be read: a remote config with neither a server nor a snapshot, a
    /// missing file, or content that does not parse.
    pub async fn build(self) -> Result<Manager> {
        let mut ranked: Vec<(i32, usize, Spec)> = self
            .specs
            .into_iter()
            .enumerate()
            .map(|(index, spec)| {
                let kind = spec.kind();
                let priority = self
                    .priorities
                    .get(kind_name(kind))
                    .copied()
                    .unwrap_or_else(|| kind.default_priority());
                (priority, index, spec)
            })
            .collect();
        // Lowest priority first, so that merging in order lets the winner write last.
        ranked.sort_by_key(|(priority, index, _)| (*priority, *index));
        let specs: Vec<Spec> = ranked.into_iter().map(|(_, _, spec)| spec).collect();

        let inner = Arc::new(Inner {
            merged: ArcSwap::default(),
            layers: Mutex::new(
                specs
                    .iter()
                    .map(|spec| Layer {
                        values: Flat::new(),
                        fed: false,
                        relaxed: spec.kind() == SourceKind::Env,
                    })
                    .collect(),
            ),
            listeners: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
        });
        // Feeders may change a layer while later sources are still being read: their
        // change is newer than the initial read, so the initial read only fills a layer
        // nobody has set yet.
        let mut initial = Vec::with_capacity(specs.len());
        for (index, spec) in specs.into_iter().enumerate() {
            initial.push(sources::start(spec, index, Arc::downgrade(&inner)).await?);
        }
        let mut layers = inner.layers.lock().unwrap_or_else(PoisonError::into_inner);
        for (layer, values) in layers.iter_mut().zip(initial) {
            if !layer.fed {
                layer.values = values;
            }
        }
        inner.merged.store(Arc::new(merge(&layers)));
        drop(layers);
        Ok(Manager { inner })
    }
}

/// Listeners get the events of one change at once; see [`Manager::on_key`].
type Callback = Arc<dyn Fn(&[Event]) + Send + Sync>;

enum Selector {
    Key(String),
    Prefix(String),
    /// A key and every key below it.
    Subtree(String),
}

impl Selector {
    fn matches(&self, key: &str) -> bool {
        match self {
            Selector::Key(k) => key == k,
            Selector::Prefix(p) => key.starts_with(p.as_str()),
            // The key itself, any key below it, or a key above it (a value kept whole
            // that contains it).
            Selector::Subtree(p) => {
                p.is_empty()
                    || key
                        .strip_prefix(p.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
                    || p.strip_prefix(key)
                        .is_some_and(|rest| rest.starts_with('.'))
            }
        }
    }
}

/// One source's keys.
struct Layer {
    values: Flat,
    /// Whether its feeder has set it (then it is newer than the source's first read).
    fed: bool,
    /// Whether its keys match other sources' keys loosely (environment variables cannot
    /// spell `maxConnections` or `log-level`).
    relaxed: bool,
}

/// A key as loosely matched: lower case, without `-` and `_`.
fn relaxed(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

pub(crate) struct Inner {
    /// What readers see; replaced whole on every change.
    merged: ArcSwap<Flat>,
    /// Each source's keys, lowest priority first. Held while a change is merged and
    /// its listeners called, so changes are seen in order.
    layers: Mutex<Vec<Layer>>,
    listeners: Mutex<Vec<(u64, Selector, Callback)>>,
    /// The tasks and file watchers feeding the layers; dropping them stops them, so
    /// they end with the manager (they hold only weak references to it).
    tasks: Mutex<Vec<Box<dyn Send>>>,
}

impl Inner {
    /// Replaces source `index`'s keys and tells listeners what changed in the merge.
    pub(crate) fn set_layer(&self, index: usize, values: Flat) {
        let mut layers = self.layers.lock().unwrap_or_else(PoisonError::into_inner);
        layers[index].fed = true;
        if layers[index].values == values {
            return;
        }
        layers[index].values = values;
        let merged = merge(&layers);
        let old = self.merged.swap(Arc::new(merged));
        let events = diff(&old, &self.merged.load());
        if events.is_empty() {
            return;
        }
        let listeners: Vec<(Vec<Event>, Callback)> = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|(_, selector, callback)| {
                let mine: Vec<Event> = events
                    .iter()
                    .filter(|e| selector.matches(&e.key))
                    .cloned()
                    .collect();
                (!mine.is_empty()).then(|| (mine, callback.clone()))
            })
            .collect();
        // Called with the layers still locked: the next change waits its turn. A
        // listener that panics is logged and the others still hear of the change.
        for (events, callback) in listeners {
            let call = std::panic::AssertUnwindSafe(|| callback(&events));
            if std::panic::catch_unwind(call).is_err() {
                tracing::error!("a configuration listener panicked");
            }
        }
    }

    pub(crate) fn keep(&self, task: Box<dyn Send>) {
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task);
    }
}

/// The layers merged, lowest priority first, so the winner of each key writes last. A
/// key also hides what lower layers have below it: a value kept whole wins as a whole
/// over a lower layer's flattened keys inside it.
///
/// Keys of relaxed layers (the environment) take the spelling of a matching key of
/// another layer: `APP_REGISTRY__MAX_CONNECTIONS` sets `registry.maxConnections`.
fn merge(layers: &[Layer]) -> Flat {
    let spelling: BTreeMap<String, &String> = layers
        .iter()
        .filter(|l| !l.relaxed)
        .flat_map(|l| l.values.keys())
        .map(|k| (relaxed(k), k))
        .collect();
    let mut merged = Flat::new();
    for layer in layers {
        let respelled: Flat;
        let values = if layer.relaxed {
            respelled = layer
                .values
                .iter()
                .map(|(k, v)| {
                    let key = spelling.get(&relaxed(k)).map_or(k, |k| *k);
                    (key.clone(), v.clone())
                })
                .collect();
            &respelled
        } else {
            &layer.values
        };
        for key in values.keys() {
            let below = format!("{key}.");
            let hidden: Vec<String> = merged
                .range::<str, _>((
                    std::ops::Bound::Included(below.as_str()),
                    std::ops::Bound::Unbounded,
                ))
                .take_while(|(k, _)| k.starts_with(&below))
                .map(|(k, _)| k.clone())
                .collect();
            for k in hidden {
                merged.remove(&k);
            }
        }
        merged.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    merged
}

/// The events that turn `old` into `new`, in key order.
fn diff(old: &Flat, new: &Flat) -> Vec<Event> {
    let mut events = Vec::new();
    for (key, value) in new {
        match old.get(key) {
            None => events.push(Event {
                key: key.clone(),
                kind: EventKind::Added,
                old: None,
                new: Some(value.clone()),
            }),
            Some(before) if before != value => events.push(Event {
                key: key.clone(),
                kind: EventKind::Updated,
                old: Some(before.clone()),
                new: Some(value.clone()),
            }),
            Some(_) => {}
        }
    }
    for (key, value) in old {
        if !new.contains_key(key) {
            events.push(Event {
                key: key.clone(),
                kind: EventKind::Deleted,
                old: Some(value.clone()),
                new: None,
            });
        }
    }
    events.sort_by(|a, b| a.key.cmp(&b.key));
    events
}

/// A process's configuration merged from its sources. Cheap to clone; reads never
/// lock. Its sources are watched for as long as a clone (or a [`Handle`]) is alive —
/// including a clone captured by one of its own listeners, which keeps it alive for
/// good (capture a [`Handle`] instead, or what the listener needs).
#[derive(Clone)]
pub struct Manager {
    inner: Arc<Inner>,
}

/// A listener registration; see [`Manager::on_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerId(u64);

impl Manager {
    /// Starts describing the sources.
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder::default()
    }

    /// The value at dotted `key`, converted to `T`: a leaf, or the subtree of every key
    /// under `key.` (see [`Manager::section`]). Strings from env, arguments and
    /// properties convert to numbers and bools where `T` asks for them.
    ///
    /// A missing key is [`Error::Missing`], unless `T` is an `Option` (then `None`).
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        lookup(&self.inner.merged.load(), key)
    }

    /// The value at `key`, or `default` when it is missing or does not convert to `T`
    /// (which is logged: it is a mistake in some source).
    pub fn get_or<T: DeserializeOwned>(&self, key: &str, default: T) -> T {
        match self.get(key) {
            Ok(value) => value,
            Err(Error::Missing { .. }) => default,
            Err(e) => {
                tracing::warn!(error = %e, "using the default value");
                default
            }
        }
    }

    /// Every key under `prefix.` gathered into `T` (a struct, usually):
    /// `section::<Registry>("registry")` reads `registry.interval`,
    /// `registry.servers`, ….
    pub fn section<T: DeserializeOwned>(&self, prefix: &str) -> Result<T> {
        self.get(prefix)
    }

    /// Every key and its value, as merged now.
    pub fn all(&self) -> BTreeMap<String, Value> {
        (**self.inner.merged.load()).clone()
    }

    /// Calls `listener` with the events of each change to `key`.
    pub fn on_key(
        &self,
        key: impl Into<String>,
        listener: impl Fn(&[Event]) + Send + Sync + 'static,
    ) -> ListenerId {
        self.listen(Selector::Key(key.into()), Arc::new(listener))
    }

    /// Calls `listener` with the events of each change to keys starting with `prefix`
    /// (`"registry."`; `""` for every key): one call per file save or publish, with
    /// every key that it changed. Listeners are called in order of changes; they must
    /// return quickly, as the next change waits for them.
    pub fn on_prefix(
        &self,
        prefix: impl Into<String>,
        listener: impl Fn(&[Event]) + Send + Sync + 'static,
    ) -> ListenerId {
        self.listen(Selector::Prefix(prefix.into()), Arc::new(listener))
    }

    fn listen(&self, selector: Selector, callback: Callback) -> ListenerId {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((id, selector, callback));
        ListenerId(id)
    }

    /// Unregisters a listener.
    pub fn remove_listener(&self, id: ListenerId) {
        let removed: Vec<_> = {
            let mut listeners = self
                .inner
                .listeners
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let (gone, kept) = std::mem::take(&mut *listeners)
                .into_iter()
                .partition(|(i, _, _)| *i == id.0);
            *listeners = kept;
            gone
        };
        // Dropped unlocked: a callback may own the last clone of a handle, whose drop
        // removes a listener of its own.
        drop(removed);
    }

    /// A typed view of `key` (a leaf or a section) that always holds the current value:
    /// it is converted again on every change under `key`. A change that no longer
    /// converts to `T` is logged and the handle keeps the last good value. Fails if the
    /// value does not convert now.
    pub fn handle<T>(&self, key: &str) -> Result<Handle<T>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let current: Arc<ArcSwap<Option<Arc<T>>>> = Arc::new(ArcSwap::from_pointee(None));
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let slot = current.clone();
        let path = key.to_owned();
        let update = move |_: &[Event]| {
            let Some(inner) = weak.upgrade() else { return };
            let value = lookup::<T>(&inner.merged.load(), &path);
            match value {
                Ok(value) => slot.store(Arc::new(Some(Arc::new(value)))),
                Err(message) => {
                    tracing::warn!(key = %path, error = %message, "keeping the last good value");
                }
            }
        };
        // Listening before the first read: a change in between is then not missed.
        let id = self.listen(Selector::Subtree(key.to_owned()), Arc::new(update));
        let registration = Arc::new(Registration {
            manager: self.clone(),
            id,
        });
        let first = Arc::new(self.get::<T>(key)?);
        // Unless a change already filled it, which is newer.
        current.rcu(|now| match &**now {
            Some(newer) => Some(newer.clone()),
            None => Some(first.clone()),
        });
        Ok(Handle {
            current,
            _registration: registration,
        })
    }
}

/// The value at `key` in `flat` as `T`; see [`Manager::get`].
fn lookup<T: DeserializeOwned>(flat: &Flat, key: &str) -> Result<T> {
    let fail = |message: String| Error::Value {
        key: key.to_owned(),
        message,
    };
    match tree::subtree(flat, key) {
        Some(value) => lenient::from_value(value).map_err(|e| fail(e.to_string())),
        None => lenient::from_value(Value::Null).map_err(|_| Error::Missing {
            key: key.to_owned(),
        }),
    }
}

/// Removes a handle's listeners when its last clone goes.
struct Registration {
    manager: Manager,
    id: ListenerId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.manager.remove_listener(self.id);
    }
}

/// The current value of a key as `T`; see [`Manager::handle`]. Reads never lock.
pub struct Handle<T> {
    /// Always `Some` once the handle is returned.
    current: Arc<ArcSwap<Option<Arc<T>>>>,
    _registration: Arc<Registration>,
}

impl<T> Clone for Handle<T> {
    fn clone(&self) -> Self {
        Self {
            current: self.current.clone(),
            _registration: self._registration.clone(),
        }
    }
}

impl<T> Handle<T> {
    /// The current value.
    pub fn get(&self) -> Arc<T> {
        (**self.current.load())
            .clone()
            .expect("a handle holds a value from its creation")
    }
}
