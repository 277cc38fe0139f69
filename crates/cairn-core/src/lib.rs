//! Cairn's pure domain: validated names and keys, config formats, content digests and
//! diffs. Nothing in this crate does I/O or is async, so every rule here is testable in
//! isolation and shared unchanged by the server, the store and the clients.

pub mod diff;
pub mod format;
pub mod grant;
pub mod gray;
pub mod md5;
pub mod names;
pub mod pattern;
pub mod properties;
pub mod revision;
pub mod role;
pub mod structured;

pub use format::{Format, FormatError};
pub use gray::{ClientInfo, GrayError, GrayRules, Label};
pub use names::{
    ConfigKey, DataId, Group, KeyPathError, NameError, Namespace, RoleName, Tag, Username,
};
pub use revision::{Revision, RevisionError};
pub use role::Role;
