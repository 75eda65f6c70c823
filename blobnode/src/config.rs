//! The blobnode's whole configuration, one typed struct: flags and environment variables are read here and
//! nowhere else.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::engine::EngineConfig;

/// Default bound on shard buffer memory: room for four largest shards at once.
pub const DEFAULT_IO_MEMORY_BYTES: u64 = 256 * 1024 * 1024;
const DEFAULT_LISTEN_PORT: u16 = 9200;
const DEFAULT_METADATA: &str = "http://127.0.0.1:9100";
const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, clap::Args)]
pub struct BlobnodeConfig {
    /// Address to serve the blobnode gRPC API on.
    #[arg(long, env = "COFFER_LISTEN", default_value = "127.0.0.1:9200")]
    pub listen: SocketAddr,

    /// Directory of a disk to store shards on; repeat the flag once per disk (the variable takes a comma-separated
    /// list). Created if missing; each disk gets a persistent id on first use.
    #[arg(long = "disk", env = "COFFER_DISKS", value_delimiter = ',', required = true)]
    pub disks: Vec<PathBuf>,

    /// URL of the metadata service to register with; repeat or comma-separate to name several replicas.
    #[arg(long, env = "COFFER_METADATA", value_delimiter = ',', default_value = DEFAULT_METADATA)]
    pub metadata: Vec<String>,

    /// URL other services use to reach this node (default: http://<listen address>). Set it when listening on
    /// 0.0.0.0 or behind NAT.
    #[arg(long, env = "COFFER_ADVERTISE")]
    pub advertise: Option<String>,

    /// Time between heartbeats to the metadata service, e.g. "2s" or "500ms".
    #[arg(long, env = "COFFER_HEARTBEAT_INTERVAL", default_value = "2s", value_parser = parse_interval)]
    pub heartbeat_interval: Duration,

    /// Upper bound on memory held by shard buffers in flight (puts being received, reads being sent), in bytes or
    /// with a KiB/MiB/GiB suffix.
    #[arg(long = "io-memory", env = "COFFER_IO_MEMORY", default_value = "256MiB", value_parser = parse_bytes)]
    pub io_memory_bytes: u64,

    /// Size of one chunk file (shards are appended into chunk files).
    #[arg(long = "chunk-size", env = "COFFER_CHUNK_SIZE", default_value = "1GiB", value_parser = parse_chunk_size)]
    pub chunk_bytes: u64,

    /// Reserve each new chunk's whole size on disk when it is made (one fallocate), so its records land in a few
    /// large extents and a full disk shows at a roll-over; `false`: plain appends (`coffer server`'s default, so
    /// that a trial folder does not hold a chunk per disk).
    #[arg(long = "chunk-preallocate", env = "COFFER_CHUNK_PREALLOCATE", default_value_t = true,
        action = clap::ArgAction::Set)]
    pub chunk_preallocate: bool,

    /// How long a disk's committer waits for more puts to share one fdatasync once puts arrive concurrently (a lone
    /// writer never waits); "0s" takes only what has queued meanwhile.
    #[arg(long, env = "COFFER_COMMIT_WINDOW", default_value = "100us", value_parser = parse_window)]
    pub commit_window: Duration,

    /// Free space each disk keeps for itself: below it the disk turns read-only and takes no new shards.
    #[arg(long = "disk-reserve", env = "COFFER_DISK_RESERVE", default_value = "256MiB", value_parser = parse_bytes)]
    pub reserve_bytes: u64,

    /// Bitrot scrubbing speed per disk, in bytes per second ("0" turns the scrubber off).
    #[arg(long = "scrub-rate", env = "COFFER_SCRUB_RATE", default_value = "1MiB", value_parser = parse_bytes)]
    pub scrub_bytes_per_s: u64,

    /// Pause between two complete scrub passes over a disk.
    #[arg(long, env = "COFFER_SCRUB_INTERVAL", default_value = "24h", value_parser = parse_interval)]
    pub scrub_interval: Duration,

    /// Chunks whose live bytes fall below this fraction of their size are compacted.
    #[arg(long, env = "COFFER_COMPACT_THRESHOLD", default_value = "0.5", value_parser = parse_fraction)]
    pub compact_threshold: f64,

    /// Compaction speed per disk, in bytes per second of live data moved ("0" turns compaction off).
    #[arg(long = "compact-rate", env = "COFFER_COMPACT_RATE", default_value = "16MiB", value_parser = parse_bytes)]
    pub compact_bytes_per_s: u64,

    #[command(flatten)]
    pub grpc_tls: coffer_proto::grpc_tls::GrpcTlsArgs,
}

