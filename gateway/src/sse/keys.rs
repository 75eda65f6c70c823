//! Keys of server-side encryption: the SSE-S3 master keys, the SSE-KMS key provider and SSE-C
//! customer keys. Every object segment has its own random data key; these only wrap it.
//!
//! A wrapped data key is `nonce ++ AES-256-GCM(data key) ++ tag`, its associated data naming the
//! algorithm and the id of the key that wrapped it, so a wrapped key moved to another key id or
//! algorithm does not open. The id is stored next to it (`SseSegment.key_id`), which is what makes
//! rotation safe: new master keys are added as the newest, and every configured one still opens
//! what it wrapped.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::digest::{SHA256, digest};
use ring::{hkdf, hmac};

pub const KEY_LEN: usize = 32;
pub type DataKey = [u8; KEY_LEN];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The key id names no configured key (AWS: KMS.NotFoundException).
    #[error("Invalid keyId '{0}'")]
    NotFound(String),
    /// The wrapped key does not open with the named key (tampered, or the key changed).
    #[error("the data key does not open with key '{0}'")]
    Unwrap(String),
    #[error("{0}")]
    Config(String),
}

/// A set of named 256-bit keys; the last one is the newest.
#[derive(Clone, Default)]
pub struct KeyRing {
    keys: Vec<(String, DataKey)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        write!(f, "KeyRing({ids:?})")
    }
}

fn fingerprint(key: &DataKey) -> String {
    hex::encode(&digest(&SHA256, key).as_ref()[..4])
}

fn decode_key(text: &str) -> Result<DataKey, KeyError> {
    let text = text.trim();
    let bytes = if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|e| KeyError::Config(e.to_string()))?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| KeyError::Config("a key must be 32 bytes, base64 or 64 hex digits".into()))?
    };
    bytes.try_into().map_err(|_| KeyError::Config("a key must be exactly 32 bytes".into()))
}

struct Okm;

impl hkdf::KeyType for Okm {
    fn len(&self) -> usize {
        KEY_LEN
    }
}

impl KeyRing {
    /// Parses a key file: lines `ID:KEY` (KEY base64 or hex; blank lines and `#` comments
    /// skipped; the last line is the newest key), or a single key (base64, hex or 32 raw bytes)
    /// whose id is its fingerprint.
    pub fn parse(raw: &[u8]) -> Result<KeyRing, KeyError> {
        let text = String::from_utf8_lossy(raw);
        if !text.contains(':') {
            // 32 raw bytes, else text.
            let key = match DataKey::try_from(raw) {
                Ok(key) => key,
                Err(_) => decode_key(&text)?,
            };
            return Ok(KeyRing { keys: vec![(fingerprint(&key), key)] });
        }
        let mut keys: Vec<(String, DataKey)> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, key) =
                line.split_once(':').ok_or_else(|| KeyError::Config(format!("line {}: expected ID:KEY", n + 1)))?;
            let id = id.trim();
            if id.is_empty() || keys.iter().any(|(known, _)| known == id) {
                return Err(KeyError::Config(format!("line {}: key ids must be unique and non-empty", n + 1)));
            }
            let key = decode_key(key).map_err(|e| KeyError::Config(format!("line {}: {e}", n + 1)))?;
            keys.push((id.to_string(), key));
        }
        if keys.is_empty() {
            return Err(KeyError::Config("the key file holds no key".into()));
        }
        Ok(KeyRing { keys })
    }

    pub fn load(path: &Path) -> Result<KeyRing, KeyError> {
        let raw = std::fs::read(path).map_err(|e| KeyError::Config(format!("cannot read {}: {e}", path.display())))?;
        KeyRing::parse(&raw).map_err(|e| KeyError::Config(format!("{}: {e}", path.display())))
    }

    /// A key derived from a passphrase (the root secret when no key file is given), with
    /// HKDF-SHA256 under a purpose-bound label, like the IAM master key.
    pub fn derive(passphrase: &str) -> KeyRing {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"coffer sse master key v1");
        let prk = salt.extract(passphrase.as_bytes());
        let mut key = [0u8; KEY_LEN];
        let filled = prk.expand(&[b"sse-s3"], Okm).and_then(|okm| okm.fill(&mut key));
        debug_assert!(filled.is_ok(), "HKDF can always produce 32 bytes");
        KeyRing { keys: vec![(format!("derived-{}", fingerprint(&key)), key)] }
    }

    /// This ring's keys, then `older`'s that this one does not name: `older` only decrypts.
    pub fn with_fallback(mut self, older: KeyRing) -> KeyRing {
        let mut merged: Vec<(String, DataKey)> =
            older.keys.into_iter().filter(|(id, _)| !self.keys.iter().any(|(k, _)| k == id)).collect();
        merged.append(&mut self.keys);
        KeyRing { keys: merged }
    }

    pub fn newest(&self) -> Option<&str> {
        self.keys.last().map(|(id, _)| id.as_str())
    }

    /// The key named `id`, or else the key whose fingerprint `id` is: a single-key file names its
    /// key by fingerprint, so that key stays found once the file lists it under a name.
    pub fn get(&self, id: &str) -> Option<&DataKey> {
        let named = self.keys.iter().find(|(known, _)| known == id);
        named.or_else(|| self.keys.iter().find(|(_, key)| fingerprint(key) == id)).map(|(_, key)| key)
    }

    pub fn first(&self) -> Option<&str> {
        self.keys.first().map(|(id, _)| id.as_str())
    }
}

