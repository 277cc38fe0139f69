//! Contents encrypted at rest: with an encryption key configured, every config's
//! content, its history's and its gray release's are stored sealed, and so are the
//! secrets the node keeps (the token signing key, Apollo access-key secrets). Each is encrypted
//! (AES-256-GCM) under a data key of its own, and that data key is wrapped by the
//! configured key: envelope encryption, so that a new key re-wraps data keys rather
//! than re-encrypting contents. The record's identity (what it is and which config) is
//! authenticated with it, so a sealed content moved to another config does not open.
//!
//! A sealed content is text in the same column (`cairn:sealed:1:` and base64), so the
//! schema is the same with and without a key. Content that happens to begin with one
//! of the markers is stored behind a third (`cairn:plain:`), so nothing a user
//! publishes is ever taken for sealed.

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::{Result, StoreError};

const SEALED: &str = "cairn:sealed:1:";
const ESCAPED: &str = "cairn:plain:";
/// The wrapped data key's own associated data.
const DATA_KEY_AAD: &[u8] = b"cairn data key";
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// The configured key, able to seal and open contents; during a rotation, also the
/// key being retired, which opens what it sealed and seals nothing.
pub struct Sealer {
    key: LessSafeKey,
    previous: Option<LessSafeKey>,
    random: SystemRandom,
}

/// What [`reseal`] did to a stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resealed {
    /// Already sealed under the current key: left as it is.
    Current,
    /// Sealed under the previous key: its data key is now wrapped by the current one.
    Rewrapped,
    /// Stored in the clear (written before a key was configured): now sealed.
    Sealed,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer from a key file's text: 32 bytes, base64 (as `cairn keygen` writes).
    pub fn from_key_text(text: &str) -> std::result::Result<Sealer, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| "the key is not base64 (make one with `cairn keygen`)".to_owned())?;
        if bytes.len() != KEY_LEN {
            return Err(format!(
                "the key is {} bytes; it must be {KEY_LEN} (make one with `cairn keygen`)",
                bytes.len()
            ));
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| "not an AES-256 key")?;
        Ok(Sealer {
            key: LessSafeKey::new(key),
            previous: None,
            random: SystemRandom::new(),
        })
    }

    /// This key, also opening what `previous` sealed: for the time a key is rotated.
    pub fn with_previous(mut self, previous: Sealer) -> Sealer {
        self.previous = Some(previous.key);
        self
    }

    /// A new random key, as a key file's text.
    pub fn generate() -> std::result::Result<String, String> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| "the system's random source failed")?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    fn nonce(&self) -> Result<[u8; NONCE_LEN]> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| StoreError::Encryption("the system's random source failed".into()))?;
        Ok(nonce)
    }

    fn seal(&self, identity: &str, content: &str) -> Result<String> {
        let failed = |_| StoreError::Encryption("encryption failed".into());
        let mut data_key = [0u8; KEY_LEN];
        self.random
            .fill(&mut data_key)
            .map_err(|_| StoreError::Encryption("the system's random source failed".into()))?;
        let content_key =
            LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &data_key).map_err(failed)?);
        let content_nonce = self.nonce()?;
        let mut sealed = content.as_bytes().to_vec();
        content_key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(content_nonce),
                Aad::from(identity.as_bytes()),
                &mut sealed,
            )
            .map_err(failed)?;
        let mut content_part = Vec::with_capacity(NONCE_LEN + sealed.len());
        content_part.extend_from_slice(&content_nonce);
        content_part.extend_from_slice(&sealed);
        self.envelope(&data_key, &content_part)
    }

    /// The stored text of a content sealed under `data_key` (its nonce and ciphertext,
    /// `content_part`), with the data key wrapped by the current key.
    fn envelope(&self, data_key: &[u8; KEY_LEN], content_part: &[u8]) -> Result<String> {
        let wrap_nonce = self.nonce()?;
        let mut wrapped = data_key.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(wrap_nonce),
                Aad::from(DATA_KEY_AAD),
                &mut wrapped,
            )
            .map_err(|_| StoreError::Encryption("encryption failed".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + wrapped.len() + content_part.len());
        out.extend_from_slice(&wrap_nonce);
        out.extend_from_slice(&wrapped);
        out.extend_from_slice(content_part);
        Ok(format!(
            "{SEALED}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    /// A sealed body's parts, and the data key unwrapped, with which key did it.
    fn unwrap<'a>(
        &self,
        identity: &str,
        body: &str,
        bytes: &'a mut Vec<u8>,
    ) -> Result<Unwrapped<'a>> {
        let corrupt = || {
            StoreError::Encryption(format!(
            "the stored content of {identity} does not open with this key (another key sealed it, or it was changed)"
        ))
        };
        *bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| corrupt())?;
        let wrapped_len = KEY_LEN + TAG_LEN;
        if bytes.len() < 2 * NONCE_LEN + wrapped_len + TAG_LEN {
            return Err(corrupt());
        }
        let (wrap_nonce, rest) = bytes.split_at(NONCE_LEN);
        let (wrapped, rest) = rest.split_at(wrapped_len);
        let (content_nonce, sealed) = rest.split_at(NONCE_LEN);
        let unwrap_with = |key: &LessSafeKey| -> Option<[u8; KEY_LEN]> {
            let nonce = Nonce::try_assume_unique_for_key(wrap_nonce).ok()?;
            let mut data_key = wrapped.to_vec();
            let opened = key
                .open_in_place(nonce, Aad::from(DATA_KEY_AAD), &mut data_key)
                .ok()?;
            opened.try_into().ok()
        };
        let (data_key, current) = match unwrap_with(&self.key) {
            Some(data_key) => (data_key, true),
            None => (
                self.previous
                    .as_ref()
                    .and_then(unwrap_with)
                    .ok_or_else(corrupt)?,
                false,
            ),
        };
        let content_key =
            LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &data_key).map_err(|_| corrupt())?);
        let mut content = sealed.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(content_nonce).map_err(|_| corrupt())?;
        let opened = content_key
            .open_in_place(nonce, Aad::from(identity.as_bytes()), &mut content)
            .map_err(|_| corrupt())?;
        let plain = String::from_utf8(opened.to_vec()).map_err(|_| corrupt())?;
        Ok(Unwrapped {
            data_key,
            current,
            sealed_part: rest,
            plain,
        })
    }

    fn open(&self, identity: &str, body: &str) -> Result<String> {
        let mut bytes = Vec::new();
        Ok(self.unwrap(identity, body, &mut bytes)?.plain)
    }
}

