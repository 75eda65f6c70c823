//! Sealing of IAM secrets (access key secrets, the STS signing key) before they are stored.
//!
//! AES-256-GCM under the IAM master key. The sealed form records which master key sealed it (the
//! first bytes of the key's SHA-256), so a gateway started with the wrong key says so instead of
//! handing out garbage, and a rotation can tell old records from new ones.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::digest::{SHA256, digest};
use ring::hkdf;

use crate::IamError;

const FORMAT_V1: u8 = 1;
const KEY_ID_LEN: usize = 4;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

/// The key that seals IAM secrets at rest. Never logged.
pub struct MasterKey {
    key: LessSafeKey,
    id: [u8; KEY_ID_LEN],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", hex_id(&self.id))
    }
}

fn hex_id(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

struct Okm(usize);

impl hkdf::KeyType for Okm {
    fn len(&self) -> usize {
        self.0
    }
}

impl MasterKey {
    /// A master key from 32 raw bytes (for example a key file).
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, IamError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| IamError::BadMasterKey("the IAM master key must be exactly 32 bytes".into()))?;
        let fingerprint = digest(&SHA256, bytes);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&fingerprint.as_ref()[..KEY_ID_LEN]);
        Ok(MasterKey { key: LessSafeKey::new(unbound), id })
    }

    /// Derives a master key from a passphrase (the root secret when no key is configured), with
    /// HKDF-SHA256 under a fixed, purpose-bound label.
    pub fn derive(passphrase: &str) -> MasterKey {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"coffer iam master key v1");
        let prk = salt.extract(passphrase.as_bytes());
        let mut bytes = [0u8; 32];
        let filled = prk.expand(&[b"seal"], Okm(32)).and_then(|okm| okm.fill(&mut bytes));
        debug_assert!(filled.is_ok(), "HKDF can always produce 32 bytes");
        match MasterKey::from_bytes(&bytes) {
            Ok(key) => key,
            // 32 bytes is the one length AES-256 takes; this arm cannot run.
            Err(_) => unreachable!("a 32-byte key is always accepted"),
        }
    }

    /// A short, printable identity of the key (not secret).
    pub fn id(&self) -> String {
        hex_id(&self.id)
    }

    /// Seals `plaintext`, binding it to `context` (e.g. the access key it belongs to), so a sealed
    /// secret moved to another record does not open.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + AES_256_GCM.tag_len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&nonce_bytes);
        let mut body = plaintext.to_vec();
        let sealed =
            self.key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::from(context), &mut body);
        debug_assert!(sealed.is_ok(), "AES-GCM sealing of small inputs does not fail");
        out.extend_from_slice(&body);
        out
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, IamError> {
        let header = sealed.get(..HEADER_LEN).ok_or_else(|| IamError::Unseal("sealed secret is truncated".into()))?;
        if header[0] != FORMAT_V1 {
            return Err(IamError::Unseal(format!("unknown sealed-secret format {}", header[0])));
        }
        if header[1..1 + KEY_ID_LEN] != self.id {
            return Err(IamError::Unseal(format!(
                "sealed with master key {}, but this gateway has {}",
                hex_id(&header[1..1 + KEY_ID_LEN]),
                self.id()
            )));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&header[1 + KEY_ID_LEN..]);
        let mut body = sealed[HEADER_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut body)
            .map_err(|_| IamError::Unseal("sealed secret does not authenticate".into()))?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_context() {
        let key = MasterKey::derive("root-secret");
        let sealed = key.seal(b"wJalrXUtnFEMI", b"AKIA1");
        assert!(!sealed.windows(5).any(|w| w == b"wJalr"), "the secret is not stored in the clear");
        assert_eq!(key.open(&sealed, b"AKIA1").unwrap(), b"wJalrXUtnFEMI");
        assert!(key.open(&sealed, b"AKIA2").is_err(), "bound to its record");
        let other = MasterKey::derive("another-secret");
        let err = other.open(&sealed, b"AKIA1").unwrap_err().to_string();
        assert!(err.contains(&key.id()), "{err}");
        let mut tampered = sealed.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert!(key.open(&tampered, b"AKIA1").is_err());
        assert!(key.open(&sealed[..10], b"AKIA1").is_err());
        assert_eq!(MasterKey::derive("root-secret").id(), key.id(), "derivation is stable");
        assert!(MasterKey::from_bytes(&[0u8; 16]).is_err());
    }
}
