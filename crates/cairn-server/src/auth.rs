//! Authentication: argon2 password hashes, signed access tokens, the first-start admin,
//! and user management. There is no built-in password or signing key: both are made
//! at first start.

use secrecy::ExposeSecret;
use std::path::Path;
use std::sync::Arc;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, PasswordVerifier};
use cairn_core::Username;
use cairn_store::{Store, StoreError, UserRecord};
use dashmap::DashMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::distributions::{Alphanumeric, DistString};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::access::{token_user, Access, Policy, TOKEN_PREFIX};
use crate::audit::{AuditLog, Outcome};
use crate::listeners::Listeners;
use crate::now_millis;
use crate::service::Actor;
use crate::settings::Secret;
use cairn_core::grant::{Level, Scope};
use cairn_core::{ConfigKey, RoleName};
use cairn_store::{GrantRecord, RoleMember, Subject, TokenRecord};

pub use cairn_core::Role;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub username: Username,
    pub role: Role,
}

/// A console session as a request presents it.
pub struct ConsoleSession {
    pub caller: Caller,
    /// What every form of this session must send back, so that another site cannot
    /// post to the console in the user's name.
    pub csrf: String,
}

/// A freshly issued access token.
pub struct IssuedToken {
    pub token: Secret,
    pub expires_in_secs: u64,
    pub role: Role,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("user name or password is wrong")]
    BadCredentials,
    #[error("too many failed logins for this user or address; try again in {0} s")]
    Throttled(u64),
    #[error("changing your own password needs your current password (current_password)")]
    CurrentPasswordRequired,
    #[error("the access token is missing")]
    MissingToken,
    #[error("the access token has expired; log in again")]
    Expired,
    #[error("the access token is invalid; log in again")]
    InvalidToken,
    #[error("this needs the admin role")]
    Forbidden,
    #[error(transparent)]
    Denied(#[from] crate::access::Denied),
    #[error("{0}")]
    InvalidGrant(String),
    #[error("a password must be 8 to 256 characters long")]
    WeakPassword,
    #[error("unknown role {0:?}; expected admin or user")]
    UnknownRole(String),
    #[error("user {0} already exists")]
    UserExists(String),
    #[error("a service token named {0} already exists; revoke it first or choose another name")]
    TokenExists(String),
    #[error("user {0} does not exist")]
    UserNotFound(String),
    #[error("{0} is the last admin; make another admin first")]
    LastAdmin(String),
    #[error(transparent)]
    Store(StoreError),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UserExists(u) => AuthError::UserExists(u),
            StoreError::UserNotFound(u) => AuthError::UserNotFound(u),
            other => {
                if other.is_outage() {
                    crate::metrics::database_error("request");
                }
                AuthError::Store(other)
            }
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    iat: u64,
    /// When the user's password last changed; a token from before a change is void.
    pwd: i64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct UserState {
    role: Role,
    password_changed_at: i64,
}

impl UserState {
    fn of(user: &UserRecord) -> Self {
        Self {
            role: user.role,
            password_changed_at: user.password_changed_at,
        }
    }
}

/// Issues and checks tokens and manages users. Users are mirrored in memory so that
/// checking a token never touches the database.
pub struct Auth {
    store: Arc<dyn Store>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: u64,
    users: DashMap<Username, UserState>,
    /// The users as last read from the database, password hashes included: logins are
    /// checked against these while the database cannot be reached, so clients that log
    /// themselves in keep reading through an outage. A record counts only while its
    /// password-change time matches `users`.
    offline: DashMap<Username, UserRecord>,
    /// Verified against when a login names an unknown user, so that the answer takes
    /// as long as for a known one.
    dummy_hash: String,
    /// Each argon2 run takes ~19 MiB and a core; this bounds how many run at once so a
    /// flood of logins cannot exhaust memory.
    hashing: tokio::sync::Semaphore,
    /// Serializes user changes, so checks like "not the last admin" hold.
    changes: tokio::sync::Mutex<()>,
    /// Passwords verified recently, for clients (Nacos ones among them) that send their
    /// credentials on every request: one argon2 run each would be a CPU-exhaustion
    /// hole. Keyed by user and a keyed BLAKE2 digest of the password (never the password
    /// itself); an entry counts only while the user's password is unchanged.
    verified: quick_cache::sync::Cache<(Username, [u8; 32]), i64>,
    verified_key: [u8; 32],
    /// Keys the console's form tokens, derived from the shared signing key so that any
    /// node of a cluster accepts a form another node rendered.
    csrf_key: [u8; 32],
    /// Failed logins by user name and address, checked before any hashing.
    throttle: crate::throttle::LoginThrottle,
    /// Tokens whose signature was checked: user, expiry and password-change time.
    tokens: TokenCache,
    /// Grants and role memberships.
    access: Access,
    /// Where logins, administrative acts and refusals are recorded.
    audit: AuditLog,
    /// When each service token was last used, not yet written to the database.
    token_use: DashMap<String, i64>,
    /// Every live watch of the node, so that one whose user loses a right is ended.
    listeners: Arc<Listeners>,
}

/// Checked tokens, bounded: when full, the least used go first, not everything at once.
/// Every request looks its token up here, hashed with foldhash rather than SipHash.
type TokenCache = quick_cache::sync::Cache<
    String,
    (Username, u64, i64),
    quick_cache::UnitWeighter,
    foldhash::fast::RandomState,
>;

/// The most remembered tokens.
const TOKEN_CACHE_CAPACITY: usize = 100_000;

/// The most remembered password verifications.
const VERIFIED_CAPACITY: usize = 10_000;

fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

fn check_password_strength(password: &str) -> Result<(), AuthError> {
    let len = password.chars().count();
    if (8..=256).contains(&len) {
        Ok(())
    } else {
        Err(AuthError::WeakPassword)
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("password hashing task panicked")
}

impl Auth {
    /// Runs a password hash or check on the blocking pool, a bounded number at a time.
    async fn hash_job<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let _permit = self
            .hashing
            .acquire()
            .await
            .expect("the semaphore is never closed");
        blocking(f).await
    }
}

const SIGNING_KEY_BYTES: usize = 32;

/// What the signing key file's content is sealed as.
const SIGNING_KEY_IDENTITY: &str = "secret:token_signing_key";

/// Writes the signing key file through a temporary file and a rename, so a crash never
/// leaves a partial key behind.
fn write_signing_key_file(dir: &Path, stored: &str) -> std::io::Result<()> {
    let tmp = dir.join("token.key.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    std::io::Write::write_all(&mut file, stored.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join("token.key"))
}

/// Stores the signing key file of `dir` under the current key (see
/// [`cairn_store::seal::reseal`]); `None` when there is no such file (nodes sharing a
/// database keep it there).
pub fn reseal_signing_key_file(
    dir: &Path,
    sealer: &cairn_store::Sealer,
) -> std::io::Result<Option<cairn_store::seal::Resealed>> {
    let text = match std::fs::read_to_string(dir.join("token.key")) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let (done, new) = cairn_store::seal::reseal(sealer, SIGNING_KEY_IDENTITY, text.trim())
        .map_err(std::io::Error::other)?;
    if let Some(new) = new {
        write_signing_key_file(dir, &new)?;
    }
    Ok(Some(done))
}

/// Reads the token signing key from `dir`, creating a random one on first start. A key
/// file that is not exactly 32 bytes of hex is refused rather than used: a short key
/// would make tokens forgeable.
pub fn load_or_create_signing_key(
    dir: &Path,
    sealer: Option<&cairn_store::Sealer>,
) -> std::io::Result<Vec<u8>> {
    let path = dir.join("token.key");
    let invalid = |why: String| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} {why}; delete it to generate a new key (this logs everyone out)",
                path.display()
            ),
        )
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let text =
                cairn_store::seal::open(sealer, SIGNING_KEY_IDENTITY, text.trim().to_owned())
                    .map_err(|e| invalid(e.to_string()))?;
            let key = hex::decode(text.trim()).map_err(|e| invalid(format!("is not hex: {e}")))?;
            if key.len() != SIGNING_KEY_BYTES {
                return Err(invalid(format!(
                    "holds {} bytes, not {SIGNING_KEY_BYTES}",
                    key.len()
                )));
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = vec![0u8; SIGNING_KEY_BYTES];
            rand::rngs::OsRng.fill_bytes(&mut key);
            let stored = cairn_store::seal::seal(sealer, SIGNING_KEY_IDENTITY, &hex::encode(&key))
                .map_err(std::io::Error::other)?;
            write_signing_key_file(dir, &stored)?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

/// The token signing key of a cluster, kept in the shared database so that every node
/// accepts tokens any node issued. The first node to start makes it.
pub async fn shared_signing_key(store: &dyn Store) -> Result<Vec<u8>, AuthError> {
    let mut candidate = vec![0u8; SIGNING_KEY_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut candidate);
    let stored = store
        .shared_secret("token_signing_key", &hex::encode(&candidate))
        .await?;
    match hex::decode(&stored) {
        Ok(key) if key.len() == SIGNING_KEY_BYTES => Ok(key),
        _ => Err(AuthError::Store(StoreError::Corrupt(
            "the stored token signing key is not 32 bytes of hex".to_owned(),
        ))),
    }
}

/// What every service token starts with, so it is told from a login token at once.
pub const SERVICE_TOKEN_PREFIX: &str = "cst_";

/// What the database keeps of a service token.
fn token_digest(token: &str) -> String {
    use blake2::Digest;
    hex::encode(blake2::Blake2s256::digest(token.as_bytes()))
}

/// What the database keeps of a console session id.
fn session_digest(id: &str) -> String {
    use blake2::Digest;
    hex::encode(blake2::Blake2s256::digest(id.as_bytes()))
}

/// A random password for the first admin.
pub fn generate_password() -> String {
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, 24)
}

