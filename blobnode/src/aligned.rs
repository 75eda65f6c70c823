//! Buffers whose address and length are multiples of the direct-I/O alignment.
//!
//! O_DIRECT fails with EINVAL on a misaligned buffer, offset or length, and tmpfs accepts misalignment without
//! complaint, so an alignment bug would only surface on a real disk. Here the aligned length is the only length
//! a buffer has, and every file offset the crate uses is a multiple of [`ALIGN`] by construction.

use std::ops::{Deref, DerefMut, Range};

use bytes::Bytes;

/// Logical block size assumed for direct I/O (the common 4 KiB; 512-byte devices accept it too).
pub const ALIGN: usize = 4096;

/// `n` rounded up to a multiple of [`ALIGN`]. Callers bound `n` far below `u64::MAX` (shards are capped).
pub const fn align_up(n: u64) -> u64 {
    n.div_ceil(ALIGN as u64) * ALIGN as u64
}

/// A zeroed, heap-allocated buffer starting on an [`ALIGN`] boundary, its length a non-zero multiple of [`ALIGN`].
///
/// Built on an over-allocated `Vec` and an aligned window into it, so no unsafe code is needed; the `Vec` is never
/// grown, so the window never moves.
pub struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A buffer of at least `min_len` bytes (at least one [`ALIGN`] block).
    pub fn zeroed(min_len: usize) -> Self {
        let len = min_len.max(1).div_ceil(ALIGN) * ALIGN;
        let storage = vec![0u8; len + ALIGN - 1];
        let misalignment = storage.as_ptr().addr() % ALIGN;
        let start = (ALIGN - misalignment) % ALIGN;
        AlignedBuf { storage, start, len }
    }

    /// Hands `range` of the buffer over as `Bytes` without copying it.
    pub fn into_bytes(self, range: Range<usize>) -> Bytes {
        debug_assert!(range.end <= self.len);
        Bytes::from(self.storage).slice(self.start + range.start..self.start + range.end)
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_and_length_are_aligned() {
        for n in [0, 1, 4095, 4096, 4097, 65536, 1 << 20] {
            let mut buf = AlignedBuf::zeroed(n);
            assert_eq!(buf.as_ptr().addr() % ALIGN, 0);
            assert_eq!(buf.len() % ALIGN, 0);
            assert!(buf.len() >= n.max(1) && buf.len() < n.max(1) + ALIGN);
            assert!(buf.iter().all(|&b| b == 0));
            buf[0] = 7;
            assert_eq!(buf[0], 7);
            assert_eq!(&buf.into_bytes(0..1)[..], [7]);
        }
    }

    #[test]
    fn align_up_rounds_to_blocks() {
        assert_eq!(align_up(0), 0);
        assert_eq!(align_up(1), 4096);
        assert_eq!(align_up(4096), 4096);
        assert_eq!(align_up(4097), 8192);
    }
}
