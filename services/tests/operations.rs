//! Running a cluster in production: metrics, traces, TLS and several gateways, each against real
//! `coffer` processes. One test binary for all of them (each binary links the whole AWS SDK).

mod common;

#[path = "ops/gateways.rs"]
mod gateways;
#[path = "ops/iam.rs"]
mod iam;
#[path = "ops/metadata_groups.rs"]
mod metadata_groups;
#[path = "ops/metadata_partition.rs"]
mod metadata_partition;
#[path = "ops/metadata_raft.rs"]
mod metadata_raft;
#[path = "ops/metadata_routing.rs"]
mod metadata_routing;
#[path = "ops/metadata_stale_reads.rs"]
mod metadata_stale_reads;
#[path = "ops/observability.rs"]
mod observability;
#[path = "ops/range_group_data.rs"]
mod range_group_data;
#[path = "ops/range_move.rs"]
mod range_move;
#[path = "ops/range_split.rs"]
mod range_split;
#[path = "ops/tls.rs"]
mod tls;
#[path = "ops/tracing.rs"]
mod tracing_e2e;