impl Auth {
    pub async fn new(
        store: Arc<dyn Store>,
        signing_key: &[u8],
        ttl_secs: u64,
    ) -> Result<Self, AuthError> {
        let (users, offline) = (DashMap::new(), DashMap::new());
        for user in store.list_users().await? {
            users.insert(user.username.clone(), UserState::of(&user));
            offline.insert(user.username.clone(), user);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        let dummy_hash = blocking(|| hash_password("not-a-real-password")).await?;
        let access = Access::load(store.clone()).await?;
        Ok(Self {
            access,
            audit: AuditLog::start(store.clone()),
            token_use: DashMap::new(),
            listeners: Arc::default(),
            store,
            encoding: EncodingKey::from_secret(signing_key),
            decoding: DecodingKey::from_secret(signing_key),
            validation,
            ttl_secs,
            users,
            offline,
            dummy_hash,
            hashing: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
            changes: tokio::sync::Mutex::new(()),
            verified: quick_cache::sync::Cache::new(VERIFIED_CAPACITY),
            tokens: TokenCache::with(
                TOKEN_CACHE_CAPACITY,
                TOKEN_CACHE_CAPACITY as u64,
                quick_cache::UnitWeighter,
                foldhash::fast::RandomState::default(),
                quick_cache::sync::DefaultLifecycle::default(),
            ),
            throttle: crate::throttle::LoginThrottle::default(),
            csrf_key: {
                use blake2::Digest;
                blake2::Blake2s256::new()
                    .chain_update(b"cairn console csrf\0")
                    .chain_update(signing_key)
                    .finalize()
                    .into()
            },
            verified_key: {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                key
            },
        })
    }

    /// Creates `admin` when there are no users at all, with the given password or a
    /// random one. Returns the password when it created the user.
    pub async fn bootstrap_admin(
        &self,
        password: Option<&Secret>,
    ) -> Result<Option<Secret>, AuthError> {
        if !self.users.is_empty() {
            return Ok(None);
        }
        let password = password
            .cloned()
            .unwrap_or_else(|| Secret::from(generate_password()));
        let admin = Username::parse("admin").expect("a valid name");
        match self.add_user(&admin, &password, Role::Admin).await {
            Ok(()) => Ok(Some(password)),
            // Another node of the cluster created it first.
            Err(AuthError::UserExists(_)) => {
                self.reload_users().await?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Checks a user name and password and issues a token.
    pub async fn login(
        &self,
        username: &str,
        password: &Secret,
        source: Option<std::net::IpAddr>,
    ) -> Result<IssuedToken, AuthError> {
        let user = self.verify_password(username, password, source).await?;
        self.issue(&user)
    }

    /// Checks a user name and password; returns the user as verified. The user may have
    /// been made or changed on another node since the last refresh, so the memory is
    /// brought up to date, but only under the change lock and only if the password did
    /// not change meanwhile (which would make this check stale).
    async fn verify_password(
        &self,
        username: &str,
        password: &Secret,
        source: Option<std::net::IpAddr>,
    ) -> Result<UserRecord, AuthError> {
        self.throttle
            .check(username, source, now_millis())
            .map_err(AuthError::Throttled)?;
        let verified = self.verify_password_now(username, password).await;
        match &verified {
            Ok(_) => self.throttle.succeeded(username),
            Err(AuthError::BadCredentials) => self.throttle.failed(username, source, now_millis()),
            Err(_) => {}
        }
        verified
    }

    async fn verify_password_now(
        &self,
        username: &str,
        password: &Secret,
    ) -> Result<UserRecord, AuthError> {
        let user = match Username::parse(username) {
            Ok(name) => match self.store.get_user(&name).await {
                Ok(user) => user,
                Err(e) if e.is_outage() => return self.verify_offline(&name, password).await,
                Err(e) => return Err(e.into()),
            },
            Err(_) => None,
        };
        let Some(user) = self.matching(user, password).await else {
            return Err(AuthError::BadCredentials);
        };
        let _changing = self.changes.lock().await;
        let current = match self.store.get_user(&user.username).await {
            Ok(current) => current,
            // Read a moment ago; it stands only if no change this node knows of came in
            // between (a password change or deletion under the lock), and it is not
            // written back: the memory must never go back to an older password.
            Err(e) if e.is_outage() => {
                let unchanged = self
                    .users
                    .get(&user.username)
                    .is_some_and(|s| s.password_changed_at == user.password_changed_at);
                return if unchanged {
                    Ok(user)
                } else {
                    Err(AuthError::BadCredentials)
                };
            }
            Err(e) => return Err(e.into()),
        };
        match current {
            Some(now) if now.password_changed_at == user.password_changed_at => {
                self.users.insert(now.username.clone(), UserState::of(&now));
                self.offline.insert(now.username.clone(), now.clone());
                Ok(now)
            }
            _ => Err(AuthError::BadCredentials),
        }
    }

    /// `user` if `password` is theirs. Without a user, the dummy hash is checked
    /// instead, so that an unknown name takes as long as a known one.
    async fn matching(&self, user: Option<UserRecord>, password: &Secret) -> Option<UserRecord> {
        let hash = user
            .as_ref()
            .map_or(self.dummy_hash.clone(), |u| u.password_hash.clone());
        let password = password.clone();
        let ok = self
            .hash_job(move || password_matches(password.expose_secret(), &hash))
            .await;
        user.filter(|_| ok)
    }

    /// Checks a login against the users as last read, while the database is away.
    async fn verify_offline(
        &self,
        name: &Username,
        password: &Secret,
    ) -> Result<UserRecord, AuthError> {
        let current = self.users.get(name).map(|s| s.password_changed_at);
        let user = self
            .offline
            .get(name)
            .map(|u| u.clone())
            .filter(|u| Some(u.password_changed_at) == current);
        match self.matching(user, password).await {
            Some(user) => {
                tracing::warn!(user = %name, "database unreachable; login checked against the users as last read");
                Ok(user)
            }
            None => Err(AuthError::BadCredentials),
        }
    }

    fn issue(&self, user: &UserRecord) -> Result<IssuedToken, AuthError> {
        self.issue_as(&user.username, UserState::of(user))
    }

    /// A token for a logged-in console user, for the node to ask the other nodes of the
    /// cluster on their behalf (who listens there).
    pub fn token_for(&self, caller: &Caller) -> Result<Secret, AuthError> {
        let state = self
            .users
            .get(&caller.username)
            .map(|s| *s)
            .ok_or(AuthError::InvalidToken)?;
        Ok(self.issue_as(&caller.username, state)?.token)
    }

    fn issue_as(&self, username: &Username, user: UserState) -> Result<IssuedToken, AuthError> {
        let now = (now_millis() / 1000) as u64;
        let role = user.role;
        let claims = Claims {
            sub: username.to_string(),
            iat: now,
            exp: now + self.ttl_secs,
            pwd: user.password_changed_at,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| AuthError::InvalidToken)?;
        Ok(IssuedToken {
            token: Secret::from(token),
            expires_in_secs: self.ttl_secs,
            role,
        })
    }

    /// Checks a token: signature, expiry, that its user still exists and that the
    /// password has not changed since it was issued.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        if token.starts_with(SERVICE_TOKEN_PREFIX) {
            return self.verify_service_token(token);
        }
        let now = (now_millis() / 1000) as u64;
        // Every request carries its token; a token checked before skips the signature
        // and JSON work, but not the expiry and password checks.
        let (username, exp, pwd) = match self.tokens.get(token) {
            Some(seen) => seen,
            None => {
                let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
                    .map_err(|e| match e.kind() {
                        jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                        _ => AuthError::InvalidToken,
                    })?;
                let username =
                    Username::parse(&data.claims.sub).map_err(|_| AuthError::InvalidToken)?;
                let seen = (username, data.claims.exp, data.claims.pwd);
                self.tokens.insert(token.to_owned(), seen.clone());
                seen
            }
        };
        if exp <= now {
            return Err(AuthError::Expired);
        }
        let state = self
            .users
            .get(&username)
            .map(|s| *s)
            .ok_or(AuthError::InvalidToken)?;
        if state.password_changed_at != pwd {
            return Err(AuthError::InvalidToken);
        }
        Ok(Caller {
            username,
            role: state.role,
        })
    }

    /// Checks a user name and password without issuing a token; repeated checks of the
    /// same valid credentials are answered from memory.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &Secret,
        source: Option<std::net::IpAddr>,
    ) -> Result<Caller, AuthError> {
        use blake2::Digest;
        let name = Username::parse(username).map_err(|_| AuthError::BadCredentials)?;
        let digest: [u8; 32] = blake2::Blake2s256::new()
            .chain_update(self.verified_key)
            .chain_update(password.expose_secret().as_bytes())
            .finalize()
            .into();
        let entry = (name.clone(), digest);
        let state = self.users.get(&name).map(|s| *s);
        if let (Some(changed_at), Some(state)) = (self.verified.get(&entry), state) {
            if changed_at == state.password_changed_at {
                return Ok(Caller {
                    username: name,
                    role: state.role,
                });
            }
        }
        let issued = self.login(username, password, source).await?;
        let changed_at = self.users.get(&name).map_or(0, |s| s.password_changed_at);
        self.verified.insert(entry, changed_at);
        Ok(Caller {
            username: name,
            role: issued.role,
        })
    }

    /// Checks a user name and password and opens a console session. Returns the
    /// session id for the browser's cookie; the database keeps only its digest.
    pub async fn open_session(
        &self,
        username: &str,
        password: &Secret,
        source: Option<std::net::IpAddr>,
    ) -> Result<(Secret, ConsoleSession), AuthError> {
        let user = self.verify_password(username, password, source).await?;
        let mut id = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let id = hex::encode(id);
        let now = now_millis();
        // Expired sessions go when new ones come, which bounds the table by the logins
        // of one token lifetime.
        self.store.delete_expired_sessions(now).await?;
        self.store
            .create_session(&cairn_store::SessionRecord {
                id_hash: session_digest(&id),
                username: user.username.clone(),
                created_at: now,
                expires_at: now + (self.ttl_secs as i64) * 1000,
            })
            .await?;
        let session = ConsoleSession {
            csrf: self.csrf_for(&id),
            caller: Caller {
                username: user.username,
                role: user.role,
            },
        };
        Ok((Secret::from(id), session))
    }

    /// The console session with this id: valid while it has not expired, was not ended,
    /// and its user still exists with the password it logged in with.
    pub async fn session(&self, id: &str) -> Result<ConsoleSession, AuthError> {
        let record = self
            .store
            .session(&session_digest(id))
            .await?
            .ok_or(AuthError::InvalidToken)?;
        if record.expires_at <= now_millis() {
            return Err(AuthError::Expired);
        }
        let state = self
            .users
            .get(&record.username)
            .map(|s| *s)
            .ok_or(AuthError::InvalidToken)?;
        if state.password_changed_at > record.created_at {
            return Err(AuthError::InvalidToken);
        }
        Ok(ConsoleSession {
            csrf: self.csrf_for(id),
            caller: Caller {
                username: record.username,
                role: state.role,
            },
        })
    }

    /// Ends a console session on every node.
    pub async fn close_session(&self, id: &str) -> Result<(), AuthError> {
        Ok(self.store.delete_session(&session_digest(id)).await?)
    }

    fn csrf_for(&self, session_id: &str) -> String {
        use blake2::Digest;
        hex::encode(
            blake2::Blake2s256::new()
                .chain_update(self.csrf_key)
                .chain_update(session_id.as_bytes())
                .finalize(),
        )
    }

    /// Re-reads the users from the database, picking up changes other nodes made.
    pub async fn reload_users(&self) -> Result<(), AuthError> {
        // Under the lock, so a change this node makes meanwhile is not overwritten by
        // the older list.
        let _changing = self.changes.lock().await;
        let users = self.store.list_users().await?;
        let present: std::collections::HashSet<&Username> =
            users.iter().map(|u| &u.username).collect();
        // Users another node removed or gave a new password: their watches end.
        let mut ended: Vec<Username> = Vec::new();
        let mut roles_changed = false;
        self.users.retain(|name, _| {
            let keep = present.contains(name);
            if !keep {
                ended.push(name.clone());
            }
            keep
        });
        self.offline.retain(|name, _| present.contains(name));
        for user in users {
            let now = UserState::of(&user);
            if let Some(before) = self.users.insert(user.username.clone(), now) {
                if before.password_changed_at != now.password_changed_at {
                    ended.push(user.username.clone());
                }
                roles_changed |= before.role != now.role;
            }
            self.offline.insert(user.username.clone(), user);
        }
        if let Err(e) = self.flush_token_use().await {
            tracing::warn!(error = %e, "could not record when service tokens were last used");
        }
        let grants_changed = self.access.reload().await?;
        for user in &ended {
            self.end_watches_of(user);
        }
        // Another node may have taken a right away or demoted a user. Checked only
        // then: the check visits every watch of the node.
        if grants_changed || roles_changed {
            self.end_lost_watches();
        }
        Ok(())
    }

    /// Checks a user's current password without issuing anything.
    pub async fn check_password(
        &self,
        username: &Username,
        password: &Secret,
    ) -> Result<(), AuthError> {
        let hash = self
            .store
            .get_user(username)
            .await?
            .map_or(self.dummy_hash.clone(), |u| u.password_hash);
        let password = password.clone();
        if self
            .hash_job(move || password_matches(password.expose_secret(), &hash))
            .await
        {
            Ok(())
        } else {
            Err(AuthError::BadCredentials)
        }
    }

    pub async fn list_users(&self) -> Result<Vec<UserRecord>, AuthError> {
        Ok(self.store.list_users().await?)
    }

    pub async fn add_user(
        &self,
        username: &Username,
        password: &Secret,
        role: Role,
    ) -> Result<(), AuthError> {
        if username.as_str().starts_with(TOKEN_PREFIX) {
            return Err(AuthError::InvalidGrant(format!(
                "user names starting {TOKEN_PREFIX:?} are kept for service tokens"
            )));
        }
        check_password_strength(password.expose_secret())?;
        let password = password.clone();
        let hash = self
            .hash_job(move || hash_password(password.expose_secret()))
            .await?;
        let _changing = self.changes.lock().await;
        let now = now_millis();
        let record = UserRecord {
            username: username.clone(),
            password_hash: hash,
            role,
            created_at: now,
            password_changed_at: now,
        };
        self.store.create_user(&record).await?;
        self.offline.insert(username.clone(), record);
        self.users.insert(
            username.clone(),
            UserState {
                role,
                password_changed_at: now,
            },
        );
        Ok(())
    }

    /// Sets a new password; every token issued before stops working.
    pub async fn set_password(
        &self,
        username: &Username,
        password: &Secret,
    ) -> Result<(), AuthError> {
        check_password_strength(password.expose_secret())?;
        let password = password.clone();
        let hash = self
            .hash_job(move || hash_password(password.expose_secret()))
            .await?;
        let _changing = self.changes.lock().await;
        // Strictly later than the previous change, even within the same millisecond.
        let previous = self
            .users
            .get(username)
            .map_or(0, |s| s.password_changed_at);
        let changed_at = now_millis().max(previous + 1);
        self.store.set_password(username, &hash, changed_at).await?;
        if let Some(mut state) = self.users.get_mut(username) {
            state.password_changed_at = changed_at;
        }
        if let Some(mut record) = self.offline.get_mut(username) {
            record.password_hash = hash;
            record.password_changed_at = changed_at;
        }
        self.end_watches_of(username);
        Ok(())
    }

    /// Gives a user another role. The last admin cannot be made a user: nobody could
    /// manage users any more. Takes effect at once on this node (a token carries no
    /// role), and on the others at their next heartbeat.
    pub async fn set_role(&self, username: &Username, role: Role) -> Result<(), AuthError> {
        let _changing = self.changes.lock().await;
        let users = self.store.list_users().await?;
        let current = users
            .iter()
            .find(|u| &u.username == username)
            .ok_or_else(|| AuthError::UserNotFound(username.to_string()))?;
        let admins = users.iter().filter(|u| u.role == Role::Admin).count();
        if current.role == Role::Admin && role != Role::Admin && admins <= 1 {
            return Err(AuthError::LastAdmin(username.to_string()));
        }
        self.store.set_role(username, role).await?;
        if let Some(mut state) = self.users.get_mut(username) {
            state.role = role;
        }
        if let Some(mut record) = self.offline.get_mut(username) {
            record.role = role;
        }
        self.end_lost_watches();
        Ok(())
    }

    pub async fn delete_user(&self, username: &Username) -> Result<(), AuthError> {
        let _changing = self.changes.lock().await;
        // Counted in the database: other nodes may have changed users since the last
        // refresh.
        let users = self.store.list_users().await?;
        let is_admin = users
            .iter()
            .any(|u| &u.username == username && u.role == Role::Admin);
        let admins = users.iter().filter(|u| u.role == Role::Admin).count();
        if is_admin && admins <= 1 {
            return Err(AuthError::LastAdmin(username.to_string()));
        }
        self.store.delete_user(username).await?;
        self.users.remove(username);
        self.offline.remove(username);
        self.access.reload().await?;
        self.end_watches_of(username);
        Ok(())
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// A page of the audit log: what every node recorded.
    pub async fn audit_entries(
        &self,
        query: &cairn_store::AuditQuery,
        page: cairn_store::Page,
    ) -> Result<(Vec<cairn_store::AuditRecord>, u64), StoreError> {
        self.store.audit(query, page).await
    }

    /// Records a login through `surface` from `source`, and how it went. `successes`
    /// false: only failures are recorded (credentials sent with every request).
    pub fn audit_login<T>(
        &self,
        username: &str,
        source: &str,
        surface: &str,
        result: &Result<T, AuthError>,
        successes: bool,
    ) {
        let (outcome, detail) = match result {
            Ok(_) if successes => (Outcome::Ok, String::new()),
            Ok(_) => return,
            Err(e @ (AuthError::BadCredentials | AuthError::Throttled(_))) => {
                (Outcome::Denied, e.to_string())
            }
            Err(AuthError::Store(_)) => (Outcome::Failed, "the database is unavailable".into()),
            Err(e) => (Outcome::Failed, e.to_string()),
        };
        // A failed login's name is recorded only if it is an account's: a password typed
        // into the name field must not land in the log.
        let known = Username::parse(username)
            .ok()
            .filter(|u| self.users.contains_key(u));
        let who = match known {
            Some(user) => user.to_string(),
            None => "(unknown)".to_owned(),
        };
        self.audit.record(cairn_store::AuditRecord {
            at: now_millis(),
            actor: who.clone(),
            source: source.to_owned(),
            surface: surface.to_owned(),
            action: "login".to_owned(),
            target: format!("user {who}"),
            result: outcome.as_str().to_owned(),
            detail,
            ..Default::default()
        });
    }

    /// Every live watch of the node.
    pub fn listeners(&self) -> &Arc<Listeners> {
        &self.listeners
    }

    /// The caller `username` is now, if the user (or service token) exists.
    fn caller_of(&self, username: &Username) -> Option<Caller> {
        if let Some(name) = username.as_str().strip_prefix(TOKEN_PREFIX) {
            let exists = self.policy().tokens.values().any(|t| t.name == name);
            return exists.then(|| Caller {
                username: username.clone(),
                role: Role::User,
            });
        }
        self.users.get(username).map(|state| Caller {
            username: username.clone(),
            role: state.role,
        })
    }

    /// Whether `caller` is a service token allowed to publish into namespaces that
    /// require review without one.
    pub fn publishes_without_review(&self, caller: &Caller) -> bool {
        let Some(name) = caller.username.as_str().strip_prefix(TOKEN_PREFIX) else {
            return false;
        };
        self.policy()
            .tokens
            .values()
            .any(|t| t.name == name && t.publish_without_review)
    }

    /// Whether `caller` is a service token rather than a person.
    pub fn is_token(caller: &Caller) -> bool {
        caller.username.as_str().starts_with(TOKEN_PREFIX)
    }

    /// A service token's caller: its own user name, the levels it was made with, never
    /// an admin. Its use is remembered and written at the next heartbeat.
    fn verify_service_token(&self, token: &str) -> Result<Caller, AuthError> {
        let digest = token_digest(token);
        let policy = self.policy();
        let record = policy.tokens.get(&digest).ok_or(AuthError::InvalidToken)?;
        let username = token_user(&record.name).ok_or(AuthError::InvalidToken)?;
        self.token_use.insert(record.name.clone(), now_millis());
        Ok(Caller {
            username,
            role: Role::User,
        })
    }

    /// Makes a service token (admins only): shown once, stored as a digest.
    pub async fn create_token(
        &self,
        by: &Actor,
        name: &str,
        scopes: Vec<(String, Level)>,
        publish_without_review: bool,
    ) -> Result<Secret, AuthError> {
        let target = format!("service token {name}");
        let made = async {
            Self::admin_only(by)?;
            if name.is_empty() || token_user(name).is_none() || name.contains(':') {
                return Err(AuthError::InvalidGrant(format!(
                    "{name:?} is not a token name: letters, digits and _ . -, at most {} characters",
                    Username::MAX_LEN - TOKEN_PREFIX.len()
                )));
            }
            if scopes.is_empty() {
                return Err(AuthError::InvalidGrant(
                    "a token needs at least one scope (namespace=level)".to_owned(),
                ));
            }
            // Tokens read and publish; managing grants stays with people.
            if scopes.iter().any(|(_, level)| *level > Level::Write) {
                return Err(AuthError::InvalidGrant(
                    "a token's level is read, read-secret or write".to_owned(),
                ));
            }
            if token_user(name).is_some_and(|user| self.users.contains_key(&user)) {
                return Err(AuthError::InvalidGrant(format!(
                    "an account is named {TOKEN_PREFIX}{name}; choose another token name"
                )));
            }
            for (ns, _) in &scopes {
                Scope::namespace(ns).map_err(|e| AuthError::InvalidGrant(e.to_string()))?;
            }
            let mut secret = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut secret);
            let token = format!("{SERVICE_TOKEN_PREFIX}{}", hex::encode(secret));
            self.store
                .create_token(&TokenRecord {
                    name: name.to_owned(),
                    digest: token_digest(&token),
                    scopes,
                    publish_without_review,
                    created_by: by.caller.username.to_string(),
                    created_at: now_millis(),
                    last_used_at: None,
                })
                .await
                .map_err(|e| match e {
                    StoreError::Conflict(_) => AuthError::TokenExists(name.to_owned()),
                    other => other.into(),
                })?;
            self.policy_changed().await?;
            Ok(Secret::from(token))
        }
        .await;
        self.audit.done(by, "token.create", "", target, made)
    }

    /// Revokes a service token (admins only): it stops working at once here and within
    /// a heartbeat elsewhere, and its open watches end. False when there was none.
    pub async fn revoke_token(&self, by: &Actor, name: &str) -> Result<bool, AuthError> {
        let done = async {
            Self::admin_only(by)?;
            let removed = self.store.delete_token(name).await?;
            let reloaded = self.policy_changed().await;
            // Its watches end even if the reload failed; the heartbeat reloads again.
            if let Some(user) = token_user(name) {
                self.end_watches_of(&user);
            }
            reloaded?;
            Ok(removed)
        }
        .await;
        self.audit.removed(
            by,
            "token.revoke",
            "",
            format!("service token {name}"),
            done,
        )
    }

    /// The service tokens, with when each was last used: as every node recorded it, and
    /// this node's uses not yet written.
    pub async fn service_tokens(&self) -> Result<Vec<TokenRecord>, AuthError> {
        let mut tokens = self.store.tokens().await?;
        for token in &mut tokens {
            if let Some(used) = self.token_use.get(&token.name) {
                token.last_used_at = token.last_used_at.max(Some(*used));
            }
        }
        Ok(tokens)
    }

    /// Writes when service tokens were last used on this node.
    async fn flush_token_use(&self) -> Result<(), AuthError> {
        let used: Vec<(String, i64)> = self
            .token_use
            .iter()
            .map(|e| (e.key().clone(), *e.value()))
            .collect();
        if used.is_empty() {
            return Ok(());
        }
        self.store.touch_tokens(&used).await?;
        for (name, at) in used {
            self.token_use.remove_if(&name, |_, v| *v == at);
        }
        Ok(())
    }

    /// Ends every watch of `username`: their password changed or they were removed, and
    /// a watch must not outlive the credentials that opened it.
    fn end_watches_of(&self, username: &Username) {
        let ended = self.listeners.revoke(|l| l.user.as_ref() == Some(username));
        if ended > 0 {
            tracing::info!(user = %username, watches = ended, "ended the watches of a user whose credentials changed");
        }
    }

    /// Ends every watch whose user may no longer read one of its keys, or is gone.
    fn end_lost_watches(&self) {
        let ended = self.listeners.revoke(|l| {
            let Some(user) = &l.user else { return false };
            let Some(caller) = self.caller_of(user) else {
                return true;
            };
            let reader = self.access.reader(&caller);
            l.held.iter().any(|(key, _)| !reader.may_read(key))
        });
        if ended > 0 {
            tracing::info!(
                watches = ended,
                "ended watches whose users lost the right to read"
            );
        }
    }

    /// Checks that `by` may change grants over `scope`: admins anywhere; a namespace's
    /// admins inside that one namespace (a scope naming it exactly).
    fn may_manage(&self, by: &Caller, scope: &Scope) -> Result<(), AuthError> {
        if by.role == Role::Admin {
            return Ok(());
        }
        let namespace = scope.namespace.as_str();
        let exact = cairn_core::Namespace::parse(namespace).ok();
        match exact {
            Some(ns) => Ok(self.access.require_namespace(by, &ns, Level::Admin)?),
            None => Err(AuthError::Forbidden),
        }
    }

    /// Gives `subject` `level` over `scope` (replacing what it had over exactly that
    /// scope). Takes effect at once here and at the next heartbeat on other nodes; a
    /// watch the change takes a right from ends. Audited, as every change below.
    pub async fn grant(
        &self,
        by: &Actor,
        subject: Subject,
        scope: Scope,
        level: Level,
    ) -> Result<(), AuthError> {
        let target = format!("{} {} {level} on {scope}", subject.kind(), subject.name());
        let namespace = scope.namespace.as_str().to_owned();
        let done = async {
            self.may_manage(&by.caller, &scope)?;
            if let Subject::User(user) = &subject {
                if !self.users.contains_key(user) && self.store.get_user(user).await?.is_none() {
                    return Err(AuthError::UserNotFound(user.to_string()));
                }
            }
            self.store
                .put_grant(&GrantRecord {
                    subject,
                    scope,
                    level,
                    created_at: now_millis(),
                    created_by: by.caller.username.to_string(),
                })
                .await?;
            self.policy_changed().await
        }
        .await;
        self.audit.done(by, "grant.set", &namespace, target, done)
    }

    /// Takes `subject`'s grant over exactly `scope` away; false when there was none.
    pub async fn revoke(
        &self,
        by: &Actor,
        subject: &Subject,
        scope: &Scope,
    ) -> Result<bool, AuthError> {
        let done = async {
            self.may_manage(&by.caller, scope)?;
            let removed = self.store.delete_grant(subject, scope).await?;
            self.policy_changed().await?;
            Ok(removed)
        }
        .await;
        let target = format!("{} {} on {scope}", subject.kind(), subject.name());
        self.audit
            .removed(by, "grant.revoke", scope.namespace.as_str(), target, done)
    }

    /// Roles span namespaces, so only admins manage them.
    fn admin_only(by: &Actor) -> Result<(), AuthError> {
        if by.caller.role == Role::Admin {
            Ok(())
        } else {
            Err(AuthError::Forbidden)
        }
    }

    /// Makes `username` a member of `role` (admins only).
    pub async fn add_to_role(
        &self,
        by: &Actor,
        role: &RoleName,
        username: &Username,
    ) -> Result<(), AuthError> {
        let done = async {
            Self::admin_only(by)?;
            self.store
                .add_role_member(&RoleMember {
                    role: role.clone(),
                    username: username.clone(),
                    created_at: now_millis(),
                })
                .await?;
            self.policy_changed().await
        }
        .await;
        let target = format!("user {username} in role {role}");
        self.audit.done(by, "role.add_member", "", target, done)
    }

    /// False when the user was not a member.
    pub async fn remove_from_role(
        &self,
        by: &Actor,
        role: &RoleName,
        username: &Username,
    ) -> Result<bool, AuthError> {
        let done = async {
            Self::admin_only(by)?;
            let removed = self.store.remove_role_member(role, username).await?;
            self.policy_changed().await?;
            Ok(removed)
        }
        .await;
        let target = format!("user {username} in role {role}");
        self.audit
            .removed(by, "role.remove_member", "", target, done)
    }

    /// Removes a role: its members and its grants. False when it had neither.
    pub async fn delete_role(&self, by: &Actor, role: &RoleName) -> Result<bool, AuthError> {
        let done = async {
            Self::admin_only(by)?;
            let removed = self.store.delete_role(role).await?;
            self.policy_changed().await?;
            Ok(removed)
        }
        .await;
        self.audit
            .removed(by, "role.delete", "", format!("role {role}"), done)
    }

    async fn policy_changed(&self) -> Result<(), AuthError> {
        self.access.reload().await?;
        self.end_lost_watches();
        Ok(())
    }

    /// The grants and memberships as this node knows them.
    pub fn policy(&self) -> Arc<Policy> {
        self.access.policy()
    }

    /// Whether `by` may change `grant`: admins any, a namespace's admins those over
    /// exactly that namespace.
    pub fn manages(&self, by: &Caller, grant: &GrantRecord) -> bool {
        self.may_manage(by, &grant.scope).is_ok()
    }

    /// The grants `caller` may see: all for an admin, else their own (directly or
    /// through a role) and those they manage.
    pub fn visible_grants(&self, caller: &Caller) -> Vec<GrantRecord> {
        let policy = self.policy();
        let own_roles = policy.roles_of(&caller.username);
        policy
            .grants
            .iter()
            .filter(|g| {
                self.manages(caller, g)
                    || match &g.subject {
                        Subject::User(u) => *u == caller.username,
                        Subject::Role(r) => own_roles.contains(r),
                    }
            })
            .cloned()
            .collect()
    }

    /// Succeeds when `caller` has at least `need` on `key`.
    pub fn require(&self, caller: &Caller, key: &ConfigKey, need: Level) -> Result<(), AuthError> {
        Ok(self.access.require(caller, key, need)?)
    }
}

#[cfg(test)]
mod tests {
    use cairn_store::SqlStore;

