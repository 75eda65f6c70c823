//! The two threads per disk that write: group commit of puts, durable deletes, chunk roll-over and retirement.
//!
//! The **writer** takes jobs in arrival order; consecutive puts form one batch (at most [`MAX_BATCH_RECORDS`]
//! records and [`MAX_BATCH_BYTES`] bytes, lingering `--commit-window` for more once puts arrive together). It
//! places each put as it arrives, back to back in the active chunk (shards of up to 64 KiB in packs that share one
//! header block, larger ones as records of their own), and copies it into a physically contiguous staging buffer
//! (see `staging`) while the batch fits there: the copying overlaps the wait for the last writers, and when the
//! batch closes only its pack header is left to copy before the write (4 KiB × 32: +5 %, 8 alternating rounds).
//! A record whose image lies in huge pages (large shards' buffers come from huge-page slabs, see `slab`) is not
//! copied: the same write takes it from where it is, between the staged runs around it (1 MiB × 32: 86–90 % of
//! ceiling (b) against 73–82 % staged). Each batch is made durable with one fdatasync, then its puts are answered
//! and indexed.
//!
//! Only full batches stream ahead of their sync: they go to the **syncer** thread, which syncs them in order
//! (merging those that queued meanwhile) while the writer collects the next. A batch with room left waits for its
//! own sync, so the puts it answers (and everyone else who arrived meanwhile) share the next fdatasync:
//! overlapping small batches splits the writers into two half-size groups that each pay a write and a flush, and
//! a disk that serialises writes and flushes (this VM's virtio disk does) gains nothing from the overlap. Such a
//! batch is synced by the writer itself (handing it over would only add two thread switches to every cycle),
//! which answers its plain puts and keeps the rest (index lookups and write, relocations' answers, freeing) until
//! the writers it answered are back with their next batch: then the syncer thread does it during that batch's
//! write and sync, when the CPU is idle, instead of competing with the writers while they prepare their puts.
//!
//! Plain puts are answered as soon as their sync returns, before their index write; until it lands, reads find
//! them among the engine's synced locations. Index work runs on the syncer thread in batch order, so each chunk's
//! `indexed_end` only grows past indexed records; once the disk is faulty no index write is made at all, and a
//! restart re-indexes the answered puts from the chunk files. Deletes pass through the writer to the syncer in
//! order (after any index work held back), so a delete never overtakes a put queued before it.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::aligned::{AlignedBuf, align_up};
use crate::chunk::{CHUNK_HEADER_BYTES, ChunkFile};
use crate::engine::{DiskState, Job, JobKind, Shared};
use crate::error::BlobnodeError;
use crate::index::{ChunkStats, IndexBatch, Location};
use crate::key::ShardKey;
use crate::pack::{self, PackBuilder};
use crate::record::{HEADER_BYTES, SealedShard};
use crate::staging::StagingBuffer;

pub const MAX_BATCH_RECORDS: usize = 256;
/// Two staging windows: a batch of large shards this big is "full" and streams to the syncer, so the disk writes
/// the next batch while the last one flushes. Against 64 MiB (1 MiB shards, 32 writers, 5 alternating rounds):
/// 427 MiB/s against 414 on average, p99 about 95 ms against 140.
pub const MAX_BATCH_BYTES: u64 = 8 << 20;
/// Written batches waiting for the syncer. Their memory is bounded by the node's I/O budget (a put holds its
/// permit until answered); the count bounds how far the writer runs ahead of durability.
const SYNC_QUEUE: usize = 4;
/// At most this many written batches share one fdatasync.
const MAX_MERGED_BATCHES: usize = 8;

type Reply = oneshot::Sender<Result<(), BlobnodeError>>;

/// The chunk new records go to.
pub struct Active {
    pub chunk: Arc<ChunkFile>,
    /// Where the next record goes: everything below is written (or garbage from a failed write).
    pub end: u64,
}

/// What recovery hands the committer: the writer's position and the index's accounting.
pub struct WriterState {
    pub active: Option<Active>,
    pub stats: HashMap<u32, ChunkStats>,
    pub next_seq: u64,
    pub next_chunk: u32,
}

pub struct Committer {
    shared: Arc<Shared>,
    state: WriterState,
    staging: StagingBuffer,
    /// Jobs taken from the queue so far: with the doorbell's count, how many are waiting in it.
    taken: u64,
}

struct PlacedPut {
    shard: SealedShard,
    expect: Option<Location>,
    location: Location,
    /// Taken when answered.
    reply: Option<Reply>,
}

impl PlacedPut {
    /// A put from a client, as opposed to a relocation that only counts if the shard is still where it was read.
    fn is_plain(&self) -> bool {
        self.expect.is_none()
    }
}

/// A pack whose header is still collecting entries, and where it goes.
struct OpenPack {
    builder: PackBuilder,
    /// Its header's place in the batch's pieces.
    piece: usize,
    chunk: u32,
    offset: u64,
}

