//! The HTTP edge: health endpoints, request ids, and s3s for everything else, served by
//! hyper-util with graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use s3s::Body;
use s3s::service::S3Service;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use crate::cluster::ClusterView;
use crate::console::Console;
use crate::host::Domains;
use crate::operation;
use crate::swift::SwiftApi;

const LIVE_PATHS: [&str; 2] = ["/health/live", "/minio/health/live"];
const READY_PATHS: [&str; 2] = ["/health/ready", "/minio/health/ready"];
/// Error bodies are small XML documents; anything bigger is passed through untouched.
const MAX_PATCHED_ERROR_BYTES: u64 = 64 * 1024;

pub struct Edge {
    pub s3: S3Service,
    pub cluster: ClusterView,
    /// Live disks needed before the gateway calls itself ready (k+m).
    pub disks_needed: usize,
    /// Virtual-hosted-style domains, to tell bucket from object requests for the metrics.
    pub domains: Option<Domains>,
    /// Renders this process's metrics for `GET /metrics`.
    pub metrics: Option<MetricsRender>,
    /// Cached bucket facts, for CORS preflights and the CORS headers of actual requests.
    pub owners: crate::owners::BucketOwners,
}

/// The client's address, for the `aws:SourceIp` condition key.
#[derive(Debug, Clone, Copy)]
pub struct RemoteAddr(pub std::net::SocketAddr);

/// Renders the process's metrics in the Prometheus text format.
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

const METRICS_PATH: &str = "/metrics";
/// A client that has not finished its TLS handshake by then is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Decrements the in-flight gauge however the request ends (including a dropped connection).
struct InFlight;

impl InFlight {
    fn start() -> InFlight {
        metrics::gauge!("coffer_s3_requests_in_flight").increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("coffer_s3_requests_in_flight").decrement(1.0);
    }
}

