//! Sends every metadata call to the replica that leads the metadata group, so that no caller needs
//! an operator to name the leader. A replica that does not lead answers with the
//! [`NOT_LEADER_HEADER`] (the leader's URL, or empty during an election); the router then resends
//! the call there — or, with no hint, to the next replica after a short backoff. A replica that
//! refuses the connection (down) is skipped the same way. Both are safe to resend: the call was
//! never executed. Anything else (a timeout, a connection lost mid-call) goes back to the caller,
//! since the call may have taken effect — and the router moves on, so that the next call asks
//! another replica (a replica cut off by the network neither answers nor refuses).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use tonic::transport::Channel;
use tower::{Service, ServiceExt};

use crate::metadata_client::{ClientConfig, NOT_LEADER_HEADER, lazy_channel};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type HttpRequest = http::Request<tonic::body::Body>;
type HttpResponse = http::Response<tonic::body::Body>;

/// Resends of one call at most; with the backoff below they span about 6 s, more than an election.
const MAX_RESENDS: u32 = 12;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_millis(800);
/// Replicas learned from hints on top of the configured ones, at most.
const MAX_REPLICAS: usize = 16;

#[derive(Clone)]
pub struct LeaderRouter {
    state: Arc<RouterState>,
}

struct RouterState {
    replicas: RwLock<Vec<(String, Channel)>>,
    /// Index in `replicas` of the one believed to lead.
    leader: AtomicUsize,
    config: ClientConfig,
}

impl LeaderRouter {
    pub fn new(replicas: Vec<(String, Channel)>, config: ClientConfig) -> LeaderRouter {
        LeaderRouter {
            state: Arc::new(RouterState { replicas: RwLock::new(replicas), leader: AtomicUsize::new(0), config }),
        }
    }
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

impl RouterState {
    fn current(&self) -> (usize, Channel) {
        let replicas = self.replicas.read().unwrap_or_else(|e| e.into_inner());
        let index = self.leader.load(Ordering::Relaxed) % replicas.len().max(1);
        (index, replicas[index].1.clone())
    }

    /// Points at `hint` (learning it if new and well-formed); returns false if there is no usable hint.
    fn follow(&self, hint: &str) -> bool {
        if hint.is_empty() {
            return false;
        }
        {
            let replicas = self.replicas.read().unwrap_or_else(|e| e.into_inner());
            if let Some(index) = replicas.iter().position(|(url, _)| same_url(url, hint)) {
                self.leader.store(index, Ordering::Relaxed);
                return true;
            }
        }
        let Ok(channel) = lazy_channel(hint, &self.config) else { return false };
        let mut replicas = self.replicas.write().unwrap_or_else(|e| e.into_inner());
        if replicas.len() >= MAX_REPLICAS {
            return false;
        }
        replicas.push((hint.to_string(), channel));
        self.leader.store(replicas.len() - 1, Ordering::Relaxed);
        true
    }

    /// Moves past replica `index` (down, or not knowing the leader), unless another call already
    /// moved the router. The stored position stays below the number of replicas: `current` hands
    /// out positions modulo that number, so a stored position that had run past the end would
    /// never again equal the `index` a caller skips, and the router would stay on one replica —
    /// a dead one, if that is where it was when it wrapped — for good.
    fn skip(&self, index: usize) {
        let len = self.replicas.read().unwrap_or_else(|e| e.into_inner()).len().max(1);
        let _ = self.leader.compare_exchange(index, (index + 1) % len, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// Moves the router past replica `index` when dropped while armed.
struct MoveOnIfDropped<'a> {
    state: &'a RouterState,
    index: usize,
    armed: bool,
}

impl MoveOnIfDropped<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for MoveOnIfDropped<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.state.skip(self.index);
        }
    }
}

/// The connection was refused: nothing was sent, so resending cannot duplicate the call. tonic's
/// own connect error does not expose its cause as a `source()`, so the typed `Debug` form (which
/// names the OS error kind) is the fallback.
fn refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = e.source();
    }
    format!("{error:?}").contains("ConnectionRefused")
}

