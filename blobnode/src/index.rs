//! The per-disk index (RocksDB in `DIR/index`): where each shard's record lives, which records each chunk holds,
//! and per-chunk accounting. It is derived state: every entry can be rebuilt by scanning the chunk files.
//!
//! ```text
//! s <len u8> <data id> <stripe be32> <index be32>  -> Location (chunk, offset, shard length, seq[, pack offset])
//! l <chunk be32> <offset be64>                     -> the `s` key suffix of the record there (compaction's view)
//! c <chunk be32>                                   -> ChunkStats (live bytes and records, indexed_end)
//! m next_seq                                       -> the next sequence number to hand out
//! ```
//! Put batches are written without syncing the WAL: the chunk fdatasync made the records durable, and recovery
//! re-indexes whatever lies beyond a chunk's persisted `indexed_end`. Deletions are synced, so a deleted shard
//! never returns.

use std::path::Path;

use rocksdb::{
    BlockBasedOptions, DB, DBCompressionType, Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions,
};

use crate::aligned::align_up;
use crate::error::BlobnodeError;
use crate::key::ShardKey;
use crate::record::{HEADER_BYTES, record_bytes};

const SHARD: u8 = b's';
const LOCATION: u8 = b'l';
const CHUNK: u8 = b'c';
const NEXT_SEQ: &[u8] = b"mnext_seq";

/// Where a shard's record lives. `offset` is where the record starts: its header block, followed by its data.
/// A packed shard (see `pack`) has no header block of its own: its data still starts at `offset + 4096`, and
/// `pack` says where the pack header describing it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub chunk: u32,
    pub offset: u64,
    pub shard_len: u64,
    pub seq: u64,
    pub pack: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkStats {
    pub live_bytes: u64,
    pub live_records: u64,
    /// Every record below this offset is reflected in the index; recovery scans from here.
    pub indexed_end: u64,
}

pub struct Index {
    db: DB,
}

/// Raw (key, value) pairs from a scan.
type RawEntries = Vec<(Vec<u8>, Vec<u8>)>;

fn db_error<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(rocksdb::Error) -> BlobnodeError + 'a {
    move |e| BlobnodeError::io(what, path, std::io::Error::other(e.into_string()))
}

pub fn shard_key(key: &ShardKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + key.data_id.len() + 8);
    out.push(SHARD);
    out.extend_from_slice(&data_prefix_suffix(&key.data_id));
    out.extend_from_slice(&key.stripe.to_be_bytes());
    out.extend_from_slice(&key.index.to_be_bytes());
    out
}

fn data_prefix_suffix(data_id: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + data_id.len());
    // Data ids are at most 64 bytes (checked at the edge), so the length fits a byte.
    out.push(data_id.len() as u8);
    out.extend_from_slice(data_id);
    out
}

fn data_prefix(data_id: &[u8]) -> Vec<u8> {
    let mut out = vec![SHARD];
    out.extend_from_slice(&data_prefix_suffix(data_id));
    out
}

fn parse_shard_key(key: &[u8]) -> Option<ShardKey> {
    let (&tag, rest) = key.split_first()?;
    let (&len, rest) = rest.split_first()?;
    let len = len as usize;
    if tag != SHARD || rest.len() != len + 8 {
        return None;
    }
    let (data_id, tail) = rest.split_at(len);
    let stripe = u32::from_be_bytes(tail[0..4].try_into().ok()?);
    let index = u32::from_be_bytes(tail[4..8].try_into().ok()?);
    Some(ShardKey { data_id: data_id.to_vec(), stripe, index })
}

fn location_key(chunk: u32, offset: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(13);
    out.push(LOCATION);
    out.extend_from_slice(&chunk.to_be_bytes());
    out.extend_from_slice(&offset.to_be_bytes());
    out
}

fn chunk_key(chunk: u32) -> Vec<u8> {
    let mut out = vec![CHUNK];
    out.extend_from_slice(&chunk.to_be_bytes());
    out
}

impl Location {
    /// Where the block holding this shard's header (its own, or its pack's) starts.
    pub fn header_offset(&self) -> u64 {
        self.pack.unwrap_or(self.offset)
    }