fn content_length(headers: &http::HeaderMap) -> u64 {
    headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// An unsigned `GET /metrics` is a scrape; a signed one is S3 (ListObjects of a bucket named `metrics`).
fn is_scrape(req: &Request<Incoming>) -> bool {
    req.method() == Method::GET
        && req.uri().path() == METRICS_PATH
        && req.uri().query().is_none()
        && !req.headers().contains_key(http::header::AUTHORIZATION)
}

fn request_id() -> String {
    format!("{:016X}", rand::random::<u64>())
}

impl Edge {
    /// The operation name for the metrics, or `None` for requests that are not S3 (health, scrapes).
    fn operation(&self, req: &Request<Incoming>) -> Option<&'static str> {
        let path = req.uri().path();
        if LIVE_PATHS.contains(&path) || READY_PATHS.contains(&path) || is_scrape(req) {
            return None;
        }
        let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
        let bucket_in_host = self.domains.as_ref().is_some_and(|d| d.names_bucket(host));
        let copy_source = req.headers().contains_key("x-amz-copy-source");
        let target = operation::target(path, bucket_in_host);
        Some(operation::name(req.method(), target, req.uri().query().unwrap_or_default(), copy_source))
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
        let Some(op) = self.operation(&req) else {
            return Ok(self.route(req).await);
        };
        // The root of the request's trace, or a child of the caller's `traceparent`; its trace id
        // is the request id clients see, so an error report leads straight to the trace.
        let span = tracing::info_span!("s3.request", otel.name = op, otel.kind = "server",
            request_id = tracing::field::Empty, method = %req.method(), path = %req.uri().path());
        coffer_proto::trace_context::continue_from(&span, req.headers());
        let id = coffer_proto::trace_context::trace_id(&span).unwrap_or_else(request_id);
        span.record("request_id", id.as_str());
        let started = Instant::now();
        let _in_flight = InFlight::start();
        metrics::counter!("coffer_s3_bytes_in_total").increment(content_length(req.headers()));
        let mut response = self.handle_s3(req, &id).instrument(span).await;
        if crate::s3::xml_order::applies(op) {
            response = crate::s3::xml_order::reorder_response(response).await;
        }
        let status = response.status().as_u16().to_string();
        metrics::counter!("coffer_s3_requests_total", "op" => op, "status" => status).increment(1);
        metrics::histogram!("coffer_s3_request_duration_seconds", "op" => op).record(started.elapsed().as_secs_f64());
        metrics::counter!("coffer_s3_bytes_out_total").increment(content_length(response.headers()));
        Ok(response)
    }

    async fn handle_s3(&self, req: Request<Incoming>, id: &str) -> Response<Body> {
        let target = crate::s3::cors::target_of(&req, self.domains.as_ref());
        let expects_continue =
            req.headers().get(http::header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let mut response = if req.method() == Method::OPTIONS {
            // s3s routes no OPTIONS; preflights are answered here, unauthenticated.
            crate::s3::cors::preflight(&self.owners, target, req.headers()).await
        } else {
            let actual = crate::s3::cors::ActualRequest::of(req.method(), req.headers(), target);
            let mut response = self.route(req).await;
            if let Some(actual) = actual {
                actual.decorate(&self.owners, &mut response).await;
            }
            response
        };
        tracing::debug!(status = response.status().as_u16(), "done");
        if expects_continue && !response.status().is_success() {
            // A refusal sent before the body was read: a client that stopped waiting for
            // `100 Continue` may be sending the body anyway, and those bytes must never be
            // parsed as the next request on this connection.
            response.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Ok(value) = HeaderValue::from_str(id) {
            response.headers_mut().insert("x-amz-request-id", value.clone());
            response.headers_mut().insert("x-amz-id-2", value);
        }
        if response.status().is_client_error() || response.status().is_server_error() {
            response = with_request_id_in_error(response, id).await;
        }
        response
    }

    async fn route(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path();
        if matches!(*req.method(), Method::GET | Method::HEAD) {
            if LIVE_PATHS.contains(&path) {
                return plain(StatusCode::OK, "OK");
            }
            if let Some(render) = &self.metrics
                && is_scrape(&req)
            {
                let mut response = Response::new(Body::from(render()));
                response
                    .headers_mut()
                    .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
                return response;
            }
            if READY_PATHS.contains(&path) {
                return if self.cluster.is_ready(self.disks_needed) {
                    plain(StatusCode::OK, "OK")
                } else {
                    plain(StatusCode::SERVICE_UNAVAILABLE, "not ready: metadata or blobnodes unreachable")
                };
            }
        }
        if let Some(e) = crate::s3::edge::missing_sigv4_date(req.headers()) {
            let doc = crate::s3::edge::error_document(e.code().as_str(), e.message().unwrap_or_default());
            let mut response = Response::new(Body::from(doc));
            *response.status_mut() = StatusCode::FORBIDDEN;
            response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
            return response;
        }
        let uri = req.uri().clone();
        let (mut parts, body) = req.into_parts();
        crate::s3::edge::normalize_date_headers(&mut parts.headers, &mut parts.extensions, &uri);
        let req = Request::from_parts(parts, body);
        let req = crate::s3::edge::hash_delete_objects_body(req);
        // Browser form uploads: `${filename}` in the key, and S3's answers for refused policies.
        let form = crate::s3::post_form::form_boundary(&req);
        let req = match &form {
            Some(boundary) => crate::s3::post_form::prepare_form(req, boundary).await,
            None => req,
        };
        match self.s3.call(req).await {
            Ok(response) if form.is_some() => crate::s3::post_form::policy_errors_as_s3(response).await,
            Ok(response) => response,
            Err(e) => {
                tracing::error!(error = ?e, "unhandled S3 service error");
                let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code>\
                           <Message>We encountered an internal error. Please try again.</Message></Error>";
                let mut response = Response::new(Body::from(xml.to_string()));
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
                response
            }
        }
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text.to_string()));
    *response.status_mut() = status;
    response
}

/// S3 error documents carry the request id; s3s does not know it, so it is added here. So is a
/// `<Message>` where s3s wrote none: S3 always sends one, and some clients require it.
async fn with_request_id_in_error(response: Response<Body>, id: &str) -> Response<Body> {
    let small = http_body::Body::size_hint(response.body()).upper().is_some_and(|n| n <= MAX_PATCHED_ERROR_BYTES);
    if !small {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Response::from_parts(parts, Body::empty()),
    };
    let patched = match std::str::from_utf8(&bytes) {
        Ok(text) if text.contains("</Error>") => {
            let mut doc = crate::s3::edge::with_message(text).unwrap_or_else(|| text.to_string());
            if !doc.contains("<RequestId>") {
                doc = doc.replacen("</Error>", &format!("<RequestId>{id}</RequestId></Error>"), 1);
            }
            Bytes::from(doc)
        }
        _ => bytes,
    };
    parts.headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(patched.len()));
    Response::from_parts(parts, Body::from(patched))
}

