//! The writer's staging buffer: a batch is copied into physically contiguous memory before it is written, so the
//! disk gets a few large transfers instead of one per 4 KiB page.
//!
//! Why: a direct-I/O write hands the device one segment per physically contiguous run of the memory it reads, and
//! heap buffers are contiguous only page by page. On this project's virtio disk each segment costs about 5–7 µs:
//! a batch of 32 packed 4 KiB shards (33 pages) took 345 µs to write from its pool buffers against 156 µs from a
//! huge page, and 1 MiB writes streamed at about 300 MiB/s from ordinary pages against 600–690 MiB/s from huge
//! pages (ARCHITECTURE.md, "Group commit"). Copying costs far less: about 38 µs for the small batch (memcpy runs at
//! about 3.5 GB/s on this VM), and skipping it altogether did not speed up 1 MiB shards.
//!
//! The buffer is [`STAGING_BYTES`] (one request of at most the usual 4 MiB `max_sectors_kb`), aligned to and
//! advised as transparent huge pages (`MADV_HUGEPAGE`); longer batches stream through it window by window. Where
//! the kernel has none to give, ordinary pages back it: still correct, only without the gain, and a warning says so
//! (read from `/proc/self/smaps` once the buffer is faulted in). It is the writer's own, one per disk, and never
//! grows.

use crate::chunk::ChunkFile;
use crate::error::BlobnodeError;
use crate::slab::{HUGE_PAGE, huge_page_bytes};

/// Bytes per write: larger batches go out in windows of this size, one after the other.
pub const STAGING_BYTES: usize = 4 << 20;

pub struct StagingBuffer {
    /// Over-allocated by one huge page so that an aligned window fits; never grown, so the window never moves.
    storage: Vec<u8>,
    start: usize,
}

impl StagingBuffer {
    pub fn new() -> Self {
        // A large zeroed allocation comes straight from mmap, untouched, so the advice below applies before the
        // first page fault.
        let mut storage = vec![0u8; STAGING_BYTES + HUGE_PAGE];
        let misalignment = storage.as_ptr().addr() % HUGE_PAGE;
        let start = (HUGE_PAGE - misalignment) % HUGE_PAGE;
        let window = &mut storage[start..start + STAGING_BYTES];
        // SAFETY: the range is a live, exclusively borrowed part of `storage` and page-aligned; MADV_HUGEPAGE only
        // changes how the kernel backs those pages, never their contents.
        let advised = unsafe { libc::madvise(window.as_mut_ptr().cast(), STAGING_BYTES, libc::MADV_HUGEPAGE) };
        if advised != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "no transparent huge pages for staging");
        }
        // Fault the window in now rather than during the first batch.
        window.fill(0);
        if let Some(huge) = huge_page_bytes(window.as_ptr().addr())
            && huge < STAGING_BYTES as u64
        {
            // Still correct, but every batch write goes out as one segment per 4 KiB page: about half the speed.
            tracing::warn!(
                huge_page_kib = huge / 1024,
                "the staging buffer is not backed by transparent huge pages (disabled, or none free); batch writes \
                 will be slower"
            );
        }
        StagingBuffer { storage, start }
    }

    /// Writes `pieces` back to back into `chunk` from `offset`, copied through the buffer one window at a time.
    /// Every piece is a multiple of [`ALIGN`](crate::aligned::ALIGN) long, so every window is too.
    ///
    /// Copying runs at about 3.5 GB/s on this VM, a third of a large window's write time. Overlapping the two
    /// (a helper thread writing one half while this one filled the other) measured slower on 2 cores, so the
    /// windows go out one after the other.
    pub fn write_through(&mut self, chunk: &ChunkFile, offset: u64, pieces: &[&[u8]]) -> Result<(), BlobnodeError> {
        let window = self.window();
        let mut stream = Windows::new(pieces);
        let mut position = offset;
        loop {
            let filled = stream.fill(window);
            if filled == 0 {
                return Ok(());
            }
            chunk.write_at(position, &[&window[..filled]])?;
            position += filled as u64;
        }
    }

    /// Copies `bytes` into the window at `at`, to be written from [`staged`](Self::staged); false, with nothing
    /// copied, when they would not fit.
    pub fn stage(&mut self, at: usize, bytes: &[u8]) -> bool {
        if !Self::fits(at, bytes.len()) {
            return false;
        }
        self.window()[at..at + bytes.len()].copy_from_slice(bytes);
        true
    }

    /// Whether `len` bytes at `at` lie inside the window.
    pub fn fits(at: usize, len: usize) -> bool {
        at.checked_add(len).is_some_and(|end| end <= STAGING_BYTES)
    }

    /// The `len` bytes staged at `at`; None if they would lie outside the window.
    pub fn staged(&self, at: usize, len: usize) -> Option<&[u8]> {
        Self::fits(at, len).then(|| &self.storage[self.start + at..self.start + at + len])
    }

    /// The first `len` bytes of the buffer, to fill in place; None beyond [`STAGING_BYTES`].
    pub fn window_mut(&mut self, len: usize) -> Option<&mut [u8]> {
        (len <= STAGING_BYTES).then(|| &mut self.window()[..len])
    }

    fn window(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + STAGING_BYTES]
    }
}

