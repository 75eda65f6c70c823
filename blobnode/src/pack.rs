//! The on-disk format of a pack: small shards of one batch sharing a single header block, and nothing about files.
//!
//! ```text
//! [0, 4096)   pack header block, little-endian:
//!     0   8  magic "COFRPACK"
//!     8   4  pack format version (1)
//!    12   4  entry count n (1..)
//!    16      n entries, back to back:
//!              0   8  sequence number
//!              8   4  shard length (1..=65536: one verification block)
//!             12   4  CRC32C of the shard
//!             16   4  stripe
//!             20   4  shard index
//!             24   1  data id length (1..=64)
//!             25      data id
//!  4092   4  CRC32C of (disk uuid ++ header bytes [0, 4092))
//! [4096, ..)  the shards' bytes in entry order, each zero-padded to 4 KiB
//! ```
//! Why: a 4 KiB shard in a record of its own costs 8 KiB on disk (its header has a block to itself), and on this
//! kind of disk the flush time grows with the bytes flushed. A pack of 32 such shards writes 33 blocks, not 64.
//! Every shard still starts on a 4 KiB boundary, so reads stay direct I/O and touch the same two blocks as a
//! record's (the header, then the data). The header is seeded with the disk uuid like a record's, so user data
//! can never pass for one.

use crate::aligned::{ALIGN, AlignedBuf, align_up};
use crate::key::{MAX_DATA_ID_BYTES, ShardKey};
use crate::record::{BLOCK_BYTES, HEADER_BYTES, RecordHeader, check_header_block, le_u32, seeded_crc};

const MAGIC: [u8; 8] = *b"COFRPACK";
pub const PACK_FORMAT_VERSION: u32 = 1;
const ENTRIES_OFFSET: usize = 16;
const ENTRY_FIXED_BYTES: usize = 25;
const HEADER_CRC_OFFSET: usize = HEADER_BYTES - 4;
/// The largest shard a pack holds: one verification block, so the shard's CRC is its only block CRC.
pub const MAX_PACKED_SHARD: u64 = BLOCK_BYTES as u64;

/// Whether a shard of this length goes into a pack. Empty shards keep a record of their own: a packed shard is
/// addressed by where its data starts, and an empty one would share that address with its successor.
pub fn packable(shard_len: u64) -> bool {
    (1..=MAX_PACKED_SHARD).contains(&shard_len)
}

/// Whether `block` starts with the pack magic; a cheap test before a full decode.
pub fn looks_like_pack(block: &[u8]) -> bool {
    block.get(..8) == Some(&MAGIC[..])
}

/// Offset of each entry's data from the start of the pack, in entry order.
pub fn data_offsets(entries: &[RecordHeader]) -> impl Iterator<Item = u64> + '_ {
    entries.iter().scan(HEADER_BYTES as u64, |next, entry| {
        let at = *next;
        *next += align_up(entry.shard_len);
        Some(at)
    })
}

/// Bytes the whole pack occupies in its chunk.
pub fn pack_bytes(entries: &[RecordHeader]) -> u64 {
    HEADER_BYTES as u64 + entries.iter().map(|e| align_up(e.shard_len)).sum::<u64>()
}

/// A pack header being filled, one entry per placed shard.
pub struct PackBuilder {
    block: AlignedBuf,
    entries: Vec<RecordHeader>,
    used: usize,
}

impl Default for PackBuilder {
    fn default() -> Self {
        PackBuilder { block: AlignedBuf::zeroed(ALIGN), entries: Vec::new(), used: ENTRIES_OFFSET }
    }
}

impl PackBuilder {
    /// Whether one more entry for `key` fits in the header block.
    pub fn fits(&self, key: &ShardKey) -> bool {
        self.used + ENTRY_FIXED_BYTES + key.data_id.len() <= HEADER_CRC_OFFSET
    }

    /// Adds a stamped shard's entry; the caller checked [`PackBuilder::fits`] and [`packable`].
    pub fn push(&mut self, header: &RecordHeader) {
        debug_assert!(self.fits(&header.key) && packable(header.shard_len));
        let id = &header.key.data_id;
        let out = &mut self.block[self.used..self.used + ENTRY_FIXED_BYTES + id.len()];
        out[0..8].copy_from_slice(&header.seq.to_le_bytes());
        // Bounded by MAX_PACKED_SHARD.
        out[8..12].copy_from_slice(&(header.shard_len as u32).to_le_bytes());
        out[12..16].copy_from_slice(&header.crc32c.to_le_bytes());
        out[16..20].copy_from_slice(&header.key.stripe.to_le_bytes());
        out[20..24].copy_from_slice(&header.key.index.to_le_bytes());
        out[24] = id.len() as u8;
        out[ENTRY_FIXED_BYTES..].copy_from_slice(id);
        self.used += ENTRY_FIXED_BYTES + id.len();
        self.entries.push(header.clone());
    }

