//! Where a replicated metadata service decides whether it may answer a call at all: only the
//! leader serves the `Metadata` API. Reads (`Get*`, `List*`) first pass the read barrier (a
//! majority confirms the leadership, and everything committed before is applied), so they are
//! linearizable; writes are ordered by the Raft log itself. Other replicas answer
//! "not leader" with the leader's URL, which clients follow (`coffer_proto::leader_router`).
//! The one exception: a `List*` call that accepts a bounded-staleness answer (it carries
//! `x-coffer-max-staleness-ms`) is served by any replica that can prove its state is at most that
//! stale, without a barrier (see `raft::stale_reads`); `Get*` and writes never are.
//! The `MetadataRaft` service passes untouched.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::{Layer, Service};

use crate::error::MetadataError;
use crate::raft::{Replication, StaleRead, requested_bound};

const METADATA_API: &str = "/coffer.metadata.v1.Metadata/";

#[derive(Clone)]
pub struct LeaderGateLayer {
    replication: Option<Replication>,
}

impl LeaderGateLayer {
    /// `None`: a lone metadata service, which answers everything.
    pub fn new(replication: Option<Replication>) -> LeaderGateLayer {
        LeaderGateLayer { replication }
    }
}

impl<S> Layer<S> for LeaderGateLayer {
    type Service = LeaderGate<S>;

    fn layer(&self, inner: S) -> LeaderGate<S> {
        LeaderGate { inner, replication: self.replication.clone() }
    }
}

#[derive(Clone)]
pub struct LeaderGate<S> {
    inner: S,
    replication: Option<Replication>,
}

fn is_read(method: &str) -> bool {
    method.starts_with("Get") || method.starts_with("List")
}

/// The only calls that may be answered stale: listings.
fn may_be_stale(method: &str) -> bool {
    method.starts_with("List")
}

impl<S, B> Service<http::Request<B>> for LeaderGate<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The ready inner service answers this call; a clone takes its place for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let method = request.uri().path().strip_prefix(METADATA_API).map(str::to_string);
        let (Some(replication), Some(method)) = (self.replication.clone(), method) else {
            return Box::pin(inner.call(request));
        };
        let stale_bound = if may_be_stale(&method) { requested_bound(request.headers()) } else { None };
        Box::pin(async move {
            if let Some(bound) = stale_bound {
                match replication.stale_read(bound).await {
                    StaleRead::Serve(permit) => {
                        let response = inner.call(request).await?;
                        // A unary answer is computed by now; it stands unless a snapshot install overlapped it.
                        if permit.holds() {
                            return Ok(response);
                        }
                        return Ok(tonic::Status::from(not_leader(&replication)).into_http());
                    }
                    StaleRead::Refused => return Ok(tonic::Status::from(not_leader(&replication)).into_http()),
                    StaleRead::Linearizable => {}
                }
            }
            let allowed = if is_read(&method) {
                replication.read_barrier().await
            } else if replication.is_leader() {
                Ok(())
            } else {
                Err(not_leader(&replication))
            };
            match allowed {
                Ok(()) => inner.call(request).await,
                Err(e) => Ok(tonic::Status::from(e).into_http()),
            }
        })
    }
}

/// The refusal clients follow to the leader.
fn not_leader(replication: &Replication) -> MetadataError {
    MetadataError::NotLeader { leader: replication.leader_address() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_gets_and_lists() {
        assert!(is_read("GetObject"));
        assert!(is_read("ListObjectVersions"));
        assert!(!is_read("PutObject"));
        assert!(!is_read("Heartbeat"));
        assert!(!is_read("ClaimRepairs"));
    }

    #[test]
    fn only_listings_may_be_stale() {
        assert!(may_be_stale("ListObjects"));
        assert!(may_be_stale("ListUploads"));
        assert!(!may_be_stale("GetObject"));
        assert!(!may_be_stale("PutObject"));
    }
}