impl BlobnodeConfig {
    /// The defaults of every flag, for embedding the blobnode without a command line.
    pub fn new(disks: Vec<PathBuf>) -> Self {
        BlobnodeConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_LISTEN_PORT)),
            disks,
            metadata: vec![DEFAULT_METADATA.to_string()],
            advertise: None,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            io_memory_bytes: DEFAULT_IO_MEMORY_BYTES,
            chunk_bytes: 1 << 30,
            chunk_preallocate: true,
            commit_window: Duration::from_micros(100),
            reserve_bytes: 256 << 20,
            scrub_bytes_per_s: 1 << 20,
            scrub_interval: Duration::from_secs(24 * 3600),
            compact_threshold: 0.5,
            compact_bytes_per_s: 16 << 20,
            grpc_tls: Default::default(),
        }
    }

    pub(crate) fn engine(&self) -> EngineConfig {
        EngineConfig {
            chunk_bytes: self.chunk_bytes,
            preallocate: self.chunk_preallocate,
            commit_window: self.commit_window,
            reserve_bytes: self.reserve_bytes,
        }
    }
}

fn parse_chunk_size(s: &str) -> Result<u64, String> {
    let bytes = parse_bytes(s)?;
    // A chunk must hold at least one largest record; the upper bound keeps offsets far from any limit.
    let min = 64 << 20;
    if !(min..=(1 << 40)).contains(&bytes) {
        return Err(format!("must be between 64MiB and 1TiB, got {bytes}"));
    }
    Ok(bytes)
}

fn parse_window(s: &str) -> Result<Duration, String> {
    let window = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    // Longer would add that much latency to every put for no batching gain.
    if window > Duration::from_millis(50) {
        return Err("must be at most 50ms".into());
    }
    Ok(window)
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let f: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if !(0.0..=1.0).contains(&f) {
        return Err("must be between 0 and 1".into());
    }
    Ok(f)
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    // Zero would turn the heartbeat loop into a busy loop against the metadata service.
    if interval < Duration::from_millis(10) {
        return Err("must be at least 10ms".into());
    }
    Ok(interval)
}

/// Parses "268435456", "256MiB", "1GiB", "512KiB" (binary units; "MB" and friends are read the same way).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let value: u64 = digits.parse().map_err(|_| format!("{s:?} is not a byte size"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown unit {other:?} in {s:?}")),
    };
    value.checked_mul(multiplier).ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: BlobnodeConfig,
    }

    #[test]
    fn flags_are_well_formed() {
        Cli::command().debug_assert();
        let help = Cli::command().render_long_help().to_string();
        for flag in ["--listen", "--disk", "--metadata", "--advertise", "--heartbeat-interval", "--io-memory"] {
            assert!(help.contains(flag), "{flag} missing from --help");
        }
    }

    #[test]
    fn parses_flags() {
        // Environment variables would leak in here; none of COFFER_* is set in the test environment.
        let cli = Cli::try_parse_from([
            "blobnode",
            "--disk",
            "/d1",
            "--disk",
            "/d2,/d3",
            "--metadata",
            "http://a:1,http://b:2",
            "--heartbeat-interval",
            "500ms",
            "--io-memory",
            "64MiB",
            "--chunk-preallocate=false",
        ])
        .expect("parse");
        let c = cli.config;
        assert_eq!(c.disks, ["/d1", "/d2", "/d3"].map(PathBuf::from));
        assert_eq!(c.metadata, ["http://a:1", "http://b:2"]);
        assert_eq!(c.heartbeat_interval, Duration::from_millis(500));
        assert_eq!(c.io_memory_bytes, 64 << 20);
        assert!(!c.chunk_preallocate);
        // BlobnodeConfig::new must agree with the flag defaults.
        let parsed = Cli::try_parse_from(["blobnode", "--disk", "/d"]).expect("defaults").config;
        let built = BlobnodeConfig::new(vec!["/d".into()]);
        assert_eq!(format!("{parsed:?}"), format!("{built:?}"));
        assert!(Cli::try_parse_from(["blobnode"]).is_err(), "--disk is required");
        assert!(Cli::try_parse_from(["blobnode", "--disk", "/d", "--heartbeat-interval", "0s"]).is_err());
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("256MiB"), Ok(256 << 20));
        assert_eq!(parse_bytes("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("3k"), Ok(3072));
        assert!(parse_bytes("MiB").is_err());
        assert!(parse_bytes("5 parsecs").is_err());
        assert!(parse_bytes("99999999999999999999GiB").is_err());
    }
}
