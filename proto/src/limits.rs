//! Bounds shared by both ends of the wire; changing one is a protocol change.

/// Largest chunk of shard bytes in one stream message (the contract: at most 1 MiB).
pub const MAX_CHUNK_BYTES: usize = 1024 * 1024;

/// Largest gRPC message either side decodes: a chunk plus its envelope, or a metadata record with
/// inline data. Kept well above `MAX_CHUNK_BYTES` and the inline threshold.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
