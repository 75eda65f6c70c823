//! The RocksDB database: opening it and every read. Writes happen only in the applier, through
//! [`crate::command`].

use std::path::Path;

use coffer_proto::Message;
use coffer_proto::pb::metadata::{
    BucketRecord, DamagedShard, DataLayout, DataOwner, GcRecord, NodeAdmin, NodeInfo, ObjectRecord, PartRecord,
    UploadRecord,
};
use rocksdb::statistics::Ticker;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, Options, ReadOptions,
    WriteBatch, WriteOptions,
};

use crate::error::MetadataError;
use crate::keys;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cf {
    Buckets,
    Objects,
    Uploads,
    Parts,
    Nodes,
    Gc,
    Damaged,
    /// data id → `DataOwner`: the record that references the data (repair updates it there).
    Owners,
    /// `keys::holding` → nothing: data with shards (possibly) on a disk, from allocation until the
    /// collector deleted them. Repair finds the work of a lost disk here.
    Holdings,
    /// node id → `NodeAdmin` as one byte: what the operator wants of the node.
    NodeAdmin,
    /// Schema markers (e.g. that the owner and holding indexes were built) and the IAM generation.
    Meta,
    /// `kind byte + name` → `IamEntity`: users, access keys, groups, policies, settings.
    Iam,
    /// `keys::version` → `ObjectRecord`: every version of the objects of versioned buckets, delete
    /// markers included, newest first per key. The current one is also in `objects` unless it is
    /// a delete marker (see `versions.rs`).
    Versions,
    /// Big-endian sequence → `NotificationEvent`: bucket notifications waiting for delivery
    /// (bounded, see `notify.rs`).
    Notify,
    /// `expiry::index_key` (big-endian time, bucket, 0, key) → nothing: current objects with an
    /// expiry time (Swift's `X-Delete-At`), in time order.
    Expiry,
    /// Raft's log (big-endian index → entry); not part of the state machine (see `raft`).
    RaftLog,
    /// Raft's vote, committed and purged log ids; not part of the state machine.
    RaftState,
}

impl Cf {
    /// Every column family the database opens: the state machine's, then Raft's two.
    pub const ALL: [Cf; 17] = {
        let mut all = [Cf::RaftState; 17];
        let mut i = 0;
        while i < Cf::STATE_MACHINE.len() {
            all[i] = Cf::STATE_MACHINE[i];
            i += 1;
        }
        all[15] = Cf::RaftLog;
        all
    };

    /// The state machine's column families: what a Raft snapshot holds. Their position is their
    /// number in snapshot files, so new ones go at the end.
    pub const STATE_MACHINE: [Cf; 15] = [
        Cf::Buckets,
        Cf::Objects,
        Cf::Uploads,
        Cf::Parts,
        Cf::Nodes,
        Cf::Gc,
        Cf::Damaged,
        Cf::Owners,
        Cf::Holdings,
        Cf::NodeAdmin,
        Cf::Meta,
        Cf::Iam,
        Cf::Versions,
        Cf::Notify,
        Cf::Expiry,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cf::Buckets => "buckets",
            Cf::Objects => "objects",
            Cf::Uploads => "uploads",
            Cf::Parts => "parts",
            Cf::Nodes => "nodes",
            Cf::Gc => "gc",
            Cf::Damaged => "damaged",
            Cf::Owners => "owners",
            Cf::Holdings => "holdings",
            Cf::NodeAdmin => "node_admin",
            Cf::Meta => "meta",
            Cf::Iam => "iam",
            Cf::Versions => "versions",
            Cf::Notify => "notify",
            Cf::Expiry => "expiry",
            Cf::RaftLog => "raft_log",
            Cf::RaftState => "raft_state",
        }
    }
}

/// Shared by all column families; metadata records are small, so this holds a large share of a busy index.
const BLOCK_CACHE_BYTES: usize = 32 << 20;
const MEMTABLES_BYTES: usize = 64 << 20;
const BLOOM_BITS_PER_KEY: f64 = 10.0;

