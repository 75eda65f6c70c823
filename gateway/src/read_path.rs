//! GET: object segments + byte range → a stream of bytes, with bounded memory.
//!
//! Stripes are fetched in order with at most `stripes_in_flight` read ahead. For each stripe only
//! the data shards overlapping the range are read (no decoding: the code is systematic). If any
//! of them fails — node down, shard missing, a block failing its checksum — the stripe is read
//! whole from every reachable shard and the missing data shards are reconstructed.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use coffer_proto::blobnode_client::NodeState;
use coffer_proto::pb::blobnode::ShardId;
use coffer_proto::pb::metadata::{DataLayout, Segment};
use futures::{Stream, StreamExt, TryStreamExt, stream};
use tracing::Instrument;

use crate::dataplane::DataPlane;
use crate::erasure::{Geometry, reconstruct_data};
use crate::error::{GatewayError, GatewayResult};
use crate::survivors;

/// One unit of reading: a slice of inline bytes, or a byte range within one stripe.
enum Piece {
    Inline(Bytes),
    Stripe { layout: Arc<DataLayout>, stripe: u64, range: Range<u64> },
}

/// The pieces covering `range` of the concatenated segments, produced lazily so a huge object
/// never materialises a huge list.
fn pieces(segments: Vec<Segment>, range: Range<u64>) -> impl Iterator<Item = Piece> + Send {
    let mut offset = 0u64;
    segments.into_iter().flat_map(move |segment| {
        let start = offset;
        offset += segment.size;
        let lo = range.start.max(start);
        let hi = range.end.min(start + segment.size);
        let wanted = (lo < hi).then(|| (lo - start)..(hi - start));
        let iter: Box<dyn Iterator<Item = Piece> + Send> = match (wanted, segment.layout) {
            (None, _) => Box::new(std::iter::empty()),
            (Some(r), None) => {
                let data = Bytes::from(segment.inline_data);
                let end = (r.end as usize).min(data.len());
                let start = (r.start as usize).min(end);
                Box::new(std::iter::once(Piece::Inline(data.slice(start..end))))
            }
            (Some(r), Some(layout)) => {
                let layout = Arc::new(layout);
                let g = Geometry::of(&layout);
                let first = r.start / g.stripe_size;
                let last = (r.end - 1) / g.stripe_size;
                Box::new((first..=last).map(move |stripe| {
                    let stripe_start = stripe * g.stripe_size;
                    let lo = r.start.max(stripe_start) - stripe_start;
                    let hi = r.end.min(stripe_start + g.stripe_len(stripe)) - stripe_start;
                    Piece::Stripe { layout: layout.clone(), stripe, range: lo..hi }
                }))
            }
        };
        iter
    })
}

/// Pause before the single retry of a stripe that could not be read or reconstructed.
const DEGRADED_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

/// Chunks a GET body may hold between the reader task and the HTTP connection.
const BODY_CHANNEL_CHUNKS: usize = 4;

/// A GET body as handed to the HTTP layer: bytes already at hand (an object stored inline in its
/// metadata record), or a channel fed by a reader task.
pub enum BodyStream {
    /// No task and no channel: the connection writes these with the response headers (one
    /// writev for a small object instead of a hand-off to a task and a second write).
    Ready(std::vec::IntoIter<Bytes>),
    Channel(tokio_stream::wrappers::ReceiverStream<GatewayResult<Bytes>>),
}

impl BodyStream {
    /// A body fed through a bounded channel by `body`, driven by its own task: the read-ahead
    /// keeps going while the connection writes, and the stream handed on is `Sync`. Dropping
    /// the stream (client gone) stops the task at its next send.
    pub fn spawn(body: impl Stream<Item = GatewayResult<Bytes>> + Send + 'static) -> BodyStream {
        let (tx, rx) = tokio::sync::mpsc::channel(BODY_CHANNEL_CHUNKS);
        tokio::spawn(
            async move {
                futures::pin_mut!(body);
                while let Some(item) = body.next().await {
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        break;
                    }
                }
            }
            .in_current_span(),
        );
        BodyStream::Channel(tokio_stream::wrappers::ReceiverStream::new(rx))
    }
}

