//! The on-disk format of one shard record inside a chunk file, and nothing about files or paths.
//!
//! ```text
//! [0, 4096)            record header block, little-endian:
//!     0   8  magic "COFRECRD"
//!     8   4  record format version (1)
//!    12   4  block size in bytes (65536)
//!    16   8  sequence number (per disk, increasing; the higher wins when a shard id appears twice)
//!    24   8  shard length in bytes
//!    32   4  CRC32C of the whole shard
//!    36   4  block count = ceil(length / block size)
//!    40   4  stripe
//!    44   4  shard index
//!    48   1  data id length (1..=64)
//!    49  64  data id, zero-padded
//!   120  4n  CRC32C of each block (the last block may be short)
//!  4092   4  CRC32C of (disk uuid ++ header bytes [0, 4092))
//! [4096, 4096 + align_up(length))   the shard bytes, zero-padded to 4 KiB
//! ```
//! The header names its shard, so a record is self-describing: the index can be rebuilt from chunk files alone,
//! and a read that lands on the wrong record is caught. Seeding the header CRC with the disk's uuid means shard
//! bytes crafted to look like a header (shards are raw slices of user data) never pass for one. One 4 KiB header
//! keeps every data offset direct-I/O aligned; its CRC table holds [`MAX_BLOCKS`] entries, which bounds a shard to
//! [`MAX_SHARD_BYTES`] (60 MiB).

use std::ops::Range;

use crc_fast::CrcAlgorithm;

use crate::aligned::{ALIGN, AlignedBuf, BufferPool, align_up};
use crate::error::BlobnodeError;
use crate::key::{MAX_DATA_ID_BYTES, ShardKey};

pub const HEADER_BYTES: usize = ALIGN;
/// Unit of verification: a read checks (and so reads) whole blocks, a corrupt byte spoils one block.
pub const BLOCK_BYTES: usize = 64 * 1024;
pub const MAX_BLOCKS: usize = 960;
pub const MAX_SHARD_BYTES: u64 = (MAX_BLOCKS * BLOCK_BYTES) as u64;

const MAGIC: [u8; 8] = *b"COFRECRD";
pub const RECORD_FORMAT_VERSION: u32 = 1;
const DATA_ID_OFFSET: usize = 49;
const TABLE_OFFSET: usize = 120;
const HEADER_CRC_OFFSET: usize = HEADER_BYTES - 4;
const _: () = assert!(DATA_ID_OFFSET + MAX_DATA_ID_BYTES <= TABLE_OFFSET);
const _: () = assert!(TABLE_OFFSET + 4 * MAX_BLOCKS <= HEADER_CRC_OFFSET);
const _: () = assert!(BLOCK_BYTES.is_multiple_of(ALIGN));

pub fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(bytes)
}

/// CRC32C of `seed ++ bytes`, where `seed` is the disk's uuid (see the module docs). A streaming digest: CRC
/// combination is far slower than hashing the 16 bytes of seed (it showed up at 30% of a put profile).
pub(crate) fn seeded_crc(seed: &[u8; 16], bytes: &[u8]) -> u32 {
    let mut digest = crc_fast::Digest::new(CrcAlgorithm::Crc32Iscsi);
    digest.update(seed);
    digest.update(bytes);
    // A 32-bit CRC returned in a u64; the truncation is exact.
    digest.finalize() as u32
}

/// Bytes a record holding a shard of `shard_len` bytes occupies in its chunk.
pub const fn record_bytes(shard_len: u64) -> u64 {
    HEADER_BYTES as u64 + align_up(shard_len)
}

fn block_count(shard_len: u64) -> usize {
    // Callers have checked shard_len <= MAX_SHARD_BYTES, so this fits comfortably.
    shard_len.div_ceil(BLOCK_BYTES as u64) as usize
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    pub key: ShardKey,
    pub seq: u64,
    pub shard_len: u64,
    pub crc32c: u32,
    pub block_crcs: Vec<u32>,
}

