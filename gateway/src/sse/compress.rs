//! Transparent compression of segments: the plaintext in packages of `package_size` bytes, each
//! compressed on its own into one zstd frame, the frames stored back to back with their sizes
//! in the segment (`CompressionSegment.frame_sizes`), so a range read decompresses only the
//! frames that cover it. Compression comes before encryption when both apply.
//!
//! zstd is the C library rocksdb links already (`zstd-sys`), called through its one-shot API
//! on whole packages: the only unsafe code is in `compress_package` and `decompress_package`.

use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use crate::error::{GatewayError, GatewayResult};

type StdError = Box<dyn std::error::Error + Send + Sync>;

pub const ALGORITHM: &str = "zstd";
/// Plaintext bytes per frame of new segments.
pub const PACKAGE_SIZE: u32 = 64 * 1024;
/// zstd's default level: fast enough for the request path, most of the gain.
const LEVEL: i32 = 3;

/// The frame sizes an encrypting stream produced, filled in as it runs.
pub type SharedFrames = Arc<Mutex<Vec<u32>>>;

pub fn frames_of(shared: &SharedFrames) -> Vec<u32> {
    // A plain list: a panicking holder cannot leave it half-updated.
    std::mem::take(&mut *shared.lock().unwrap_or_else(PoisonError::into_inner))
}

fn zstd_failed(code: usize) -> bool {
    // SAFETY: ZSTD_isError only inspects the number.
    unsafe { zstd_sys::ZSTD_isError(code) != 0 }
}

/// The largest frame a package of `len` bytes can become.
pub fn compress_bound(len: usize) -> usize {
    // SAFETY: ZSTD_compressBound only computes from the number.
    unsafe { zstd_sys::ZSTD_compressBound(len) }
}

/// One package as a zstd frame.
pub fn compress_package(plain: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; compress_bound(plain.len())];
    // SAFETY: both pointers come from live slices with the lengths passed alongside; zstd writes
    // at most `out.len()` bytes and reads exactly `plain.len()`.
    let written = unsafe {
        zstd_sys::ZSTD_compress(out.as_mut_ptr().cast(), out.len(), plain.as_ptr().cast(), plain.len(), LEVEL)
    };
    if zstd_failed(written) || written > out.len() {
        return Err("zstd compression failed".into());
    }
    out.truncate(written);
    Ok(out)
}

/// A frame back to exactly `plain_len` bytes; anything else is corruption.
pub fn decompress_package(frame: &[u8], plain_len: usize) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; plain_len];
    // SAFETY: as in `compress_package`; zstd refuses (an error code) a frame that would write
    // more than `out.len()` bytes.
    let written =
        unsafe { zstd_sys::ZSTD_decompress(out.as_mut_ptr().cast(), out.len(), frame.as_ptr().cast(), frame.len()) };
    if zstd_failed(written) || written != plain_len {
        return Err(format!("a compressed frame does not decompress to its {plain_len} bytes"));
    }
    Ok(out)
}

/// The geometry of a compressed segment.
#[derive(Debug, Clone)]
pub struct Frames {
    pub package_size: u64,
    pub plain_len: u64,
    pub sizes: Vec<u32>,
}

impl Frames {
    pub fn new(package_size: u32, plain_len: u64, sizes: Vec<u32>) -> GatewayResult<Frames> {
        let frames = Frames { package_size: u64::from(package_size), plain_len, sizes };
        if frames.package_size == 0 || frames.plain_len.div_ceil(frames.package_size) != frames.sizes.len() as u64 {
            return Err(GatewayError::Internal("compressed segment's frame index does not match its size".into()));
        }
        Ok(frames)
    }

    /// Bytes of all frames.
    pub fn compressed_len(&self) -> u64 {
        self.sizes.iter().map(|&s| u64::from(s)).sum()
    }

    pub fn plain_len_of(&self, index: u64) -> u64 {
        self.plain_len.saturating_sub(index * self.package_size).min(self.package_size)
    }

