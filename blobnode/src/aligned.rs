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

use crate::slab::{SLAB_MIN_BUFFER, Slab};

/// Logical block size assumed for direct I/O (the common 4 KiB; 512-byte devices accept it too).
pub const ALIGN: usize = 4096;

/// `n` rounded up to a multiple of [`ALIGN`]. Callers bound `n` far below `u64::MAX` (shards are capped).
pub const fn align_up(n: u64) -> u64 {
    n.div_ceil(ALIGN as u64) * ALIGN as u64
}

/// A buffer starting on an [`ALIGN`] boundary, its length a non-zero multiple of [`ALIGN`].
///
/// Mostly an over-allocated `Vec` and an aligned window into it (never grown, so the window never moves); a pooled
/// buffer of [`SLAB_MIN_BUFFER`] or more is a slot of a huge-page [`Slab`] instead. A buffer taken from a
/// [`BufferPool`] goes back to it when dropped (also when it was handed out as `Bytes`), so steady traffic
/// allocates, zeroes and page-faults no new memory.
pub struct AlignedBuf {
    storage: Storage,
    len: usize,
    pool: Option<BufferPool>,
}

enum Storage {
    /// The aligned window starts at `start`.
    Heap {
        bytes: Vec<u8>,
        start: usize,
    },
    Slot {
        slab: Arc<Slab>,
        index: usize,
    },
}

impl Storage {
    fn slab(&self) -> Option<&Arc<Slab>> {
        match self {
            Storage::Heap { .. } => None,
            Storage::Slot { slab, .. } => Some(slab),
        }
    }

    fn is_in(&self, slab: &Arc<Slab>) -> bool {
        self.slab().is_some_and(|mine| Arc::ptr_eq(mine, slab))
    }
}

impl AlignedBuf {
    /// A zeroed buffer of at least `min_len` bytes (at least one [`ALIGN`] block), not pooled.
    pub fn zeroed(min_len: usize) -> Self {
        let len = aligned_len(min_len);
        AlignedBuf::within(vec![0u8; len + ALIGN - 1], len, None)
    }

    fn within(bytes: Vec<u8>, len: usize, pool: Option<BufferPool>) -> Self {
        let misalignment = bytes.as_ptr().addr() % ALIGN;
        let start = (ALIGN - misalignment) % ALIGN;
        debug_assert!(start + len <= bytes.len());
        AlignedBuf { storage: Storage::Heap { bytes, start }, len, pool }
    }

    /// Whether the buffer lies in huge pages: physically contiguous in 2 MiB runs, so the device takes it in a
    /// segment or two, as it would from the staging buffer.
    pub fn huge_backed(&self) -> bool {
        self.storage.slab().is_some_and(|slab| slab.huge())
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
            let storage = std::mem::replace(&mut self.storage, Storage::Heap { bytes: Vec::new(), start: 0 });
            pool.give(storage, self.len);
        }
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.storage {
            Storage::Heap { bytes, start } => &bytes[*start..*start + self.len],
            // SAFETY: the slot is `len` bytes inside the live slab (the pool cut it so) and this buffer is its only
            // owner until it goes back to the pool.
            Storage::Slot { slab, index } => unsafe { std::slice::from_raw_parts(slab.slot(*index), self.len) },
        }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.storage {
            Storage::Heap { bytes, start } => &mut bytes[*start..*start + self.len],
            // SAFETY: as in `deref`; `&mut self` makes this the only reference to the slot.
            Storage::Slot { slab, index } => unsafe { std::slice::from_raw_parts_mut(slab.slot(*index), self.len) },
        }
    }
}

/// Buffers larger than this are never pooled (the largest record is about 60 MiB; such shards are rare).
const MAX_POOLED_BYTES: usize = 64 << 20;

/// Free direct-I/O buffers by exact aligned length (shard sizes repeat: stripe size / k, plus the header), holding
/// at most `max_free_bytes` while idle. Exact lengths matter: rounding a 1 MiB + 4 KiB record up to a power of two
/// would double the memory of every shard in flight. Buffers of [`SLAB_MIN_BUFFER`] or more are cut from
/// huge-page slabs (see `slab`), made when a length has no free buffer left; an idle slab is unmapped once the
/// pool holds more than its bound. So slab memory stays within about twice what was in use at the peak (plus
/// rounding to whole huge pages). The memory in use is bounded elsewhere (`budget`); the pool only keeps it from
/// being freed and faulted in again.
#[derive(Clone)]
pub struct BufferPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    free: Mutex<Classes>,
    free_bytes: AtomicU64,
    max_free_bytes: u64,
    /// Whether large buffers come from slabs (always, but in tests of the heap path).
    slabs: bool,
}

#[derive(Default)]
struct Classes {
    /// Free buffers by length.
    free: HashMap<usize, Vec<Storage>>,
    /// Slab buffers made by length, free or not.
    made: HashMap<usize, usize>,
    /// Whether this machine backs slabs with huge pages, as the first slab found.
    huge: Option<bool>,
}

impl BufferPool {
    pub fn new(max_free_bytes: u64) -> Self {
        BufferPool::with_slabs(max_free_bytes, true, None)
    }

