//! What a write stores: bytes derived from a 64-bit seed, so the journal keeps the seed, the length, the MD5 and the
//! ETag of every version instead of its bytes.

use std::fmt;

use bytes::Bytes;
use md5::{Digest, Md5};
use serde::Serialize;

/// SplitMix64: a bijective 64-bit mix, used to derive seeds and to fill content.
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The content seed of write number `write` of a run started with `run_seed`.
pub fn write_seed(run_seed: u64, write: u64) -> u64 {
    mix64(run_seed ^ mix64(write))
}

/// `len` deterministic, incompressible-looking bytes for `seed` (xorshift64* from the mixed seed).
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut x = mix64(seed) | 1;
    let mut words = out.chunks_exact_mut(8);
    for word in &mut words {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        word.copy_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    let tail = words.into_remainder();
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    let last = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
    let n = tail.len();
    tail.copy_from_slice(&last[..n]);
    out
}

/// One version of an object as the harness wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Version {
    /// The content seed.
    pub seed: u64,
    pub len: u64,
    /// MD5 of the whole content, hex.
    pub md5: String,
    /// The ETag S3 gives this version: the MD5 for a plain PUT, `md5(part md5s)-N` for a multipart upload.
    pub etag: String,
    /// Parts of a multipart upload (0 for a plain PUT).
    pub parts: u32,
}

impl Version {
    /// A plain PUT of `len` bytes: the version and its body.
    pub fn put(seed: u64, len: usize) -> (Version, Bytes) {
        let body = content(seed, len);
        let md5 = hex::encode(Md5::digest(&body));
        (Version { seed, len: len as u64, md5: md5.clone(), etag: md5, parts: 0 }, Bytes::from(body))
    }

    /// A multipart upload whose parts have these sizes: the version and the part bodies (slices of one content).
    pub fn multipart(seed: u64, part_sizes: &[usize]) -> (Version, Vec<Bytes>) {
        let total: usize = part_sizes.iter().sum();
        let whole = Bytes::from(content(seed, total));
        let md5 = hex::encode(Md5::digest(&whole));
        let mut parts = Vec::with_capacity(part_sizes.len());
        let mut digests = Vec::with_capacity(16 * part_sizes.len());
        let mut offset = 0;
        for &size in part_sizes {
            let part = whole.slice(offset..offset + size);
            digests.extend_from_slice(&Md5::digest(&part));
            parts.push(part);
            offset += size;
        }
        let etag = format!("{}-{}", hex::encode(Md5::digest(&digests)), part_sizes.len());
        (Version { seed, len: total as u64, md5, etag, parts: part_sizes.len() as u32 }, parts)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} B md5 {}", self.len, self.md5)?;
        if self.parts > 0 {
            write!(f, " ({} parts, etag {})", self.parts, self.etag)?;
        }
        write!(f, " seed {:#x}", self.seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_deterministic_and_seed_dependent() {
        assert_eq!(content(7, 1000), content(7, 1000));
        assert_ne!(content(7, 1000), content(8, 1000));
        // A shorter content is a prefix of a longer one of the same seed, odd lengths included.
        let long = content(9, 4099);
        for len in [0, 1, 7, 8, 9, 4096, 4099] {
            assert_eq!(content(9, len), long[..len], "len {len}");
        }
        assert_ne!(write_seed(1, 2), write_seed(1, 3));
        assert_ne!(write_seed(1, 2), write_seed(2, 2));
    }

    #[test]
    fn etags_follow_s3() {
        let (v, body) = Version::put(5, 3000);
        assert_eq!(body.len(), 3000);
        assert_eq!(v.etag, v.md5);
        assert_eq!(v.md5, hex::encode(Md5::digest(&body)));

        let (m, parts) = Version::multipart(5, &[2000, 1000]);
        assert_eq!(parts.iter().map(Bytes::len).collect::<Vec<_>>(), vec![2000, 1000]);
        // Same seed, same bytes: the whole content equals the plain PUT's.
        assert_eq!(m.md5, v.md5);
        let mut digests = Vec::new();
        digests.extend_from_slice(&Md5::digest(&parts[0]));
        digests.extend_from_slice(&Md5::digest(&parts[1]));
        assert_eq!(m.etag, format!("{}-2", hex::encode(Md5::digest(&digests))));
        assert_eq!(m.parts, 2);
    }
}
