//! `coffer server DIR`: metadata, one blobnode with N disks and the gateway in one process,
//! talking over loopback gRPC exactly as the split roles do.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser};
use coffer_gateway::ErasureCode;
use coffer_proto::metadata_client::{ClientConfig, MetadataClient};
use coffer_proto::pb::metadata::GetClusterMapRequest;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long start-up waits for the blobnode to register before serving anyway.
const REGISTRATION_WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Args)]
pub struct ServerConfig {
    /// Data directory: metadata in DIR/meta, blobnode disks in DIR/disk1..DIR/diskN.
    #[arg(env = "COFFER_DIR")]
    pub dir: PathBuf,

    /// Address the S3 API listens on.
    #[arg(long, env = "COFFER_ADDRESS", default_value = "0.0.0.0:9000")]
    pub address: SocketAddr,

    /// Number of disk folders (DIR/disk1..N).
    #[arg(long, env = "COFFER_SERVER_DISKS", default_value_t = 6)]
    pub disks: u32,

    /// Erasure code K+M; defaults to 4+2 with six or more disks, and to what fits otherwise (1 disk: 1+0).
    #[arg(long, env = "COFFER_EC")]
    pub ec: Option<ErasureCode>,

    /// Access key of the root user.
    #[arg(long, env = "COFFER_ROOT_USER", default_value = coffer_iam::DEFAULT_ROOT_USER)]
    pub root_user: String,

    /// Secret key of the root user.
    #[arg(long, env = "COFFER_ROOT_PASSWORD", default_value = coffer_iam::DEFAULT_ROOT_PASSWORD, hide_env_values = true)]
    pub root_password: String,

    /// Region reported to clients and expected in signatures.
    #[arg(long, env = "COFFER_REGION", default_value = "us-east-1")]
    pub region: String,

    /// Base domain(s) for virtual-hosted-style requests.
    #[arg(long = "domain", env = "COFFER_DOMAIN", value_delimiter = ',')]
    pub domains: Vec<String>,

    /// Garbage-collection grace: replaced or deleted data is removed after this long.
    #[arg(long, env = "COFFER_GC_GRACE", default_value = "15m")]
    pub gc_grace: String,

    /// PEM certificate chain: serve HTTPS on the S3 port (re-read when it changes).
    #[arg(long, env = "COFFER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "COFFER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// How long a disk may be missing or failing before repair rebuilds its shards elsewhere.
    #[arg(long, env = "COFFER_REPAIR_GRACE", default_value = "15m")]
    pub repair_grace: String,

    /// Address of the web console (HTTPS with `--tls-cert` too), or `off`. When not given it is
    /// 0.0.0.0:9001 if that port is free (a warning otherwise); a given address must bind.
    #[arg(long, env = "COFFER_CONSOLE_ADDRESS")]
    pub console_address: Option<String>,

    /// Address of the OpenStack Swift API, or `off`. When not given it is 0.0.0.0:8080 if that port
    /// is free (a warning otherwise); a given address must bind.
    #[arg(long, env = "COFFER_SWIFT_ADDRESS")]
    pub swift_address: Option<String>,

    /// Swift tempauth users `ACCOUNT:USER:KEY[:admin]` (repeatable; the variable takes a comma-separated
    /// list). Each also signs S3 requests as access key `ACCOUNT:USER` with secret `KEY`.
    #[arg(long = "tempauth-user", env = "COFFER_TEMPAUTH_USERS", value_delimiter = ',', hide_env_values = true)]
    pub tempauth_users: Vec<String>,

    /// File of SSE-S3 master keys (`ID:KEY` lines, the last the newest, or one key); derived from
    /// the root secret key when not given.
    #[arg(long, env = "COFFER_SSE_MASTER_KEY_FILE")]
    pub sse_master_key_file: Option<PathBuf>,

    /// File of SSE-KMS keys (`KEYID:KEY` lines, the first the default); SSE-KMS is off without it.
    #[arg(long, env = "COFFER_KMS_KEY_FILE")]
    pub kms_key_file: Option<PathBuf>,

    /// Length of a lifecycle-rule day in seconds; shorter only to test lifecycle rules quickly.
    #[arg(long, env = "COFFER_LIFECYCLE_DAY_SECONDS", default_value = "86400")]
    pub lifecycle_day_seconds: String,

