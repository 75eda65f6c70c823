//! The encrypted package format (after MinIO's DARE): a segment's plaintext is cut into packages
//! of `package_size` bytes (the last may be shorter), each sealed on its own with AES-256-GCM
//! under the segment's data key, its nonce the segment's 4-byte prefix followed by the package
//! index, its associated data saying whether it is the last package. A package is its
//! ciphertext followed by its 16-byte tag, so package `i` starts at `i × (package_size + 16)`
//! and a range read opens only the packages that cover it.
//!
//! The index in the nonce stops packages from being reordered, the final flag stops a segment
//! from being cut short at a package boundary, and the data key being fresh per segment stops
//! packages from moving between segments.

use std::ops::Range;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// Plaintext bytes per package of new segments.
pub const PACKAGE_SIZE: u32 = 64 * 1024;
pub const TAG_LEN: usize = 16;
pub const NONCE_PREFIX_LEN: usize = 4;
const AAD_LABEL: &[u8] = b"coffer sse package v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackageError {
    #[error("encrypted package {0} does not authenticate")]
    Forged(u64),
    #[error("encrypted data ends inside package {0}")]
    Truncated(u64),
    #[error("bad encryption parameters: {0}")]
    Parameters(&'static str),
}

/// The geometry of one encrypted segment of `plain_len` plaintext bytes.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    pub package_size: u64,
    pub plain_len: u64,
}

impl Geometry {
    pub fn new(package_size: u32, plain_len: u64) -> Result<Geometry, PackageError> {
        if package_size == 0 {
            return Err(PackageError::Parameters("package size is zero"));
        }
        Ok(Geometry { package_size: u64::from(package_size), plain_len })
    }

    pub fn packages(&self) -> u64 {
        self.plain_len.div_ceil(self.package_size)
    }

    /// Bytes as stored.
    pub fn stored_len(&self) -> u64 {
        self.plain_len + self.packages() * TAG_LEN as u64
    }

    pub fn plain_len_of(&self, index: u64) -> u64 {
        let start = index * self.package_size;
        self.plain_len.saturating_sub(start).min(self.package_size)
    }

    /// The packages covering plaintext `range` (non-empty, within the segment), the stored bytes
    /// that hold them, and how many plaintext bytes of the first package precede the range.
    pub fn covering(&self, range: &Range<u64>) -> (Range<u64>, Range<u64>, u64) {
        let first = range.start / self.package_size;
        let last = (range.end.max(range.start + 1) - 1) / self.package_size;
        let stride = self.package_size + TAG_LEN as u64;
        let stored = first * stride..((last + 1) * stride).min(self.stored_len());
        (first..last + 1, stored, range.start - first * self.package_size)
    }
}

/// Bytes stored for `plain_len` plaintext bytes in packages of [`PACKAGE_SIZE`].
pub fn stored_len(plain_len: u64) -> u64 {
    plain_len + plain_len.div_ceil(u64::from(PACKAGE_SIZE)) * TAG_LEN as u64
}

/// A segment's data key with its nonce prefix.
pub struct PackageKey {
    key: LessSafeKey,
    prefix: [u8; NONCE_PREFIX_LEN],
}

impl PackageKey {
    pub fn new(data_key: &[u8; 32], prefix: &[u8]) -> Result<PackageKey, PackageError> {
        let prefix: [u8; NONCE_PREFIX_LEN] =
            prefix.try_into().map_err(|_| PackageError::Parameters("nonce prefix must be 4 bytes"))?;
        let unbound = UnboundKey::new(&AES_256_GCM, data_key)
            .map_err(|_| PackageError::Parameters("data key must be 32 bytes"))?;
        Ok(PackageKey { key: LessSafeKey::new(unbound), prefix })
    }

