//! The gateway's configuration: one typed struct, every flag with a `COFFER_*` twin.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// Reed-Solomon geometry: k data shards and m parity shards per stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErasureCode {
    pub data_shards: u32,
    pub parity_shards: u32,
}

impl ErasureCode {
    pub fn total(self) -> u32 {
        self.data_shards + self.parity_shards
    }
}

impl FromStr for ErasureCode {
    type Err = String;

    /// Parses `K+M`, e.g. `4+2`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (k, m) = s.split_once('+').ok_or_else(|| format!("expected K+M such as 4+2, got {s:?}"))?;
        let data_shards: u32 = k.trim().parse().map_err(|_| format!("bad data shard count in {s:?}"))?;
        let parity_shards: u32 = m.trim().parse().map_err(|_| format!("bad parity shard count in {s:?}"))?;
        if data_shards == 0 {
            return Err("at least one data shard is needed".into());
        }
        if data_shards + parity_shards > 32 {
            return Err("at most 32 shards per stripe".into());
        }
        Ok(ErasureCode { data_shards, parity_shards })
    }
}

impl std::fmt::Display for ErasureCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}+{}", self.data_shards, self.parity_shards)
    }
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("bad size {s:?}"))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} (use B, KiB, MiB or GiB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("size {s:?} overflows"))
}