/// Where to read, and what to keep, to serve a byte range with whole-block verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPlan {
    pub first_block: usize,
    /// Offset of the read from the start of the record: aligned.
    pub record_offset: u64,
    /// Length of the read: aligned.
    pub read_len: usize,
    /// The requested bytes within the read buffer.
    pub keep: Range<usize>,
}

impl RecordHeader {
    /// Computes the block table and whole-shard CRC of `data`; the sequence number is set when committed.
    pub fn for_data(key: ShardKey, data: &[u8]) -> Result<Self, BlobnodeError> {
        check_len(data.len() as u64)?;
        let block_crcs: Vec<u32> = data.chunks(BLOCK_BYTES).map(crc32c).collect();
        // A shard of one block (every packed shard) already has its CRC; for longer ones a second hardware-CRC
        // pass over the data costs less than combining the block CRCs.
        let crc32c = match block_crcs.as_slice() {
            [only] => *only,
            _ => crc32c(data),
        };
        Ok(RecordHeader { key, seq: 0, shard_len: data.len() as u64, crc32c, block_crcs })
    }

    pub fn record_bytes(&self) -> u64 {
        record_bytes(self.shard_len)
    }

    pub fn encode(&self, seed: &[u8; 16], out: &mut [u8]) {
        debug_assert_eq!(self.block_crcs.len(), block_count(self.shard_len));
        debug_assert!(!self.key.data_id.is_empty() && self.key.data_id.len() <= MAX_DATA_ID_BYTES);
        let out = &mut out[..HEADER_BYTES];
        out.fill(0);
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&RECORD_FORMAT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&(BLOCK_BYTES as u32).to_le_bytes());
        out[16..24].copy_from_slice(&self.seq.to_le_bytes());
        out[24..32].copy_from_slice(&self.shard_len.to_le_bytes());
        out[32..36].copy_from_slice(&self.crc32c.to_le_bytes());
        out[36..40].copy_from_slice(&(self.block_crcs.len() as u32).to_le_bytes());
        out[40..44].copy_from_slice(&self.key.stripe.to_le_bytes());
        out[44..48].copy_from_slice(&self.key.index.to_le_bytes());
        let id = &self.key.data_id;
        out[48] = id.len() as u8;
        out[DATA_ID_OFFSET..DATA_ID_OFFSET + id.len()].copy_from_slice(id);
        for (slot, crc) in out[TABLE_OFFSET..].chunks_exact_mut(4).zip(&self.block_crcs) {
            slot.copy_from_slice(&crc.to_le_bytes());
        }
        let header_crc = seeded_crc(seed, &out[..HEADER_CRC_OFFSET]);
        out[HEADER_CRC_OFFSET..].copy_from_slice(&header_crc.to_le_bytes());
    }

    /// Whether `block` starts with the record magic; a cheap test before a full decode.
    pub fn looks_like_header(block: &[u8]) -> bool {
        block.get(..8) == Some(&MAGIC[..])
    }

    /// Parses and verifies a header block; the error is a description of the corruption.
    pub fn decode(seed: &[u8; 16], block: &[u8]) -> Result<Self, String> {
        let block = check_header_block(seed, block, &MAGIC, RECORD_FORMAT_VERSION, "record")?;
        let block_size = le_u32(block, 12);
        if block_size as usize != BLOCK_BYTES {
            return Err(format!("unsupported block size {block_size}"));
        }
        let seq = le_u64(block, 16);
        let shard_len = le_u64(block, 24);
        if shard_len > MAX_SHARD_BYTES {
            return Err(format!("shard length {shard_len} exceeds the format's bound"));
        }
        let count = le_u32(block, 36) as usize;
        if count != block_count(shard_len) {
            return Err(format!("{count} blocks recorded for a shard of {shard_len} bytes"));
        }
        let id_len = block[48] as usize;
        if id_len == 0 || id_len > MAX_DATA_ID_BYTES {
            return Err(format!("data id length {id_len}"));
        }
        let key = ShardKey {
            data_id: block[DATA_ID_OFFSET..DATA_ID_OFFSET + id_len].to_vec(),
            stripe: le_u32(block, 40),
            index: le_u32(block, 44),
        };
        let block_crcs = (0..count).map(|i| le_u32(block, TABLE_OFFSET + 4 * i)).collect();
        Ok(RecordHeader { key, seq, shard_len, crc32c: le_u32(block, 32), block_crcs })
    }

    /// The data range asked for by (offset, length), length 0 meaning "to the end".
    pub fn range(&self, offset: u64, length: u64) -> Result<Range<u64>, BlobnodeError> {
        let end = if length == 0 { Some(self.shard_len) } else { offset.checked_add(length) };
        match end {
            Some(end) if offset <= end && end <= self.shard_len => Ok(offset..end),
            _ => Err(BlobnodeError::InvalidArgument(format!(
                "range offset {offset} length {length} outside a shard of {} bytes",
                self.shard_len
            ))),
        }
    }

    /// Plans the aligned read covering the whole blocks that hold `range` (non-empty, within the shard).
    pub fn plan_read(&self, range: Range<u64>) -> ReadPlan {
        debug_assert!(range.start < range.end && range.end <= self.shard_len);
        let block = BLOCK_BYTES as u64;
        let first_block = range.start / block;
        let read_start = first_block * block;
        let read_end = range.end.div_ceil(block).saturating_mul(block).min(align_up(self.shard_len));
        // All of these are bounded by MAX_SHARD_BYTES, far inside usize.
        ReadPlan {
            first_block: first_block as usize,
            record_offset: HEADER_BYTES as u64 + read_start,
            read_len: (read_end - read_start) as usize,
            keep: (range.start - read_start) as usize..(range.end - read_start) as usize,
        }
    }

    /// Checks the blocks read from `first_block` on; `data` is what a [`ReadPlan`] read, padding included.
    pub fn verify_blocks(&self, first_block: usize, data: &[u8]) -> Result<(), String> {
        for (i, chunk) in data.chunks(BLOCK_BYTES).enumerate() {
            let index = first_block + i;
            let expected = *self.block_crcs.get(index).ok_or_else(|| format!("read past the last block ({index})"))?;
            let block_start = index as u64 * BLOCK_BYTES as u64;
            let valid = (self.shard_len - block_start).min(BLOCK_BYTES as u64) as usize;
            let (payload, padding) = chunk.split_at(valid.min(chunk.len()));
            if payload.len() < valid {
                return Err(format!("block {index} read short"));
            }
            let actual = crc32c(payload);
            if actual != expected {
                return Err(format!("block {index} crc32c {actual:#010x}, expected {expected:#010x}"));
            }
            // The padding is not covered by a CRC; insisting it stays zero catches damage there too.
            if padding.iter().any(|&b| b != 0) {
                return Err(format!("non-zero padding after block {index}"));
            }
        }
        Ok(())
    }
}