    fn with_slabs(max_free_bytes: u64, slabs: bool, huge: Option<bool>) -> Self {
        let classes = Classes { huge, ..Classes::default() };
        let inner = PoolInner { free: Mutex::new(classes), free_bytes: AtomicU64::new(0), max_free_bytes, slabs };
        BufferPool { inner: Arc::new(inner) }
    }

    /// For tests of the writer's two paths whatever this machine's huge pages: no slabs (every buffer staged), or
    /// slabs taken as huge-page backed (large records written from where they are).
    #[cfg(test)]
    pub fn for_test(max_free_bytes: u64, slabs_as_huge: bool) -> Self {
        BufferPool::with_slabs(max_free_bytes, slabs_as_huge, Some(true))
    }

    /// A buffer of at least `min_len` bytes whose contents are unspecified (whatever its last user left).
    pub fn take(&self, min_len: usize) -> AlignedBuf {
        let len = aligned_len(min_len);
        if len > MAX_POOLED_BYTES {
            return AlignedBuf::zeroed(len);
        }
        let Ok(mut classes) = self.inner.free.lock() else { return AlignedBuf::zeroed(len) };
        if let Some(storage) = classes.free.get_mut(&len).and_then(Vec::pop) {
            self.inner.free_bytes.fetch_sub(len as u64, Ordering::Relaxed);
            return AlignedBuf { storage, len, pool: Some(self.clone()) };
        }
        let made = classes.made.get(&len).copied().unwrap_or(0);
        if len >= SLAB_MIN_BUFFER
            && self.inner.slabs
            && let Some(slab) = Slab::new(len, Slab::slots_after(made, len), classes.huge)
        {
            // Every buffer of this length is in use: a new slab, one buffer for the caller and the rest kept free.
            classes.huge.get_or_insert(slab.huge());
            *classes.made.entry(len).or_default() += slab.slots();
            let spare = (1..slab.slots()).map(|index| Storage::Slot { slab: Arc::clone(&slab), index });
            classes.free.entry(len).or_default().extend(spare);
            self.inner.free_bytes.fetch_add(((slab.slots() - 1) * len) as u64, Ordering::Relaxed);
            return AlignedBuf { storage: Storage::Slot { slab, index: 0 }, len, pool: Some(self.clone()) };
        }
        drop(classes);
        AlignedBuf::within(vec![0u8; len + ALIGN - 1], len, Some(self.clone()))
    }

    fn give(&self, storage: Storage, len: usize) {
        let Ok(mut classes) = self.inner.free.lock() else { return };
        let over =
            self.inner.free_bytes.fetch_add(len as u64, Ordering::Relaxed) + len as u64 > self.inner.max_free_bytes;
        match storage.slab() {
            // Over the bound: a heap buffer is freed; a slab only once all its other buffers are back too.
            Some(slab)
                if over
                    && classes.free.get(&len).map_or(0, |class| class.iter().filter(|s| s.is_in(slab)).count())
                        == slab.slots() - 1 =>
            {
                let slab = Arc::clone(slab);
                drop(storage);
                if let Some(class) = classes.free.get_mut(&len) {
                    class.retain(|s| !s.is_in(&slab));
                }
                if let Some(made) = classes.made.get_mut(&len) {
                    *made = made.saturating_sub(slab.slots());
                }
                self.inner.free_bytes.fetch_sub((slab.slots() * len) as u64, Ordering::Relaxed);
            }
            None if over => {
                self.inner.free_bytes.fetch_sub(len as u64, Ordering::Relaxed);
            }
            _ => classes.free.entry(len).or_default().push(storage),
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
    fn large_buffers_come_from_slabs_that_grow_and_are_unmapped_when_idle_beyond_the_bound() {
        let len = (1 << 20) + ALIGN;
        let pool = BufferPool::for_test(4 << 20, true);
        // A slab is made only when every buffer of the length is in use, each as large as all before it: one
        // buffer (a 2 MiB huge page), one, then two rounded up to 4 MiB, which holds three.
        let mut bufs: Vec<AlignedBuf> = (0..3).map(|_| pool.take(len)).collect();
        assert_eq!(pool.free_bytes(), 2 * len as u64);
        for (i, buf) in bufs.iter_mut().enumerate() {
            assert!(buf.huge_backed());
            assert_eq!((buf.as_ptr().addr() % ALIGN, buf.len()), (0, len));
            buf.fill(i as u8 + 1);
        }
        for (i, buf) in bufs.iter().enumerate() {
            assert!(buf.iter().all(|&b| b == i as u8 + 1), "buffer {i} shares memory with another");
        }
        let first = bufs[0].as_ptr().addr();
        // Given back: the first stays (within the bound); the other two slabs go once all their buffers are back
        // and the pool would hold more than 4 MiB.
        drop(bufs);
        assert_eq!(pool.free_bytes(), len as u64);
        assert_eq!(pool.take(len).as_ptr().addr(), first, "the kept slab is reused");
        // Shorter buffers are heap memory, as before.
        assert!(!pool.take(64 << 10).huge_backed());
    }

    #[test]
    fn align_up_rounds_to_blocks() {
        assert_eq!(align_up(0), 0);
        assert_eq!(align_up(1), 4096);
        assert_eq!(align_up(4096), 4096);
        assert_eq!(align_up(4097), 8192);
    }
}