/// A sealed body opened: its data key, whether the current key wrapped it, the
/// content's nonce and ciphertext, and the content.
struct Unwrapped<'a> {
    data_key: [u8; KEY_LEN],
    current: bool,
    sealed_part: &'a [u8],
    plain: String,
}

/// What `stored` (of the record `identity`) should become under the current key:
/// `None` when it is sealed under it already. Every content is opened first, so a value
/// that does not open (changed, or sealed by a key not configured) is an error, never
/// passed on.
pub fn reseal(sealer: &Sealer, identity: &str, stored: &str) -> Result<(Resealed, Option<String>)> {
    let Some(body) = stored.strip_prefix(SEALED) else {
        let plain = open(None, identity, stored.to_owned())?;
        return Ok((Resealed::Sealed, Some(sealer.seal(identity, &plain)?)));
    };
    let mut bytes = Vec::new();
    let opened = sealer.unwrap(identity, body, &mut bytes)?;
    if opened.current {
        return Ok((Resealed::Current, None));
    }
    // The content's own ciphertext is kept; only its data key is wrapped again.
    let rewrapped = sealer.envelope(&opened.data_key, opened.sealed_part)?;
    Ok((Resealed::Rewrapped, Some(rewrapped)))
}

/// What a content column holds for `content` of the record `identity`: sealed when a
/// key is configured.
pub fn seal(sealer: Option<&Sealer>, identity: &str, content: &str) -> Result<String> {
    match sealer {
        Some(sealer) => sealer.seal(identity, content),
        None if content.starts_with(SEALED) || content.starts_with(ESCAPED) => {
            Ok(format!("{ESCAPED}{content}"))
        }
        None => Ok(content.to_owned()),
    }
}

