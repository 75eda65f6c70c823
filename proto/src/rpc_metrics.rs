//! Observing both ends of every gRPC call: a span (`grpc.client` / `grpc.server`) that carries the
//! W3C trace context across the call, and the latency histograms
//! `coffer_grpc_client_duration_seconds` / `coffer_grpc_server_duration_seconds`, labelled by
//! service (`metadata`, `blobnode`), method and gRPC status code. A tower layer, so servers add it
//! with `Server::builder().layer(..)` and the client stacks in this crate wrap their channels.
//!
//! The time is measured to the response headers: for a streamed shard that is the time to the
//! first chunk, and the code is the one in the headers (a trailers-only error), else `0` (OK so
//! far).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};
use tracing::Instrument;

#[derive(Debug, Clone, Copy)]
pub struct RpcMetricsLayer {
    histogram: &'static str,
    server: bool,
}

impl RpcMetricsLayer {
    pub fn server() -> Self {
        RpcMetricsLayer { histogram: "coffer_grpc_server_duration_seconds", server: true }
    }

    pub fn client() -> Self {
        RpcMetricsLayer { histogram: "coffer_grpc_client_duration_seconds", server: false }
    }
}

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics { inner, histogram: self.histogram, server: self.server }
    }
}

#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    histogram: &'static str,
    server: bool,
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
        let (service, method) = service_and_method(req.uri().path());
        let histogram = self.histogram;
        let name = format!("{service}/{method}");
        let span = if self.server {
            let span = tracing::info_span!("grpc.server", otel.name = %name, otel.kind = "server");
            crate::trace_context::continue_from(&span, req.headers());
            span
        } else {
            let span = tracing::info_span!("grpc.client", otel.name = %name, otel.kind = "client");
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
                        response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("0").to_string()
                    }
                    Err(_) => "transport".to_string(),
                };
                metrics::histogram!(histogram, "service" => service, "method" => method, "code" => code)
                    .record(started.elapsed().as_secs_f64());
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
}