fn aead_key(key: &DataKey) -> LessSafeKey {
    match UnboundKey::new(&AES_256_GCM, key) {
        Ok(unbound) => LessSafeKey::new(unbound),
        Err(_) => unreachable!("AES-256 takes any 32-byte key"),
    }
}

fn wrap_context(algorithm: &str, key_id: &str) -> Vec<u8> {
    [b"coffer sse data key v1\0".as_slice(), algorithm.as_bytes(), b"\0", key_id.as_bytes()].concat()
}

/// Wraps `data_key` under `kek`, bound to the algorithm and key id.
pub fn wrap(kek: &DataKey, algorithm: &str, key_id: &str, data_key: &DataKey) -> Vec<u8> {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let mut body = data_key.to_vec();
    let context = wrap_context(algorithm, key_id);
    if aead_key(kek)
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&context), &mut body)
        .is_err()
    {
        unreachable!("AES-GCM seals 32 bytes");
    }
    [nonce.as_slice(), &body].concat()
}

pub fn unwrap(kek: &DataKey, algorithm: &str, key_id: &str, wrapped: &[u8]) -> Result<DataKey, KeyError> {
    let fail = || KeyError::Unwrap(key_id.to_string());
    if wrapped.len() != NONCE_LEN + KEY_LEN + AES_256_GCM.tag_len() {
        return Err(fail());
    }
    let (nonce, body) = wrapped.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| fail())?;
    let mut body = body.to_vec();
    let context = wrap_context(algorithm, key_id);
    let plain = aead_key(kek)
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(&context), &mut body)
        .map_err(|_| fail())?;
    plain.try_into().map_err(|_| fail())
}

/// Where SSE-KMS data keys are wrapped. Pluggable: the local key file is one provider; a remote
/// KMS would be another.
#[async_trait::async_trait]
pub trait KeyProvider: Send + Sync {
    /// The canonical id of a key the client named (an id or an ARN ending in `key/ID`), or
    /// NotFound.
    fn resolve(&self, key_id: &str) -> Result<String, KeyError>;
    /// The key used when a request asks for `aws:kms` without naming one.
    fn default_key(&self) -> Option<String>;
    async fn wrap(&self, key_id: &str, data_key: &DataKey) -> Result<Vec<u8>, KeyError>;
    async fn unwrap(&self, key_id: &str, wrapped: &[u8]) -> Result<DataKey, KeyError>;
}

pub const KMS_ALGORITHM: &str = "aws:kms";

/// KMS keys from a local file (`--kms-key-file`, lines `KEYID:base64`; the first is the default).
pub struct FileKms {
    ring: KeyRing,
}

impl FileKms {
    pub fn new(ring: KeyRing) -> FileKms {
        FileKms { ring }
    }
}

#[async_trait::async_trait]
impl KeyProvider for FileKms {
    fn resolve(&self, key_id: &str) -> Result<String, KeyError> {
        let id = key_id.rsplit_once(":key/").map_or(key_id, |(_, id)| id).trim();
        match self.ring.get(id) {
            Some(_) => Ok(id.to_string()),
            None => Err(KeyError::NotFound(key_id.to_string())),
        }
    }

    fn default_key(&self) -> Option<String> {
        self.ring.first().map(str::to_string)
    }

    async fn wrap(&self, key_id: &str, data_key: &DataKey) -> Result<Vec<u8>, KeyError> {
        let kek = self.ring.get(key_id).ok_or_else(|| KeyError::NotFound(key_id.to_string()))?;
        Ok(wrap(kek, KMS_ALGORITHM, key_id, data_key))
    }

    async fn unwrap(&self, key_id: &str, wrapped: &[u8]) -> Result<DataKey, KeyError> {
        let kek = self.ring.get(key_id).ok_or_else(|| KeyError::NotFound(key_id.to_string()))?;
        unwrap(kek, KMS_ALGORITHM, key_id, wrapped)
    }
}

/// The gateway's encryption keys.
#[derive(Clone)]
pub struct SseKeys {
    /// SSE-S3 master keys: the newest wraps, all unwrap.
    pub master: KeyRing,
    /// SSE-KMS, when configured.
    pub kms: Option<Arc<dyn KeyProvider>>,
}

impl SseKeys {
    /// Master keys from `master_file` (the key derived from `root_secret` kept for reading what
    /// it wrapped before the file existed), else the derived key alone; KMS keys from `kms_file`.
    pub fn load(master_file: Option<&Path>, kms_file: Option<&Path>, root_secret: &str) -> Result<SseKeys, KeyError> {
        let derived = KeyRing::derive(root_secret);
        let master = match master_file {
            Some(path) => KeyRing::load(path)?.with_fallback(derived),
            None => derived,
        };
        let kms = match kms_file {
            Some(path) => Some(Arc::new(FileKms::new(KeyRing::load(path)?)) as Arc<dyn KeyProvider>),
            None => None,
        };
        Ok(SseKeys { master, kms })
    }
}