/// The content a column holds, opened. Plain contents (written before a key was
/// configured) read as they are; a sealed one without a key is an error that says so.
pub fn open(sealer: Option<&Sealer>, identity: &str, stored: String) -> Result<String> {
    if let Some(plain) = stored.strip_prefix(ESCAPED) {
        return Ok(plain.to_owned());
    }
    let Some(body) = stored.strip_prefix(SEALED) else {
        return Ok(stored);
    };
    match sealer {
        Some(sealer) => sealer.open(identity, body),
        None => Err(StoreError::Encryption(format!(
            "the content of {identity} is stored encrypted and no encryption key is configured; \
             set encryption_key_file (CAIRN_ENCRYPTION_KEY_FILE) to the key it was written with"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::from_key_text(&Sealer::generate().unwrap()).unwrap()
    }

    #[test]
    fn a_sealed_content_opens_only_as_what_it_was_sealed_for() {
        let s = sealer();
        let stored = seal(Some(&s), "config:public/g/a", "password=hunter2").unwrap();
        assert!(stored.starts_with(SEALED) && !stored.contains("hunter2"));
        assert_eq!(
            open(Some(&s), "config:public/g/a", stored.clone()).unwrap(),
            "password=hunter2"
        );
        // Moved to another config, or opened with another key: refused.
        assert!(open(Some(&s), "config:public/g/b", stored.clone()).is_err());
        assert!(open(Some(&sealer()), "config:public/g/a", stored.clone()).is_err());
        let err = open(None, "config:public/g/a", stored).unwrap_err();
        assert!(err.to_string().contains("encryption_key_file"), "{err}");
        // Two seals of one content differ (fresh data keys and nonces).
        assert_ne!(
            seal(Some(&s), "x", "same").unwrap(),
            seal(Some(&s), "x", "same").unwrap()
        );
    }

    #[test]
    fn plain_contents_that_look_sealed_stay_plain() {
        let looks = format!("{SEALED}not really");
        let stored = seal(None, "x", &looks).unwrap();
        assert_eq!(open(None, "x", stored).unwrap(), looks);
        assert_eq!(open(None, "x", "plain".into()).unwrap(), "plain");
        let s = sealer();
        assert_eq!(
            open(Some(&s), "x", "written before the key".into()).unwrap(),
            "written before the key"
        );
    }

    #[test]
    fn a_rotation_rewraps_under_the_new_key_and_seals_plain_values() {
        let old = Sealer::generate().unwrap();
        let new = Sealer::generate().unwrap();
        let by_old = Sealer::from_key_text(&old).unwrap();
        let stored = seal(Some(&by_old), "config:a", "secret=1").unwrap();
        let rotating = Sealer::from_key_text(&new)
            .unwrap()
            .with_previous(Sealer::from_key_text(&old).unwrap());
        // While rotating, both keys' values open.
        assert_eq!(
            open(Some(&rotating), "config:a", stored.clone()).unwrap(),
            "secret=1"
        );
        let (done, rewrapped) = reseal(&rotating, "config:a", &stored).unwrap();
        assert_eq!(done, Resealed::Rewrapped);
        let rewrapped = rewrapped.unwrap();
        // The content's ciphertext is kept; only the wrapped data key changed.
        let tail = |s: &str| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.strip_prefix(SEALED).unwrap())
                .unwrap();
            bytes[NONCE_LEN + KEY_LEN + TAG_LEN..].to_vec()
        };
        assert_eq!(tail(&stored), tail(&rewrapped));
        // The new key alone opens it, the old alone no longer does; a second pass
        // leaves it be.
        let by_new = Sealer::from_key_text(&new).unwrap();
        assert_eq!(
            open(Some(&by_new), "config:a", rewrapped.clone()).unwrap(),
            "secret=1"
        );
        assert!(open(Some(&by_old), "config:a", rewrapped.clone()).is_err());
        assert_eq!(
            reseal(&by_new, "config:a", &rewrapped).unwrap(),
            (Resealed::Current, None)
        );
        // A plain value is sealed; one that opens with neither key is an error.
        let (done, sealed) = reseal(&by_new, "config:b", "in the clear").unwrap();
        assert_eq!(done, Resealed::Sealed);
        assert_eq!(
            open(Some(&by_new), "config:b", sealed.unwrap()).unwrap(),
            "in the clear"
        );
        assert!(reseal(&by_new, "config:b", &rewrapped).is_err());
        assert!(reseal(&sealer(), "config:a", &stored).is_err());
    }

    #[test]
    fn key_files_are_checked() {
        assert!(Sealer::from_key_text("not base64!").is_err());
        assert!(Sealer::from_key_text("c2hvcnQ=")
            .unwrap_err()
            .contains("32"));
    }
}
