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

/// The configured key, able to seal and open contents.
pub struct Sealer {
    key: LessSafeKey,
    random: SystemRandom,
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
            random: SystemRandom::new(),
        })
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
        let (wrap_nonce, content_nonce) = (self.nonce()?, self.nonce()?);
        let mut wrapped = data_key.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(wrap_nonce),
                Aad::from(DATA_KEY_AAD),
                &mut wrapped,
            )
            .map_err(failed)?;
        let mut sealed = content.as_bytes().to_vec();
        content_key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(content_nonce),
                Aad::from(identity.as_bytes()),
                &mut sealed,
            )
            .map_err(failed)?;
        let mut out = Vec::with_capacity(2 * NONCE_LEN + wrapped.len() + sealed.len());
        out.extend_from_slice(&wrap_nonce);
        out.extend_from_slice(&wrapped);
        out.extend_from_slice(&content_nonce);
        out.extend_from_slice(&sealed);
        Ok(format!(
            "{SEALED}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    fn open(&self, identity: &str, body: &str) -> Result<String> {
        let corrupt = || {
            StoreError::Encryption(format!(
            "the stored content of {identity} does not open with this key (another key sealed it, or it was changed)"
        ))
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| corrupt())?;
        let wrapped_len = KEY_LEN + TAG_LEN;
        if bytes.len() < 2 * NONCE_LEN + wrapped_len + TAG_LEN {
            return Err(corrupt());
        }
        let (wrap_nonce, rest) = bytes.split_at(NONCE_LEN);
        let (wrapped, rest) = rest.split_at(wrapped_len);
        let (content_nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = |n: &[u8]| Nonce::try_assume_unique_for_key(n).map_err(|_| corrupt());
        let mut data_key = wrapped.to_vec();
        let data_key = self
            .key
            .open_in_place(nonce(wrap_nonce)?, Aad::from(DATA_KEY_AAD), &mut data_key)
            .map_err(|_| corrupt())?;
        let content_key =
            LessSafeKey::new(UnboundKey::new(&AES_256_GCM, data_key).map_err(|_| corrupt())?);
        let mut content = sealed.to_vec();
        let content = content_key
            .open_in_place(
                nonce(content_nonce)?,
                Aad::from(identity.as_bytes()),
                &mut content,
            )
            .map_err(|_| corrupt())?;
        String::from_utf8(content.to_vec()).map_err(|_| corrupt())
    }
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
    fn key_files_are_checked() {
        assert!(Sealer::from_key_text("not base64!").is_err());
        assert!(Sealer::from_key_text("c2hvcnQ=")
            .unwrap_err()
            .contains("32"));
    }
}