/// A request again from its parts and buffered body, to send it (once more) somewhere.
pub(crate) fn rebuild(parts: &http::request::Parts, body: Bytes) -> HttpRequest {
    let mut request = http::Request::new(tonic::body::Body::new(Full::new(body)));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    request
}

impl Service<HttpRequest> for LeaderRouter {
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<HttpResponse, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness is awaited per call on the chosen channel (`oneshot`).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            // Metadata calls are unary: one message, bounded by the encoder's MAX_MESSAGE_BYTES.
            let body = body.collect().await.map_err(|e| Box::new(e) as BoxError)?.to_bytes();
            let mut backoff = FIRST_BACKOFF;
            let mut resends = 0;
            loop {
                let (index, channel) = state.current();
                // If this attempt never finishes (the caller's timeout drops it: a replica cut off by
                // the network neither answers nor refuses), the next call tries another replica,
                // which knows the current leader.
                let unanswered = MoveOnIfDropped { state: &state, index, armed: true };
                let outcome = channel.oneshot(rebuild(&parts, body.clone())).await;
                unanswered.disarm();
                let last = resends >= MAX_RESENDS;
                match outcome {
                    Ok(response) => {
                        let Some(hint) = response.headers().get(NOT_LEADER_HEADER) else { return Ok(response) };
                        if last {
                            return Ok(response);
                        }
                        let hint = hint.to_str().unwrap_or_default().to_string();
                        if state.follow(&hint)
                            && !same_url(&hint, &state.replicas.read().unwrap_or_else(|e| e.into_inner())[index].0)
                        {
                            // A different replica leads: go there at once.
                            resends += 1;
                            continue;
                        }
                        state.skip(index);
                    }
                    Err(e) if !last && refused(&e) => state.skip(index),
                    Err(e) => {
                        // The call may have run, so it is not resent; the next one tries elsewhere.
                        state.skip(index);
                        return Err(Box::new(e) as BoxError);
                    }
                }
                resends += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_counts_as_never_sent() {
        // A port nothing listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap();
        let channel = lazy_channel(&format!("http://127.0.0.1:{port}"), &ClientConfig::default()).unwrap();
        let request = http::Request::new(tonic::body::Body::new(Full::new(Bytes::from_static(b""))));
        let error = channel.oneshot(request).await.expect_err("nothing listens there");
        assert!(refused(&error), "{error:?}");
        assert!(!refused(&std::io::Error::from(std::io::ErrorKind::ConnectionReset)));
    }

    #[tokio::test]
    async fn hints_point_at_known_replicas_or_teach_new_ones() {
        let config = ClientConfig::default();
        let replicas = ["http://127.0.0.1:1", "http://127.0.0.1:2"]
            .map(|url| (url.to_string(), lazy_channel(url, &config).unwrap()))
            .to_vec();
        let state = RouterState { replicas: RwLock::new(replicas), leader: AtomicUsize::new(0), config };
        assert!(!state.follow(""), "no hint during an election");
        assert!(state.follow("http://127.0.0.1:2/"));
        assert_eq!(state.leader.load(Ordering::Relaxed), 1);
        assert!(state.follow("http://127.0.0.1:3"));
        assert_eq!(state.leader.load(Ordering::Relaxed), 2);
        state.skip(2);
        assert_eq!(state.current().0, 0, "skipping wraps around");
    }

    #[tokio::test]
    async fn skipping_goes_round_the_replicas_again_and_again() {
        // A gateway started before the group elected its first leader skips every replica once
        // (no hint, or refused); once the first one dies it must still move on from it.
        let config = ClientConfig::default();
        let replicas = ["http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"]
            .map(|url| (url.to_string(), lazy_channel(url, &config).unwrap()))
            .to_vec();
        let state = RouterState { replicas: RwLock::new(replicas), leader: AtomicUsize::new(0), config };
        let mut visited = Vec::new();
        for _ in 0..7 {
            let (index, _) = state.current();
            visited.push(index);
            state.skip(index);
        }
        assert_eq!(visited, [0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(state.current().0, 1);
        state.skip(0);
        assert_eq!(state.current().0, 1, "a stale skip (another call moved the router) changes nothing");
    }
}
