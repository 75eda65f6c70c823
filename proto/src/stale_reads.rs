//! Listings that may be answered by any metadata replica, up to a bound stale: each call carries
//! [`MAX_STALENESS_HEADER`] and goes to a replica picked by tower's power-of-two-choices balancer
//! over every configured replica (load: see `replica_load`). A replica that cannot prove its state
//! is recent enough refuses (the not-leader answer); then — and on any other failure, since a
//! listing changes nothing — the call is sent once more, without the header, through the ordinary
//! leader-routed client, which answers linearizably. Without a bound, [`ListingClient`] is just
//! that client.

use std::future::Future;
use std::time::Duration;

use tonic::{Request, Response, Status};
use tower::balance::p2c::Balance;
use tower::buffer::Buffer;
use tower::discover::ServiceList;

use crate::error::{ErrorCode, RemoteError};
use crate::metadata_client::{ClientConfig, MetadataChannel, MetadataClient, generated, lazy_channel, limit};
use crate::pb::metadata::metadata_client::MetadataClient as GeneratedClient;
use crate::pb::metadata::{
    ListObjectVersionsRequest, ListObjectVersionsResponse, ListObjectsRequest, ListObjectsResponse, ListUploadsRequest,
    ListUploadsResponse,
};
use crate::replica_load::LoadedReplica;

/// On a `List*` call: the staleness, in milliseconds, the caller accepts (absent or 0: none).
pub const MAX_STALENESS_HEADER: &str = "x-coffer-max-staleness-ms";
/// A stale attempt that has not answered by then is abandoned for the leader: a healthy replica
/// answers a listing in milliseconds, and one that is stopped or cut off would hold the call for
/// the whole call timeout.
const STALE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
/// Calls queued in front of the balancer, at most (the client stack's concurrency limit is below).
const BALANCER_QUEUE: usize = 1024;

/// The metadata listings, stale-bounded or linearizable. Cheap to clone.
#[derive(Clone)]
pub struct ListingClient {
    leader: MetadataClient,
    stale: Option<StaleReplicas>,
}

#[derive(Clone)]
struct StaleReplicas {
    client: GeneratedClient<MetadataChannel>,
    bound_ms: u64,
}

impl ListingClient {
    /// Every listing through `leader`, linearizable.
    pub fn linearizable(leader: MetadataClient) -> ListingClient {
        ListingClient { leader, stale: None }
    }

    /// Listings up to `bound` stale from any of `endpoints` (every replica of the group), falling
    /// back to `leader`. A zero bound is [`ListingClient::linearizable`]. Connects lazily; must be
    /// called inside a tokio runtime.
    pub fn bounded(
        endpoints: &[String],
        config: &ClientConfig,
        bound: Duration,
        leader: MetadataClient,
    ) -> Result<ListingClient, RemoteError> {
        let bound_ms = bound.as_millis() as u64;
        if bound_ms == 0 {
            return Ok(ListingClient::linearizable(leader));
        }
        if endpoints.is_empty() {
            return Err(RemoteError::new(ErrorCode::InvalidArgument, "no metadata endpoint given"));
        }
        let replicas = endpoints
            .iter()
            .map(|url| lazy_channel(url, config).map(LoadedReplica::new))
            .collect::<Result<Vec<_>, _>>()?;
        let balanced = Buffer::new(Balance::new(ServiceList::new(replicas)), BALANCER_QUEUE);
        let attempt = ClientConfig { timeout: config.timeout.min(STALE_ATTEMPT_TIMEOUT), ..config.clone() };
        let client = generated(limit(balanced, &attempt));
        Ok(ListingClient { leader, stale: Some(StaleReplicas { client, bound_ms }) })
    }

    /// A page that stopped at the end of one metadata group's range is filled from the groups that
    /// follow (`group_router::list_across_ranges`); so are those of the two calls below.
    pub async fn list_objects(&self, request: ListObjectsRequest) -> Result<Response<ListObjectsResponse>, Status> {
        self.across_ranges(request, |mut c, r| async move { c.list_objects(r).await }).await
    }

    pub async fn list_object_versions(
        &self,
        request: ListObjectVersionsRequest,
    ) -> Result<Response<ListObjectVersionsResponse>, Status> {
        self.across_ranges(request, |mut c, r| async move { c.list_object_versions(r).await }).await
    }

