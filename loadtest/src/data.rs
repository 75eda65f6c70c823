//! The payload and the object names.
//!
//! One pseudo-random buffer is generated at start; every body is a `Bytes` slice of it, so sending an object
//! allocates and copies nothing. An object of `size` bytes stored at `off` holds `buffer[off..off + size]`, and its
//! key ends with `-{off}-{size}`: a GET can be verified against the buffer from the key alone, and the null server
//! answers GETs with the right bytes without storing anything.

use bytes::Bytes;

/// Objects start at a random offset below this, so that different objects hold different bytes.
pub const OFFSET_SPREAD: u64 = 1 << 20;

/// The deterministic byte pattern: a prefix of a longer pattern equals the shorter pattern, so the client and a
/// standalone null server produce the same bytes.
pub fn pattern(len: usize) -> Bytes {
    let mut out = Vec::with_capacity(len + 8);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while out.len() < len {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// How long the buffer must be for objects (and parts) up to `max_size` bytes.
pub fn buffer_len(max_size: u64) -> anyhow::Result<usize> {
    let len = max_size.checked_add(OFFSET_SPREAD).ok_or_else(|| anyhow::anyhow!("object size too large"))?;
    usize::try_from(len).map_err(|_| anyhow::anyhow!("object size too large for this machine"))
}

/// An object the load generator wrote (or will write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjRef {
    pub key: String,
    pub off: u64,
    pub size: u64,
}

impl ObjRef {
    /// `{dir}{seq}-{off}-{size}`; `dir` ends with `/` or is empty.
    pub fn new(dir: &str, seq: u64, off: u64, size: u64) -> ObjRef {
        ObjRef { key: format!("{dir}{seq}-{off}-{size}"), off, size }
    }

    /// The bytes this object holds, or `None` when the buffer is too short (it never is for objects we made).
    pub fn content<'a>(&self, buffer: &'a Bytes) -> Option<&'a [u8]> {
        let start = usize::try_from(self.off).ok()?;
        let end = start.checked_add(usize::try_from(self.size).ok()?)?;
        buffer.get(start..end)
    }

    /// The body as a zero-copy slice of the buffer.
    pub fn body(&self, buffer: &Bytes) -> Option<Bytes> {
        let start = usize::try_from(self.off).ok()?;
        let end = start.checked_add(usize::try_from(self.size).ok()?)?;
        (end <= buffer.len()).then(|| buffer.slice(start..end))
    }
}

/// Recovers `(off, size)` from a key made by [`ObjRef::new`].
pub fn parse_key(key: &str) -> Option<(u64, u64)> {
    let name = key.rsplit('/').next()?;
    let mut parts = name.rsplitn(3, '-');
    let size = parts.next()?.parse().ok()?;
    let off = parts.next()?.parse().ok()?;
    parts.next()?;
    Some((off, size))
}

/// The directory of the list workload's prepared set; it names the object count so that the null server can
/// answer listings of it without storing anything.
pub fn list_dir(prefix: &str, objects: u64) -> String {
    format!("{prefix}list-n{objects}/")
}

/// The object count named by a list directory anywhere in `prefix`.
pub fn parse_list_dir(prefix: &str) -> Option<u64> {
    prefix.split('/').filter_map(|segment| segment.strip_prefix("list-n")?.parse().ok()).next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_prefixes_agree() {
        let long = pattern(10_000);
        let short = pattern(777);
        assert_eq!(&long[..777], &short[..]);
        assert_eq!(pattern(0).len(), 0);
        // Not trivially repetitive.
        assert_ne!(&long[..8], &long[8..16]);
    }

    #[test]
    fn keys_round_trip() {
        let obj = ObjRef::new("coffer-loadtest-ab/w3/", 17, 4242, 4096);
        assert_eq!(obj.key, "coffer-loadtest-ab/w3/17-4242-4096");
        assert_eq!(parse_key(&obj.key), Some((4242, 4096)));
        assert_eq!(parse_key("plain"), None);
        assert_eq!(parse_key("a/1-2"), None);
        let buffer = pattern(10_000);
        assert_eq!(obj.content(&buffer).map(<[u8]>::len), Some(4096));
        assert_eq!(obj.body(&buffer).as_deref(), obj.content(&buffer));
        assert!(ObjRef::new("", 0, 9_000, 4096).content(&buffer).is_none());
    }

    #[test]
    fn list_dirs_round_trip() {
        let dir = list_dir("coffer-loadtest-ab/", 1234);
        assert_eq!(parse_list_dir(&dir), Some(1234));
        assert_eq!(parse_list_dir("coffer-loadtest-ab/"), None);
    }
}