    fn nonce(&self, index: u64) -> Nonce {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..NONCE_PREFIX_LEN].copy_from_slice(&self.prefix);
        nonce[NONCE_PREFIX_LEN..].copy_from_slice(&index.to_be_bytes());
        Nonce::assume_unique_for_key(nonce)
    }

    fn aad(last: bool) -> [u8; AAD_LABEL.len() + 1] {
        let mut aad = [0u8; AAD_LABEL.len() + 1];
        aad[..AAD_LABEL.len()].copy_from_slice(AAD_LABEL);
        aad[AAD_LABEL.len()] = u8::from(last);
        aad
    }

    /// Package `index` of `plain`; `last` marks the segment's final package.
    pub fn seal(&self, index: u64, last: bool, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plain.len() + TAG_LEN);
        out.extend_from_slice(plain);
        // ring refuses only inputs beyond GCM's 64 GiB limit, far above a package.
        if self.key.seal_in_place_append_tag(self.nonce(index), Aad::from(Self::aad(last)), &mut out).is_err() {
            unreachable!("AES-GCM seals any package-sized input");
        }
        out
    }

    /// Opens package `index` (ciphertext and tag) in place; returns the plaintext.
    pub fn open<'a>(&self, index: u64, last: bool, sealed: &'a mut [u8]) -> Result<&'a mut [u8], PackageError> {
        self.key
            .open_in_place(self.nonce(index), Aad::from(Self::aad(last)), sealed)
            .map_err(|_| PackageError::Forged(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal_all(key: &PackageKey, g: &Geometry, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let n = g.packages();
        for i in 0..n {
            let start = (i * g.package_size) as usize;
            let end = start + g.plain_len_of(i) as usize;
            out.extend(key.seal(i, i + 1 == n, &plain[start..end]));
        }
        out
    }

    fn read_range(key: &PackageKey, g: &Geometry, stored: &[u8], range: Range<u64>) -> Result<Vec<u8>, PackageError> {
        let (packages, bytes, skip) = g.covering(&range);
        let mut cursor = bytes.start as usize;
        let mut out = Vec::new();
        for i in packages {
            let len = g.plain_len_of(i) as usize + TAG_LEN;
            let end = cursor + len;
            if end > bytes.end as usize {
                return Err(PackageError::Truncated(i));
            }
            let mut sealed = stored[cursor..end].to_vec();
            out.extend_from_slice(key.open(i, i + 1 == g.packages(), &mut sealed)?);
            cursor = end;
        }
        let skip = skip as usize;
        Ok(out[skip..skip + (range.end - range.start) as usize].to_vec())
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn round_trip_and_every_range_boundary() {
        let key = PackageKey::new(&[7u8; 32], &[1, 2, 3, 4]).unwrap();
        for package in [16u32, 64] {
            for n in [0usize, 1, 15, 16, 17, 64, 100, 160] {
                let g = Geometry::new(package, n as u64).unwrap();
                let plain = pattern(n);
                let stored = seal_all(&key, &g, &plain);
                assert_eq!(stored.len() as u64, g.stored_len());
                if n == 0 {
                    continue;
                }
                // Every range: each boundary case (start/end at, before and after a package edge) is among them.
                for a in 0..n {
                    for b in a + 1..=n {
                        let got = read_range(&key, &g, &stored, a as u64..b as u64).unwrap();
                        assert_eq!(got, &plain[a..b], "package {package}, size {n}, range {a}..{b}");
                    }
                }
            }
        }
        assert_eq!(stored_len(0), 0);
        assert_eq!(stored_len(1), 17);
        assert_eq!(stored_len(u64::from(PACKAGE_SIZE)), u64::from(PACKAGE_SIZE) + 16);
        assert_eq!(stored_len(u64::from(PACKAGE_SIZE) + 1), u64::from(PACKAGE_SIZE) + 1 + 32);
    }

    #[test]
    fn ciphertext_hides_the_plaintext() {
        let key = PackageKey::new(&[9u8; 32], &[0; 4]).unwrap();
        let plain = b"recognisable plaintext pattern".repeat(10);
        let g = Geometry::new(64, plain.len() as u64).unwrap();
        let stored = seal_all(&key, &g, &plain);
        assert!(!stored.windows(12).any(|w| w == b"recognisable"));
    }

    #[test]
    fn tampering_is_refused() {
        let key = PackageKey::new(&[7u8; 32], &[1, 2, 3, 4]).unwrap();
        let plain = pattern(100);
        let g = Geometry::new(16, 100).unwrap();
        let stored = seal_all(&key, &g, &plain);
        // A flipped bit anywhere, in ciphertext or tag.
        for at in [0usize, 5, 16, 31, 32, stored.len() - 1] {
            let mut bad = stored.clone();
            bad[at] ^= 1;
            assert!(read_range(&key, &g, &bad, 0..100).is_err(), "flip at {at}");
        }
        // Two packages swapped.
        let mut swapped = stored.clone();
        let stride = 32;
        let (a, b) = swapped.split_at_mut(stride);
        a.swap_with_slice(&mut b[..stride]);
        assert_eq!(read_range(&key, &g, &swapped, 0..32), Err(PackageError::Forged(0)));
        // Cut short at a package boundary: the new last package was not sealed as the last one.
        let short = Geometry::new(16, 96).unwrap();
        assert_eq!(
            read_range(&key, &short, &stored[..short.stored_len() as usize], 90..96),
            Err(PackageError::Forged(5))
        );
        // Another key.
        let other = PackageKey::new(&[8u8; 32], &[1, 2, 3, 4]).unwrap();
        assert!(read_range(&other, &g, &stored, 0..1).is_err());
    }

    #[test]
    fn covering_ranges() {
        let g = Geometry::new(10, 35).unwrap();
        assert_eq!(g.stored_len(), 35 + 4 * 16);
        assert_eq!(g.covering(&(0..35)), (0..4, 0..99, 0));
        assert_eq!(g.covering(&(9..11)), (0..2, 0..52, 9));
        assert_eq!(g.covering(&(10..20)), (1..2, 26..52, 0));
        assert_eq!(g.covering(&(34..35)), (3..4, 78..99, 4));
    }
}