impl Default for StagingBuffer {
    fn default() -> Self {
        StagingBuffer::new()
    }
}

/// Pieces read as one stream, a window at a time; a piece may straddle two windows.
struct Windows<'a> {
    pieces: &'a [&'a [u8]],
    /// The next piece and how much of it is consumed.
    piece: usize,
    used: usize,
}

impl<'a> Windows<'a> {
    fn new(pieces: &'a [&'a [u8]]) -> Self {
        Windows { pieces, piece: 0, used: 0 }
    }

    /// Copies the next bytes of the stream into `window`; returns how many (0 at the end).
    fn fill(&mut self, window: &mut [u8]) -> usize {
        let mut at = 0;
        while at < window.len() && self.piece < self.pieces.len() {
            let rest = &self.pieces[self.piece][self.used..];
            let n = rest.len().min(window.len() - at);
            window[at..at + n].copy_from_slice(&rest[..n]);
            at += n;
            self.used += n;
            if self.used == self.pieces[self.piece].len() {
                self.piece += 1;
                self.used = 0;
            }
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aligned::ALIGN;

    /// The stream `pieces` make, cut into windows of `window` bytes.
    fn windows_of(pieces: &[&[u8]], window: usize) -> Vec<Vec<u8>> {
        let mut stream = Windows::new(pieces);
        let mut out = Vec::new();
        loop {
            let mut buf = vec![0u8; window];
            let n = stream.fill(&mut buf);
            if n == 0 {
                return out;
            }
            buf.truncate(n);
            out.push(buf);
        }
    }

    #[test]
    fn pieces_stream_through_windows_in_order_and_may_straddle_them() {
        let (a, b, c) = (vec![1u8; 3], vec![2u8; 5], vec![3u8; 4]);
        let windows = windows_of(&[&a, &b, &c], 4);
        assert_eq!(windows, vec![vec![1, 1, 1, 2], vec![2, 2, 2, 2], vec![3, 3, 3, 3]]);
        assert!(windows_of(&[], 4).is_empty());
        assert_eq!(windows_of(&[&a], 8), vec![vec![1, 1, 1]]);
    }

    #[test]
    fn a_batch_larger_than_the_buffer_lands_byte_exact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let chunk = ChunkFile::create(dir.path(), 1, &[7; 16], false).expect("chunk");
        let big: Vec<u8> = (0..STAGING_BYTES + 3 * ALIGN).map(|i| (i % 251) as u8).collect();
        let small = vec![0xabu8; ALIGN];
        let mut staging = StagingBuffer::new();
        let offset = 2 * ALIGN as u64;
        staging.write_through(&chunk, offset, &[&small, &big, &small]).expect("write");
        let mut back = crate::aligned::AlignedBuf::zeroed(big.len() + 2 * ALIGN);
        chunk.read_at(&mut back, offset).expect("read");
        assert_eq!(&back[..ALIGN], &small[..]);
        assert_eq!(&back[ALIGN..ALIGN + big.len()], &big[..]);
        assert_eq!(&back[ALIGN + big.len()..], &small[..]);
    }

    #[test]
    fn staged_bytes_are_read_back_as_placed_and_never_past_the_buffer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let chunk = ChunkFile::create(dir.path(), 1, &[7; 16], false).expect("chunk");
        let mut staging = StagingBuffer::new();
        let (a, b) = (vec![0xaa; ALIGN], vec![0xbb; 2 * ALIGN]);
        // Out of order, as a pack header is staged after the shards that follow it.
        assert!(staging.stage(ALIGN, &b));
        assert!(staging.stage(0, &a));
        assert!(!staging.stage(STAGING_BYTES - ALIGN, &b), "past the end");
        assert!(!staging.stage(usize::MAX, &a), "overflowing offset");
        let staged = staging.staged(0, 3 * ALIGN).expect("inside the window");
        chunk.write_at(ALIGN as u64, &[staged]).expect("write");
        assert!(staging.staged(0, STAGING_BYTES + ALIGN).is_none());
        assert!(staging.staged(usize::MAX, ALIGN).is_none());
        let mut back = crate::aligned::AlignedBuf::zeroed(3 * ALIGN);
        chunk.read_at(&mut back, ALIGN as u64).expect("read");
        assert_eq!(&back[..ALIGN], &a[..]);
        assert_eq!(&back[ALIGN..], &b[..]);
    }

    #[test]
    fn the_window_is_huge_page_aligned() {
        let mut staging = StagingBuffer::new();
        let window = staging.window_mut(STAGING_BYTES).expect("fits");
        assert_eq!(window.as_ptr().addr() % HUGE_PAGE, 0);
        assert!(staging.window_mut(STAGING_BYTES + 1).is_none());
    }

    #[test]
    fn finds_how_much_of_its_window_huge_pages_back() {
        let mut staging = StagingBuffer::new();
        let window = staging.window().as_ptr().addr();
        let huge = huge_page_bytes(window).expect("the window's mapping is in /proc/self/smaps");
        // Whether the kernel had huge pages to give depends on the machine; the count is whole huge pages.
        assert_eq!(huge % HUGE_PAGE as u64, 0, "{huge}");
        assert_eq!(huge_page_bytes(0), None, "no mapping holds address 0");
    }
}