    /// The frames covering plaintext `range` (non-empty), their compressed bytes, and how many
    /// plaintext bytes of the first frame precede the range.
    pub fn covering(&self, range: &Range<u64>) -> (Range<u64>, Range<u64>, u64) {
        let first = range.start / self.package_size;
        let last = (range.end.max(range.start + 1) - 1) / self.package_size;
        let offset = |i: u64| self.sizes[..i as usize].iter().map(|&s| u64::from(s)).sum::<u64>();
        let bytes = offset(first)..offset(last + 1);
        (first..last + 1, bytes, range.start - first * self.package_size)
    }
}

struct Compressing {
    inner: BoxStream<'static, Result<Bytes, StdError>>,
    package_size: usize,
    buf: BytesMut,
    ended: bool,
    frames: SharedFrames,
}

/// Compresses `plain` into one frame per package, recording each frame's size in `frames`.
pub fn compress(
    plain: BoxStream<'static, Result<Bytes, StdError>>,
    package_size: u32,
    frames: SharedFrames,
) -> BoxStream<'static, Result<Bytes, StdError>> {
    let state =
        Compressing { inner: plain, package_size: package_size as usize, buf: BytesMut::new(), ended: false, frames };
    futures::stream::unfold(state, |mut s| async move {
        while !s.ended && s.buf.len() < s.package_size {
            match s.inner.next().await {
                Some(Ok(chunk)) => s.buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    s.ended = true;
                    s.buf.clear();
                    return Some((Err(e), s));
                }
                None => s.ended = true,
            }
        }
        if s.buf.is_empty() {
            return None;
        }
        let take = s.buf.len().min(s.package_size);
        let plain = s.buf.split_to(take);
        match compress_package(&plain) {
            Ok(frame) => {
                s.frames.lock().unwrap_or_else(PoisonError::into_inner).push(frame.len() as u32);
                Some((Ok(Bytes::from(frame)), s))
            }
            Err(e) => {
                s.ended = true;
                s.buf.clear();
                Some((Err(e.into()), s))
            }
        }
    })
    .boxed()
}

struct Decompressing<S> {
    inner: S,
    frames: Frames,
    buf: BytesMut,
    index: u64,
    end: u64,
    skip: usize,
    remaining: u64,
}

/// Decompresses the frames `range` (as `Frames::covering` gave them, with their compressed
/// bytes as `compressed`) and yields `len` plaintext bytes from `skip` into the first.
pub fn decompress<S>(
    compressed: S,
    frames: Frames,
    range: Range<u64>,
    skip: u64,
    len: u64,
) -> impl Stream<Item = GatewayResult<Bytes>> + Send + 'static
where
    S: Stream<Item = GatewayResult<Bytes>> + Send + Unpin + 'static,
{
    let state = Decompressing {
        inner: compressed,
        frames,
        buf: BytesMut::new(),
        index: range.start,
        end: range.end,
        skip: skip as usize,
        remaining: len,
    };
    futures::stream::unfold(state, |mut s| async move {
        if s.remaining == 0 || s.index >= s.end {
            return None;
        }
        let want = *s.frames.sizes.get(s.index as usize)? as usize;
        while s.buf.len() < want {
            match s.inner.next().await {
                Some(Ok(chunk)) => s.buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    s.remaining = 0;
                    return Some((Err(e), s));
                }
                None => {
                    s.remaining = 0;
                    let e = GatewayError::Internal(format!("compressed data ends inside frame {}", s.index));
                    return Some((Err(e), s));
                }
            }
        }
        let frame = s.buf.split_to(want);
        let plain = match decompress_package(&frame, s.frames.plain_len_of(s.index) as usize) {
            Ok(plain) => Bytes::from(plain),
            Err(e) => {
                s.remaining = 0;
                tracing::error!(error = %e, "stored compressed data is corrupt");
                return Some((Err(GatewayError::Internal(e)), s));
            }
        };
        let start = s.skip.min(plain.len());
        s.skip = 0;
        let take = (plain.len() - start).min(usize::try_from(s.remaining).unwrap_or(usize::MAX));
        s.remaining -= take as u64;
        s.index += 1;
        Some((Ok(plain.slice(start..start + take)), s))
    })
}

