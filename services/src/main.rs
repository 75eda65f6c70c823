//! `coffer`: every Coffer role as a subcommand, and `coffer server DIR` running them all in one
//! process over the same gRPC contract the split roles use.

mod admin;
mod admin_http;
mod admin_iam;
mod admin_meta;
mod embedded;
mod logging;
mod metrics;
mod shutdown;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "coffer", version, about = "Coffer: an S3-compatible object store", long_about = None)]
struct Cli {
    /// Log line format: text or json.
    #[arg(long, env = "COFFER_LOG_FORMAT", default_value = "text", global = true)]
    log_format: logging::LogFormat,

    /// Serve Prometheus metrics (`coffer_*`) of this process on http://ADDRESS/metrics.
    #[arg(long, env = "COFFER_METRICS_ADDRESS", global = true)]
    metrics_address: Option<std::net::SocketAddr>,

    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// Everything in one process: metadata in DIR/meta, blobnode disks DIR/disk1..N, S3 gateway.
    Server(embedded::ServerConfig),
    /// The metadata service (RocksDB): buckets, objects, uploads, placement, cluster map.
    Metadata(coffer_metadata::MetadataConfig),
    /// A blobnode: stores erasure shards on its disks.
    Blobnode(coffer_blobnode::BlobnodeConfig),
    /// The stateless S3 gateway (also Swift and the web console when given their addresses).
    // Boxed: the gateway's configuration is much larger than the other roles'.
    Gateway(Box<coffer_gateway::GatewayConfig>),
    /// A repair worker: rebuilds missing, damaged and stranded shards (several may run).
    Repair(coffer_repair::RepairConfig),
    /// Operator commands against a running cluster: nodes, draining, repair progress.
    Admin(admin::AdminArgs),
}

impl Role {
    /// The `service.name` of this role's traces unless `OTEL_SERVICE_NAME` says otherwise.
    fn service_name(&self) -> &'static str {
        match self {
            Role::Server(_) => "coffer-server",
            Role::Metadata(_) => "coffer-metadata",
            Role::Blobnode(_) => "coffer-blobnode",
            Role::Gateway(_) => "coffer-gateway",
            Role::Repair(_) => "coffer-repair",
            Role::Admin(_) => "coffer-admin",
        }
    }
}

fn main() -> std::process::ExitCode {
    cap_malloc_arenas();
    let raised_file_limit = raise_open_file_limit();
    let cli = Cli::parse();
    // One crypto provider for every TLS user in the process (tonic's mutual TLS, the S3 port): with
    // more than one compiled in, rustls will not pick by itself.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("coffer: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut telemetry = None;
    let result = runtime.block_on(async {
        // Both start tasks on this runtime: the trace exporter and the metrics listener.
        telemetry = Some(logging::init(cli.log_format, cli.role.service_name())?);
        if let Some((from, to)) = raised_file_limit {
            tracing::info!(from, to, "raised the soft limit on open files to the hard one");
        }
        let metrics = metrics::install(cli.metrics_address)?;
        let shutdown = shutdown::on_signal();
        match cli.role {
            Role::Server(config) => embedded::run(config, metrics, shutdown).await,
            Role::Metadata(config) => coffer_metadata::run(config, shutdown).await.map_err(anyhow::Error::from),
            Role::Blobnode(config) => coffer_blobnode::run(config, shutdown).await.map_err(anyhow::Error::from),
            Role::Gateway(config) => {
                coffer_gateway::run(*config, Some(metrics), shutdown).await.map_err(anyhow::Error::from)
            }
            Role::Repair(config) => coffer_repair::run(config, shutdown).await.map_err(anyhow::Error::from),
            Role::Admin(args) => admin::run(args).await,
        }
    });
    // Outside `block_on`: flushing waits for the exporter task, which the runtime's workers run.
    if let Some(telemetry) = telemetry {
        telemetry.shutdown();
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("coffer: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A blobnode keeps every chunk file of its disks open (and a gateway a socket per client): at 1 GiB a chunk, a node
/// holding 10 TB needs 10,000 descriptors, ten times the soft limit systemd gives services. The soft limit is raised
/// to the hard one, as Go's runtime does for every program; the hard limit stays the operator's to set. Returns the
/// limits before and after when it changed.
fn raise_open_file_limit() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    // An unlimited hard limit is not a valid soft limit for open files (the kernel caps it at fs.nr_open).
    let target = if limit.rlim_max == libc::RLIM_INFINITY { 1 << 20 } else { limit.rlim_max };
    if limit.rlim_cur >= target {
        return None;
    }
    let before = limit.rlim_cur;
    limit.rlim_cur = target;
    // SAFETY: setrlimit only reads the struct; raising a soft limit up to the hard one needs no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return None;
    }
    Some((before, target))
}

/// glibc gives threads that allocate concurrently arenas of their own, up to 8 per core; with tokio's blocking
/// pool that is many arenas each keeping freed memory. One per core is what the runtime's threads need: in
/// `coffer server`'s 64 MiB PUT+GET runs it lowered peak RSS from 413 to 367 MB.
fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt takes two integers and only changes the allocator's tuning; it runs before any other thread
        // exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

#[cfg(test)]
mod tests {
    fn open_file_limit() -> libc::rlimit {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit only writes into the struct it is given.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
        limit
    }

    #[test]
    fn the_soft_open_file_limit_is_raised_to_the_hard_one() {
        let hard = open_file_limit().rlim_max;
        let lowered = libc::rlimit { rlim_cur: 256.min(hard), rlim_max: hard };
        // SAFETY: setrlimit only reads the struct; lowering the soft limit alone can be undone, as below.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) }, 0);
        let raised = super::raise_open_file_limit();
        let expected = if hard == libc::RLIM_INFINITY { 1 << 20 } else { hard };
        assert_eq!(open_file_limit().rlim_cur, expected);
        if expected > 256 {
            assert_eq!(raised, Some((256, expected)));
        }
        assert_eq!(super::raise_open_file_limit(), None, "nothing left to raise");
    }
}