/// The checks every 4 KiB header block (a record's or a pack's) passes before it is parsed: its magic, its CRC
/// seeded with the disk uuid (last 4 bytes) and its format version (bytes 8..12). Returns the block.
pub(crate) fn check_header_block<'a>(
    seed: &[u8; 16],
    block: &'a [u8],
    magic: &[u8; 8],
    version: u32,
    kind: &str,
) -> Result<&'a [u8], String> {
    let block = block.get(..HEADER_BYTES).ok_or_else(|| format!("{kind} header block is short"))?;
    if block[0..8] != magic[..] {
        return Err(format!("no {kind} header here"));
    }
    let stored_crc = le_u32(block, HEADER_CRC_OFFSET);
    let actual_crc = seeded_crc(seed, &block[..HEADER_CRC_OFFSET]);
    if stored_crc != actual_crc {
        return Err(format!("{kind} header crc32c {actual_crc:#010x}, expected {stored_crc:#010x}"));
    }
    let stored_version = le_u32(block, 8);
    if stored_version != version {
        return Err(format!("unknown {kind} format version {stored_version}"));
    }
    Ok(block)
}

pub(crate) fn le_u32(block: &[u8], at: usize) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&block[at..at + 4]);
    u32::from_le_bytes(bytes)
}

fn le_u64(block: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&block[at..at + 8]);
    u64::from_le_bytes(bytes)
}

