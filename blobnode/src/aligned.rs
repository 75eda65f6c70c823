//! Buffers whose address and length are multiples of the direct-I/O alignment.
//!
//! O_DIRECT fails with EINVAL on a misaligned buffer, offset or length, and tmpfs accepts misalignment without
//! complaint, so an alignment bug would only surface on a real disk. Here the aligned length is the only length
//! a buffer has, and every file offset the crate uses is a multiple of [`ALIGN`] by construction.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut, Range};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Logical block size assumed for direct I/O (the common 4 KiB; 512-byte devices accept it too).
pub const ALIGN: usize = 4096;

/// `n` rounded up to a multiple of [`ALIGN`]. Callers bound `n` far below `u64::MAX` (shards are capped).
pub const fn align_up(n: u64) -> u64 {
    n.div_ceil(ALIGN as u64) * ALIGN as u64
}

/// A heap-allocated buffer starting on an [`ALIGN`] boundary, its length a non-zero multiple of [`ALIGN`].
///
/// Built on an over-allocated `Vec` and an aligned window into it, so no unsafe code is needed; the `Vec` is never
/// grown, so the window never moves. A buffer taken from a [`BufferPool`] goes back to it when dropped (also when
/// it was handed out as `Bytes`), so steady traffic allocates, zeroes and page-faults no new memory.
pub struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
    pool: Option<BufferPool>,
}

impl AlignedBuf {
    /// A zeroed buffer of at least `min_len` bytes (at least one [`ALIGN`] block), not pooled.
    pub fn zeroed(min_len: usize) -> Self {
        let len = aligned_len(min_len);
        AlignedBuf::within(vec![0u8; len + ALIGN - 1], len, None)
    }

    fn within(storage: Vec<u8>, len: usize, pool: Option<BufferPool>) -> Self {
        let misalignment = storage.as_ptr().addr() % ALIGN;
        let start = (ALIGN - misalignment) % ALIGN;
        debug_assert!(start + len <= storage.len());
        AlignedBuf { storage, start, len, pool }
    }

    /// Hands `range` of the buffer over as `Bytes` without copying it.
    pub fn into_bytes(self, range: Range<usize>) -> Bytes {
        debug_assert!(range.end <= self.len);
        Bytes::from_owner(Window(self)).slice(range)
    }
}

fn aligned_len(min_len: usize) -> usize {
    min_len.max(1).div_ceil(ALIGN) * ALIGN
}

/// Owner of a buffer handed out as `Bytes`: its bytes are the aligned window.
struct Window(AlignedBuf);

impl AsRef<[u8]> for Window {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give(std::mem::take(&mut self.storage));
        }
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

/// Buffers larger than this are never pooled (the largest record is about 60 MiB; such shards are rare).
const MAX_POOLED_BYTES: usize = 64 << 20;

/// Free direct-I/O buffers by exact aligned length (shard sizes repeat: stripe size / k, plus the header), holding
/// at most `max_free_bytes` while idle. Exact lengths matter: rounding a 1 MiB + 4 KiB record up to a power of two
/// would double the memory of every shard in flight. The memory in use is bounded elsewhere (`budget`); the pool
/// only keeps it from being freed and faulted in again.
#[derive(Clone)]
pub struct BufferPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    free: Mutex<HashMap<usize, Vec<Vec<u8>>>>,
    free_bytes: AtomicU64,
    max_free_bytes: u64,
}

impl BufferPool {
    pub fn new(max_free_bytes: u64) -> Self {
        let inner = PoolInner { free: Mutex::new(HashMap::new()), free_bytes: AtomicU64::new(0), max_free_bytes };
        BufferPool { inner: Arc::new(inner) }
    }

    /// A buffer of at least `min_len` bytes whose contents are unspecified (whatever its last user left).
    pub fn take(&self, min_len: usize) -> AlignedBuf {
        let len = aligned_len(min_len);
        if len > MAX_POOLED_BYTES {
            return AlignedBuf::zeroed(len);
        }
        let reused = self.inner.free.lock().ok().and_then(|mut free| free.get_mut(&len).and_then(Vec::pop));
        let storage = match reused {
            Some(storage) => {
                self.inner.free_bytes.fetch_sub(storage.len() as u64, Ordering::Relaxed);
                storage
            }
            None => vec![0u8; len + ALIGN - 1],
        };
        AlignedBuf::within(storage, len, Some(self.clone()))
    }

    fn give(&self, storage: Vec<u8>) {
        let size = storage.len() as u64;
        if self.inner.free_bytes.fetch_add(size, Ordering::Relaxed) + size > self.inner.max_free_bytes {
            self.inner.free_bytes.fetch_sub(size, Ordering::Relaxed);
            return;
        }
        let len = storage.len() + 1 - ALIGN;
        match self.inner.free.lock() {
            Ok(mut free) => free.entry(len).or_default().push(storage),
            Err(_) => {
                self.inner.free_bytes.fetch_sub(size, Ordering::Relaxed);
            }
        }
    }

    #[cfg(test)]
    pub fn free_bytes(&self) -> u64 {
        self.inner.free_bytes.load(Ordering::Relaxed)
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
    fn pooled_buffers_come_back_and_are_reused() {
        let pool = BufferPool::new(1 << 20);
        let first = pool.take(5000);
        assert_eq!((first.as_ptr().addr() % ALIGN, first.len()), (0, 8192));
        let address = first.as_ptr().addr();
        drop(first);
        assert!(pool.free_bytes() > 0);
        // Another length is another class: fresh memory, the 8 KiB buffer stays for the next 8 KiB take.
        let other = pool.take(12_000);
        assert_eq!(other.len(), 12_288);
        let again = pool.take(8000);
        assert_eq!(again.as_ptr().addr(), address, "the same memory, reused");
        assert_eq!(pool.free_bytes(), 0);
        // Handed out as Bytes: returned when the last Bytes goes.
        let bytes = again.into_bytes(10..20);
        assert_eq!(bytes.len(), 10);
        assert_eq!(pool.free_bytes(), 0);
        drop(bytes);
        assert!(pool.free_bytes() > 0);
        drop(other);
        // Beyond the idle bound, buffers are freed instead of kept.
        let big: Vec<AlignedBuf> = (0..4).map(|_| pool.take(512 * 1024)).collect();
        drop(big);
        assert!(pool.free_bytes() <= 1 << 20);
        // Too large for any class: a plain buffer.
        assert_eq!(pool.take(100 << 20).len(), 100 << 20);
    }

    #[test]
    fn align_up_rounds_to_blocks() {
        assert_eq!(align_up(0), 0);
        assert_eq!(align_up(1), 4096);
        assert_eq!(align_up(4096), 4096);
        assert_eq!(align_up(4097), 8192);
    }
}