/// A batch as its puts arrive: placed, and staged while it fits one window of one chunk.
struct Placement {
    placed: Vec<PlacedPut>,
    pieces: Vec<Piece>,
    pack: Option<OpenPack>,
    /// The leading pieces ready for one write: copied (or, for a pack header not sealed yet, with room kept) into
    /// the staging buffer back to back, or written from where they are (records in huge pages); and the length of
    /// what is in the staging buffer.
    staged: usize,
    staged_bytes: usize,
    /// Why the disk took no writes when the batch began: its puts are refused, nothing is placed.
    refusal: Option<BlobnodeError>,
    /// The first placement that failed: no more puts are placed, and the batch is never written.
    failure: Option<BlobnodeError>,
    /// Puts answered with the refusal or failure rather than placed.
    refused: Vec<Reply>,
}

impl Placement {
    fn new(refusal: Option<BlobnodeError>) -> Self {
        Placement {
            placed: Vec::with_capacity(32),
            pieces: Vec::with_capacity(33),
            pack: None,
            staged: 0,
            staged_bytes: 0,
            refusal,
            failure: None,
            refused: Vec::new(),
        }
    }

    /// Puts taken into the batch, placed or refused.
    fn len(&self) -> usize {
        self.placed.len() + self.refused.len()
    }
}

/// One contiguous run of bytes a batch writes.
struct Piece {
    chunk: u32,
    offset: u64,
    bytes: PieceBytes,
    /// Where it is staged in the staging window, if it is (a pack header not sealed yet has its room kept there).
    staged_at: Option<usize>,
}

enum PieceBytes {
    /// The whole image (header block and data) of the placed put at this position.
    Record(usize),
    /// Only the data of the placed put at this position: its header is an entry in a pack header.
    PackedData(usize),
    /// A pack header, sealed once its last entry is placed.
    PackHeader(Option<AlignedBuf>),
}

impl Piece {
    fn new(chunk: u32, offset: u64, bytes: PieceBytes) -> Self {
        Piece { chunk, offset, bytes, staged_at: None }
    }

    /// Whether the device can take it from where it is, as from the staging buffer: a record in huge pages.
    fn direct(&self, placed: &[PlacedPut]) -> bool {
        matches!(self.bytes, PieceBytes::Record(i) if placed[i].shard.image.huge_backed())
    }

    /// None for a pack header not sealed yet.
    fn bytes<'a>(&'a self, placed: &'a [PlacedPut]) -> Option<&'a [u8]> {
        match &self.bytes {
            PieceBytes::Record(i) => Some(&placed[*i].shard.image[..]),
            PieceBytes::PackedData(i) => Some(&placed[*i].shard.image[HEADER_BYTES..]),
            PieceBytes::PackHeader(block) => block.as_deref(),
        }
    }
}

/// Where a run of a batch's write comes from.
enum Source<'a> {
    /// This range of the staging window.
    Staged(Range<usize>),
    /// A record's own memory, in huge pages.
    Direct(&'a [u8]),
}

/// A batch on disk but not yet synced, with what the syncer needs to account for it.
struct WrittenBatch {
    placed: Vec<PlacedPut>,
    chunks: Vec<Arc<ChunkFile>>,
    /// The writer's active chunk after this batch.
    active: Option<u32>,
    next_seq: u64,
}

impl WrittenBatch {
    /// Appends a later batch, so one fdatasync covers both.
    fn absorb(&mut self, later: WrittenBatch) {
        self.placed.extend(later.placed);
        for chunk in later.chunks {
            if !self.chunks.iter().any(|c| c.id() == chunk.id()) {
                self.chunks.push(chunk);
            }
        }
        self.active = later.active;
        self.next_seq = later.next_seq;
    }
}

enum SyncJob {
    /// Written, to be synced, answered and indexed.
    Batch(WrittenBatch),
    /// Synced by the writer and its plain puts answered: the index work is left.
    Index(WrittenBatch),
    Delete {
        data_id: Vec<u8>,
        reply: Reply,
    },
}

impl Committer {
    pub fn new(shared: Arc<Shared>, state: WriterState) -> Committer {
        Committer { shared, state, staging: StagingBuffer::new(), taken: 0 }
    }

