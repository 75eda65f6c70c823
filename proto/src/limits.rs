//! Bounds shared by both ends of the wire; changing one is a protocol change.

/// Largest chunk of shard bytes in one stream message (the contract: at most 1 MiB).
pub const MAX_CHUNK_BYTES: usize = 1024 * 1024;

/// Longest data id (the name of one object's shards on every disk) a blobnode stores or the metadata service
/// accepts in a damage report. Blobnode record headers reserve exactly this much room for it.
pub const MAX_DATA_ID_BYTES: usize = 64;

/// Largest gRPC message either side decodes: a chunk plus its envelope, or a metadata record with
/// inline data. Kept well above `MAX_CHUNK_BYTES` and the inline threshold.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