/// Whether `content_type` is one of `patterns` (`type/subtype`, or `type/*`), parameters and
/// case aside.
pub fn matches_content_type(patterns: &[String], content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    patterns.iter().any(|p| {
        let p = p.trim().to_ascii_lowercase();
        match p.strip_suffix("/*") {
            Some(kind) => media.split('/').next() == Some(kind),
            None => p == media,
        }
    })
}

/// Content types compressed when a bucket's compression names none.
pub const DEFAULT_CONTENT_TYPES: &[&str] = &[
    "text/*",
    "application/json",
    "application/x-ndjson",
    "application/xml",
    "application/javascript",
    "application/x-javascript",
    "application/yaml",
    "application/x-yaml",
    "application/toml",
    "application/csv",
    "application/x-sh",
    "image/svg+xml",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize) -> Vec<u8> {
        (0..n).flat_map(|i| format!("line {i} of a compressible text\n").into_bytes()).take(n).collect()
    }

    async fn stored(plain: &[u8], package: u32, chunk: usize) -> (Vec<u8>, Vec<u32>) {
        let frames = SharedFrames::default();
        let chunks: Vec<Result<Bytes, StdError>> =
            plain.chunks(chunk.max(1)).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        let out: Vec<Bytes> = compress(futures::stream::iter(chunks).boxed(), package, frames.clone())
            .map(|r| r.unwrap())
            .collect()
            .await;
        (out.concat(), frames_of(&frames))
    }

    #[tokio::test]
    async fn round_trip_and_every_range_boundary() {
        for n in [0usize, 1, 99, 100, 101, 350] {
            let plain = text(n);
            let (bytes, sizes) = stored(&plain, 100, 33).await;
            let frames = Frames::new(100, n as u64, sizes).unwrap();
            assert_eq!(frames.compressed_len(), bytes.len() as u64);
            for a in 0..n {
                for b in a + 1..=n {
                    let (range, span, skip) = frames.covering(&(a as u64..b as u64));
                    let input = futures::stream::iter(vec![Ok(Bytes::copy_from_slice(
                        &bytes[span.start as usize..span.end as usize],
                    ))]);
                    let out: Vec<Bytes> = decompress(input, frames.clone(), range, skip, (b - a) as u64)
                        .map(|r| r.unwrap())
                        .collect()
                        .await;
                    assert_eq!(out.concat(), &plain[a..b], "size {n}, range {a}..{b}");
                }
            }
        }
    }

    #[tokio::test]
    async fn compressible_text_shrinks_and_corruption_is_refused() {
        let plain = text(1 << 20);
        let (bytes, sizes) = stored(&plain, PACKAGE_SIZE, 10_000).await;
        assert!(bytes.len() < plain.len() / 4, "{} bytes of text compressed to {}", plain.len(), bytes.len());
        let frames = Frames::new(PACKAGE_SIZE, plain.len() as u64, sizes.clone()).unwrap();
        let first = sizes[0] as usize;
        assert!(decompress_package(&bytes[..first], PACKAGE_SIZE as usize).is_ok());
        assert!(decompress_package(&bytes[..first], PACKAGE_SIZE as usize - 1).is_err());
        assert!(decompress_package(&bytes[..first - 1], PACKAGE_SIZE as usize).is_err());
        assert!(Frames::new(PACKAGE_SIZE, plain.len() as u64 + PACKAGE_SIZE as u64, sizes).is_err());
        assert_eq!(frames.covering(&(0..1)).1, 0..first as u64);
    }

    #[test]
    fn content_types_match() {
        let patterns: Vec<String> = DEFAULT_CONTENT_TYPES.iter().map(|s| s.to_string()).collect();
        assert!(matches_content_type(&patterns, "text/plain; charset=utf-8"));
        assert!(matches_content_type(&patterns, "Application/JSON"));
        assert!(!matches_content_type(&patterns, "image/png"));
        assert!(!matches_content_type(&patterns, "application/octet-stream"));
        assert!(!matches_content_type(&patterns, ""));
    }
}