pub fn check_len(shard_len: u64) -> Result<(), BlobnodeError> {
    if shard_len > MAX_SHARD_BYTES {
        return Err(BlobnodeError::InvalidArgument(format!(
            "shard of {shard_len} bytes exceeds the limit of {MAX_SHARD_BYTES}"
        )));
    }
    Ok(())
}

/// A shard being received: the whole record image, filled chunk by chunk, sealed once complete.
pub struct ShardImage {
    key: ShardKey,
    buf: AlignedBuf,
    shard_len: usize,
    filled: usize,
}

/// A complete record image (header block left for the committer, data, padding) whose bytes matched the
/// sender's CRC.
pub struct SealedShard {
    pub image: AlignedBuf,
    pub header: RecordHeader,
}

impl ShardImage {
    /// An image in a buffer from `pool`; the header block is encoded at commit and the data is filled by `append`,
    /// so only the padding after the data needs clearing.
    pub fn new(key: ShardKey, shard_len: u64, pool: &BufferPool) -> Result<Self, BlobnodeError> {
        check_len(shard_len)?;
        let mut buf = pool.take(record_bytes(shard_len) as usize);
        // Bounded by MAX_SHARD_BYTES, far inside usize.
        buf[HEADER_BYTES + shard_len as usize..].fill(0);
        Ok(ShardImage { key, buf, shard_len: shard_len as usize, filled: 0 })
    }

    pub fn append(&mut self, chunk: &[u8]) -> Result<(), BlobnodeError> {
        let end = self.filled + chunk.len();
        if end > self.shard_len {
            return Err(BlobnodeError::InvalidArgument(format!(
                "stream carries more than the announced {} bytes",
                self.shard_len
            )));
        }
        self.buf[HEADER_BYTES + self.filled..HEADER_BYTES + end].copy_from_slice(chunk);
        self.filled = end;
        Ok(())
    }

    /// Checks completeness and the sender's CRC. The header block is written when the record is committed,
    /// because only then is its sequence number known.
    pub fn seal(self, expected_crc32c: u32) -> Result<SealedShard, BlobnodeError> {
        if self.filled != self.shard_len {
            return Err(BlobnodeError::InvalidArgument(format!(
                "stream carried {} bytes, {} announced",
                self.filled, self.shard_len
            )));
        }
        let header = RecordHeader::for_data(self.key, &self.buf[HEADER_BYTES..HEADER_BYTES + self.shard_len])?;
        if header.crc32c != expected_crc32c {
            return Err(BlobnodeError::ChecksumMismatch { expected: expected_crc32c, actual: header.crc32c });
        }
        Ok(SealedShard { image: self.buf, header })
    }
}