    pub async fn list_uploads(&self, request: ListUploadsRequest) -> Result<Response<ListUploadsResponse>, Status> {
        self.across_ranges(request, |mut c, r| async move { c.list_uploads(r).await }).await
    }

    /// [`ListingClient::read`], then the rest of the page from the groups that follow when the
    /// answering group's part of the key space ended first.
    async fn across_ranges<Q, F, Fut>(&self, request: Q, call: F) -> Result<Response<Q::Page>, Status>
    where
        Q: crate::group_router::RangeListing,
        F: Fn(GeneratedClient<MetadataChannel>, Request<Q>) -> Fut + Clone,
        Fut: Future<Output = Result<Response<Q::Page>, Status>>,
    {
        let first = self.read(request.clone(), call.clone()).await?;
        let (metadata, first, extensions) = first.into_parts();
        let page = crate::group_router::list_across_ranges(request, first, |next| {
            let call = call.clone();
            async move { self.read(next, call).await.map(Response::into_inner) }
        })
        .await?;
        Ok(Response::from_parts(metadata, page, extensions))
    }

    /// One stale attempt when configured, then at most one linearizable call.
    async fn read<Q, A, F, Fut>(&self, request: Q, call: F) -> Result<Response<A>, Status>
    where
        Q: Clone,
        F: Fn(GeneratedClient<MetadataChannel>, Request<Q>) -> Fut,
        Fut: Future<Output = Result<Response<A>, Status>>,
    {
        if let Some(stale) = &self.stale {
            let mut attempt = Request::new(request.clone());
            attempt.metadata_mut().insert(MAX_STALENESS_HEADER, stale.bound_ms.into());
            match call(stale.client.clone(), attempt).await {
                Ok(answer) => {
                    metrics::counter!("coffer_metadata_client_stale_reads_total", "outcome" => "served").increment(1);
                    return Ok(answer);
                }
                Err(status) => {
                    metrics::counter!("coffer_metadata_client_stale_reads_total", "outcome" => "fell_back")
                        .increment(1);
                    tracing::debug!(code = ?status.code(), message = status.message(), "stale listing refused; asking the leader");
                }
            }
        }
        call(self.leader.rpc(), Request::new(request)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn clients(bound: Duration) -> ListingClient {
        let config = ClientConfig::default();
        let urls = ["http://127.0.0.1:1".to_string(), "http://127.0.0.1:2".to_string()];
        let leader = MetadataClient::connect(&urls, &config).unwrap();
        ListingClient::bounded(&urls, &config, bound, leader).unwrap()
    }

    #[tokio::test]
    async fn a_zero_bound_is_the_linearizable_client() {
        assert!(clients(Duration::ZERO).stale.is_none());
        assert_eq!(clients(Duration::from_millis(1500)).stale.map(|s| s.bound_ms), Some(1500));
    }

    #[tokio::test]
    async fn a_refused_stale_attempt_is_sent_once_more_without_the_header() {
        let client = clients(Duration::from_millis(500));
        let calls = AtomicUsize::new(0);
        let answer = client
            .read((), |_, request: Request<()>| {
                calls.fetch_add(1, Ordering::SeqCst);
                let stale = request.metadata().get(MAX_STALENESS_HEADER).map(|v| v.to_str().unwrap().to_string());
                async move {
                    match stale {
                        Some(bound) => {
                            assert_eq!(bound, "500");
                            Err(Status::unavailable("not leader"))
                        }
                        None => Ok(Response::new("linearizable")),
                    }
                }
            })
            .await;
        assert_eq!(answer.unwrap().into_inner(), "linearizable");
        assert_eq!(calls.load(Ordering::SeqCst), 2, "one stale attempt, one fallback");
    }

    #[tokio::test]
    async fn a_served_stale_attempt_is_the_answer_and_a_failed_fallback_is_not_retried() {
        let client = clients(Duration::from_millis(500));
        let served = client.read((), |_, _: Request<()>| async { Ok(Response::new("stale")) }).await;
        assert_eq!(served.unwrap().into_inner(), "stale");
        let calls = AtomicUsize::new(0);
        let failed = client
            .read((), |_, _: Request<()>| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<Response<()>, _>(Status::unavailable("down")) }
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
