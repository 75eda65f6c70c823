//! Command-line and environment configuration of `coffer repair`.

use std::time::Duration;

/// Configuration of a repair worker.
#[derive(Debug, Clone, clap::Args)]
pub struct RepairConfig {
    /// Metadata service URL(s).
    #[arg(long = "metadata", env = "COFFER_METADATA", value_delimiter = ',', default_value = "http://127.0.0.1:9100")]
    pub metadata: Vec<String>,

    /// How long a blobnode may be silent (or a disk reported missing or failing) before its shards
    /// are rebuilt elsewhere (e.g. "5s", "15m"). Shorter means less time with reduced redundancy;
    /// longer spares the traffic when a node merely restarts.
    #[arg(long, env = "COFFER_REPAIR_GRACE", default_value = "15m", value_parser = humantime::parse_duration)]
    pub repair_grace: Duration,

    /// Bytes per second this worker writes at most (rebuilt shards); 0 = unlimited (e.g. "64MiB").
    #[arg(long, env = "COFFER_REPAIR_RATE", default_value = "64MiB", value_parser = coffer_gateway::config::parse_size)]
    pub repair_rate: u64,

    /// Columns rebuilt at once.
    #[arg(long, env = "COFFER_REPAIR_CONCURRENCY", default_value_t = 4)]
    pub repair_concurrency: usize,

    /// Pause between looks for work when there was none (e.g. "5s").
    #[arg(long, env = "COFFER_REPAIR_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub repair_interval: Duration,

    /// How long a claimed column stays reserved for this worker.
    #[arg(long, env = "COFFER_REPAIR_LEASE", default_value = "10m", value_parser = humantime::parse_duration)]
    pub repair_lease: Duration,

    /// Name of this worker in leases and logs (default: a random id).
    #[arg(long, env = "COFFER_REPAIR_WORKER")]
    pub worker: Option<String>,

    #[command(flatten)]
    pub grpc_tls: coffer_proto::grpc_tls::GrpcTlsArgs,

    /// Upper bound on one call to the metadata service or a blobnode.
    #[arg(long, env = "COFFER_RPC_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub rpc_timeout: Duration,
}

impl RepairConfig {
    /// The defaults of every flag; for embedding.
    pub fn new(metadata: Vec<String>) -> RepairConfig {
        RepairConfig {
            metadata,
            repair_grace: Duration::from_secs(15 * 60),
            repair_rate: 64 << 20,
            repair_concurrency: 4,
            repair_interval: Duration::from_secs(5),
            repair_lease: Duration::from_secs(600),
            worker: None,
            rpc_timeout: Duration::from_secs(30),
            grpc_tls: Default::default(),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(1..=64).contains(&self.repair_concurrency) {
            return Err("--repair-concurrency must be between 1 and 64".into());
        }
        if self.repair_lease < Duration::from_secs(10) {
            return Err("--repair-lease must be at least 10s".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: RepairConfig,
    }

    #[test]
    fn flag_defaults_match_new() {
        let parsed = Cli::try_parse_from(["coffer"]).unwrap().config;
        let built = RepairConfig::new(vec!["http://127.0.0.1:9100".into()]);
        assert_eq!(format!("{parsed:?}"), format!("{built:?}"));
        let cli = Cli::try_parse_from(["coffer", "--repair-grace", "5s", "--repair-rate", "1MiB"]).unwrap();
        assert_eq!(cli.config.repair_grace, Duration::from_secs(5));
        assert_eq!(cli.config.repair_rate, 1 << 20);
    }
}
