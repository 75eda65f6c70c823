//! Command-line and environment configuration of `coffer metadata`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Configuration of the metadata service.
#[derive(Debug, Clone, clap::Args)]
pub struct MetadataConfig {
    /// Address the gRPC server listens on.
    #[arg(long, env = "COFFER_LISTEN", default_value = "127.0.0.1:9100")]
    pub listen: SocketAddr,

    /// Directory of the RocksDB database; created if missing.
    #[arg(long, env = "COFFER_DB")]
    pub db: PathBuf,

    /// How long the shards of a replaced or deleted object outlive it, so readers still streaming
    /// them are not cut off (e.g. "15m").
    #[arg(long, env = "COFFER_GC_GRACE", default_value = "15m", value_parser = humantime::parse_duration)]
    pub gc_grace: Duration,

    /// How long allocated data may stay uncommitted before its shards are garbage-collected: the
    /// longest a single upload of one object or part may take (e.g. "24h").
    #[arg(long, env = "COFFER_INTENT_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub intent_ttl: Duration,

    /// How often the garbage collector looks for shards due for deletion (e.g. "5s").
    #[arg(long, env = "COFFER_GC_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub gc_interval: Duration,

    /// A blobnode without a heartbeat for this long counts as dead: no new data is placed on it.
    #[arg(long, env = "COFFER_NODE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub node_timeout: Duration,

    /// Length of a lifecycle-rule day in seconds; shorter only to test lifecycle rules quickly.
    #[arg(long, env = "COFFER_LIFECYCLE_DAY_SECONDS", default_value_t = 86400,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub lifecycle_day_seconds: u64,

    /// How often the lifecycle worker takes its next step (at most 1000 keys) through the buckets
    /// that have lifecycle rules (e.g. "1s"); a finished pass waits a lifecycle hour before the next.
    #[arg(long, env = "COFFER_LIFECYCLE_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub lifecycle_interval: Duration,

    /// A webhook target of bucket notifications, `ID=http://HOST:PORT/PATH` (repeatable; the
    /// variable takes a comma-separated list). Buckets name it as `arn:coffer:sqs::ID:webhook`.
    #[arg(long = "notify-webhook", env = "COFFER_NOTIFY_WEBHOOKS", value_delimiter = ',')]
    pub notify_webhooks: Vec<String>,

    /// The initial replicas of a replicated metadata group: the same comma-separated list of URLs
    /// (`http://HOST:PORT`) on each of them, this one's `--advertise` URL among them. A list of
    /// one is a group of one that others can `--join` later. Without it (and without `--join`)
    /// the service runs alone, without a Raft log.
    #[arg(long, env = "COFFER_PEERS", value_delimiter = ',', conflicts_with = "join")]
    pub peers: Vec<String>,

    /// Join the running metadata group one of these URLs belongs to, as a new replica.
    #[arg(long, env = "COFFER_JOIN", value_delimiter = ',')]
    pub join: Vec<String>,

    /// The URL other replicas and clients reach this one at (default: `http://` + `--listen`).
    #[arg(long, env = "COFFER_ADVERTISE")]
    pub advertise: Option<String>,

    /// A replica snapshots its database (and trims its Raft log) after this many log entries.
    #[arg(long, env = "COFFER_RAFT_SNAPSHOT_ENTRIES", default_value_t = 50_000,
          value_parser = clap::value_parser!(u64).range(10..))]
    pub raft_snapshot_entries: u64,

    /// A range group holding more objects than this asks group 0 to split it at its middle key
    /// (0: never). Group 0 itself does not split.
    #[arg(long, env = "COFFER_RANGE_SPLIT_KEYS", default_value_t = 4_000_000)]
    pub range_split_keys: u64,

    /// How often a range group's leader compares its size with `--range-split-keys` (e.g. "30s").
    #[arg(long, env = "COFFER_RANGE_SPLIT_CHECK", default_value = "30s", value_parser = humantime::parse_duration)]
    pub range_split_check: Duration,

    #[command(flatten)]
    pub grpc_tls: coffer_proto::grpc_tls::GrpcTlsArgs,
}

impl MetadataConfig {
    /// The defaults of every flag, with the database at `db`; for tests and embedding.
    pub fn new(db: impl Into<PathBuf>) -> MetadataConfig {
        MetadataConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 9100)),
            db: db.into(),
            gc_grace: Duration::from_secs(15 * 60),
            intent_ttl: Duration::from_secs(24 * 60 * 60),
            gc_interval: Duration::from_secs(5),
            node_timeout: Duration::from_secs(10),
            lifecycle_day_seconds: 86_400,
            lifecycle_interval: Duration::from_secs(1),
            notify_webhooks: Vec::new(),
            peers: Vec::new(),
            join: Vec::new(),
            advertise: None,
            raft_snapshot_entries: 50_000,
            range_split_keys: 4_000_000,
            range_split_check: Duration::from_secs(30),
            grpc_tls: Default::default(),
        }
    }

    /// How this service takes part in a replicated group, if it does.
    pub fn membership(&self) -> Option<crate::raft::Membership> {
        match (self.peers.is_empty(), self.join.is_empty()) {
            (false, _) => Some(crate::raft::Membership::Peers(self.peers.clone())),
            (true, false) => Some(crate::raft::Membership::Join(self.join.clone())),
            (true, true) => None,
        }
    }

    /// The URL this replica is reached at.
    pub fn advertise_url(&self) -> String {
        self.advertise.clone().unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// Where Raft snapshots of the database are kept: beside it, not inside RocksDB's folder.
    pub fn snapshot_dir(&self) -> std::path::PathBuf {
        let mut dir = self.db.clone().into_os_string();
        dir.push(".snapshots");
        dir.into()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: MetadataConfig,
    }

    #[test]
    fn flag_defaults_match_new() {
        let parsed = Cli::try_parse_from(["coffer", "--db", "/tmp/x"]).unwrap().config;
        let built = MetadataConfig::new("/tmp/x");
        assert_eq!(format!("{parsed:?}"), format!("{built:?}"));
    }

    #[test]
    fn durations_parse_as_humantime() {
        let cli =
            Cli::try_parse_from(["coffer", "--db", "d", "--gc-grace", "1m 30s", "--node-timeout", "250ms"]).unwrap();
        assert_eq!(cli.config.gc_grace, Duration::from_secs(90));
        assert_eq!(cli.config.node_timeout, Duration::from_millis(250));
        assert!(Cli::try_parse_from(["coffer"]).is_err(), "--db is required");
    }
}
