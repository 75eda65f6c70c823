//! The snapshot file: every key and value of the state machine's column families at one applied
//! log id, read from a RocksDB checkpoint, with a CRC32C over the whole file.
//!
//! ```text
//! "COFFSNAP" | version u32 | meta length u32 | meta (postcard SnapshotMeta)
//! { cf index u8 | key length u32 | key | value length u32 | value }*  0xFF
//! crc32c u32 of everything before it
//! ```
//! All integers big-endian. The format version is checked before anything else is read.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crc_fast::{CrcAlgorithm, Digest};

use super::types::SnapshotMeta;
use crate::error::MetadataError;
use crate::store::Cf;

const MAGIC: &[u8; 8] = b"COFFSNAP";
pub const FORMAT_VERSION: u32 = 1;
const END: u8 = 0xFF;
/// Far above any record the metadata service writes; a larger length means a damaged file.
const MAX_FIELD_BYTES: u32 = 64 << 20;
const MAX_META_BYTES: u32 = 1 << 20;

fn corrupt(what: impl std::fmt::Display) -> MetadataError {
    MetadataError::Internal(format!("snapshot file: {what}"))
}

fn io(what: &str) -> impl Fn(std::io::Error) -> MetadataError + '_ {
    move |e| MetadataError::Internal(format!("snapshot file: {what}: {e}"))
}

/// A writer that keeps the CRC of what went through it.
struct Summed<W> {
    inner: W,
    digest: Digest,
}

impl<W: Write> Write for Summed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the snapshot of the checkpoint at `checkpoint` (a RocksDB directory) to `path`, synced.
pub fn write(checkpoint: &Path, meta: &SnapshotMeta, path: &Path) -> Result<(), MetadataError> {
    let names: Vec<&str> = Cf::STATE_MACHINE.iter().map(|cf| cf.name()).collect();
    let db = rocksdb::DB::open_cf_for_read_only(&rocksdb::Options::default(), checkpoint, &names, false)
        .map_err(MetadataError::db("opening a checkpoint"))?;
    let file = File::create(path).map_err(io("create"))?;
    let mut out = Summed { inner: BufWriter::new(file), digest: Digest::new(CrcAlgorithm::Crc32Iscsi) };
    let meta_bytes = super::log_store::encode(meta).map_err(corrupt)?;
    out.write_all(MAGIC).map_err(io("write"))?;
    out.write_all(&FORMAT_VERSION.to_be_bytes()).map_err(io("write"))?;
    out.write_all(&(meta_bytes.len() as u32).to_be_bytes()).map_err(io("write"))?;
    out.write_all(&meta_bytes).map_err(io("write"))?;
    for (index, cf) in Cf::STATE_MACHINE.iter().enumerate() {
        let handle =
            db.cf_handle(cf.name()).ok_or_else(|| corrupt(format!("checkpoint lacks column family {}", cf.name())))?;
        let mut iter = db.raw_iterator_cf(handle);
        iter.seek_to_first();
        while let Some((key, value)) = iter.item() {
            out.write_all(&[index as u8]).map_err(io("write"))?;
            out.write_all(&(key.len() as u32).to_be_bytes()).map_err(io("write"))?;
            out.write_all(key).map_err(io("write"))?;
            out.write_all(&(value.len() as u32).to_be_bytes()).map_err(io("write"))?;
            out.write_all(value).map_err(io("write"))?;
            iter.next();
        }
        iter.status().map_err(MetadataError::db("reading a checkpoint"))?;
    }
    out.write_all(&[END]).map_err(io("write"))?;
    let crc = out.digest.finalize() as u32;
    let mut inner = out.inner.into_inner().map_err(|e| io("flush")(e.into_error()))?;
    inner.write_all(&crc.to_be_bytes()).map_err(io("write"))?;
    inner.sync_all().map_err(io("sync"))
}

fn read_u32(reader: &mut impl Read) -> Result<u32, MetadataError> {
    let mut bytes = [0u8; 4];
    reader.read_exact(&mut bytes).map_err(io("read"))?;
    Ok(u32::from_be_bytes(bytes))
}

fn read_field(reader: &mut impl Read, limit: u32) -> Result<Vec<u8>, MetadataError> {
    let length = read_u32(reader)?;
    if length > limit {
        return Err(corrupt(format!("a field of {length} bytes")));
    }
    let mut bytes = vec![0u8; length as usize];
    reader.read_exact(&mut bytes).map_err(io("read"))?;
    Ok(bytes)
}

/// Checks the whole file's CRC, then returns its meta. Reads the file once, in bounded pieces.
pub fn verify(file: &mut File) -> Result<SnapshotMeta, MetadataError> {
    let length = file.seek(SeekFrom::End(0)).map_err(io("seek"))?;
    if length < (MAGIC.len() + 4 + 4 + 1 + 4) as u64 {
        return Err(corrupt("too short"));
    }
    file.seek(SeekFrom::Start(0)).map_err(io("seek"))?;
    let mut digest = Digest::new(CrcAlgorithm::Crc32Iscsi);
    let mut reader = BufReader::new(&mut *file).take(length - 4);
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buffer).map_err(io("read"))?;
        if n == 0 {
            break;
        }
        digest.update(&buffer[..n]);
    }
    let mut rest = reader.into_inner();
    let stored = read_u32(&mut rest)?;
    if stored != digest.finalize() as u32 {
        return Err(corrupt("checksum mismatch"));
    }
    file.seek(SeekFrom::Start(0)).map_err(io("seek"))?;
    read_header(&mut BufReader::new(&mut *file))
}

fn read_header(reader: &mut impl Read) -> Result<SnapshotMeta, MetadataError> {
    let mut magic = [0u8; 8];
    reader.read_exact(&mut magic).map_err(io("read"))?;
    if &magic != MAGIC {
        return Err(corrupt("not a Coffer snapshot"));
    }
    let version = read_u32(reader)?;
    if version != FORMAT_VERSION {
        return Err(corrupt(format!("format version {version}, this build reads {FORMAT_VERSION}")));
    }
    let meta = read_field(reader, MAX_META_BYTES)?;
    super::log_store::decode(&meta).map_err(corrupt)
}

/// Calls `visit(cf, key, value)` for every record of a verified file, in file order.
pub fn for_each_record(
    file: &mut File,
    mut visit: impl FnMut(Cf, Vec<u8>, Vec<u8>) -> Result<(), MetadataError>,
) -> Result<(), MetadataError> {
    file.seek(SeekFrom::Start(0)).map_err(io("seek"))?;
    let mut reader = BufReader::with_capacity(1 << 20, &mut *file);
    read_header(&mut reader)?;
    loop {
        let mut tag = [0u8; 1];
        reader.read_exact(&mut tag).map_err(io("read"))?;
        if tag[0] == END {
            return Ok(());
        }
        let cf = *Cf::STATE_MACHINE
            .get(usize::from(tag[0]))
            .ok_or_else(|| corrupt(format!("unknown column family index {}", tag[0])))?;
        let key = read_field(&mut reader, MAX_FIELD_BYTES)?;
        let value = read_field(&mut reader, MAX_FIELD_BYTES)?;
        visit(cf, key, value)?;
    }
}