/// `coffer gateway`: the S3 front end.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayConfig {
    /// Address the S3 API listens on.
    #[arg(long, env = "COFFER_ADDRESS", default_value = "0.0.0.0:9000")]
    pub address: SocketAddr,

    /// Metadata service URL(s): any replicas of the group; calls go to its leader.
    #[arg(long = "metadata", env = "COFFER_METADATA", value_delimiter = ',', default_value = "http://127.0.0.1:9100")]
    pub metadata: Vec<String>,

    /// Base domain(s) for virtual-hosted-style requests (BUCKET.DOMAIN); path style always works.
    #[arg(long = "domain", env = "COFFER_DOMAIN", value_delimiter = ',')]
    pub domains: Vec<String>,

    /// Erasure code for new objects, K+M (data+parity shards per stripe).
    #[arg(long, env = "COFFER_EC", default_value = "4+2")]
    pub ec: ErasureCode,

    /// Object bytes per stripe; each stripe is coded on its own (e.g. 4MiB).
    #[arg(long, env = "COFFER_STRIPE_SIZE", default_value = "4MiB", value_parser = parse_size)]
    pub stripe_size: u64,

    /// Objects and parts up to this size live inside the metadata record instead of on blobnodes.
    #[arg(long, env = "COFFER_INLINE_THRESHOLD", default_value = "128KiB", value_parser = parse_size)]
    pub inline_threshold: u64,

    /// Region reported to clients and expected in signatures.
    #[arg(long, env = "COFFER_REGION", default_value = "us-east-1")]
    pub region: String,

    /// Access key of the root user.
    #[arg(long, env = "COFFER_ROOT_USER", default_value = coffer_iam::DEFAULT_ROOT_USER)]
    pub root_user: String,

    /// Secret key of the root user.
    #[arg(long, env = "COFFER_ROOT_PASSWORD", default_value = coffer_iam::DEFAULT_ROOT_PASSWORD, hide_env_values = true)]
    pub root_password: String,

    /// File holding the 32-byte key (raw, or 64 hex digits, or base64) that seals IAM secrets stored
    /// in the metadata service; every gateway of a cluster needs the same one. Without it the key is
    /// derived from the root secret key, so changing that secret makes stored secrets unreadable.
    #[arg(long, env = "COFFER_IAM_MASTER_KEY_FILE")]
    pub iam_master_key_file: Option<std::path::PathBuf>,

    /// File of SSE-S3 master keys: lines `ID:KEY` (KEY base64 or hex, 32 bytes; the last line is
    /// the newest and encrypts, every line decrypts) or one key. Every gateway needs the same file.
    /// Without it the master key is derived from the root secret key (and stays readable after).
    #[arg(long, env = "COFFER_SSE_MASTER_KEY_FILE")]
    pub sse_master_key_file: Option<std::path::PathBuf>,

    /// File of SSE-KMS keys, lines `KEYID:KEY` (KEY base64 or hex, 32 bytes; the first is the
    /// default key). Without it SSE-KMS requests fail with KMS.NotFoundException.
    #[arg(long, env = "COFFER_KMS_KEY_FILE")]
    pub kms_key_file: Option<std::path::PathBuf>,

    /// How often the gateway asks the metadata service whether IAM state changed (users, keys,
    /// policies); changes made through this gateway apply at once.
    #[arg(long, env = "COFFER_IAM_REFRESH", default_value = "1s", value_parser = humantime::parse_duration)]
    pub iam_refresh: Duration,

    /// Shortest session AssumeRole grants (AWS: 15 minutes); tests lower it to see sessions expire.
    #[arg(long, env = "COFFER_STS_MIN_DURATION", default_value = "15m", value_parser = humantime::parse_duration)]
    pub sts_min_duration: Duration,

    /// Listings (S3 ListObjects, ListObjectsV2, ListObjectVersions, ListMultipartUploads; Swift
    /// container listings) may be answered by any metadata replica whose state is at most this many
    /// milliseconds stale, spreading them over the group; a listing can then miss writes of that
    /// last window. 0 (the default): every listing is linearizable, through the leader, as S3
    /// promises (read-after-write). Followers hear the leader every 250 ms, so bounds below ~600
    /// mostly end up at the leader anyway.
    #[arg(long, env = "COFFER_METADATA_STALE_LIST_MS", default_value_t = 0)]
    pub metadata_stale_list_ms: u64,

    /// Upper bound on one call to the metadata service or a blobnode.
    #[arg(long, env = "COFFER_RPC_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub rpc_timeout: Duration,

    /// Stripes of one request being written or read ahead at once (memory: ~this x stripe size x (k+m)/k).
    #[arg(long, env = "COFFER_STRIPES_IN_FLIGHT", default_value_t = 2)]
    pub stripes_in_flight: usize,

    /// Shards of every stripe that must be durable before a PUT is acknowledged, between K+1 and
    /// K+M (0: K+1; with M = 0 it is K). Shards that did not land are recorded for repair.
    #[arg(long, env = "COFFER_WRITE_QUORUM", default_value_t = 0)]
    pub write_quorum: u32,

    /// A GET whose shard reads have not all answered after this long also reads parity shards and
    /// decodes from whichever K arrive first (a hedged read).
    #[arg(long, env = "COFFER_HEDGE_AFTER", default_value = "250ms", value_parser = humantime::parse_duration)]
    pub hedge_after: Duration,

    /// PEM certificate chain: serve HTTPS (TLS 1.2 and 1.3) on the S3 port. Re-read when it changes.
    #[arg(long, env = "COFFER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "COFFER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Serve the web console on this address (HTTPS with `--tls-cert` too); off when not given or `off`.
    #[arg(long, env = "COFFER_CONSOLE_ADDRESS")]
    pub console_address: Option<String>,

    /// Serve the OpenStack Swift API on this address (HTTPS with `--tls-cert` too); off when not given.
    #[arg(long, env = "COFFER_SWIFT_ADDRESS")]
    pub swift_address: Option<SocketAddr>,

    #[command(flatten)]
    pub keystone: crate::swift::keystone::KeystoneArgs,

    /// Swift tempauth users `ACCOUNT:USER:KEY[:admin]` (repeatable; the variable takes a comma-separated
    /// list). Each also signs S3 requests with access key `ACCOUNT:USER` and secret `KEY`.
    #[arg(long = "tempauth-user", env = "COFFER_TEMPAUTH_USERS", value_delimiter = ',', hide_env_values = true)]
    pub tempauth_users: Vec<String>,

    #[command(flatten)]
    pub grpc_tls: coffer_proto::grpc_tls::GrpcTlsArgs,

    /// How long SIGTERM waits for in-flight requests before closing connections.
    #[arg(long, env = "COFFER_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
}

