//! Coffer's S3 gateway: stateless. It authenticates requests (s3s), erasure-codes object data
//! onto blobnodes and commits object records in the metadata service. It keeps no durable
//! state: everything it knows comes from the metadata service and is cached only briefly.

mod admin;
mod auth;
mod authz;
mod cluster;
pub mod config;
mod console;
mod dataplane;
pub mod erasure;
mod error;
mod host;
mod http;
mod iam_sync;
mod operation;
mod owners;
mod read_path;
mod routes;
mod s3;
mod sse;
mod sts;
pub mod survivors;
mod swift;
pub mod tls;
mod write_path;

use std::future::Future;
use std::sync::Arc;

use coffer_iam::{Credentials, IdentityStore};
use coffer_proto::blobnode_client::BlobnodePool;
use coffer_proto::in_process::InProcessConnector;
use coffer_proto::metadata_client::{ClientConfig, MetadataClient};
use coffer_proto::stale_reads::ListingClient;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

pub use config::{ErasureCode, GatewayConfig};
pub use error::GatewayError;
pub use http::MetricsRender;
pub use swift::keystone::KeystoneArgs;

use crate::cluster::ClusterView;
use crate::dataplane::DataPlane;
use crate::s3::CofferS3;

/// Binds `config.address` and serves until `shutdown` resolves; `metrics` renders `GET /metrics`.
pub async fn run(
    config: GatewayConfig,
    metrics: Option<MetricsRender>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let listener = TcpListener::bind(config.address)
        .await
        .map_err(|e| GatewayError::Internal(format!("cannot listen on {}: {e}", config.address)))?;
    serve_with(listener, config, None, metrics, shutdown).await
}

/// Serves S3 on an already-bound listener until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    config: GatewayConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    serve_with(listener, config, None, None, shutdown).await
}

/// Like [`serve`], reaching a metadata service in the same process over `metadata_pipe` instead of
/// `config.metadata` (`coffer server`). Binds `config.console_address` for the web console.
pub async fn serve_with(
    listener: TcpListener,
    config: GatewayConfig,
    metadata_pipe: Option<InProcessConnector>,
    metrics: Option<MetricsRender>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let console = match config.console_address().map_err(GatewayError::Internal)? {
        Some(address) => Some(
            TcpListener::bind(address)
                .await
                .map_err(|e| GatewayError::Internal(format!("cannot listen on {address} for the console: {e}")))?,
        ),
        None => None,
    };
    let swift = match config.swift_address {
        Some(address) => Some(
            TcpListener::bind(address)
                .await
                .map_err(|e| GatewayError::Internal(format!("cannot listen on {address} for Swift: {e}")))?,
        ),
        None => None,
    };
    serve_with_console(listener, console, swift, config, metadata_pipe, metrics, shutdown).await
}