/// An SSE-C key as the request carried it (never stored).
#[derive(Clone)]
pub struct CustomerKey {
    pub key: DataKey,
    /// Base64 MD5 of the key, as the request gave it and responses echo it.
    pub md5: String,
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CustomerKey(md5 {})", self.md5)
    }
}

const VERIFIER_LABEL: &[u8] = b"coffer sse-c key verifier v1";

impl CustomerKey {
    /// HMAC-SHA256 under the key of a label and `salt`: proves a key on later requests without
    /// the key (or a plain hash of it) being stored.
    pub fn verifier(&self, salt: &[u8]) -> Vec<u8> {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.key);
        hmac::sign(&key, &[VERIFIER_LABEL, salt].concat()).as_ref().to_vec()
    }

    /// Constant-time check of a stored verifier.
    pub fn matches(&self, salt: &[u8], verifier: &[u8]) -> bool {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.key);
        hmac::verify(&key, &[VERIFIER_LABEL, salt].concat(), verifier).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(key: &DataKey) -> String {
        base64::engine::general_purpose::STANDARD.encode(key)
    }

    #[test]
    fn key_files_parse() {
        let file = format!("# keys\nold:{}\n\nnew:{}\n", b64(&[1; 32]), hex::encode([2u8; 32]));
        let ring = KeyRing::parse(file.as_bytes()).unwrap();
        assert_eq!(ring.newest(), Some("new"));
        assert_eq!(ring.first(), Some("old"));
        assert_eq!(ring.get("old"), Some(&[1; 32]));
        let single = KeyRing::parse(b64(&[3; 32]).as_bytes()).unwrap();
        assert_eq!(single.get(single.newest().unwrap()), Some(&[3; 32]));
        assert!(KeyRing::parse(b"a:short").is_err());
        assert!(KeyRing::parse(format!("a:{0}\na:{0}", b64(&[1; 32])).as_bytes()).is_err());
        assert!(KeyRing::parse(b"# nothing\n:").is_err());
    }

    #[test]
    fn rotation_keeps_old_objects_readable() {
        let a = KeyRing::parse(format!("A:{}", b64(&[1; 32])).as_bytes()).unwrap();
        let writer = a.newest().unwrap().to_string();
        let data_key = [42u8; 32];
        let wrapped = wrap(a.get(&writer).unwrap(), "AES256", &writer, &data_key);
        // Key B added as the newest: it wraps new keys, A still opens what it wrapped.
        let ab = KeyRing::parse(format!("A:{}\nB:{}", b64(&[1; 32]), b64(&[2; 32])).as_bytes()).unwrap();
        assert_eq!(ab.newest(), Some("B"));
        assert_eq!(unwrap(ab.get(&writer).unwrap(), "AES256", &writer, &wrapped).unwrap(), data_key);
        // Bound to its key id and algorithm.
        assert!(unwrap(ab.get("B").unwrap(), "AES256", "B", &wrapped).is_err());
        assert!(unwrap(ab.get("A").unwrap(), "aws:kms", "A", &wrapped).is_err());
        // A single key (named by its fingerprint) stays found once a file lists it by name.
        let single = KeyRing::parse(b64(&[1; 32]).as_bytes()).unwrap();
        let single_id = single.newest().unwrap().to_string();
        assert_eq!(ab.get(&single_id), Some(&[1; 32]));
        // A derived key stays readable once a key file is configured.
        let derived = KeyRing::derive("root");
        let id = derived.newest().unwrap().to_string();
        let merged = ab.with_fallback(derived.clone());
        assert_eq!(merged.newest(), Some("B"));
        assert_eq!(merged.get(&id), derived.get(&id));
    }

    #[test]
    fn kms_resolves_ids_and_arns() {
        let kms = FileKms::new(KeyRing::parse(format!("k1:{}", b64(&[5; 32])).as_bytes()).unwrap());
        assert_eq!(kms.resolve("k1").unwrap(), "k1");
        assert_eq!(kms.resolve("arn:aws:kms:us-east-1:123456789012:key/k1").unwrap(), "k1");
        assert_eq!(kms.resolve("k2"), Err(KeyError::NotFound("k2".into())));
        assert_eq!(kms.default_key().as_deref(), Some("k1"));
    }

    #[test]
    fn customer_key_verifier() {
        let right = CustomerKey { key: [7; 32], md5: String::new() };
        let wrong = CustomerKey { key: [8; 32], md5: String::new() };
        let v = right.verifier(b"salt");
        assert!(right.matches(b"salt", &v));
        assert!(!wrong.matches(b"salt", &v));
        assert!(!right.matches(b"other", &v));
        assert!(!v.windows(32).any(|w| w == right.key), "the key itself is not stored");
    }
}