    use super::*;

    async fn auth() -> (Auth, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqlStore::sqlite(&dir.path().join("c.db")).await.unwrap());
        (Auth::new(store, &[7; 32], 60).await.unwrap(), dir)
    }

    fn name(n: &str) -> Username {
        Username::parse(n).unwrap()
    }

    fn secret(s: &str) -> Secret {
        Secret::from(s)
    }

    #[tokio::test]
    async fn the_first_admin_is_made_once_with_a_strong_password() {
        let (auth, _dir) = auth().await;
        let made = auth.bootstrap_admin(None).await.unwrap().expect("made");
        assert!(
            made.expose_secret().len() >= 16,
            "a generated password is long"
        );
        assert!(
            auth.bootstrap_admin(None).await.unwrap().is_none(),
            "only once"
        );
        assert_eq!(
            auth.login("admin", &made, None).await.unwrap().role,
            Role::Admin
        );
        let weak = auth
            .add_user(&name("bob"), &secret("short"), Role::User)
            .await;
        assert!(matches!(weak, Err(AuthError::WeakPassword)));
        let bad = auth.login("admin", &secret("not-the-password"), None).await;
        assert!(matches!(bad, Err(AuthError::BadCredentials)));
        let nobody = auth.login("nobody", &made, None).await;
        assert!(
            matches!(nobody, Err(AuthError::BadCredentials)),
            "same answer as a bad password"
        );
    }