impl GatewayConfig {
    /// Checks combinations that clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        let k = u64::from(self.ec.data_shards);
        if self.stripe_size < 2 * k || self.stripe_size > 64 << 20 {
            return Err(format!("--stripe-size must be between {} bytes and 64MiB", 2 * k));
        }
        if self.inline_threshold > 1 << 20 {
            return Err("--inline-threshold must be at most 1MiB".into());
        }
        if self.stripes_in_flight == 0 || self.stripes_in_flight > 64 {
            return Err("--stripes-in-flight must be between 1 and 64".into());
        }
        if self.metadata_stale_list_ms > 60_000 {
            return Err("--metadata-stale-list-ms must be at most 60000".into());
        }
        if self.iam_refresh.is_zero() {
            return Err("--iam-refresh must be positive".into());
        }
        self.console_address()?;
        for spec in &self.tempauth_users {
            coffer_iam::tempauth::TempauthUser::parse(spec).map_err(|e| e.to_string())?;
        }
        let (k, m) = (self.ec.data_shards, self.ec.parity_shards);
        if self.write_quorum != 0 && m > 0 && !(k + 1..=k + m).contains(&self.write_quorum) {
            return Err(format!("--write-quorum must be between {} and {} for {k}+{m}", k + 1, k + m));
        }
        Ok(())
    }

    /// The web console's address, `None` when it is off.
    pub fn console_address(&self) -> Result<Option<SocketAddr>, String> {
        match self.console_address.as_deref().map(str::trim) {
            None | Some("off" | "") => Ok(None),
            Some(text) => {
                text.parse().map(Some).map_err(|_| format!("--console-address {text:?}: expected IP:PORT or off"))
            }
        }
    }

    /// Shards per stripe that must land. K+1 by default: with only K, losing any one disk before
    /// repair would lose acknowledged data, so K alone is never accepted while M > 0.
    pub fn effective_write_quorum(&self) -> u32 {
        let (k, m) = (self.ec.data_shards, self.ec.parity_shards);
        match (self.write_quorum, m) {
            (_, 0) => k,
            (0, _) => k + 1,
            (q, _) => q.clamp(k + 1, k + m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erasure_code_parses() {
        assert_eq!("4+2".parse(), Ok(ErasureCode { data_shards: 4, parity_shards: 2 }));
        assert_eq!("1+0".parse(), Ok(ErasureCode { data_shards: 1, parity_shards: 0 }));
        assert!("0+2".parse::<ErasureCode>().is_err());
        assert!("30+3".parse::<ErasureCode>().is_err());
        assert!("4".parse::<ErasureCode>().is_err());
    }

    #[test]
    fn write_quorum_defaults_to_k_plus_one_and_stays_within_bounds() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            config: GatewayConfig,
        }
        let parse = |args: &[&str]| Cli::try_parse_from([&["coffer"], args].concat()).unwrap().config;
        assert_eq!(parse(&[]).effective_write_quorum(), 5);
        assert_eq!(parse(&["--write-quorum", "6"]).effective_write_quorum(), 6);
        assert!(parse(&["--write-quorum", "4"]).validate().is_err(), "k alone is never enough");
        assert!(parse(&["--write-quorum", "7"]).validate().is_err());
        assert_eq!(parse(&["--ec", "3+0"]).effective_write_quorum(), 3);
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("128KiB"), Ok(128 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("4XB").is_err());
    }

    #[test]
    fn listings_stay_linearizable_unless_a_staleness_bound_is_given() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            config: GatewayConfig,
        }
        let parse = |args: &[&str]| Cli::try_parse_from([&["coffer"], args].concat()).unwrap().config;
        assert_eq!(parse(&[]).metadata_stale_list_ms, 0);
        assert_eq!(parse(&["--metadata-stale-list-ms", "1500"]).metadata_stale_list_ms, 1500);
        assert!(parse(&["--metadata-stale-list-ms", "60001"]).validate().is_err());
    }
}