pub struct Store {
    db: DB,
    /// Kept for its statistics object (tickers), read by [`Store::stats`].
    options: Options,
    /// A range group's descriptor (`range`), read at open or set before its Raft starts, and
    /// reloaded by the write that applies a split of the range (see `split`) and after a snapshot
    /// install; unset in group 0 and in a lone service, which accept every key.
    range: std::sync::RwLock<Option<std::sync::Arc<crate::range::Descriptor>>>,
    /// Set by the apply of a split; the write that persists it reloads [`Store::range`].
    range_changed: std::sync::atomic::AtomicBool,
    /// Group 0's view of its range-group records (`range::GROUP_RECORD_PREFIX` in `meta`), for the
    /// check that refuses keys a range group owns (see [`Store::check_directory_key`]).
    directory: Directory,
}

/// An in-memory copy of group 0's range-group records. It is never stale for a command being
/// applied: the records change only by applying `CreateRangeGroup` (which marks the copy for a
/// reload) or by installing a snapshot (which reloads it), the copy is rebuilt from the database
/// inside the same [`Store::write`] that persisted the change, and the state machine applies
/// commands one at a time, each after the previous one's write returned. Replicas therefore
/// refuse exactly the same commands. Point reads on other threads may see the copy a moment
/// before a new record becomes visible to them; those reads are not ordered against the log
/// anyway.
#[derive(Default)]
struct Directory {
    /// Whether there is any record: a keyed command's check costs one atomic load while there are
    /// none (always so in a lone service and in most group 0s).
    any: std::sync::atomic::AtomicBool,
    records: std::sync::RwLock<std::sync::Arc<Vec<crate::range::GroupRecord>>>,
    /// Set by the apply of `CreateRangeGroup`; the next write reloads the records.
    changed: std::sync::atomic::AtomicBool,
    /// Set by an apply that queued a bucket-state outbox entry; the next write wakes the delivery
    /// task (after the entry is in the database, so it finds it).
    outbox_written: std::sync::atomic::AtomicBool,
    /// Wakes group 0's delivery task (`bucket_state::deliver`): an outbox entry was written, or
    /// the records were reloaded (a snapshot may bring entries). A permit waits for a busy task.
    outbox: tokio::sync::Notify,
    /// Wakes the range-group watcher (`groups::Groups::watch`): the records were reloaded.
    reloaded: tokio::sync::Notify,
}

/// RocksDB figures worth watching: write stalls, compaction debt, block cache effectiveness.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DbStats {
    pub stall_micros: u64,
    pub pending_compaction_bytes: u64,
    pub block_cache_hits: u64,
    pub block_cache_misses: u64,
}

impl Store {
    /// Opens (creating if needed) the database with all column families. Blocking.
    pub fn open(path: &Path) -> Result<Store, MetadataError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_compression_type(DBCompressionType::Lz4);
        // All memtables together, whichever column families they belong to: small inline objects would otherwise
        // fill 64 MiB per family (and its immutable twin) before a flush, a large share of a 512 MiB server.
        options.set_db_write_buffer_size(MEMTABLES_BYTES);
        // Tickers for the metrics (stalls, cache hits); the default level skips the costly timers.
        options.enable_statistics();
        // One block cache for every column family, and bloom filters: most point lookups on the write path are for
        // keys that do not exist yet (a new object, a new part), which a filter answers without reading a block.
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let cfs = Cf::ALL.map(|cf| {
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            table.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
            table.set_cache_index_and_filter_blocks(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
            let mut cf_options = Options::default();
            cf_options.set_compression_type(DBCompressionType::Lz4);
            cf_options.set_block_based_table_factory(&table);
            ColumnFamilyDescriptor::new(cf.name(), cf_options)
        });
        let db = DB::open_cf_descriptors(&options, path, cfs).map_err(MetadataError::db("opening the database"))?;
        let store = Store {
            db,
            options,
            range: std::sync::RwLock::default(),
            range_changed: std::sync::atomic::AtomicBool::new(false),
            directory: Directory::default(),
        };
        store.reload_directory()?;
        store.reload_range()?;
        Ok(store)
    }

