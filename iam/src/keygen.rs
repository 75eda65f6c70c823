//! New access key pairs, shaped like AWS's: a 20-character key id and a 40-character secret.

use rand::Rng;

const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())])).collect()
}

/// A new access key id: `prefix` (e.g. "CK" for user keys, "ASIA" for sessions) and random characters.
pub fn new_access_key(prefix: &str) -> String {
    let mut key = prefix.to_string();
    key.push_str(&random_string(KEY_ALPHABET, 20usize.saturating_sub(prefix.len())));
    key
}

/// A new secret key: 40 characters, about 238 bits of entropy.
pub fn new_secret_key() -> String {
    random_string(SECRET_ALPHABET, 40)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_aws_shapes_and_differ() {
        let a = new_access_key("CK");
        assert_eq!(a.len(), 20);
        assert!(a.starts_with("CK"));
        assert_ne!(a, new_access_key("CK"));
        assert_eq!(new_secret_key().len(), 40);
    }
}