impl SealedShard {
    /// Stamps the sequence number and writes the header block, then reads it back: a header that would not
    /// decode to itself is a bug, and is never written.
    pub fn stamp(&mut self, seed: &[u8; 16], seq: u64) -> Result<(), BlobnodeError> {
        self.header.seq = seq;
        self.header.encode(seed, &mut self.image);
        match RecordHeader::decode(seed, &self.image) {
            Ok(decoded) if decoded == self.header => Ok(()),
            other => Err(BlobnodeError::Internal(format!(
                "record header of {} does not round-trip: {other:?}",
                self.header.key
            ))),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic, non-repeating-looking test bytes.
    pub(crate) fn pattern(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    pub(crate) const SEED: [u8; 16] = *b"0123456789abcdef";

    pub(crate) fn test_key(n: u32) -> ShardKey {
        ShardKey { data_id: vec![0xda, 0x7a, n as u8, (n >> 8) as u8], stripe: n, index: n % 6 }
    }

    pub(crate) fn seal_key(key: ShardKey, data: &[u8]) -> SealedShard {
        seal_key_in(&BufferPool::new(1 << 20), key, data)
    }

    pub(crate) fn seal_key_in(pool: &BufferPool, key: ShardKey, data: &[u8]) -> SealedShard {
        let mut image = ShardImage::new(key, data.len() as u64, pool).expect("length within bounds");
        image.append(data).expect("append");
        image.seal(crc32c(data)).expect("seal")
    }

    pub(crate) fn seal(data: &[u8]) -> SealedShard {
        let mut image =
            ShardImage::new(test_key(0), data.len() as u64, &BufferPool::new(1 << 20)).expect("length within bounds");
        image.append(data).expect("append");
        image.seal(crc32c(data)).expect("seal")
    }

    #[test]
    fn block_crcs_combine_to_the_whole_crc() {
        for len in [0, 1, 4095, BLOCK_BYTES - 1, BLOCK_BYTES, BLOCK_BYTES + 1, 3 * BLOCK_BYTES + 17] {
            let data = pattern(len, 1);
            assert_eq!(RecordHeader::for_data(test_key(1), &data).expect("header").crc32c, crc32c(&data), "len {len}");
        }
    }

    #[test]
    fn header_round_trip_and_damage() {
        let data = pattern(5 * BLOCK_BYTES + 3, 2);
        let mut header = RecordHeader::for_data(test_key(1), &data).expect("header");
        header.seq = 77;
        let mut block = vec![0u8; HEADER_BYTES];
        header.encode(&SEED, &mut block);
        assert_eq!(RecordHeader::decode(&SEED, &block), Ok(header));
        for at in [0, 9, 17, 20, 40, 45, 48, 50, 130, HEADER_BYTES - 100, HEADER_BYTES - 1] {
            let mut damaged = block.clone();
            damaged[at] ^= 0x40;
            assert!(RecordHeader::decode(&SEED, &damaged).is_err(), "flip at {at} undetected");
        }
        assert!(RecordHeader::decode(&SEED, &block[..100]).is_err());
        // The same bytes are no header on another disk: user data cannot forge one without the disk's uuid.
        assert!(RecordHeader::decode(b"fedcba9876543210", &block).is_err());
    }

    #[test]
    fn largest_shard_table_fits() {
        let key = ShardKey { data_id: vec![0xff; MAX_DATA_ID_BYTES], stripe: u32::MAX, index: u32::MAX };
        let header =
            RecordHeader { key, seq: u64::MAX, shard_len: MAX_SHARD_BYTES, crc32c: 5, block_crcs: vec![7; MAX_BLOCKS] };
        let mut block = vec![0u8; HEADER_BYTES];
        header.encode(&SEED, &mut block);
        assert_eq!(RecordHeader::decode(&SEED, &block), Ok(header));
        assert!(ShardImage::new(test_key(0), MAX_SHARD_BYTES + 1, &BufferPool::new(1 << 20)).is_err());
    }

    #[test]
    fn seal_refuses_wrong_crc_and_wrong_length() {
        let data = pattern(1000, 3);
        let mut image = ShardImage::new(test_key(0), 1000, &BufferPool::new(1 << 20)).expect("new");
        image.append(&data).expect("append");
        assert!(matches!(image.seal(crc32c(&data) ^ 1), Err(BlobnodeError::ChecksumMismatch { .. })));

        let mut short = ShardImage::new(test_key(0), 1000, &BufferPool::new(1 << 20)).expect("new");
        short.append(&data[..999]).expect("append");
        assert!(matches!(short.seal(crc32c(&data)), Err(BlobnodeError::InvalidArgument(_))));

        let mut long = ShardImage::new(test_key(0), 999, &BufferPool::new(1 << 20)).expect("new");
        assert!(matches!(long.append(&data), Err(BlobnodeError::InvalidArgument(_))));
    }

    #[test]
    fn sealed_image_layout() {
        let data = pattern(4097, 4);
        let mut sealed = seal(&data);
        assert_eq!(sealed.image.len() as u64, record_bytes(4097));
        assert_eq!(&sealed.image[HEADER_BYTES..HEADER_BYTES + 4097], &data[..]);
        assert!(sealed.image[HEADER_BYTES + 4097..].iter().all(|&b| b == 0));
        assert!(RecordHeader::decode(&SEED, &sealed.image).is_err(), "no header before the stamp");
        sealed.stamp(&SEED, 9).expect("stamp");
        assert_eq!(RecordHeader::decode(&SEED, &sealed.image), Ok(sealed.header.clone()));
        assert_eq!(sealed.header.seq, 9);
    }

    #[test]
    fn ranges() {
        let header = RecordHeader::for_data(test_key(1), &pattern(100, 5)).expect("header");
        assert_eq!(header.range(0, 0).expect("all"), 0..100);
        assert_eq!(header.range(10, 0).expect("tail"), 10..100);
        assert_eq!(header.range(10, 90).expect("exact"), 10..100);
        assert_eq!(header.range(100, 0).expect("empty tail"), 100..100);
        assert!(header.range(101, 0).is_err());
        assert!(header.range(10, 91).is_err());
        assert!(header.range(u64::MAX, 2).is_err());
    }

    #[test]
    fn read_plans_cover_whole_blocks_and_stay_aligned() {
        let len = 3 * BLOCK_BYTES as u64 + 5;
        let header = RecordHeader::for_data(test_key(1), &pattern(len as usize, 6)).expect("header");
        let b = BLOCK_BYTES as u64;
        for range in [0..1, b - 1..b + 1, b..2 * b, 5..len, len - 1..len, 2 * b + 7..3 * b + 2] {
            let plan = header.plan_read(range.clone());
            assert_eq!(plan.record_offset % ALIGN as u64, 0, "{range:?}");
            assert_eq!(plan.read_len % ALIGN, 0, "{range:?}");
            assert_eq!(plan.keep.len() as u64, range.end - range.start);
            let read_start = plan.record_offset - HEADER_BYTES as u64;
            assert_eq!(read_start % b, 0);
            assert!(read_start + plan.read_len as u64 <= align_up(len));
            assert!(read_start + plan.read_len as u64 >= range.end);
        }
    }

    #[test]
    fn verify_detects_a_flipped_byte_and_dirty_padding() {
        let data = pattern(2 * BLOCK_BYTES + 10, 7);
        let sealed = seal(&data);
        let body = &sealed.image[HEADER_BYTES..];
        assert_eq!(sealed.header.verify_blocks(0, body), Ok(()));
        assert_eq!(sealed.header.verify_blocks(1, &body[BLOCK_BYTES..]), Ok(()));

        let mut flipped = body.to_vec();
        flipped[BLOCK_BYTES + 100] ^= 1;
        assert!(sealed.header.verify_blocks(0, &flipped).is_err());
        assert!(sealed.header.verify_blocks(1, &flipped[BLOCK_BYTES..]).is_err());
        assert_eq!(sealed.header.verify_blocks(0, &flipped[..BLOCK_BYTES]), Ok(()));

        let mut padded = body.to_vec();
        let last = padded.len() - 1;
        padded[last] = 9;
        assert!(sealed.header.verify_blocks(2, &padded[2 * BLOCK_BYTES..]).is_err());
    }
}