    /// How often the lifecycle worker takes its next step through the buckets with lifecycle rules.
    #[arg(long, env = "COFFER_LIFECYCLE_INTERVAL", default_value = "1s")]
    pub lifecycle_interval: String,

    /// A webhook target of bucket notifications, `ID=http://HOST:PORT/PATH` (repeatable; the
    /// variable takes a comma-separated list). Buckets name it as `arn:coffer:sqs::ID:webhook`.
    #[arg(long = "notify-webhook", env = "COFFER_NOTIFY_WEBHOOKS", value_delimiter = ',')]
    pub notify_webhooks: Vec<String>,
}

/// The Swift API's address when `--swift-address` is not given.
const DEFAULT_SWIFT_ADDRESS: &str = "0.0.0.0:8080";

/// The console's address when `--console-address` is not given.
const DEFAULT_CONSOLE_ADDRESS: &str = "0.0.0.0:9001";

/// Binds the Swift API's port: `off` disables it, the default is best effort.
async fn bind_swift(flag: Option<&str>) -> anyhow::Result<Option<TcpListener>> {
    match flag.map(str::trim) {
        Some("off") => Ok(None),
        Some(text) => {
            let address: SocketAddr =
                text.parse().with_context(|| format!("--swift-address {text:?}: expected IP:PORT or off"))?;
            Ok(Some(TcpListener::bind(address).await.with_context(|| format!("binding the Swift port {address}"))?))
        }
        None => match TcpListener::bind(DEFAULT_SWIFT_ADDRESS).await {
            Ok(listener) => Ok(Some(listener)),
            Err(e) => {
                tracing::warn!(address = DEFAULT_SWIFT_ADDRESS, error = %e,
                    "Swift API not started (set --swift-address to another address, or off)");
                Ok(None)
            }
        },
    }
}

/// Binds the console's port: `off` disables it, the default is best effort.
async fn bind_console(flag: Option<&str>) -> anyhow::Result<Option<TcpListener>> {
    match flag.map(str::trim) {
        Some("off") => Ok(None),
        Some(text) => {
            let address: SocketAddr =
                text.parse().with_context(|| format!("--console-address {text:?}: expected IP:PORT or off"))?;
            let listener =
                TcpListener::bind(address).await.with_context(|| format!("binding the console port {address}"))?;
            Ok(Some(listener))
        }
        None => match TcpListener::bind(DEFAULT_CONSOLE_ADDRESS).await {
            Ok(listener) => Ok(Some(listener)),
            Err(e) => {
                tracing::warn!(address = DEFAULT_CONSOLE_ADDRESS, error = %e,
                    "web console not started (set --console-address to another address, or off)");
                Ok(None)
            }
        },
    }
}

/// The code a given number of disks supports when none is asked for.
fn default_code(disks: u32) -> ErasureCode {
    let (data_shards, parity_shards) = match disks {
        0 | 1 => (1, 0),
        2 => (1, 1),
        3 => (2, 1),
        4 => (2, 2),
        5 => (3, 2),
        _ => (4, 2),
    };
    ErasureCode { data_shards, parity_shards }
}

/// Builds a role's typed config through its own clap parser, so defaults and validation stay
/// in one place.
fn parse_role<C: Args>(args: &[String]) -> anyhow::Result<C> {
    #[derive(Parser)]
    struct Wrapper<C: Args> {
        #[command(flatten)]
        config: C,
    }
    let argv = std::iter::once("coffer".to_string()).chain(args.iter().cloned());
    Ok(Wrapper::<C>::try_parse_from(argv)?.config)
}