/// Like [`serve_with`], serving the web console on `console` and the Swift API on `swift` (both
/// already bound) when given; `config.console_address` and `config.swift_address` are not looked at.
pub async fn serve_with_console(
    listener: TcpListener,
    console: Option<TcpListener>,
    swift: Option<TcpListener>,
    config: GatewayConfig,
    metadata_pipe: Option<InProcessConnector>,
    metrics: Option<MetricsRender>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    config.validate().map_err(GatewayError::Internal)?;
    let tempauth = config
        .tempauth_users
        .iter()
        .map(|spec| coffer_iam::tempauth::TempauthUser::parse(spec))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| GatewayError::Internal(e.to_string()))?;
    let identities = IdentityStore::with_root(Credentials::new(&config.root_user, &config.root_password))
        .map_err(|e| GatewayError::Internal(e.to_string()))?
        .with_tempauth(tempauth);
    if identities.uses_default_root() {
        tracing::warn!(
            "using the default root credentials {}/{}; set COFFER_ROOT_USER and COFFER_ROOT_PASSWORD",
            coffer_iam::DEFAULT_ROOT_USER,
            coffer_iam::DEFAULT_ROOT_PASSWORD
        );
    }
    let tls = coffer_proto::grpc_tls::GrpcTls::load(&config.grpc_tls)?;
    let client_config = ClientConfig { timeout: config.rpc_timeout, tls, ..ClientConfig::default() };
    let (metadata, listings) = match metadata_pipe {
        // In-process (`coffer server`): one metadata service, nothing to spread listings over.
        Some(connector) => {
            let metadata = MetadataClient::in_process(connector, &client_config);
            (metadata.clone(), ListingClient::linearizable(metadata))
        }
        None => {
            let metadata = MetadataClient::connect(&config.metadata, &client_config)?;
            let bound = std::time::Duration::from_millis(config.metadata_stale_list_ms);
            let listings = ListingClient::bounded(&config.metadata, &client_config, bound, metadata.clone())?;
            (metadata, listings)
        }
    };
    let identities = Arc::new(identities);
    let master_key = match &config.iam_master_key_file {
        Some(path) => iam_sync::load_master_key(path)?,
        None => coffer_iam::seal::MasterKey::derive(&config.root_password),
    };
    let iam = iam_sync::IamSync::new(identities.clone(), master_key, metadata.clone());
    if let Err(e) = iam.reload(false).await {
        tracing::warn!(error = %e, "IAM state not loaded yet (only the root user can sign); will keep trying");
    }
    // Before the port opens, so STS and Swift logins work from the first request.
    if let Err(e) = iam.ensure_session_key().await {
        tracing::warn!(error = %e, "STS signing key not available yet; will keep trying");
    }
    let iam_refresher = iam.spawn_refresher(config.iam_refresh);
    let blobnodes = BlobnodePool::new(client_config);
    let cluster = ClusterView::new(metadata.clone(), blobnodes.clone());
    if let Err(e) = cluster.refresh().await {
        tracing::warn!(error = %e, "metadata service not reachable yet; will keep trying");
    }
    let refresher = cluster.spawn_refresher();
    let plane = DataPlane {
        metadata,
        listings,
        blobnodes,
        cluster: cluster.clone(),
        ec: config.ec,
        stripe_size: config.stripe_size,
        inline_threshold: config.inline_threshold,
        stripes_in_flight: config.stripes_in_flight,
        write_quorum: config.effective_write_quorum() as usize,
        hedge_after: config.hedge_after,
    };
    let owners = owners::BucketOwners::new(plane.metadata.clone());
    let keystone = swift::keystone::Keystone::new(config.keystone.clone()).map(Arc::new);
    let authorizer =
        authz::Authorizer::new(identities.clone(), config.tls_cert.is_some(), owners).with_keystone(keystone.clone());
    let sse_keys = sse::keys::SseKeys::load(
        config.sse_master_key_file.as_deref(),
        config.kms_key_file.as_deref(),
        &config.root_password,
    )
    .map_err(|e| GatewayError::Internal(format!("server-side encryption keys: {e}")))?;
    let s3 = CofferS3::new(plane.clone(), config.region.clone(), config.root_user.clone(), authorizer.clone())
        .with_sse(sse_keys);
    let swift = match swift {
        Some(swift_listener) => {
            let api = swift::SwiftApi {
                s3: s3.clone(),
                authorizer: authorizer.clone(),
                identities: identities.clone(),
                metadata: plane.metadata.clone(),
                keystone: keystone.clone(),
            };
            Some((swift_listener, api))
        }
        None => None,
    };
    let mut builder = S3ServiceBuilder::new(s3);
    builder.set_auth(auth::CofferAuth::new(identities, keystone));
    builder.set_access(authorizer.clone());
    builder.set_config(s3::post_form::s3s_config());
    let bucket_facts = authorizer.owners.clone();
    let sts_min_duration_secs = config.sts_min_duration.as_secs().max(1);
    builder.set_route(routes::Routes { admin: admin::Admin { iam, authorizer, plane }, sts_min_duration_secs });
    if !config.domains.is_empty() {
        builder.set_host(host::Domains::new(&config.domains));
    }
    let domains = (!config.domains.is_empty()).then(|| host::Domains::new(&config.domains));
    let edge = Arc::new(http::Edge {
        s3: builder.build(),
        cluster,
        disks_needed: config.ec.total() as usize,
        domains,
        metrics,
        owners: bucket_facts,
    });
    let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let scheme = if config.tls_cert.is_some() { "https" } else { "http" };
    tracing::info!(%address, %scheme, ec = %config.ec, "S3 gateway listening");
    let (tls, reloader) = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let (acceptor, reloader) = tls::acceptor(cert, key)?;
            (Some(acceptor), Some(reloader))
        }
        _ => (None, None),
    };
    // The console and Swift ports share the edge, the TLS configuration and the S3 port's shutdown.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut fronts: Vec<(TcpListener, http::Front, &str)> = Vec::new();
    if let Some(console_listener) = console {
        let s3_port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let console = console::Console::new(&config.region, s3_port, config.tls_cert.is_some());
        fronts.push((console_listener, http::Front::Console(Arc::new(console)), "web console"));
    }
    if let Some((swift_listener, api)) = swift {
        fronts.push((swift_listener, http::Front::Swift(Arc::new(api)), "Swift API"));
    }
    let extra_servers: Vec<_> = fronts
        .into_iter()
        .map(|(front_listener, front, what)| {
            let address = front_listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
            tracing::info!(%address, %scheme, "{what} listening");
            let mut stopped = stopped.clone();
            let until = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            tokio::spawn(http::serve(front_listener, edge.clone(), front, until, config.shutdown_grace, tls.clone()))
        })
        .collect();
    let until = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    http::serve(listener, edge, http::Front::S3, until, config.shutdown_grace, tls).await;
    for server in extra_servers {
        let _ = server.await;
    }
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    refresher.abort();
    iam_refresher.abort();
    Ok(())
}
