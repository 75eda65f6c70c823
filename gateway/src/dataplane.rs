//! The data path's shared handles: metadata client, blobnode pool, cluster view and limits.
//! The write and read halves live in `write_path` and `read_path`.

use coffer_proto::blobnode_client::BlobnodePool;
use coffer_proto::metadata_client::MetadataClient;
use coffer_proto::stale_reads::ListingClient;

use crate::cluster::ClusterView;
use crate::config::ErasureCode;

/// Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct DataPlane {
    pub metadata: MetadataClient,
    /// The listings S3 and Swift clients ask for: through `metadata`, or up to
    /// `--metadata-stale-list-ms` stale from any replica.
    pub listings: ListingClient,
    pub blobnodes: BlobnodePool,
    pub cluster: ClusterView,
    pub ec: ErasureCode,
    pub stripe_size: u64,
    pub inline_threshold: u64,
    pub stripes_in_flight: usize,
    /// Shards of every stripe that must land for a write to succeed.
    pub write_quorum: usize,
    /// When a read's shards are late, parity reads start after this (hedging).
    pub hedge_after: std::time::Duration,
}