impl Stream for BodyStream {
    type Item = GatewayResult<Bytes>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match self.get_mut() {
            BodyStream::Ready(chunks) => std::task::Poll::Ready(chunks.next().map(Ok)),
            BodyStream::Channel(rx) => rx.poll_next_unpin(cx),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            BodyStream::Ready(chunks) => chunks.size_hint(),
            BodyStream::Channel(rx) => rx.size_hint(),
        }
    }
}

impl DataPlane {
    /// Like [`DataPlane::read`], but ready for the HTTP layer: inline bytes as they are, stripes
    /// through a reader task (see [`BodyStream`]).
    pub fn read_body(&self, segments: Vec<Segment>, range: Range<u64>) -> BodyStream {
        if segments.iter().all(|segment| segment.layout.is_none()) {
            let chunks: Vec<Bytes> = pieces(segments, range)
                .filter_map(|piece| match piece {
                    Piece::Inline(bytes) => Some(bytes),
                    // Not reached: no segment has a layout.
                    Piece::Stripe { .. } => None,
                })
                .filter(|bytes| !bytes.is_empty())
                .collect();
            return BodyStream::Ready(chunks.into_iter());
        }
        BodyStream::spawn(self.read(segments, range))
    }

    pub fn read(
        &self,
        segments: Vec<Segment>,
        range: Range<u64>,
    ) -> impl Stream<Item = GatewayResult<Bytes>> + Send + 'static {
        let plane = self.clone();
        let read_ahead = self.stripes_in_flight.max(1);
        stream::iter(pieces(segments, range))
            .map(move |piece| {
                let plane = plane.clone();
                async move {
                    match piece {
                        Piece::Inline(bytes) => Ok(vec![bytes]),
                        Piece::Stripe { layout, stripe, range } => {
                            let span = tracing::info_span!("stripe.read", stripe);
                            plane.read_stripe(&layout, stripe, range).instrument(span).await
                        }
                    }
                }
            })
            .buffered(read_ahead)
            .map_ok(|parts| stream::iter(parts.into_iter().map(Ok)))
            .try_flatten()
    }

    /// Reads `range` (relative to the stripe) of one stripe; returns it as a list of slices.
    ///
    /// The data shards are read first. If they fail, or have not all answered after
    /// `hedge_after` (a slow disk or a node about to be declared down), every shard is read as
    /// well and the stripe is decoded from the first K that arrive; whichever way finishes first
    /// with the bytes wins.
    async fn read_stripe(&self, layout: &DataLayout, stripe: u64, range: Range<u64>) -> GatewayResult<Vec<Bytes>> {
        self.cluster.ensure_known(layout.shards.iter().map(|s| s.node_id.as_str())).await;
        let fast = self.read_stripe_fast(layout, stripe, range.clone());
        tokio::pin!(fast);
        let early = tokio::select! {
            result = &mut fast => Some(result),
            _ = tokio::time::sleep(self.hedge_after) => None,
        };
        let result = match early {
            Some(Ok(parts)) => return Ok(parts),
            Some(Err(e)) => {
                tracing::warn!(stripe, error = %e, "degraded read: reconstructing stripe");
                self.read_stripe_degraded(layout, stripe, range.clone()).await
            }
            None => {
                tracing::debug!(stripe, "shard reads are late; hedging with a decoding read");
                let degraded = self.read_stripe_degraded(layout, stripe, range.clone());
                tokio::pin!(degraded);
                tokio::select! {
                    result = &mut fast => match result {
                        Ok(parts) => Ok(parts),
                        Err(_) => degraded.await,
                    },
                    result = &mut degraded => match result {
                        Ok(parts) => Ok(parts),
                        Err(_) => fast.await,
                    },
                }
            }
        };
        match result {
            Ok(parts) => Ok(parts),
            // One more attempt after a pause rides out a transient overload or a node restarting;
            // more would only delay the error the client must see.
            Err(e) => {
                tracing::warn!(stripe, error = %e, "stripe unreadable; retrying once");
                tokio::time::sleep(DEGRADED_RETRY_DELAY).await;
                self.read_stripe_degraded(layout, stripe, range).await
            }
        }
    }

    fn shard_id(layout: &DataLayout, stripe: u64, index: usize) -> ShardId {
        ShardId { data_id: layout.data_id.clone(), stripe: stripe as u32, index: index as u32 }
    }

    /// Reads just the byte ranges of the data shards that overlap `range`.
    async fn read_stripe_fast(&self, layout: &DataLayout, stripe: u64, range: Range<u64>) -> GatewayResult<Vec<Bytes>> {
        let g = Geometry::of(layout);
        let shard_len = g.shard_len(g.stripe_len(stripe));
        let first = (range.start / shard_len) as usize;
        let last = ((range.end - 1) / shard_len) as usize;
        let reads = (first..=last).map(|index| {
            let shard_start = index as u64 * shard_len;
            let lo = range.start.max(shard_start) - shard_start;
            let hi = range.end.min(shard_start + shard_len) - shard_start;
            let location = &layout.shards[index];
            async move {
                // A node known to be down is not worth a timeout; go straight to reconstruction.
                if self.blobnodes.state(&location.node_id) == NodeState::Down {
                    return Err(GatewayError::Internal(format!("blobnode {} is down", location.node_id)));
                }
                let id = Self::shard_id(layout, stripe, index);
                Ok(self.blobnodes.get_shard(&location.node_id, &location.disk_id, id, lo, hi - lo).await?)
            }
        });
        futures::future::try_join_all(reads).await
    }

    /// Reads shards of the stripe in full, all at once, and rebuilds the data shards from the first
    /// K that arrive intact; the slower reads are dropped.
    async fn read_stripe_degraded(
        &self,
        layout: &DataLayout,
        stripe: u64,
        range: Range<u64>,
    ) -> GatewayResult<Vec<Bytes>> {
        let g = Geometry::of(layout);
        let shard_len = g.shard_len(g.stripe_len(stripe));
        let shards = survivors::read_first_k(&self.blobnodes, layout, stripe, None).await.shards;
        let span = tracing::info_span!("ec.decode", stripe);
        let data = tokio::task::spawn_blocking(move || span.in_scope(|| reconstruct_data(&g, stripe, shards)))
            .await
            .map_err(|e| GatewayError::Internal(format!("decoder task failed: {e}")))??;
        let mut parts = Vec::new();
        for (index, shard) in data.into_iter().enumerate() {
            let shard_start = index as u64 * shard_len;
            let lo = range.start.max(shard_start);
            let hi = range.end.min(shard_start + shard_len);
            if lo < hi {
                parts.push(shard.slice((lo - shard_start) as usize..(hi - shard_start) as usize));
            }
        }
        Ok(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: u64, stripe_size: u64) -> DataLayout {
        DataLayout { data_id: vec![1], data_shards: 4, parity_shards: 2, stripe_size, size, shards: Vec::new() }
    }

    fn describe(segments: Vec<Segment>, range: Range<u64>) -> Vec<(String, u64, u64)> {
        pieces(segments, range)
            .map(|p| match p {
                Piece::Inline(b) => ("inline".to_string(), 0, b.len() as u64),
                Piece::Stripe { stripe, range, .. } => (format!("stripe{stripe}"), range.start, range.end),
            })
            .collect()
    }

    #[test]
    fn ranges_map_to_stripes() {
        let seg = Segment { size: 250, layout: Some(layout(250, 100)), ..Default::default() };
        assert_eq!(
            describe(vec![seg.clone()], 0..250),
            vec![("stripe0".into(), 0, 100), ("stripe1".into(), 0, 100), ("stripe2".into(), 0, 50)]
        );
        assert_eq!(describe(vec![seg.clone()], 99..101), vec![("stripe0".into(), 99, 100), ("stripe1".into(), 0, 1)]);
        assert_eq!(describe(vec![seg], 200..201), vec![("stripe2".into(), 0, 1)]);
    }

    #[test]
    fn ranges_cross_segments() {
        let inline = Segment { size: 10, inline_data: vec![7; 10], ..Default::default() };
        let striped = Segment { size: 100, layout: Some(layout(100, 64)), ..Default::default() };
        assert_eq!(
            describe(vec![inline, striped], 5..80),
            vec![("inline".into(), 0, 5), ("stripe0".into(), 0, 64), ("stripe1".into(), 0, 6)]
        );
    }
}
