//! Stream keys: generation and the hash under which they are stored.
//!
//! A stream key is a bearer secret: whoever holds it can publish. Only its
//! SHA-256 is stored, so a leaked Redis dump reveals no key. Keys carry 160
//! random bits, so an unsalted fast hash is enough: there is nothing to
//! brute-force that would be cheaper than guessing the key itself.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Random bytes in a key (160 bits, above the 128 the API promises).
const KEY_BYTES: usize = 20;
/// Longest key string we bother hashing; anything longer is refused.
pub const MAX_KEY_LEN: usize = 256;

/// A new random stream key, as 40 lowercase hex characters.
pub fn generate() -> String {
    let mut bytes = [0u8; KEY_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The stored form of a key: hex SHA-256.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hash_stably() {
        let a = generate();
        let b = generate();
        assert_eq!(a.len(), 40);
        assert_ne!(a, b);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert!(!hash(&a).contains(&a));
    }
}