    /// The finished header block, read back before it is handed out: a header that would not decode to what
    /// was placed is a bug, and is never written.
    pub fn seal(mut self, seed: &[u8; 16]) -> Result<AlignedBuf, String> {
        self.block[0..8].copy_from_slice(&MAGIC);
        self.block[8..12].copy_from_slice(&PACK_FORMAT_VERSION.to_le_bytes());
        self.block[12..16].copy_from_slice(&(self.entries.len() as u32).to_le_bytes());
        let crc = seeded_crc(seed, &self.block[..HEADER_CRC_OFFSET]);
        self.block[HEADER_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        match decode(seed, &self.block) {
            Ok(decoded) if decoded == self.entries => Ok(self.block),
            other => Err(format!("pack header of {} entries does not round-trip: {other:?}", self.entries.len())),
        }
    }
}

/// Parses and verifies a pack header block into its entries; the error describes the corruption.
pub fn decode(seed: &[u8; 16], block: &[u8]) -> Result<Vec<RecordHeader>, String> {
    let block = check_header_block(seed, block, &MAGIC, PACK_FORMAT_VERSION, "pack")?;
    let count = le_u32(block, 12) as usize;
    if count == 0 || count > (HEADER_CRC_OFFSET - ENTRIES_OFFSET) / (ENTRY_FIXED_BYTES + 1) {
        return Err(format!("pack of {count} entries"));
    }
    let mut entries = Vec::with_capacity(count);
    let mut at = ENTRIES_OFFSET;
    for i in 0..count {
        let fixed = block.get(at..at + ENTRY_FIXED_BYTES).filter(|_| at + ENTRY_FIXED_BYTES <= HEADER_CRC_OFFSET);
        let fixed = fixed.ok_or_else(|| format!("entry {i} runs past the header"))?;
        let shard_len = u64::from(le_u32(fixed, 8));
        if !packable(shard_len) {
            return Err(format!("entry {i}: shard length {shard_len} does not belong in a pack"));
        }
        let id_len = fixed[24] as usize;
        if id_len == 0 || id_len > MAX_DATA_ID_BYTES || at + ENTRY_FIXED_BYTES + id_len > HEADER_CRC_OFFSET {
            return Err(format!("entry {i}: data id length {id_len}"));
        }
        let crc32c = le_u32(fixed, 12);
        entries.push(RecordHeader {
            key: ShardKey {
                data_id: block[at + ENTRY_FIXED_BYTES..at + ENTRY_FIXED_BYTES + id_len].to_vec(),
                stripe: le_u32(fixed, 16),
                index: le_u32(fixed, 20),
            },
            seq: u64::from_le_bytes(fixed[0..8].try_into().map_err(|_| "entry sequence")?),
            shard_len,
            crc32c,
            block_crcs: vec![crc32c],
        });
        at += ENTRY_FIXED_BYTES + id_len;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::{SEED, pattern, seal_key, test_key};

    fn stamped(n: u32, len: usize) -> RecordHeader {
        let mut header = seal_key(test_key(n), &pattern(len, n)).header;
        header.seq = 1000 + u64::from(n);
        header
    }

    #[test]
    fn round_trip_offsets_and_damage() {
        let entries: Vec<RecordHeader> = [(1, 4096), (2, 1), (3, 65536), (4, 5000)].map(|(n, l)| stamped(n, l)).into();
        let mut builder = PackBuilder::default();
        for entry in &entries {
            assert!(builder.fits(&entry.key));
            builder.push(entry);
        }
        let block = builder.seal(&SEED).expect("seal");
        assert_eq!(decode(&SEED, &block), Ok(entries.clone()));
        assert!(entries.iter().all(|e| e.block_crcs == vec![e.crc32c]));
        let offsets: Vec<u64> = data_offsets(&entries).collect();
        assert_eq!(offsets, vec![4096, 8192, 12288, 12288 + 65536]);
        assert_eq!(pack_bytes(&entries), 12288 + 65536 + 8192);
        for at in [0, 8, 12, 16, 20, 30, 41, 60, HEADER_BYTES - 1] {
            let mut damaged = block.to_vec();
            damaged[at] ^= 0x20;
            assert!(decode(&SEED, &damaged).is_err(), "flip at {at} undetected");
        }
        assert!(decode(b"fedcba9876543210", &block).is_err(), "another disk's seed");
        assert!(decode(&SEED, &block[..100]).is_err());
    }

    #[test]
    fn a_full_header_refuses_more_and_still_decodes() {
        let mut builder = PackBuilder::default();
        let long = ShardKey { data_id: vec![0xee; MAX_DATA_ID_BYTES], stripe: 1, index: 2 };
        let mut n = 0;
        while builder.fits(&long) {
            let mut header = stamped(n, 10);
            header.key = long.clone();
            builder.push(&header);
            n += 1;
        }
        assert_eq!(n as usize, (HEADER_CRC_OFFSET - ENTRIES_OFFSET) / (ENTRY_FIXED_BYTES + MAX_DATA_ID_BYTES));
        assert_eq!(decode(&SEED, &builder.seal(&SEED).expect("seal")).expect("decode").len(), n as usize);
    }

    #[test]
    fn only_one_block_shards_are_packed() {
        assert!(!packable(0));
        assert!(packable(1) && packable(4096) && packable(MAX_PACKED_SHARD));
        assert!(!packable(MAX_PACKED_SHARD + 1));
        assert!(!looks_like_pack(&[0u8; 16]));
    }
}