    /// The chunk bytes this shard occupies alone: its data, plus its header block unless packed.
    pub fn stored_bytes(&self) -> u64 {
        match self.pack {
            Some(_) => align_up(self.shard_len),
            None => record_bytes(self.shard_len),
        }
    }

    /// The bytes a dead record frees: (offset, length). Never a packed shard's neighbour or its pack header.
    pub fn span(&self) -> (u64, u64) {
        match self.pack {
            Some(_) => (self.offset + HEADER_BYTES as u64, align_up(self.shard_len)),
            None => (self.offset, record_bytes(self.shard_len)),
        }
    }

    /// Where this record's bytes end in the chunk.
    pub fn end(&self) -> u64 {
        self.offset + record_bytes(self.shard_len)
    }

    /// 28 bytes, or 36 for a packed shard: entries written before packs existed read as unpacked.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(36);
        out.extend_from_slice(&self.chunk.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.shard_len.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        if let Some(pack) = self.pack {
            out.extend_from_slice(&pack.to_le_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<Location> {
        let pack = match bytes.len() {
            28 => None,
            36 => Some(u64::from_le_bytes(bytes[28..36].try_into().ok()?)),
            _ => return None,
        };
        Some(Location {
            chunk: u32::from_le_bytes(bytes[0..4].try_into().ok()?),
            offset: u64::from_le_bytes(bytes[4..12].try_into().ok()?),
            shard_len: u64::from_le_bytes(bytes[12..20].try_into().ok()?),
            seq: u64::from_le_bytes(bytes[20..28].try_into().ok()?),
            pack,
        })
    }
}

impl ChunkStats {
    /// The record at `location` became live in this chunk.
    pub fn add_record(&mut self, location: &Location) {
        self.live_bytes += location.stored_bytes();
        self.live_records += 1;
    }

    /// The record at `location` died: deleted, overwritten or moved elsewhere.
    pub fn remove_record(&mut self, location: &Location) {
        self.live_bytes = self.live_bytes.saturating_sub(location.stored_bytes());
        self.live_records = self.live_records.saturating_sub(1);
    }

    fn encode(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[0..8].copy_from_slice(&self.live_bytes.to_le_bytes());
        out[8..16].copy_from_slice(&self.live_records.to_le_bytes());
        out[16..24].copy_from_slice(&self.indexed_end.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<ChunkStats> {
        if bytes.len() != 24 {
            return None;
        }
        Some(ChunkStats {
            live_bytes: u64::from_le_bytes(bytes[0..8].try_into().ok()?),
            live_records: u64::from_le_bytes(bytes[8..16].try_into().ok()?),
            indexed_end: u64::from_le_bytes(bytes[16..24].try_into().ok()?),
        })
    }
}

/// Changes to the index, applied atomically by [`Index::write`].
#[derive(Default)]
pub struct IndexBatch {
    batch: WriteBatch,
}

impl IndexBatch {
    pub fn put_shard(&mut self, key: &ShardKey, location: Location) {
        let skey = shard_key(key);
        self.batch.put(location_key(location.chunk, location.offset), &skey[1..]);
        self.batch.put(skey, location.encode());
    }

    pub fn delete_shard(&mut self, key: &ShardKey, location: Location) {
        self.batch.delete(location_key(location.chunk, location.offset));
        self.batch.delete(shard_key(key));
    }

    /// Forgets a record that is no longer the shard's current one (the shard key itself points elsewhere).
    pub fn delete_location(&mut self, location: Location) {
        self.batch.delete(location_key(location.chunk, location.offset));
    }

    pub fn put_chunk(&mut self, chunk: u32, stats: ChunkStats) {
        self.batch.put(chunk_key(chunk), stats.encode());
    }

    pub fn delete_chunk(&mut self, chunk: u32) {
        self.batch.delete(chunk_key(chunk));
    }

    pub fn set_next_seq(&mut self, seq: u64) {
        self.batch.put(NEXT_SEQ, seq.to_le_bytes());
    }
}

impl Index {
    pub fn open(path: &Path) -> Result<Index, BlobnodeError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_compression_type(DBCompressionType::Lz4);
        // The index is small next to the data; keep its memory modest so many disks per node stay cheap.
        options.set_write_buffer_size(16 << 20);
        options.set_max_background_jobs(2);
        // Every put asks whether its shard already has a record; nearly always it has not, and a bloom filter
        // answers that without reading index blocks from disk.
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        options.set_block_based_table_factory(&table);
        let db = DB::open(&options, path).map_err(db_error("open index", path))?;
        Ok(Index { db })
    }

    fn path(&self) -> &Path {
        self.db.path()
    }

    pub fn write(&self, batch: IndexBatch, sync: bool) -> Result<(), BlobnodeError> {
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        self.db.write_opt(batch.batch, &options).map_err(db_error("write index", self.path()))
    }

    pub fn get(&self, key: &ShardKey) -> Result<Option<Location>, BlobnodeError> {
        let Some(bytes) = self.db.get_pinned(shard_key(key)).map_err(db_error("read index", self.path()))? else {
            return Ok(None);
        };
        Location::decode(&bytes)
            .map(Some)
            .ok_or_else(|| BlobnodeError::corrupt(self.path(), format!("undecodable index entry for {key}")))
    }

    fn scan(&self, prefix: &[u8], from: &[u8], limit: usize) -> Result<RawEntries, BlobnodeError> {
        let mut options = ReadOptions::default();
        let mut upper = prefix.to_vec();
        // Prefixes here never end in 0xff runs that would need carrying: tags are ASCII letters or full ids.
        match upper.last_mut() {
            Some(last) if *last < 0xff => *last += 1,
            _ => upper.push(0xff),
        }
        options.set_iterate_upper_bound(upper);
        let mut out = Vec::new();
        for item in self.db.iterator_opt(IteratorMode::From(from, Direction::Forward), options) {
            let (k, v) = item.map_err(db_error("scan index", self.path()))?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Every shard of one data id on this disk.
    pub fn shards_of(&self, data_id: &[u8]) -> Result<Vec<(ShardKey, Location)>, BlobnodeError> {
        let prefix = data_prefix(data_id);
        self.decode_shards(self.scan(&prefix, &prefix, usize::MAX)?)
    }

    /// Up to `limit` shards in key order after `after` (from the start when None): the scrubber's cursor.
    pub fn shards_after(
        &self,
        after: Option<&ShardKey>,
        limit: usize,
    ) -> Result<Vec<(ShardKey, Location)>, BlobnodeError> {
        let from = match after {
            Some(key) => {
                let mut k = shard_key(key);
                k.push(0);
                k
            }
            None => vec![SHARD],
        };
        self.decode_shards(self.scan(&[SHARD], &from, limit)?)
    }

    fn decode_shards(&self, raw: RawEntries) -> Result<Vec<(ShardKey, Location)>, BlobnodeError> {
        raw.into_iter()
            .map(|(k, v)| match (parse_shard_key(&k), Location::decode(&v)) {
                (Some(key), Some(location)) => Ok((key, location)),
                _ => Err(BlobnodeError::corrupt(self.path(), "undecodable shard entry")),
            })
            .collect()
    }

    /// The records the index places in `chunk`, in offset order, as (offset, shard key).
    pub fn records_in(&self, chunk: u32) -> Result<Vec<(u64, ShardKey)>, BlobnodeError> {
        self.records_from(chunk, 0, usize::MAX)
    }

    /// Up to `limit` records the index places in `chunk` at or after `offset`, in offset order.
    pub fn records_from(&self, chunk: u32, offset: u64, limit: usize) -> Result<Vec<(u64, ShardKey)>, BlobnodeError> {
        let from = location_key(chunk, offset);
        self.scan(&from[..5], &from, limit)?
            .into_iter()
            .map(|(k, v)| {
                let offset = k.get(5..13).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
                let mut full = vec![SHARD];
                full.extend_from_slice(&v);
                match (offset, parse_shard_key(&full)) {
                    (Some(offset), Some(key)) => Ok((offset, key)),
                    _ => Err(BlobnodeError::corrupt(self.path(), "undecodable location entry")),
                }
            })
            .collect()
    }

    pub fn chunk_stats(&self) -> Result<Vec<(u32, ChunkStats)>, BlobnodeError> {
        self.scan(&[CHUNK], &[CHUNK], usize::MAX)?
            .into_iter()
            .map(|(k, v)| {
                let id = k.get(1..5).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes);
                match (id, ChunkStats::decode(&v)) {
                    (Some(id), Some(stats)) => Ok((id, stats)),
                    _ => Err(BlobnodeError::corrupt(self.path(), "undecodable chunk entry")),
                }
            })
            .collect()
    }

    pub fn next_seq(&self) -> Result<u64, BlobnodeError> {
        let Some(bytes) = self.db.get_pinned(NEXT_SEQ).map_err(db_error("read index", self.path()))? else {
            return Ok(1);
        };
        let bytes: [u8; 8] =
            bytes.as_ref().try_into().map_err(|_| BlobnodeError::corrupt(self.path(), "undecodable next_seq"))?;
        Ok(u64::from_le_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &[u8], stripe: u32, index: u32) -> ShardKey {
        ShardKey { data_id: id.to_vec(), stripe, index }
    }

    fn at(chunk: u32, offset: u64) -> Location {
        Location { chunk, offset, shard_len: 10, seq: offset, pack: None }
    }

    #[test]
    fn entries_round_trip_and_scan_by_data_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = Index::open(&dir.path().join("index")).expect("open");
        let mut batch = IndexBatch::default();
        batch.put_shard(&key(b"ab", 0, 1), at(1, 4096));
        batch.put_shard(&key(b"ab", 1, 0), at(1, 8192));
        // A data id that is a prefix of another must not show up in the other's scan, nor the reverse.
        batch.put_shard(&key(b"abc", 0, 0), at(2, 4096));
        batch.put_shard(&key(b"a", 7, 7), at(2, 8192));
        batch.put_chunk(1, ChunkStats { live_bytes: 16384, live_records: 2, indexed_end: 12288 });
        batch.set_next_seq(42);
        index.write(batch, true).expect("write");

        assert_eq!(index.get(&key(b"ab", 1, 0)).expect("get"), Some(at(1, 8192)));
        assert_eq!(index.get(&key(b"ab", 2, 0)).expect("get"), None);
        let of_ab = index.shards_of(b"ab").expect("scan");
        assert_eq!(of_ab, vec![(key(b"ab", 0, 1), at(1, 4096)), (key(b"ab", 1, 0), at(1, 8192))]);
        assert_eq!(index.shards_of(b"a").expect("scan").len(), 1);
        assert_eq!(index.records_in(1).expect("records"), vec![(4096, key(b"ab", 0, 1)), (8192, key(b"ab", 1, 0))]);
        assert_eq!(index.chunk_stats().expect("stats")[0].1.live_records, 2);
        assert_eq!(index.next_seq().expect("seq"), 42);

        let page = index.shards_after(None, 2).expect("page");
        assert_eq!(page.len(), 2);
        let rest = index.shards_after(Some(&page[1].0), 10).expect("rest");
        assert_eq!(page.len() + rest.len(), 4);
        assert!(rest.iter().all(|(k, _)| !page.iter().any(|(p, _)| p == k)));

        assert_eq!(index.records_from(1, 4097, 5).expect("records"), vec![(8192, key(b"ab", 1, 0))]);
        assert_eq!(index.records_from(1, 8193, 5).expect("records"), vec![]);

        // A packed shard's location keeps its pack offset; one without reads back without.
        let packed = Location { pack: Some(4096), ..at(3, 8192) };
        let mut batch = IndexBatch::default();
        batch.put_shard(&key(b"p", 0, 0), packed);
        index.write(batch, true).expect("write");
        assert_eq!(index.get(&key(b"p", 0, 0)).expect("get"), Some(packed));
        assert_eq!(packed.span(), (12288, 4096));
        assert_eq!(at(3, 8192).span(), (8192, 8192));
        assert_eq!(packed.header_offset(), 4096);

        let mut batch = IndexBatch::default();
        batch.delete_shard(&key(b"ab", 0, 1), at(1, 4096));
        index.write(batch, true).expect("delete");
        assert_eq!(index.shards_of(b"ab").expect("scan").len(), 1);
        assert_eq!(index.records_in(1).expect("records").len(), 1);
    }
}
