//! The control-plane client: a tower stack over one channel per metadata replica.
//!
//! Every call passes a bound on calls in flight (beyond it a call fails fast instead of queueing
//! without bound, `in_flight_limit`) and a per-call timeout, then goes to the replica that leads the metadata group (see
//! `leader_router`): any one replica's URL is enough to find it.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use crate::error::{ErrorCode, RemoteError};
use crate::limits::MAX_MESSAGE_BYTES;
use crate::pb::metadata::metadata_client::MetadataClient as GeneratedClient;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type HttpRequest = http::Request<tonic::body::Body>;
type HttpResponse = http::Response<tonic::body::Body>;

/// The transport under the generated metadata client: a boxed tower stack.
pub type MetadataChannel = BoxCloneSyncService<HttpRequest, HttpResponse, CallError>;

/// Why a call failed below gRPC: transport, timeout or shed load. A concrete type rather than a
/// boxed trait object, because async code generic over tonic's `Into<StdError>` bound trips
/// over the trait object's lifetime ("implementation of From is not general enough").
#[derive(Debug)]
pub struct CallError(BoxError);

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for CallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Limits of one client; shared by the metadata and blobnode clients.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Upper bound on one call, from sending the request to receiving the response headers.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Calls in flight at once through this client; beyond it calls are shed with Unavailable.
    pub concurrency_limit: usize,
    /// Mutual TLS to the peers (see `grpc_tls`); `None` for plain HTTP/2.
    pub tls: Option<crate::grpc_tls::GrpcTls>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(3),
            concurrency_limit: 1024,
            tls: None,
        }
    }
}

/// The header with which a metadata replica that does not lead points at the one that does (its
/// URL; empty while no leader is known). Clients resend the call there.
pub const NOT_LEADER_HEADER: &str = "x-coffer-not-leader";

/// The header that picks the metadata Raft group a call is for, on both the `Metadata` API and the
/// `MetadataRaft` service: a decimal group id. Absent means group 0 (the directory, and the only
/// group before range groups), so clients and replicas that never send it keep working.
pub const GROUP_HEADER: &str = "x-coffer-group";

/// A cheap-to-clone handle on the metadata service.
#[derive(Clone)]
pub struct MetadataClient {
    client: GeneratedClient<MetadataChannel>,
    /// The same stack, for `MetadataRaft` calls (group 0's leader delivering bucket state to range
    /// groups, addressed by header).
    transport: MetadataChannel,
    /// The router under the stack (`None` in process: one group).
    router: Option<crate::group_router::GroupRouter>,
}

impl MetadataClient {
    /// Builds the stack over lazily connected channels; never blocks and never fails because an
    /// endpoint is down (calls fail instead). Must be called inside a tokio runtime.
    pub fn connect(endpoints: &[String], config: &ClientConfig) -> Result<MetadataClient, RemoteError> {
        if endpoints.is_empty() {
            return Err(RemoteError::new(ErrorCode::InvalidArgument, "no metadata endpoint given"));
        }
        let replicas = endpoints
            .iter()
            .map(|url| lazy_channel(url, config).map(|channel| (url.clone(), channel)))
            .collect::<Result<Vec<_>, _>>()?;
        let zero = crate::leader_router::LeaderRouter::new(replicas, config.clone());
        // Each call to the group owning its key (see `group_router`); group 0 while there are none.
        let router = crate::group_router::GroupRouter::new(zero, config.clone());
        let transport = limit(router.clone(), config);
        Ok(MetadataClient { client: generated(transport.clone()), transport, router: Some(router) })
    }

    /// A client of a metadata service in the same process: direct calls, or in-memory pipes (see `in_process`).
    pub fn in_process(connector: crate::in_process::InProcessConnector, config: &ClientConfig) -> MetadataClient {
        let channel = Endpoint::from_static(crate::in_process::IN_PROCESS_URL)
            .connect_timeout(config.connect_timeout)
            .http2_adaptive_window(true)
            .connect_with_connector_lazy(connector.clone());
        let transport = limit(crate::in_process::InProcessTransport::new(&connector, channel), config);
        MetadataClient { client: generated(transport.clone()), transport, router: None }
    }

    /// Every metadata group (0 first), for calls that go to each in turn (repair claims); the range
    /// table is fetched first if it never was.
    pub async fn groups(&self) -> Vec<u64> {
        match &self.router {
            Some(router) => router.groups().await,
            None => vec![0],
        }
    }

    /// The generated client over this stack; clones share the limits.
    pub fn rpc(&self) -> GeneratedClient<MetadataChannel> {
        self.client.clone()
    }

    /// A `MetadataRaft` client over the same stack (routed as every call: by its group header).
    pub fn raft(&self) -> crate::pb::metadata::metadata_raft_client::MetadataRaftClient<MetadataChannel> {
        crate::pb::metadata::metadata_raft_client::MetadataRaftClient::new(self.transport.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

/// The generated metadata client over `transport`, with the project's message size bound.
pub(crate) fn generated(transport: MetadataChannel) -> GeneratedClient<MetadataChannel> {
    GeneratedClient::new(transport)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// A channel that connects on first use and reconnects by itself.
pub fn lazy_channel(url: &str, config: &ClientConfig) -> Result<Channel, RemoteError> {
    let url = match &config.tls {
        Some(_) => crate::grpc_tls::tls_url(url),
        None => url.to_string(),
    };
    let mut endpoint = Endpoint::from_shared(url.clone())
        .map_err(|e| RemoteError::new(ErrorCode::InvalidArgument, format!("bad endpoint URL {url:?}: {e}")))?;
    if let Some(tls) = &config.tls {
        endpoint = endpoint
            .tls_config(tls.client())
            .map_err(|e| RemoteError::new(ErrorCode::InvalidArgument, format!("gRPC TLS for {url}: {e}")))?;
    }
    let endpoint = endpoint
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        .http2_adaptive_window(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10));
    Ok(endpoint.connect_lazy())
}

/// A bound on calls in flight (beyond it, calls are shed) over a per-call timeout.
pub(crate) fn limit<S>(service: S, config: &ClientConfig) -> MetadataChannel
where
    S: tower::Service<HttpRequest, Response = HttpResponse> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    let stack = ServiceBuilder::new()
        .map_err(CallError)
        .layer(crate::in_flight_limit::InFlightLimitLayer::new(config.concurrency_limit))
        .timeout(config.timeout)
        .layer(crate::rpc_metrics::RpcMetricsLayer::client())
        .service(service);
    BoxCloneSyncService::new(stack)
}
