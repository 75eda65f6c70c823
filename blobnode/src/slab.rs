//! Huge-page memory that the pool carves its large buffers from, so that a large shard image is physically
//! contiguous in 2 MiB runs and the writer hands it to the device as it is, instead of copying it through the
//! staging buffer.
//!
//! Why: a direct write costs this VM's virtio disk a few microseconds per physically contiguous segment (see
//! `staging`), so heap buffers (contiguous page by page) write slowly, and the staging copy that fixes that cost the
//! 1 MiB stream a fifth of its speed. 1 MiB × 32, interleaved with ceiling (b), 3 alternating runs each: staged
//! 73–82 %; written straight from ordinary pool pages 59–63 %; straight from huge-page slabs 86–90 %.
//!
//! A slab holds buffers of one length back to back, rounded up to whole huge pages, so a 1 MiB image spans at most
//! two runs. The pool makes one only when every buffer of that length is in use, each as large as all made before
//! for that length (one buffer first, up to [`SLAB_TARGET_BYTES`]): a length used once costs one buffer's memory,
//! a busy one soon has few, large slabs that lose little to rounding. A slab is faulted in when made and unmapped
//! when the last of its buffers goes. Where the kernel gives no huge pages, the slab is ordinary memory: still
//! correct, and the writer stages such buffers as before.

use std::sync::Arc;

/// A transparent huge page on x86-64 and aarch64 with 4 KiB pages.
pub const HUGE_PAGE: usize = 2 << 20;
/// Buffers at least this long come from slabs (shorter shards go into packs and through the staging buffer).
pub const SLAB_MIN_BUFFER: usize = 256 << 10;
/// The most memory one slab holds, before rounding up to whole huge pages.
const SLAB_TARGET_BYTES: usize = 16 << 20;

/// An anonymous mapping aligned to a huge page, cut into `slots` buffers of `slot_len` bytes.
pub struct Slab {
    base: std::ptr::NonNull<u8>,
    bytes: usize,
    slot_len: usize,
    slots: usize,
    huge: bool,
}

// SAFETY: a slab is plain memory; each of its slots is handed to one owner at a time by the pool (see `aligned`),
// so no two threads ever access the same bytes through it without that owner's synchronisation.
unsafe impl Send for Slab {}
// SAFETY: as above; `&Slab` only exposes addresses and read-only facts about the mapping.
unsafe impl Sync for Slab {}

impl Slab {
    /// How many buffers of `slot_len` bytes the next slab holds, when `made` of that length exist already.
    pub fn slots_after(made: usize, slot_len: usize) -> usize {
        made.clamp(1, (SLAB_TARGET_BYTES / slot_len.max(1)).max(1))
    }

    /// A slab for at least `slots` buffers of `slot_len` bytes (a non-zero multiple of 4 KiB; what rounding up to
    /// huge pages leaves room for is used too); None when the memory cannot be mapped. `huge`: whether huge pages
    /// back the slab, as the caller knows it; None to look it up (in `/proc/self/smaps`, slow in a large process).
    pub fn new(slot_len: usize, slots: usize, huge: Option<bool>) -> Option<Arc<Slab>> {
        if slot_len == 0 {
            return None;
        }
        let bytes = slots.max(1).checked_mul(slot_len)?.div_ceil(HUGE_PAGE) * HUGE_PAGE;
        let mapped = bytes.checked_add(HUGE_PAGE)?;
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no existing memory.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return None;
        }
        let addr = raw.addr();
        let start = addr.next_multiple_of(HUGE_PAGE);
        let (head, tail) = (start - addr, addr + mapped - (start + bytes));
        // SAFETY: both ranges lie inside the mapping just made and outside the aligned part kept; unmapping them
        // only returns address space.
        unsafe {
            if head > 0 {
                libc::munmap(raw, head);
            }
            if tail > 0 {
                libc::munmap(raw.cast::<u8>().add(start - addr + bytes).cast(), tail);
            }
        }
        let base = std::ptr::NonNull::new(raw.cast::<u8>().wrapping_add(head))?;
        // SAFETY: the aligned range is mapped and ours; the advice changes only how the kernel backs it.
        if unsafe { libc::madvise(base.as_ptr().cast(), bytes, libc::MADV_HUGEPAGE) } != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "no transparent huge pages for a slab");
        }
        // Fault it all in now, huge page by huge page where the kernel has them, rather than on the put path.
        for page in (0..bytes).step_by(4096) {
            // SAFETY: `page` < `bytes`, inside the mapping, which nobody else has seen yet.
            unsafe { base.as_ptr().add(page).write_volatile(0) };
        }
        let huge = huge.unwrap_or_else(|| huge_page_bytes(base.as_ptr().addr()).is_some_and(|b| b >= bytes as u64));
        Some(Arc::new(Slab { base, bytes, slot_len, slots: bytes / slot_len, huge }))
    }

    /// How many buffers it holds.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Whether huge pages back all of it: its buffers are then physically contiguous in 2 MiB runs.
    pub fn huge(&self) -> bool {
        self.huge
    }

    /// The start of buffer `index` (< [`Slab::slots`]).
    pub fn slot(&self, index: usize) -> *mut u8 {
        debug_assert!(index < self.slots);
        self.base.as_ptr().wrapping_add(index * self.slot_len)
    }
}

/// Bytes of transparent huge pages backing the mapping that holds `addr`, from `/proc/self/smaps`; None where that
/// cannot be read (not Linux, no procfs). A mapping merged with its neighbours counts theirs too.
pub fn huge_page_bytes(addr: usize) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16))
        {
            inside = (start..end).contains(&addr);
        } else if inside && first == "AnonHugePages:" {
            return fields.next()?.parse::<u64>().ok().map(|kib| kib * 1024);
        }
    }
    None
}

impl Drop for Slab {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and nothing refers to it any more: every buffer holds an `Arc` of its slab.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.bytes) };
    }
}
