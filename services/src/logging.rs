//! Logs and traces: `RUST_LOG` filters (default info), text or JSON lines on stderr, and — when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set — every span exported with OTLP over gRPC, under
//! `OTEL_SERVICE_NAME` (default `coffer-<role>`), sampled as `OTEL_TRACES_SAMPLER` /
//! `OTEL_TRACES_SAMPLER_ARG` say (default: all), batched as `OTEL_BSP_*` say.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Keeps the trace exporter alive; [`Telemetry::shutdown`] flushes what is buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("coffer: flushing traces failed: {e}");
        }
    }
}

fn otlp_endpoint() -> Option<String> {
    std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok().filter(|v| !v.trim().is_empty())
}

/// The tracer provider, when an OTLP endpoint is configured. Must run inside the tokio runtime:
/// the batch processor exports from a task on it (the exporter's gRPC client needs its reactor).
fn tracer_provider(default_service: &str) -> anyhow::Result<Option<SdkTracerProvider>> {
    if otlp_endpoint().is_none() {
        return Ok(None);
    }
    let service = std::env::var("OTEL_SERVICE_NAME").ok().filter(|v| !v.is_empty());
    let service = service.unwrap_or_else(|| default_service.to_string());
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().build()?;
    let processor = opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
        exporter,
        opentelemetry_sdk::runtime::Tokio,
    )
    .build();
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service).build();
    let provider = SdkTracerProvider::builder().with_span_processor(processor).with_resource(resource).build();
    opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
    Ok(Some(provider))
}

/// The spans whose fields prefix the log lines of the events inside them.
const LOGGED_SPANS: [&str; 3] = ["s3.request", "swift.request", "admin"];

pub fn init(format: LogFormat, default_service: &str) -> anyhow::Result<Telemetry> {
    // s3s logs every client error (a 404, a bad signature) at ERROR; the gateway logs what
    // matters itself, so s3s stays quiet unless RUST_LOG asks for it.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,s3s=off"));
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).boxed(),
        LogFormat::Json => fmt.json().with_current_span(true).boxed(),
    };
    // The log lines see events and the request spans (their context: operation, request id) but
    // not the inner spans (gRPC calls, stripes, codec work): the fmt layer formats every field of
    // every span it sees when the span starts, which cost about 4% of a small GET's CPU, for
    // context the request span already gives. Traces (OTLP) still get every span.
    let fmt = fmt.with_filter(tracing_subscriber::filter::filter_fn(|meta| {
        meta.is_event() || LOGGED_SPANS.contains(&meta.name())
    }));
    let provider = tracer_provider(default_service)?;
    let otel = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("coffer")));
    tracing_subscriber::registry().with(filter).with(fmt).with(otel).init();
    Ok(Telemetry { provider })
}