    #[tokio::test]
    async fn a_password_change_ends_every_earlier_token_and_remembered_check() {
        let (auth, _dir) = auth().await;
        auth.add_user(&name("bob"), &secret("first-password"), Role::User)
            .await
            .unwrap();
        let token = auth
            .login("bob", &secret("first-password"), None)
            .await
            .unwrap()
            .token;
        assert_eq!(auth.verify(token.expose_secret()).unwrap().role, Role::User);
        // Checked once, then remembered (a client sending credentials on every request).
        auth.authenticate("bob", &secret("first-password"), None)
            .await
            .unwrap();
        auth.set_password(&name("bob"), &secret("second-password"))
            .await
            .unwrap();
        assert!(matches!(
            auth.verify(token.expose_secret()),
            Err(AuthError::InvalidToken)
        ));
        let old = auth
            .authenticate("bob", &secret("first-password"), None)
            .await;
        assert!(
            matches!(old, Err(AuthError::BadCredentials)),
            "not from memory"
        );
        auth.authenticate("bob", &secret("second-password"), None)
            .await
            .unwrap();
        assert!(matches!(
            auth.verify("not.a.token"),
            Err(AuthError::InvalidToken)
        ));
    }

    #[tokio::test]
    async fn the_last_admin_cannot_be_deleted_and_a_deleted_users_tokens_die() {
        let (auth, _dir) = auth().await;
        auth.bootstrap_admin(Some(&secret("admin-password")))
            .await
            .unwrap();
        let last = auth.delete_user(&name("admin")).await;
        assert!(matches!(last, Err(AuthError::LastAdmin(_))));
        auth.add_user(&name("carol"), &secret("carol-password"), Role::Admin)
            .await
            .unwrap();
        let token = auth
            .login("admin", &secret("admin-password"), None)
            .await
            .unwrap()
            .token;
        auth.delete_user(&name("admin")).await.unwrap();
        assert!(matches!(
            auth.verify(token.expose_secret()),
            Err(AuthError::InvalidToken)
        ));
        let again = auth
            .add_user(&name("carol"), &secret("carol-password"), Role::User)
            .await;
        assert!(matches!(again, Err(AuthError::UserExists(_))));
    }

    #[tokio::test]
    async fn a_role_change_takes_effect_at_once_but_never_demotes_the_last_admin() {
        let (auth, _dir) = auth().await;
        auth.bootstrap_admin(Some(&secret("admin-password")))
            .await
            .unwrap();
        let last = auth.set_role(&name("admin"), Role::User).await;
        assert!(matches!(last, Err(AuthError::LastAdmin(_))));
        auth.add_user(&name("dave"), &secret("dave-password"), Role::User)
            .await
            .unwrap();
        let token = auth
            .login("dave", &secret("dave-password"), None)
            .await
            .unwrap()
            .token;
        assert_eq!(auth.verify(token.expose_secret()).unwrap().role, Role::User);
        auth.set_role(&name("dave"), Role::Admin).await.unwrap();
        assert_eq!(
            auth.verify(token.expose_secret()).unwrap().role,
            Role::Admin
        );
        auth.set_role(&name("admin"), Role::User).await.unwrap();
        assert!(matches!(
            auth.set_role(&name("nobody"), Role::User).await,
            Err(AuthError::UserNotFound(_))
        ));
    }
}