    /// Runs the writer on this thread and the syncer on another until the job queue closes.
    pub fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        // The default 50 µs timer slack would stretch every linger deadline; this thread sleeps for microseconds.
        // SAFETY: prctl(PR_SET_TIMERSLACK) takes plain integers and only affects the calling thread.
        unsafe {
            libc::prctl(
                libc::PR_SET_TIMERSLACK,
                1 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            );
        }
        self.shared.doorbell.attach_writer();
        let (to_syncer, from_writer) = std::sync::mpsc::sync_channel::<SyncJob>(SYNC_QUEUE);
        let mut syncer = Syncer {
            shared: Arc::clone(&self.shared),
            stats: std::mem::take(&mut self.state.stats),
            writer_chunk: None,
        };
        let name = format!("sync-{}", &self.shared.disk.id()[..8.min(self.shared.disk.id().len())]);
        let spawned = std::thread::Builder::new().name(name).spawn(move || run_syncer(&mut syncer, from_writer));
        let handle = match spawned {
            Ok(handle) => handle,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the syncer thread; the disk takes no writes");
                self.shared.degrade(DiskState::Faulty, &e);
                return;
            }
        };
        let mut carried: Option<Job> = None;
        // How many puts tend to arrive together: the biggest recent batch, forgotten slowly (see below).
        let mut expected = 0usize;
        // The last batch this thread synced and answered, until its index work goes to the syncer thread.
        let mut unindexed: Option<WrittenBatch> = None;
        loop {
            let first = match carried.take() {
                Some(job) => job,
                None => match self.next_job(&mut rx, &mut unindexed, &to_syncer) {
                    Some(job) => job,
                    None => break,
                },
            };
            if !first.is_put() {
                self.hand_over_index(&mut unindexed, &to_syncer);
                let (payload, reply) = first.into_parts();
                if let JobKind::Delete { data_id } = payload
                    && let Err(std::sync::mpsc::SendError(job)) = to_syncer.send(SyncJob::Delete { data_id, reply })
                {
                    self.syncer_gone(job);
                }
                continue;
            }
            let mut bytes = first.put_bytes();
            let mut batch = Placement::new(self.shared.writable().err());
            self.place(&mut batch, first);
            // Linger only when puts have been arriving together (a lone writer must not pay the window), and only
            // until as many have queued up as usually come: then everyone who was going to come is here. The
            // expectation is the biggest recent batch rather than the last one: a batch that closed before a few
            // writers were back would otherwise lower the bar for the next, and batches would shrink for good.
            let lingering = expected > 1 && !self.shared.config.commit_window.is_zero();
            let deadline = Instant::now() + self.shared.config.commit_window;
            loop {
                let full = batch.len() >= MAX_BATCH_RECORDS || bytes >= MAX_BATCH_BYTES;
                match if full { Err(mpsc::error::TryRecvError::Empty) } else { self.try_take(&mut rx) } {
                    Ok(job) if job.is_put() => {
                        bytes += job.put_bytes();
                        self.place(&mut batch, job);
                        continue;
                    }
                    Ok(job) => {
                        carried = Some(job);
                        break;
                    }
                    Err(_) => {}
                }
                if full || !lingering || batch.len() >= expected || Instant::now() >= deadline {
                    break;
                }
                // Asleep until the put that completes the expected batch arrives (see `doorbell`).
                self.shared.doorbell.wait_for(self.taken + (expected - batch.len()) as u64, deadline);
            }
            expected = batch.len().max(expected - expected / 8);
            // The writers are all here: the last batch's index work now overlaps this one's write and sync rather
            // than competing with the writers for the CPU while they prepare their puts.
            self.hand_over_index(&mut unindexed, &to_syncer);
            let full = batch.len() >= MAX_BATCH_RECORDS || bytes >= MAX_BATCH_BYTES;
            let Some(written) = self.write_batch(batch) else { continue };
            if full {
                // Streams on: the syncer thread syncs it while the next one is collected and written.
                if let Err(std::sync::mpsc::SendError(job)) = to_syncer.send(SyncJob::Batch(written)) {
                    self.syncer_gone(job);
                }
                continue;
            }
            // A batch with room left waits for its sync (see the module docs), which this thread runs itself:
            // handing it over and waking up again would add two thread switches to every cycle of the writers it
            // answers.
            let Some(mut synced) = sync_batch(&self.shared, written) else { continue };
            answer_plain(&self.shared, &mut synced.placed);
            unindexed = Some(synced);
            if expected <= 1 {
                // A lone writer: nobody else is coming for the index work to wait for.
                self.hand_over_index(&mut unindexed, &to_syncer);
            }
        }
        self.hand_over_index(&mut unindexed, &to_syncer);
        drop(to_syncer);
        if handle.join().is_err() {
            tracing::error!(disk = %self.shared.disk.root().display(), "syncer thread panicked");
        }
    }

    /// The next job; None once the queue has closed. The last batch's index work waits for the writers it
    /// answered to send their next puts (at most one commit window), so that it runs during the next batch's
    /// write and sync; before this thread sleeps for longer, it hands that work over.
    fn next_job(
        &mut self,
        rx: &mut mpsc::Receiver<Job>,
        unindexed: &mut Option<WrittenBatch>,
        to_syncer: &std::sync::mpsc::SyncSender<SyncJob>,
    ) -> Option<Job> {
        if unindexed.is_some() {
            let deadline = Instant::now() + self.shared.config.commit_window;
            loop {
                match self.try_take(rx) {
                    Ok(job) => return Some(job),
                    Err(mpsc::error::TryRecvError::Empty) if Instant::now() < deadline => {
                        self.shared.doorbell.wait_for(self.taken + 1, deadline)
                    }
                    Err(_) => break,
                }
            }
            self.hand_over_index(unindexed, to_syncer);
        }
        let job = rx.blocking_recv();
        self.taken += u64::from(job.is_some());
        job
    }

    fn try_take(&mut self, rx: &mut mpsc::Receiver<Job>) -> Result<Job, mpsc::error::TryRecvError> {
        let job = rx.try_recv()?;
        self.taken += 1;
        Ok(job)
    }

    fn hand_over_index(&self, unindexed: &mut Option<WrittenBatch>, to_syncer: &std::sync::mpsc::SyncSender<SyncJob>) {
        if let Some(batch) = unindexed.take()
            && let Err(std::sync::mpsc::SendError(job)) = to_syncer.send(SyncJob::Index(batch))
        {
            self.syncer_gone(job);
        }
    }

    /// A job the syncer thread can no longer take. Puts already answered stay among the synced locations; the
    /// disk takes no more writes, so a restart re-indexes them from the chunk files.
    fn syncer_gone(&self, job: SyncJob) {
        let error = syncer_stopped();
        self.shared.degrade(DiskState::Faulty, &error);
        match job {
            SyncJob::Batch(batch) | SyncJob::Index(batch) => fail_all(batch.placed, &error),
            SyncJob::Delete { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }

    /// Gives a put its place and sequence number as it arrives, and stages its bytes while the batch fits the
    /// staging window: by the time the last writer is back, only the pack header is left to copy.
    fn place(&mut self, batch: &mut Placement, job: Job) {
        let (payload, reply) = job.into_parts();
        // Only puts are batched: the linger loop carries anything else over to the next round.
        let JobKind::Put { mut shard, expect } = payload else { return };
        if batch.refusal.is_some() || batch.failure.is_some() {
            batch.refused.push(reply);
            return;
        }
        match self.place_put(batch, &mut shard) {
            Ok((location, piece)) => {
                batch.placed.push(PlacedPut { shard, expect, location, reply: Some(reply) });
                batch.pieces.push(piece);
                self.stage_last(batch);
            }
            // At most an unsealed pack header is left behind: the batch is never written.
            Err(error) => {
                batch.failure = Some(error);
                batch.refused.push(reply);
            }
        }
    }

    /// The put's place and its piece, which refers to it as the next placed put. Small shards go into packs (see
    /// `pack`): one header block for a run of them instead of one each.
    fn place_put(
        &mut self,
        batch: &mut Placement,
        shard: &mut SealedShard,
    ) -> Result<(Location, Piece), BlobnodeError> {
        let seq = self.state.next_seq;
        self.state.next_seq += 1;
        let shard_len = shard.header.shard_len;
        Ok(if pack::packable(shard_len) {
            let data_len = align_up(shard_len);
            let joins = batch
                .pack
                .as_ref()
                .is_some_and(|open| open.builder.fits(&shard.header.key) && self.continues(open.chunk, data_len));
            if !joins {
                self.close_pack(batch)?;
                let active = self.room_for(HEADER_BYTES as u64 + data_len)?;
                let (chunk, offset) = (active.chunk.id(), active.end);
                active.end += HEADER_BYTES as u64;
                batch.pieces.push(Piece::new(chunk, offset, PieceBytes::PackHeader(None)));
                self.stage_last(batch);
                batch.pack =
                    Some(OpenPack { builder: PackBuilder::default(), piece: batch.pieces.len() - 1, chunk, offset });
            }
            let Some(open) = batch.pack.as_mut() else {
                return Err(BlobnodeError::Internal("no open pack after opening one".into()));
            };
            let active = self.room_for(data_len)?;
            if active.chunk.id() != open.chunk {
                // Room for the header and this shard was made together: a roll-over here is a bug.
                return Err(BlobnodeError::Internal("a pack's shard would land in another chunk".into()));
            }
            let data_at = active.end;
            active.end += data_len;
            shard.header.seq = seq;
            open.builder.push(&shard.header);
            let piece = Piece::new(open.chunk, data_at, PieceBytes::PackedData(batch.placed.len()));
            let offset = data_at - HEADER_BYTES as u64;
            (Location { chunk: open.chunk, offset, shard_len, seq, pack: Some(open.offset) }, piece)
        } else {
            self.close_pack(batch)?;
            let active = self.room_for(shard.header.record_bytes())?;
            let (chunk, offset) = (active.chunk.id(), active.end);
            active.end += shard.header.record_bytes();
            shard.stamp(self.shared.disk.seed(), seq)?;
            let piece = Piece::new(chunk, offset, PieceBytes::Record(batch.placed.len()));
            (Location { chunk, offset, shard_len, seq, pack: None }, piece)
        })
    }

    /// Copies the newest piece into the staging window, after the others, while every piece so far is there (or
    /// written from where it is: see [`Piece::direct`]); a pack header's place is kept free until it is sealed.
    fn stage_last(&mut self, batch: &mut Placement) {
        let last = batch.pieces.len().wrapping_sub(1);
        let (Some(piece), Some(first)) = (batch.pieces.get(last), batch.pieces.first()) else { return };
        // Pieces of one chunk follow each other on disk, so the staged ones make one contiguous write.
        if batch.staged != last || piece.chunk != first.chunk {
            return;
        }
        if piece.direct(&batch.placed) {
            batch.staged += 1;
            return;
        }
        let at = batch.staged_bytes;
        let staged = match piece.bytes(&batch.placed) {
            Some(bytes) => self.staging.stage(at, bytes).then_some(bytes.len()),
            None => StagingBuffer::fits(at, HEADER_BYTES).then_some(HEADER_BYTES),
        };
        if let Some(len) = staged {
            batch.pieces[last].staged_at = Some(at);
            batch.staged += 1;
            batch.staged_bytes += len;
        }
    }

    /// Seals the header of the pack being filled into its placeholder piece (and its staged place).
    fn close_pack(&mut self, batch: &mut Placement) -> Result<(), BlobnodeError> {
        let Some(open) = batch.pack.take() else { return Ok(()) };
        let block = open.builder.seal(self.shared.disk.seed()).map_err(BlobnodeError::Internal)?;
        if let Some(at) = batch.pieces[open.piece].staged_at
            && !self.staging.stage(at, &block)
        {
            return Err(BlobnodeError::Internal("a staged pack header fell outside the staging buffer".into()));
        }
        batch.pieces[open.piece].bytes = PieceBytes::PackHeader(Some(block));
        Ok(())
    }

    /// Writes a placed batch: its staged run with one write, anything after it through the staging buffer window by
    /// window. None when it failed (its puts are answered here).
    fn write_batch(&mut self, mut batch: Placement) -> Option<WrittenBatch> {
        if let Some(why) = batch.refusal.take() {
            // The disk turned unavailable before this batch began: nothing was placed.
            for reply in batch.refused {
                let _ = reply.send(Err(why.clone_for_reply()));
            }
            return None;
        }
        let outcome = match batch.failure.take() {
            Some(error) => Err(error),
            None => self.close_pack(&mut batch).and_then(|()| self.write_pieces(&batch)),
        };
        match outcome {
            Ok(chunks) => Some(WrittenBatch {
                placed: batch.placed,
                chunks,
                active: self.state.active.as_ref().map(|a| a.chunk.id()),
                next_seq: self.state.next_seq,
            }),
            Err(error) => {
                self.shared.note_error(&error);
                tracing::error!(disk = %self.shared.disk.root().display(), %error, "writing a batch failed");
                let replies = batch.placed.into_iter().filter_map(|p| p.reply).chain(batch.refused);
                for reply in replies {
                    let _ = reply.send(Err(error.clone_for_reply()));
                }
                None
            }
        }
    }

    /// One write per chunk the batch's pieces go to (they are contiguous and in placement order); returns those
    /// chunks.
    fn write_pieces(&mut self, batch: &Placement) -> Result<Vec<Arc<ChunkFile>>, BlobnodeError> {
        let pieces = &batch.pieces;
        let mut chunks: Vec<Arc<ChunkFile>> = Vec::new();
        let mut start = 0;
        while start < pieces.len() {
            let chunk_id = pieces[start].chunk;
            let end = pieces[start..].iter().position(|p| p.chunk != chunk_id).map_or(pieces.len(), |n| start + n);
            let chunk = self
                .shared
                .chunk(chunk_id)
                .ok_or_else(|| BlobnodeError::Internal(format!("chunk {chunk_id:08x} vanished while writing")))?;
            let buffers: Vec<&[u8]> = pieces[start..end]
                .iter()
                .map(|p| p.bytes(&batch.placed))
                .collect::<Option<_>>()
                .ok_or_else(|| BlobnodeError::Internal("a pack header was left unsealed".into()))?;
            let written: u64 = buffers.iter().map(|b| b.len() as u64).sum();
            // Through physically contiguous memory: a few large transfers rather than one per page. The staged
            // pieces (copied into the staging window, or direct) all lie at the start of the first chunk's run.
            let staged = if start == 0 { batch.staged } else { 0 };
            let mut offset = pieces[start].offset;
            if staged > 0 {
                // One iovec per run of staged pieces (they lie back to back in the window) and per direct one.
                let mut runs: Vec<Source> = Vec::new();
                for (piece, bytes) in pieces[..staged].iter().zip(&buffers) {
                    match (piece.staged_at, runs.last_mut()) {
                        (Some(at), Some(Source::Staged(run))) if run.end == at => run.end += bytes.len(),
                        (Some(at), _) => runs.push(Source::Staged(at..at + bytes.len())),
                        (None, _) => runs.push(Source::Direct(bytes)),
                    }
                }
                let sources: Vec<&[u8]> = runs
                    .into_iter()
                    .map(|run| match run {
                        Source::Staged(window) => self.staging.staged(window.start, window.len()),
                        Source::Direct(bytes) => Some(bytes),
                    })
                    .collect::<Option<_>>()
                    .ok_or_else(|| BlobnodeError::Internal("a staged piece lies outside the staging buffer".into()))?;
                chunk.write_at(offset, &sources)?;
                offset += sources.iter().map(|b| b.len() as u64).sum::<u64>();
            }
            self.staging.write_through(&chunk, offset, &buffers[staged..])?;
            self.shared.counters.bytes_written.fetch_add(written, Ordering::Relaxed);
            chunks.push(chunk);
            start = end;
        }
        Ok(chunks)
    }

    /// Whether `len` more bytes go into `chunk` right after what is placed: it is still the active one and has room.
    fn continues(&self, chunk: u32, len: u64) -> bool {
        self.state
            .active
            .as_ref()
            .is_some_and(|a| a.chunk.id() == chunk && a.end + len <= self.shared.config.chunk_bytes)
    }

    /// The active chunk, rolled over to a fresh one (its space reserved whole with `--chunk-preallocate`, see
    /// `chunk`) when `len` more bytes would not fit. A disk with less room than a chunk still takes writes: a full disk shows as ENOSPC from the
    /// batch's write, which makes the disk read-only.
    fn room_for(&mut self, len: u64) -> Result<&mut Active, BlobnodeError> {
        let limit = self.shared.config.chunk_bytes;
        let needs_new = match &self.state.active {
            None => true,
            Some(active) => active.end > CHUNK_HEADER_BYTES && active.end + len > limit,
        };
        if needs_new {
            let id = self.state.next_chunk;
            let chunk = Arc::new(ChunkFile::create(
                &self.shared.chunks_dir(),
                id,
                self.shared.disk.seed(),
                self.shared.disk.direct_io(),
            )?);
            if self.shared.config.preallocate
                && let Err(error) = chunk.reserve(limit)
            {
                // Only the reservation is lost; an I/O error still marks the disk (EIO: faulty).
                self.shared.note_error(&error);
                tracing::warn!(%error, "could not reserve a new chunk's space");
            }
            self.state.next_chunk =
                id.checked_add(1).ok_or_else(|| BlobnodeError::Internal("chunk ids exhausted on this disk".into()))?;
            if let Ok(mut map) = self.shared.chunks.write() {
                map.insert(id, Arc::clone(&chunk));
            }
            let finished = self.state.active.replace(Active { chunk, end: CHUNK_HEADER_BYTES });
            if let Some(finished) = finished {
                tracing::debug!(chunk = %finished.chunk.path().display(), end = finished.end, "chunk full");
            }
        }
        self.state.active.as_mut().ok_or_else(|| BlobnodeError::Internal("no active chunk after roll-over".into()))
    }
}

/// The syncer thread's state: the index and its accounting, freeing and retiring.
struct Syncer {
    shared: Arc<Shared>,
    stats: HashMap<u32, ChunkStats>,
    /// The writer's active chunk as last reported: it and newer chunks are never retired.
    writer_chunk: Option<u32>,
}

/// The syncer thread: takes handed-over jobs in order until the writer hangs up.
fn run_syncer(syncer: &mut Syncer, jobs: std::sync::mpsc::Receiver<SyncJob>) {
    let mut carried: Option<SyncJob> = None;
    loop {
        let job = match carried.take() {
            Some(job) => job,
            None => match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        match job {
            SyncJob::Batch(mut batch) => {
                // Batches written while the last sync ran share the next one.
                for _ in 1..MAX_MERGED_BATCHES {
                    match jobs.try_recv() {
                        Ok(SyncJob::Batch(next)) => batch.absorb(next),
                        Ok(other) => {
                            carried = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if let Some(mut synced) = sync_batch(&syncer.shared, batch) {
                    answer_plain(&syncer.shared, &mut synced.placed);
                    syncer.index(synced);
                }
            }
            SyncJob::Index(batch) => syncer.index(batch),
            SyncJob::Delete { data_id, reply } => {
                let _ = reply.send(syncer.delete(&data_id));
            }
        }
    }
}

/// Makes a written batch durable; when that fails, answers its puts with the error and returns None.
fn sync_batch(shared: &Shared, batch: WrittenBatch) -> Option<WrittenBatch> {
    // After a failed sync the page cache can no longer be trusted to hold what later batches wrote.
    let synced = if shared.state() == DiskState::Faulty {
        Err(shared.unavailable(DiskState::Faulty))
    } else {
        batch.chunks.iter().try_for_each(|chunk| {
            chunk.sync()?;
            shared.counters.syncs.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
    };
    match synced {
        Ok(()) => Some(batch),
        Err(error) => {
            shared.note_error(&error);
            if matches!(error, BlobnodeError::Io { .. }) {
                // fsync errors are sticky in spirit: whatever it was, this disk's durability is now in doubt.
                shared.degrade(DiskState::Faulty, &error);
            }
            fail_batch(shared, batch.placed, error);
            None
        }
    }
}

/// Durable now: plain puts are published among the synced locations and answered, before their index write.
/// Relocations are answered after it: whether a copy counts is only known from the lookups, and the compactor
/// expects to see the effect of its moves.
fn answer_plain(shared: &Shared, placed: &mut [PlacedPut]) {
    shared.publish_synced(placed.iter().filter(|p| p.is_plain()).map(|p| (p.shard.header.key.clone(), p.location)));
    for reply in placed.iter_mut().filter(|p| p.is_plain()).filter_map(|p| p.reply.take()) {
        let _ = reply.send(Ok(()));
    }
}

fn fail_batch(shared: &Shared, placed: Vec<PlacedPut>, error: BlobnodeError) {
    tracing::error!(disk = %shared.disk.root().display(), %error, "committing a batch failed");
    fail_all(placed, &error);
}

fn syncer_stopped() -> BlobnodeError {
    BlobnodeError::Internal("the syncer has stopped".into())
}

/// Answers every put of `placed` not answered yet with `error`.
fn fail_all(placed: Vec<PlacedPut>, error: &BlobnodeError) {
    for reply in placed.into_iter().filter_map(|p| p.reply) {
        let _ = reply.send(Err(error.clone_for_reply()));
    }
}

impl Syncer {
    /// Indexes a synced batch whose plain puts are answered, then answers its relocations and frees what died.
    fn index(&mut self, batch: WrittenBatch) {
        let WrittenBatch { placed, active: writer_chunk, next_seq, .. } = batch;
        self.writer_chunk = writer_chunk;
        if self.shared.state() == DiskState::Faulty {
            // An earlier batch's index write may have failed with its puts answered: advancing `indexed_end` past
            // them now would hide them from the rescan at restart. Answered puts stay among the synced locations.
            fail_batch(&self.shared, placed, self.shared.unavailable(DiskState::Faulty));
            return;
        }
        let mut index = IndexBatch::default();
        let mut current: HashMap<ShardKey, Location> = HashMap::new();
        let mut dead: Vec<Location> = Vec::new();
        let mut touched: Vec<u32> = Vec::new();
        let lookups: Result<(), BlobnodeError> = (|| {
            for put in &placed {
                let key = &put.shard.header.key;
                let old = match current.get(key) {
                    Some(old) => Some(*old),
                    None => self.shared.index.get(key)?,
                };
                let location = put.location;
                if let Some(expected) = put.expect
                    && old != Some(expected)
                {
                    // A relocation that lost a race with a delete or a newer put: the copy is dead on arrival.
                    dead.push(location);
                    continue;
                }
                if let Some(old) = old {
                    self.stats.entry(old.chunk).or_default().remove_record(&old);
                    index.delete_location(old);
                    dead.push(old);
                    touched.push(old.chunk);
                }
                index.put_shard(key, location);
                self.stats.entry(location.chunk).or_default().add_record(&location);
                touched.push(location.chunk);
                current.insert(key.clone(), location);
            }
            Ok(())
        })();
        if let Err(error) = lookups {
            // Answered puts must not vanish from reads: they stay among the synced locations, and the disk takes
            // no more writes until a restart re-indexes them from the chunk files.
            self.shared.degrade(DiskState::Faulty, &error);
            fail_batch(&self.shared, placed, error);
            return;
        }
        // Every record of this batch is indexed now: each chunk it wrote is indexed up to the batch's end there.
        // Later batches may already be written past that point; recovery rescans from here.
        for put in &placed {
            let end = put.location.end();
            let stats = self.stats.entry(put.location.chunk).or_default();
            stats.indexed_end = stats.indexed_end.max(end);
        }
        if let Some(id) = writer_chunk {
            self.stats.entry(id).or_insert(ChunkStats { indexed_end: CHUNK_HEADER_BYTES, ..ChunkStats::default() });
        }
        self.stage_stats(&mut touched, &mut index);
        index.set_next_seq(next_seq);
        if let Err(error) = self.shared.index.write(index, false) {
            self.shared.degrade(DiskState::Faulty, &error);
            fail_batch(&self.shared, placed, error);
            return;
        }
        self.shared.unpublish_synced(placed.iter().filter(|p| p.is_plain()).map(|p| (&p.shard.header.key, p.location)));
        let count = placed.len() as u64;
        self.shared.counters.puts.fetch_add(count, Ordering::Relaxed);
        self.shared.counters.batches.fetch_add(1, Ordering::Relaxed);
        metrics::histogram!("coffer_blobnode_batch_records").record(count as f64);
        // A chunk emptied by this batch goes before the relocations' answers (rare, and then the compactor sees its
        // effect); freeing dead records' space waits until after them.
        self.retire_empty(&touched);
        for reply in placed.into_iter().filter_map(|p| p.reply) {
            let _ = reply.send(Ok(()));
        }
        self.free(&dead);
    }

    /// Puts the accounting of every chunk in `touched` (deduplicated here) into `batch`.
    fn stage_stats(&self, touched: &mut Vec<u32>, batch: &mut IndexBatch) {
        touched.sort_unstable();
        touched.dedup();
        for id in touched.iter() {
            if let Some(stats) = self.stats.get(id) {
                batch.put_chunk(*id, *stats);
            }
        }
    }

    /// Frees dead records' space (the index no longer names them); a failure only costs space, so it is logged,
    /// not returned. A pack header goes with the last live shard it describes.
    fn free(&self, dead: &[Location]) {
        for location in dead {
            let Some(chunk) = self.shared.chunk(location.chunk) else { continue };
            let (offset, len) = location.span();
            let mut freed = chunk.free(offset, len);
            if freed.is_ok()
                && let Some(pack) = location.pack
            {
                freed = match self.pack_has_live_shard(location.chunk, pack) {
                    Ok(true) => Ok(()),
                    Ok(false) => chunk.free(pack, HEADER_BYTES as u64),
                    Err(error) => Err(error),
                };
            }
            if let Err(error) = freed {
                self.shared.note_error(&error);
                tracing::warn!(%error, "could not free a dead record");
            }
        }
    }

    /// Whether the index still names a shard of the pack at `pack`. Its shards' offsets are the first ones from
    /// the pack's own, so the first record the index has there tells.
    fn pack_has_live_shard(&self, chunk: u32, pack: u64) -> Result<bool, BlobnodeError> {
        let Some((_, key)) = self.shared.index.records_from(chunk, pack, 1)?.pop() else { return Ok(false) };
        Ok(self.shared.index.get(&key)?.is_some_and(|l| l.chunk == chunk && l.pack == Some(pack)))
    }

    /// Removes chunks that are finished (not the writer's active one) and hold no live record.
    fn retire_empty(&mut self, candidates: &[u32]) {
        for &id in candidates {
            let empty = self.stats.get(&id).is_some_and(|s| s.live_records == 0);
            if !empty || Some(id) >= self.writer_chunk {
                // Chunks are created in id order: the active one and any newer are still being written.
                continue;
            }
            let mut batch = IndexBatch::default();
            batch.delete_chunk(id);
            if let Err(error) = self.shared.index.write(batch, true) {
                tracing::warn!(%error, chunk = id, "could not retire an empty chunk");
                continue;
            }
            self.stats.remove(&id);
            let chunk = self.shared.chunks.write().ok().and_then(|mut map| map.remove(&id));
            if let Some(chunk) = chunk {
                // Readers still holding the chunk keep their descriptor; the space goes when they drop it.
                match chunk.remove(&self.shared.chunks_dir()) {
                    Ok(()) => tracing::debug!(path = %chunk.path().display(), "retired an empty chunk"),
                    Err(error) => tracing::warn!(%error, "could not remove an empty chunk"),
                }
            }
        }
    }

    /// Removes every shard of one data id: the index first (synced, so they never come back), then their space.
    fn delete(&mut self, data_id: &[u8]) -> Result<(), BlobnodeError> {
        let shards = self.shared.index.shards_of(data_id)?;
        if shards.is_empty() {
            return Ok(());
        }
        let mut batch = IndexBatch::default();
        let mut touched = Vec::new();
        for (key, location) in &shards {
            batch.delete_shard(key, *location);
            self.stats.entry(location.chunk).or_default().remove_record(location);
            touched.push(location.chunk);
        }
        self.stage_stats(&mut touched, &mut batch);
        self.shared.index.write(batch, true).inspect_err(|e| {
            self.shared.degrade(DiskState::Faulty, e);
        })?;
        self.shared.counters.deletes.fetch_add(shards.len() as u64, Ordering::Relaxed);
        let locations: Vec<Location> = shards.iter().map(|(_, l)| *l).collect();
        self.free(&locations);
        self.retire_empty(&touched);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tests::{key, open};
    use crate::record::tests::seal_key;
    use crate::store::tests::test_config;

    /// A batch as the writer hands it over: synced, its one plain put answered.
    fn answered_batch(n: u32, offset: u64) -> (WrittenBatch, Location) {
        let location = Location { chunk: 1, offset, shard_len: 3, seq: u64::from(n), pack: None };
        let put = PlacedPut { shard: seal_key(key(n), b"abc"), expect: None, location, reply: None };
        let batch = WrittenBatch { placed: vec![put], chunks: Vec::new(), active: Some(1), next_seq: u64::from(n) + 1 };
        (batch, location)
    }

    #[tokio::test]
    async fn answered_batches_are_indexed_but_never_once_the_disk_is_faulty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = open(dir.path(), test_config());
        let shared = Arc::clone(engine.shared());
        let mut syncer = Syncer { shared: Arc::clone(&shared), stats: HashMap::new(), writer_chunk: None };

        // A healthy batch: indexed, its chunk's indexed_end past it, and gone from the synced locations.
        let (batch, location) = answered_batch(1, 1 << 20);
        shared.publish_synced([(key(1), location)].into_iter());
        syncer.index(batch);
        assert_eq!(shared.index.get(&key(1)).expect("index"), Some(location));
        assert_eq!(syncer.stats.get(&1).map(|s| s.indexed_end), Some(location.end()));

        // Once the disk is faulty (say an earlier batch's index write failed after its puts were answered), a
        // later answered batch is not indexed either: indexed_end stays put, so a restart rescans both batches
        // from the chunk file, and until then reads find the puts among the synced locations.
        shared.degrade(DiskState::Faulty, &"test");
        let (batch, later) = answered_batch(2, 2 << 20);
        shared.publish_synced([(key(2), later)].into_iter());
        syncer.index(batch);
        assert_eq!(shared.index.get(&key(2)).expect("index"), None);
        assert_eq!(shared.locate(&key(2)).expect("locate"), Some(later));
        assert_eq!(syncer.stats.get(&1).map(|s| s.indexed_end), Some(location.end()));
    }
}
