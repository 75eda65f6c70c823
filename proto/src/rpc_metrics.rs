//! Observing both ends of every gRPC call: a span (`grpc.client` / `grpc.server`) that carries the
//! W3C trace context across the call, and the latency histograms
//! `coffer_grpc_client_duration_seconds` / `coffer_grpc_server_duration_seconds`, labelled by
//! service (`metadata`, `blobnode`), method and gRPC status code. A tower layer, so servers add it
//! with `Server::builder().layer(..)` and the client stacks in this crate wrap their channels.
//!
//! The time is measured to the response headers: for a streamed shard that is the time to the
//! first chunk, and the code is the one in the headers (a trailers-only error), else `0` (OK so
//! far).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};
use tracing::Instrument;

/// Methods whose names and histogram handles are kept (a process calls a few dozen); calls to
/// paths beyond it are still measured, building their labels each time.
const MAX_METHODS: usize = 256;
/// gRPC status codes 0..=16, then one slot for a transport failure.
const CODES: usize = 18;

#[derive(Debug, Clone)]
pub struct RpcMetricsLayer {
    histogram: &'static str,
    server: bool,
    methods: Methods,
}

impl RpcMetricsLayer {
    pub fn server() -> Self {
        RpcMetricsLayer { histogram: "coffer_grpc_server_duration_seconds", server: true, methods: Methods::default() }
    }

    pub fn client() -> Self {
        RpcMetricsLayer { histogram: "coffer_grpc_client_duration_seconds", server: false, methods: Methods::default() }
    }
}

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics { inner, histogram: self.histogram, server: self.server, methods: self.methods.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    histogram: &'static str,
    server: bool,
    methods: Methods,
}

/// What one method's calls share: its span name and labels, formatted once, and a histogram
/// handle per status code, registered on first use (a registry lookup with fresh label strings
/// on every call cost about 1% of a small GET's CPU).
#[derive(Debug)]
struct Method {
    /// `service/method`, the span's `otel.name`.
    name: String,
    service: String,
    method: String,
    histograms: [OnceLock<metrics::Histogram>; CODES],
}

impl Method {
    fn new(path: &str) -> Method {
        let (service, method) = service_and_method(path);
        Method { name: format!("{service}/{method}"), service, method, histograms: Default::default() }
    }

    fn record(&self, histogram: &'static str, code: Option<&str>, seconds: f64) {
        let slot = match code {
            Some(code) => code.parse::<usize>().ok().filter(|c| *c < CODES - 1),
            None => Some(CODES - 1),
        };
        let label = || code.unwrap_or("transport").to_string();
        let register = || metrics::histogram!(histogram, "service" => self.service.clone(), "method" => self.method.clone(), "code" => label());
        match slot {
            Some(slot) => self.histograms[slot].get_or_init(register).record(seconds),
            // A code outside gRPC's: measured, not kept.
            None => register().record(seconds),
        }
    }
}

/// The [`Method`]s seen by a layer and every service it made, by request path.
#[derive(Debug, Clone, Default)]
struct Methods(Arc<RwLock<HashMap<String, Arc<Method>>>>);

impl Methods {
    fn get(&self, path: &str) -> Arc<Method> {
        if let Some(known) = self.0.read().unwrap_or_else(|e| e.into_inner()).get(path) {
            return known.clone();
        }
        let method = Arc::new(Method::new(path));
        let mut known = self.0.write().unwrap_or_else(|e| e.into_inner());
        if known.len() < MAX_METHODS {
            known.entry(path.to_string()).or_insert_with(|| method.clone());
        }
        method
    }
}

/// `("metadata", "GetObject")` from `/coffer.metadata.v1.Metadata/GetObject`.
fn service_and_method(path: &str) -> (String, String) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or_default();
    let method = parts.next().unwrap_or_default();
    let short = service.rsplit('.').next().unwrap_or(service).to_ascii_lowercase();
    (short, method.to_string())
}

impl<S, B, R> Service<http::Request<B>> for RpcMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let method = self.methods.get(req.uri().path());
        let histogram = self.histogram;
        let span = if self.server {
            let span = tracing::info_span!("grpc.server", otel.name = %method.name, otel.kind = "server");
            crate::trace_context::continue_from(&span, req.headers());
            span
        } else {
            let span = tracing::info_span!("grpc.client", otel.name = %method.name, otel.kind = "client");
            crate::trace_context::inject(&span, req.headers_mut());
            span
        };
        let started = Instant::now();
        // The handler (server) or the transport (client) starts inside the span, so its own spans
        // nest under it.
        let response = span.in_scope(|| self.inner.call(req));
        Box::pin(
            async move {
                let result = response.await;
                let code = match &result {
                    Ok(response) => {
                        Some(response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("0"))
                    }
                    Err(_) => None,
                };
                method.record(histogram, code, started.elapsed().as_secs_f64());
                result
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_service_and_method() {
        assert_eq!(
            service_and_method("/coffer.metadata.v1.Metadata/GetObject"),
            ("metadata".into(), "GetObject".into())
        );
        assert_eq!(service_and_method("/coffer.blobnode.v1.Blobnode/PutShard"), ("blobnode".into(), "PutShard".into()));
        assert_eq!(service_and_method("/"), (String::new(), String::new()));
    }

    #[test]
    fn a_method_is_named_once_and_shared_by_every_call() {
        let methods = Methods::default();
        let first = methods.get("/coffer.metadata.v1.Metadata/GetObject");
        assert_eq!(first.name, "metadata/GetObject");
        assert!(Arc::ptr_eq(&first, &methods.get("/coffer.metadata.v1.Metadata/GetObject")));
        // Every status code, a transport failure and a code outside gRPC's are recorded.
        for code in [Some("0"), Some("14"), None, Some("99")] {
            first.record("coffer_grpc_test_seconds", code, 0.001);
        }
        for n in 0..MAX_METHODS + 10 {
            methods.get(&format!("/coffer.x.v1.X/M{n}"));
        }
        assert_eq!(methods.0.read().unwrap().len(), MAX_METHODS, "the cache stays bounded");
    }
}