fn trigger(rx: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

pub async fn run(
    config: ServerConfig,
    metrics: coffer_gateway::MetricsRender,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if config.disks == 0 || config.disks > 64 {
        bail!("--disks must be between 1 and 64");
    }
    let ec = config.ec.unwrap_or_else(|| default_code(config.disks));
    if ec.total() > config.disks {
        bail!("--ec {ec} needs {} disks but --disks is {}", ec.total(), config.disks);
    }
    std::fs::create_dir_all(&config.dir).with_context(|| format!("creating {}", config.dir.display()))?;
    let dir = config.dir.canonicalize().with_context(|| format!("resolving {}", config.dir.display()))?;

    let meta_listener = TcpListener::bind("127.0.0.1:0").await.context("binding the metadata port")?;
    let meta_addr = meta_listener.local_addr()?;
    let blob_listener = TcpListener::bind("127.0.0.1:0").await.context("binding the blobnode port")?;
    let blob_addr = blob_listener.local_addr()?;
    let s3_listener =
        TcpListener::bind(config.address).await.with_context(|| format!("binding the S3 port {}", config.address))?;
    let console_listener = bind_console(config.console_address.as_deref()).await?;
    let console_addr = console_listener.as_ref().and_then(|l| l.local_addr().ok());
    let swift_listener = bind_swift(config.swift_address.as_deref()).await?;
    let swift_addr = swift_listener.as_ref().and_then(|l| l.local_addr().ok());
    let meta_url = format!("http://{meta_addr}");

    let mut metadata_args: Vec<String> = vec![
        "--listen".into(),
        meta_addr.to_string(),
        "--db".into(),
        dir.join("meta").display().to_string(),
        "--gc-grace".into(),
        config.gc_grace.clone(),
        "--lifecycle-day-seconds".into(),
        config.lifecycle_day_seconds.clone(),
        "--lifecycle-interval".into(),
        config.lifecycle_interval.clone(),
    ];
    for webhook in &config.notify_webhooks {
        metadata_args.push("--notify-webhook".into());
        metadata_args.push(webhook.clone());
    }
    let metadata_config: coffer_metadata::MetadataConfig = parse_role(&metadata_args)?;
    let mut blob_args = vec!["--listen".into(), blob_addr.to_string(), "--metadata".into(), meta_url.clone()];
    for i in 1..=config.disks {
        let disk = dir.join(format!("disk{i}"));
        std::fs::create_dir_all(&disk).with_context(|| format!("creating {}", disk.display()))?;
        blob_args.push("--disk".into());
        blob_args.push(disk.display().to_string());
    }
    if std::env::var_os("COFFER_CHUNK_PREALLOCATE").is_none() {
        // A trial folder should not hold a reserved 1 GiB chunk per disk after its first object.
        blob_args.push("--chunk-preallocate=false".into());
    }
    let blobnode_config: coffer_blobnode::BlobnodeConfig = parse_role(&blob_args)?;
    let mut gateway_args = vec![
        "--address".into(),
        config.address.to_string(),
        "--metadata".into(),
        meta_url.clone(),
        "--ec".into(),
        ec.to_string(),
        "--region".into(),
        config.region.clone(),
        "--root-user".into(),
        config.root_user.clone(),
        "--root-password".into(),
        config.root_password.clone(),
    ];
    for domain in &config.domains {
        gateway_args.push("--domain".into());
        gateway_args.push(domain.clone());
    }
    for user in &config.tempauth_users {
        gateway_args.push("--tempauth-user".into());
        gateway_args.push(user.clone());
    }
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        gateway_args.extend([
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ]);
    }
    if let Some(path) = &config.sse_master_key_file {
        gateway_args.extend(["--sse-master-key-file".into(), path.display().to_string()]);
    }
    if let Some(path) = &config.kms_key_file {
        gateway_args.extend(["--kms-key-file".into(), path.display().to_string()]);
    }
    let gateway_config: coffer_gateway::GatewayConfig = parse_role(&gateway_args)?;
    let repair_config: coffer_repair::RepairConfig =
        parse_role(&["--metadata".into(), meta_url.clone(), "--repair-grace".into(), config.repair_grace.clone()])?;

    // Stop order: the gateway drains first, then the services under it.
    let (stop_gateway, gateway_rx) = watch::channel(false);
    let (stop_services, services_rx) = watch::channel(false);
    // The gateway reaches the metadata service over in-memory pipes (no loopback TCP on the request path); the
    // blobnode still heartbeats over the metadata port, as split roles do.
    let (metadata_pipe, metadata_pipes) = coffer_proto::in_process::in_process();
    let metadata = tokio::spawn(coffer_metadata::serve_with(
        meta_listener,
        Some(metadata_pipes),
        metadata_config,
        trigger(&services_rx),
    ));
    let blobnode = tokio::spawn(coffer_blobnode::serve(blob_listener, blobnode_config, trigger(&services_rx)));
    wait_for_disks(&meta_url, ec.total() as usize).await;
    let gateway = tokio::spawn(coffer_gateway::serve_with_console(
        s3_listener,
        console_listener,
        swift_listener,
        gateway_config,
        Some(metadata_pipe),
        Some(metrics),
        trigger(&gateway_rx),
    ));
    let repair = tokio::spawn(coffer_repair::run(repair_config, trigger(&services_rx)));
    print_banner(&config, ec, &dir, console_addr, swift_addr);

    // Run until a signal, or until a service stops on its own (which is a failure to report).
    let mut gateway = gateway;
    let mut metadata = metadata;
    let mut blobnode = blobnode;
    let early = tokio::select! {
        () = shutdown => None,
        r = &mut gateway => Some(("gateway", r.map(|r| r.map_err(anyhow::Error::from)))),
        r = &mut metadata => Some(("metadata", r.map(|r| r.map_err(anyhow::Error::from)))),
        r = &mut blobnode => Some(("blobnode", r.map(|r| r.map_err(anyhow::Error::from)))),
    };
    let _ = stop_gateway.send(true);
    if let Some((role, result)) = early {
        let _ = stop_services.send(true);
        let inner = result.with_context(|| format!("{role} task panicked"))?;
        inner.with_context(|| format!("{role} stopped"))?;
        bail!("{role} stopped unexpectedly");
    }
    gateway.await.context("gateway task")??;
    let _ = stop_services.send(true);
    repair.await.context("repair task")??;
    blobnode.await.context("blobnode task")??;
    metadata.await.context("metadata task")??;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn wait_for_disks(meta_url: &str, needed: usize) {
    let Ok(client) = MetadataClient::connect(&[meta_url.to_string()], &ClientConfig::default()) else {
        return;
    };
    let deadline = tokio::time::Instant::now() + REGISTRATION_WAIT;
    while tokio::time::Instant::now() < deadline {
        if let Ok(map) = client.rpc().get_cluster_map(GetClusterMapRequest {}).await {
            let disks: usize = map
                .into_inner()
                .nodes
                .iter()
                .filter(|n| n.alive)
                .filter_map(|n| n.info.as_ref())
                .map(|i| i.disks.len())
                .sum();
            if disks >= needed {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::warn!("blobnode disks did not register in time; the gateway reports not-ready until they do");
}

fn print_banner(
    config: &ServerConfig,
    ec: ErasureCode,
    dir: &std::path::Path,
    console: Option<SocketAddr>,
    swift: Option<SocketAddr>,
) {
    let host = if config.address.ip().is_unspecified() {
        format!("127.0.0.1:{}", config.address.port())
    } else {
        config.address.to_string()
    };
    let secret = if config.root_password == coffer_iam::DEFAULT_ROOT_PASSWORD {
        config.root_password.clone()
    } else {
        "(the value of COFFER_ROOT_PASSWORD)".to_string()
    };
    println!("Coffer is running: {} disks in {}, erasure code {ec}", config.disks, dir.display());
    let scheme = if config.tls_cert.is_some() { "https" } else { "http" };
    println!("  S3 endpoint: {scheme}://{host}");
    if let Some(console) = console {
        let host =
            if console.ip().is_unspecified() { format!("127.0.0.1:{}", console.port()) } else { console.to_string() };
        println!("  Console:     {scheme}://{host}");
    }
    if let Some(swift) = swift {
        let host = if swift.ip().is_unspecified() { format!("127.0.0.1:{}", swift.port()) } else { swift.to_string() };
        let users = if config.tempauth_users.is_empty() { " (no --tempauth-user given yet)" } else { "" };
        println!("  Swift:       {scheme}://{host}/auth/v1.0{users}");
    }
    println!("  Access key:  {}", config.root_user);
    println!("  Secret key:  {secret}");
    println!(
        "  Try:  AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY=... aws --endpoint-url {scheme}://{host} s3 mb s3://my-bucket",
        config.root_user
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_codes_fit_the_disks() {
        for disks in 1..=12 {
            let ec = default_code(disks);
            assert!(ec.total() <= disks, "{disks} disks: {ec}");
        }
        assert_eq!(default_code(1).to_string(), "1+0");
        assert_eq!(default_code(6).to_string(), "4+2");
    }
}