/// What one listening port serves.
#[derive(Clone)]
pub enum Front {
    /// S3, the admin API and STS.
    S3,
    /// The web console's assets, in front of the same edge (its signed calls are S3, admin API or STS).
    Console(Arc<Console>),
    /// The OpenStack Swift API.
    Swift(Arc<SwiftApi>),
}

/// A Swift request in its own trace; the trace id is its `X-Trans-Id`.
async fn handle_swift(swift: &SwiftApi, req: Request<Incoming>) -> Response<Body> {
    let span = tracing::info_span!("swift.request", otel.kind = "server", trans_id = tracing::field::Empty,
        method = %req.method(), path = %req.uri().path());
    coffer_proto::trace_context::continue_from(&span, req.headers());
    let id = format!("tx{}", coffer_proto::trace_context::trace_id(&span).unwrap_or_else(request_id));
    span.record("trans_id", id.as_str());
    let _in_flight = InFlight::start();
    let has_body = req.headers().get(http::header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(http::header::TRANSFER_ENCODING);
    let mut response = swift.handle(req, &id).instrument(span).await;
    if has_body && (response.status().is_client_error() || response.status().is_server_error()) {
        // An error may be answered before the upload was read. hyper then closes the connection after the
        // answer, and a client that reuses it in that instant sees "remote end closed" on its next request;
        // saying so lets it open a new one instead (as Swift's proxy does).
        response.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Accepts connections until `shutdown` resolves, then waits up to `grace` for in-flight
/// requests to finish. With `tls`, every connection is a TLS handshake first (done in the
/// connection's own task, so a slow client never holds up the accept loop).
pub async fn serve(
    listener: TcpListener,
    edge: Arc<Edge>,
    front: Front,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    tls: Option<TlsAcceptor>,
) {
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (edge, builder, watcher, tls) = (edge.clone(), builder.clone(), graceful.watcher(), tls.clone());
                let front = front.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                        req.extensions_mut().insert(RemoteAddr(peer));
                        let (edge, front) = (edge.clone(), front.clone());
                        async move {
                            match front {
                                Front::S3 => edge.handle(req).await,
                                Front::Swift(swift) => Ok(handle_swift(&swift, req).await),
                                Front::Console(console) => {
                                    if let Some(response) = console.respond(&req) {
                                        return Ok(response);
                                    }
                                    let mut response = edge.handle(req).await?;
                                    crate::console::harden(response.headers_mut());
                                    Ok(response)
                                }
                            }
                        }
                    });
                    let served = match tls {
                        None => watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned()).await,
                        Some(tls) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                            Ok(Ok(stream)) => {
                                watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned()).await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        },
                    };
                    if let Err(e) = served {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("draining in-flight requests");
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(?grace, "requests still in flight after the grace period; closing");
    }
}