    /// This database's range when it is a range group's (see `range`).
    pub(crate) fn range(&self) -> Option<std::sync::Arc<crate::range::Descriptor>> {
        self.range.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the stored descriptor again (at open, after a split's write, after a snapshot
    /// install). A database that was a range group's stays one. Blocking.
    pub(crate) fn reload_range(&self) -> Result<(), MetadataError> {
        let stored = self.db.get_cf(self.cf(Cf::Meta)?, crate::range::DESCRIPTOR_KEY);
        if let Some(bytes) = stored.map_err(MetadataError::db("reading the range descriptor"))? {
            let descriptor = crate::range::decode_descriptor(&bytes)?;
            *self.range.write().unwrap_or_else(|e| e.into_inner()) = Some(std::sync::Arc::new(descriptor));
        }
        Ok(())
    }

    /// Marks the range as changing: called by the apply of a split, so the write that persists
    /// it reloads the descriptor before the next command is applied.
    pub(crate) fn range_changing(&self) {
        self.range_changed.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Makes this database a range group's, durably (before its Raft starts); the same descriptor
    /// again is a no-op, another one an error (after that, ranges change only through the log).
    /// Blocking.
    pub(crate) fn set_range(&self, descriptor: crate::range::Descriptor) -> Result<(), MetadataError> {
        if let Some(current) = self.range() {
            if *current == descriptor {
                return Ok(());
            }
            return Err(MetadataError::Internal(format!(
                "the group's database already holds range {} (epoch {}), not {} (epoch {})",
                current.range, current.epoch, descriptor.range, descriptor.epoch
            )));
        }
        let mut options = WriteOptions::default();
        options.set_sync(true);
        let bytes = crate::range::encode_descriptor(&descriptor);
        self.db
            .put_cf_opt(self.cf(Cf::Meta)?, crate::range::DESCRIPTOR_KEY, bytes, &options)
            .map_err(MetadataError::db("storing the range descriptor"))?;
        *self.range.write().unwrap_or_else(|e| e.into_inner()) = Some(std::sync::Arc::new(descriptor));
        Ok(())
    }

    /// Rebuilds the in-memory copy of group 0's range-group records from the database (at open,
    /// after a snapshot install, after a write that applied `CreateRangeGroup`). Blocking.
    pub(crate) fn reload_directory(&self) -> Result<(), MetadataError> {
        use std::sync::atomic::Ordering;
        let records = crate::range::group_records(self)?;
        let mut current = self.directory.records.write().unwrap_or_else(|e| e.into_inner());
        self.directory.any.store(!records.is_empty(), Ordering::Release);
        *current = std::sync::Arc::new(records);
        drop(current);
        self.directory.reloaded.notify_one();
        self.directory.outbox.notify_one();
        Ok(())
    }

    /// Marks a bucket-state outbox entry as queued by the command being applied: the write that
    /// persists it wakes the delivery task.
    pub(crate) fn outbox_changing(&self) {
        self.directory.outbox_written.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Returns once an outbox entry was written or the records reloaded since the last return
    /// (at once if that happened while nobody waited).
    pub(crate) async fn outbox_written(&self) {
        self.directory.outbox.notified().await
    }

    /// Returns once the range-group records were reloaded since the last return (at once if that
    /// happened while nobody waited).
    pub(crate) async fn directory_reloaded(&self) {
        self.directory.reloaded.notified().await
    }

    /// Marks the range-group records as changing: called by the apply of `CreateRangeGroup`, so
    /// the write that persists it reloads them.
    pub(crate) fn directory_changing(&self) {
        self.directory.changed.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Group 0's range-group records as of the last applied write (empty in a range group and in a
    /// lone service without any).
    pub(crate) fn directory_records(&self) -> std::sync::Arc<Vec<crate::range::GroupRecord>> {
        if !self.directory.any.load(std::sync::atomic::Ordering::Acquire) {
            return std::sync::Arc::default();
        }
        self.directory.records.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Group 0's refusal of a (bucket, key) that a recorded range group owns: `WrongRange`, so a
    /// client with a stale range table refreshes it instead of writing (or reading) the key where
    /// the range group's readers never look. Nothing to check in a range group (its descriptor is
    /// checked instead) or while no range group exists.
    pub(crate) fn check_directory_key(&self, bucket: &str, key: &str) -> Result<(), MetadataError> {
        if self.range().is_some() || !self.directory.any.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        let records = self.directory_records();
        match records.iter().find(|record| record.descriptor.range.contains(bucket, key)) {
            None => Ok(()),
            Some(record) => Err(MetadataError::WrongRange {
                epoch: record.descriptor.epoch,
                detail: format!(
                    "{bucket}/{key} is in range group {}'s range {}",
                    record.group, record.descriptor.range
                ),
            }),
        }
    }

    pub fn stats(&self) -> DbStats {
        let pending_compaction_bytes = Cf::ALL
            .iter()
            .filter_map(|cf| self.db.cf_handle(cf.name()))
            .filter_map(|handle| {
                self.db.property_int_value_cf(handle, "rocksdb.estimate-pending-compaction-bytes").ok().flatten()
            })
            .sum();
        DbStats {
            stall_micros: self.options.get_ticker_count(Ticker::StallMicros),
            pending_compaction_bytes,
            block_cache_hits: self.options.get_ticker_count(Ticker::BlockCacheHit),
            block_cache_misses: self.options.get_ticker_count(Ticker::BlockCacheMiss),
        }
    }

    pub(crate) fn db(&self) -> &DB {
        &self.db
    }

    pub(crate) fn cf(&self, cf: Cf) -> Result<&ColumnFamily, MetadataError> {
        self.db
            .cf_handle(cf.name())
            .ok_or_else(|| MetadataError::Internal(format!("column family {} is not open", cf.name())))
    }

    /// Applies one command's changes. Not synced: the applier syncs the WAL once per group.
    /// Reloads the range-group records when the batch applied `CreateRangeGroup` (see
    /// [`Directory`]), before returning, so the next command applied sees them.
    pub(crate) fn write(&self, batch: WriteBatch) -> Result<(), MetadataError> {
        let mut options = WriteOptions::default();
        options.set_sync(false);
        let written = self.db.write_opt(batch, &options).map_err(MetadataError::db("writing a batch"));
        if self.directory.changed.swap(false, std::sync::atomic::Ordering::AcqRel) {
            self.reload_directory()?;
        }
        if self.range_changed.swap(false, std::sync::atomic::Ordering::AcqRel) {
            self.reload_range()?;
        }
        if self.directory.outbox_written.swap(false, std::sync::atomic::Ordering::AcqRel) {
            self.directory.outbox.notify_one();
        }
        written
    }

    /// Makes every write so far durable (one fsync for the whole group).
    pub(crate) fn sync_wal(&self) -> Result<(), MetadataError> {
        self.db.flush_wal(true).map_err(MetadataError::db("syncing the WAL"))
    }

    pub(crate) fn get<M: Message + Default>(&self, cf: Cf, key: &[u8]) -> Result<Option<M>, MetadataError> {
        let handle = self.cf(cf)?;
        let Some(bytes) = self.db.get_pinned_cf(handle, key).map_err(MetadataError::db("reading a record"))? else {
            return Ok(None);
        };
        decode(cf, key, &bytes).map(Some)
    }

    /// Calls `visit` for every entry whose key starts with `prefix`, in key order, until it returns
    /// `false`.
    pub(crate) fn scan_prefix(
        &self,
        cf: Cf,
        prefix: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool, MetadataError>,
    ) -> Result<(), MetadataError> {
        let mut iter = self.db.raw_iterator_cf_opt(self.cf(cf)?, bounded(prefix));
        iter.seek(prefix);
        while let Some((key, value)) = iter.item() {
            if !key.starts_with(prefix) || !visit(key, value)? {
                return Ok(());
            }
            iter.next();
        }
        iter.status().map_err(MetadataError::db("scanning"))
    }

    pub fn find_bucket(&self, name: &str) -> Result<Option<BucketRecord>, MetadataError> {
        self.get(Cf::Buckets, &keys::bucket(name))
    }

    pub fn bucket(&self, name: &str) -> Result<BucketRecord, MetadataError> {
        self.find_bucket(name)?.ok_or_else(|| MetadataError::NoSuchBucket(name.to_string()))
    }

    /// Sorted by name: the key order of the buckets column family.
    pub fn list_buckets(&self) -> Result<Vec<BucketRecord>, MetadataError> {
        let mut out = Vec::new();
        self.scan_prefix(Cf::Buckets, b"", |key, value| {
            out.push(decode(Cf::Buckets, key, value)?);
            Ok(true)
        })?;
        Ok(out)
    }

    pub fn find_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>, MetadataError> {
        self.get(Cf::Objects, &keys::object(bucket, key))
    }

    pub fn object(&self, bucket: &str, key: &str) -> Result<ObjectRecord, MetadataError> {
        if let Some(record) = self.find_object(bucket, key)? {
            return Ok(record);
        }
        self.bucket(bucket)?;
        Err(MetadataError::NoSuchKey { bucket: bucket.to_string(), key: key.to_string() })
    }

    /// Whether the bucket holds any object, noncurrent version or delete marker.
    pub fn bucket_has_objects(&self, bucket: &str) -> Result<bool, MetadataError> {
        let mut any = false;
        for cf in [Cf::Objects, Cf::Versions] {
            self.scan_prefix(cf, &keys::bucket_prefix(bucket), |_, _| {
                any = true;
                Ok(false)
            })?;
        }
        Ok(any)
    }

    pub fn find_version(&self, bucket: &str, key: &str, order: u64) -> Result<Option<ObjectRecord>, MetadataError> {
        self.get(Cf::Versions, &keys::version(bucket, key, order))
    }

    /// The upload, which must belong to `bucket`/`key`.
    pub fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<UploadRecord, MetadataError> {
        if let Some(upload) = self.get(Cf::Uploads, &keys::upload(bucket, key, upload_id))? {
            return Ok(upload);
        }
        self.bucket(bucket)?;
        Err(MetadataError::NoSuchUpload(upload_id.to_string()))
    }

    pub fn find_part(&self, upload_id: &str, part_number: u32) -> Result<Option<PartRecord>, MetadataError> {
        self.get(Cf::Parts, &keys::part(upload_id, part_number))
    }

    /// Every part of an upload, ascending, with its key.
    pub fn all_parts(&self, upload_id: &str) -> Result<Vec<(Vec<u8>, PartRecord)>, MetadataError> {
        let mut out = Vec::new();
        self.scan_prefix(Cf::Parts, &keys::part_prefix(upload_id), |key, value| {
            out.push((key.to_vec(), decode(Cf::Parts, key, value)?));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Every upload of a bucket with its key.
    pub fn all_uploads(&self, bucket: &str) -> Result<Vec<(Vec<u8>, UploadRecord)>, MetadataError> {
        let mut out = Vec::new();
        self.scan_prefix(Cf::Uploads, &keys::bucket_prefix(bucket), |key, value| {
            out.push((key.to_vec(), decode(Cf::Uploads, key, value)?));
            Ok(true)
        })?;
        Ok(out)
    }

    pub fn nodes(&self) -> Result<Vec<NodeInfo>, MetadataError> {
        let mut out = Vec::new();
        self.scan_prefix(Cf::Nodes, b"", |key, value| {
            out.push(decode(Cf::Nodes, key, value)?);
            Ok(true)
        })?;
        Ok(out)
    }

    /// Up to `limit` damaged-shard reports, in key (disk, shard) order.
    pub fn damaged_shards(&self, limit: usize) -> Result<Vec<DamagedShard>, MetadataError> {
        let mut out = Vec::new();
        self.scan_prefix(Cf::Damaged, b"", |key, value| {
            out.push(decode(Cf::Damaged, key, value)?);
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    pub fn owner(&self, data_id: &[u8]) -> Result<Option<DataOwner>, MetadataError> {
        self.get(Cf::Owners, data_id)
    }

    /// The layout of `data_id` as its owner's record stores it, or `None` when no record owns it
    /// (not committed yet, or handed to the collector).
    pub fn owned_layout(&self, data_id: &[u8]) -> Result<Option<(DataOwner, DataLayout)>, MetadataError> {
        let Some(owner) = self.owner(data_id)? else {
            return Ok(None);
        };
        let segments = if let Some(order) = owner.version_order {
            self.find_version(&owner.bucket, &owner.key, order)?.map(|r| r.segments).unwrap_or_default()
        } else if owner.upload_id.is_empty() {
            self.find_object(&owner.bucket, &owner.key)?.map(|r| r.segments).unwrap_or_default()
        } else {
            self.find_part(&owner.upload_id, owner.part_number)?.and_then(|p| p.segment).into_iter().collect()
        };
        let layout = segments.into_iter().filter_map(|s| s.layout).find(|l| l.data_id == data_id);
        Ok(layout.map(|l| (owner, l)))
    }

    /// Up to `limit` data ids with shards (possibly) on the disk, after `after` (exclusive).
    pub fn holdings(
        &self,
        node_id: &str,
        disk_id: &str,
        after: &[u8],
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, MetadataError> {
        let prefix = keys::holding_prefix(node_id, disk_id);
        let mut out = Vec::new();
        self.scan_prefix(Cf::Holdings, &prefix, |key, _| {
            let data_id = &key[prefix.len()..];
            if data_id > after {
                out.push(data_id.to_vec());
            }
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    /// Up to `limit` damaged-shard reports with their keys, in key order.
    pub fn damaged_with_keys(&self, limit: usize) -> Result<Vec<(Vec<u8>, DamagedShard)>, MetadataError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        self.scan_prefix(Cf::Damaged, b"", |key, value| {
            out.push((key.to_vec(), decode(Cf::Damaged, key, value)?));
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    /// Whether the disk has (or may have) shards of `data_id`.
    pub fn holds(&self, node_id: &str, disk_id: &str, data_id: &[u8]) -> Result<bool, MetadataError> {
        let handle = self.cf(Cf::Holdings)?;
        let key = keys::holding(node_id, disk_id, data_id);
        Ok(self.db.get_pinned_cf(handle, key).map_err(MetadataError::db("reading a holding"))?.is_some())
    }

    /// How many data still have a column on one of the node's disks, by their owners' layouts
    /// (counting stops at `limit`).
    /// Checked during the scan, so "does the node hold anything" (`limit` 1, asked by group 0 of
    /// every range group while a node drains) stops at the first live column instead of reading
    /// every holding of the node.
    pub fn referenced_columns(&self, node_id: &str, limit: usize) -> Result<usize, MetadataError> {
        let node_prefix = keys::node_holdings_prefix(node_id);
        let limit = limit.max(1);
        let mut referenced = 0;
        self.scan_prefix(Cf::Holdings, &node_prefix, |key, _| {
            // node 0x00 disk 0x00 data id: the data id follows the second separator.
            let rest = &key[node_prefix.len()..];
            if let Some(at) = rest.iter().position(|&b| b == keys::SEP)
                && let Some((_, layout)) = self.owned_layout(&rest[at + 1..])?
                && layout.shards.iter().any(|s| s.node_id == node_id)
            {
                referenced += 1;
            }
            Ok(referenced < limit)
        })?;
        Ok(referenced)
    }

    /// Every damaged-shard report about `data_id` on the disk, with its key.
    pub fn damaged_reports(
        &self,
        disk_id: &str,
        data_id: &[u8],
    ) -> Result<Vec<(Vec<u8>, DamagedShard)>, MetadataError> {
        let mut out = Vec::new();
        self.scan_prefix(Cf::Damaged, &keys::damaged_prefix(disk_id, data_id), |key, value| {
            let report: DamagedShard = decode(Cf::Damaged, key, value)?;
            // The prefix also matches longer data ids that start with this one.
            if report.data_id == data_id {
                out.push((key.to_vec(), report));
            }
            Ok(true)
        })?;
        Ok(out)
    }

    /// The operator's wishes per node; nodes not listed are active.
    pub fn node_admin(&self) -> Result<Vec<(String, NodeAdmin)>, MetadataError> {
        let mut out = Vec::new();
        self.scan_prefix(Cf::NodeAdmin, b"", |key, value| {
            let admin = value.first().and_then(|&b| NodeAdmin::try_from(i32::from(b)).ok()).unwrap_or_default();
            out.push((String::from_utf8_lossy(key).into_owned(), admin));
            Ok(true)
        })?;
        Ok(out)
    }

    pub fn marker(&self, name: &str) -> Result<bool, MetadataError> {
        let handle = self.cf(Cf::Meta)?;
        Ok(self.db.get_pinned_cf(handle, name.as_bytes()).map_err(MetadataError::db("reading a marker"))?.is_some())
    }

    pub fn gc_entry(&self, key: &[u8]) -> Result<Option<GcRecord>, MetadataError> {
        self.get(Cf::Gc, key)
    }

    /// Up to `limit` gc entries due at `now_unix_ms`, oldest first.
    pub fn due_gc(&self, now_unix_ms: i64, limit: usize) -> Result<Vec<(Vec<u8>, GcRecord)>, MetadataError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut options = ReadOptions::default();
        // Every key of a due entry is below the first key of the next millisecond.
        options.set_iterate_upper_bound(keys::gc(now_unix_ms.saturating_add(1), b""));
        let mut iter = self.db.raw_iterator_cf_opt(self.cf(Cf::Gc)?, options);
        iter.seek_to_first();
        while let Some((key, value)) = iter.item() {
            out.push((key.to_vec(), decode(Cf::Gc, key, value)?));
            if out.len() >= limit {
                return Ok(out);
            }
            iter.next();
        }
        iter.status().map_err(MetadataError::db("scanning gc entries"))?;
        Ok(out)
    }
}

/// Read options whose upper bound ends the scan at the end of `prefix`'s range, so RocksDB does not
/// wade through tombstones beyond it.
pub(crate) fn bounded(prefix: &[u8]) -> ReadOptions {
    let mut options = ReadOptions::default();
    if let Some(end) = keys::successor(prefix) {
        options.set_iterate_upper_bound(end);
    }
    options
}

pub(crate) fn decode<M: Message + Default>(cf: Cf, key: &[u8], value: &[u8]) -> Result<M, MetadataError> {
    M::decode(value).map_err(|e| {
        MetadataError::corrupt(format!("record in {} at key {:?}", cf.name(), String::from_utf8_lossy(key)), e)
    })
}

/// Runs `task` (blocking database work) on tokio's blocking pool; `what` names it if the task
/// itself fails.
pub(crate) async fn blocking<T: Send + 'static>(
    what: &'static str,
    task: impl FnOnce() -> Result<T, MetadataError> + Send + 'static,
) -> Result<T, MetadataError> {
    tokio::task::spawn_blocking(task)
        .await
        .map_err(|e| MetadataError::Internal(format!("a {what} task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let record = BucketRecord { name: "b".into(), created_unix_ms: 7, ..Default::default() };
            let mut batch = WriteBatch::default();
            batch.put_cf(store.cf(Cf::Buckets).unwrap(), keys::bucket("b"), record.encode_to_vec());
            store.write(batch).unwrap();
            store.sync_wal().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.bucket("b").unwrap().created_unix_ms, 7);
        assert_eq!(store.list_buckets().unwrap().len(), 1);
    }

    #[test]
    fn a_corrupt_record_is_an_internal_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut batch = WriteBatch::default();
        batch.put_cf(store.cf(Cf::Buckets).unwrap(), keys::bucket("b"), [0xFF, 0xFF, 0xFF]);
        store.write(batch).unwrap();
        let err = store.bucket("b").unwrap_err();
        assert!(matches!(err, MetadataError::Corrupt { .. }), "{err}");
        assert_eq!(err.code(), coffer_proto::ErrorCode::Internal);
    }

    #[test]
    fn due_gc_returns_only_entries_whose_time_has_come() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut batch = WriteBatch::default();
        for (t, id) in [(10, b"a"), (20, b"b"), (30, b"c")] {
            let record = GcRecord { data_id: id.to_vec(), shards: vec![], ..Default::default() };
            batch.put_cf(store.cf(Cf::Gc).unwrap(), keys::gc(t, id), record.encode_to_vec());
        }
        store.write(batch).unwrap();
        let ids = |v: Vec<(Vec<u8>, GcRecord)>| v.into_iter().map(|(_, r)| r.data_id).collect::<Vec<_>>();
        assert_eq!(ids(store.due_gc(20, 10).unwrap()), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(ids(store.due_gc(100, 1).unwrap()), vec![b"a".to_vec()]);
        assert!(store.due_gc(9, 10).unwrap().is_empty());
    }
}
