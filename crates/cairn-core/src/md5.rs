//! Content digests: the lowercase hex md5 that clients compare to detect a change, as
//! Nacos clients do.

use md5::{Digest, Md5};

/// The md5 of `content`'s UTF-8 bytes as 32 lowercase hex characters.
pub fn md5_hex(content: &str) -> String {
    hex::encode(Md5::digest(content.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
        // Multi-byte characters are hashed as their UTF-8 bytes, as Java clients do.
        assert_eq!(md5_hex("é"), "66ddcd97cfdeabb2f6fb8a999b4bc76f");
        assert_eq!(md5_hex("hello"), "5d41402abc4b2a76b9719d911017c592");
    }
}
