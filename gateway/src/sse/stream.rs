//! Streaming encryption and decryption of segments in packages (see `package`). Memory per
//! stream is one package plus one incoming chunk.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};

use super::package::{Geometry, PackageError, PackageKey, TAG_LEN};
use crate::error::{GatewayError, GatewayResult};

type StdError = Box<dyn std::error::Error + Send + Sync>;

/// What passed through an encrypting stream, in plaintext.
#[derive(Default)]
pub struct PlainStats {
    pub len: u64,
    pub md5: Md5,
}

pub type SharedStats = Arc<Mutex<PlainStats>>;

pub fn lock(stats: &SharedStats) -> std::sync::MutexGuard<'_, PlainStats> {
    // Counters only: a panicking holder cannot leave them inconsistent in a way that matters.
    stats.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Sealing {
    inner: BoxStream<'static, Result<Bytes, StdError>>,
    key: PackageKey,
    package_size: usize,
    buf: BytesMut,
    index: u64,
    ended: bool,
    stats: SharedStats,
}

/// Encrypts `plain` into packages of `package_size`. A package is only sealed once a byte beyond
/// it arrived (or the body ended), since the last one is sealed as such.
pub fn encrypt(
    plain: BoxStream<'static, Result<Bytes, StdError>>,
    key: PackageKey,
    package_size: u32,
    stats: SharedStats,
) -> BoxStream<'static, Result<Bytes, StdError>> {
    let state = Sealing {
        inner: plain,
        key,
        package_size: package_size as usize,
        buf: BytesMut::new(),
        index: 0,
        ended: false,
        stats,
    };
    futures::stream::unfold(state, |mut s| async move {
        while !s.ended && s.buf.len() <= s.package_size {
            match s.inner.next().await {
                Some(Ok(chunk)) => {
                    {
                        let mut stats = lock(&s.stats);
                        stats.len += chunk.len() as u64;
                        stats.md5.update(&chunk);
                    }
                    s.buf.extend_from_slice(&chunk);
                }
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
        let last = s.ended && s.buf.len() <= s.package_size;
        let take = s.buf.len().min(s.package_size);
        let plain = s.buf.split_to(take);
        let sealed = s.key.seal(s.index, last, &plain);
        s.index += 1;
        Some((Ok(Bytes::from(sealed)), s))
    })
    .boxed()
}

struct Opening<S> {
    inner: S,
    key: PackageKey,
    geometry: Geometry,
    buf: BytesMut,
    index: u64,
    end: u64,
    skip: usize,
    remaining: u64,
}

/// Decrypts the stored bytes of packages `packages` of a segment (as `Geometry::covering` gave
/// them) and yields plaintext from `skip` bytes into the first package, `len` bytes in all.
pub fn decrypt<S>(
    stored: S,
    key: PackageKey,
    geometry: Geometry,
    packages: std::ops::Range<u64>,
    skip: u64,
    len: u64,
) -> impl Stream<Item = GatewayResult<Bytes>> + Send + 'static
where
    S: Stream<Item = GatewayResult<Bytes>> + Send + Unpin + 'static,
{
    let state = Opening {
        inner: stored,
        key,
        geometry,
        buf: BytesMut::new(),
        index: packages.start,
        end: packages.end,
        skip: skip as usize,
        remaining: len,
    };
    futures::stream::unfold(state, |mut s| async move {
        if s.remaining == 0 || s.index >= s.end {
            return None;
        }
        let want = s.geometry.plain_len_of(s.index) as usize + TAG_LEN;
        while s.buf.len() < want {
            match s.inner.next().await {
                Some(Ok(chunk)) => s.buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    s.remaining = 0;
                    return Some((Err(e), s));
                }
                None => {
                    s.remaining = 0;
                    let e = PackageError::Truncated(s.index);
                    return Some((Err(GatewayError::Internal(e.to_string())), s));
                }
            }
        }
        let mut sealed = s.buf.split_to(want);
        let last = s.index + 1 == s.geometry.packages();
        let opened = match s.key.open(s.index, last, &mut sealed) {
            Ok(plain) => plain.len(),
            Err(e) => {
                s.remaining = 0;
                tracing::error!(error = %e, "stored encrypted data does not authenticate");
                return Some((Err(GatewayError::Internal(e.to_string())), s));
            }
        };
        sealed.truncate(opened);
        let mut plain = sealed.freeze();
        let start = s.skip.min(plain.len());
        s.skip = 0;
        let take = (plain.len() - start).min(usize::try_from(s.remaining).unwrap_or(usize::MAX));
        plain = plain.slice(start..start + take);
        s.remaining -= take as u64;
        s.index += 1;
        Some((Ok(plain), s))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(data: &[u8], size: usize) -> Vec<Bytes> {
        data.chunks(size.max(1)).map(Bytes::copy_from_slice).collect()
    }

    #[tokio::test]
    async fn streams_round_trip_over_any_chunking() {
        let plain: Vec<u8> = (0..1000u32).map(|i| (i % 253) as u8).collect();
        for n in [0usize, 1, 63, 64, 65, 200, 1000] {
            for chunk in [1usize, 7, 64, 500] {
                let key = PackageKey::new(&[3; 32], &[9, 9, 9, 9]).unwrap();
                let stats = SharedStats::default();
                let input = futures::stream::iter(chunks(&plain[..n], chunk).into_iter().map(Ok)).boxed();
                let sealed: Vec<Bytes> = encrypt(input, key, 64, stats.clone()).map(|r| r.unwrap()).collect().await;
                let stored: Vec<u8> = sealed.concat();
                let g = Geometry::new(64, n as u64).unwrap();
                assert_eq!(stored.len() as u64, g.stored_len());
                assert_eq!(lock(&stats).len, n as u64);
                for (a, b) in [(0, n), (n / 3, n), (0, n / 2), (n.saturating_sub(1), n)] {
                    if a >= b {
                        continue;
                    }
                    let (packages, range, skip) = g.covering(&(a as u64..b as u64));
                    let slice = &stored[range.start as usize..range.end as usize];
                    let input = futures::stream::iter(chunks(slice, chunk).into_iter().map(Ok));
                    let key = PackageKey::new(&[3; 32], &[9, 9, 9, 9]).unwrap();
                    let out: Vec<Bytes> =
                        decrypt(input, key, g, packages, skip, (b - a) as u64).map(|r| r.unwrap()).collect().await;
                    assert_eq!(out.concat(), &plain[a..b], "size {n}, chunk {chunk}, range {a}..{b}");
                }
            }
        }
    }

    #[tokio::test]
    async fn truncated_or_tampered_streams_fail() {
        let plain = vec![5u8; 200];
        let key = PackageKey::new(&[3; 32], &[0; 4]).unwrap();
        let input = futures::stream::iter(vec![Ok(Bytes::from(plain.clone()))]).boxed();
        let stored: Vec<u8> =
            encrypt(input, key, 64, SharedStats::default()).map(|r| r.unwrap()).collect::<Vec<_>>().await.concat();
        let g = Geometry::new(64, 200).unwrap();
        let open = |bytes: Vec<u8>| {
            let key = PackageKey::new(&[3; 32], &[0; 4]).unwrap();
            decrypt(futures::stream::iter(vec![Ok(Bytes::from(bytes))]), key, g, 0..4, 0, 200)
        };
        let results: Vec<_> = open(stored[..stored.len() - 1].to_vec()).collect().await;
        assert!(results.last().unwrap().is_err());
        let mut bad = stored.clone();
        bad[100] ^= 0x80;
        let results: Vec<_> = open(bad).collect().await;
        assert!(results.iter().any(|r| r.is_err()));
    }
}
