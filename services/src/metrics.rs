//! The process's Prometheus metrics: every role records `coffer_*` series through the `metrics`
//! facade into one recorder; `--metrics-address` serves them on `/metrics`, and the gateway also
//! answers `GET /metrics` on its S3 port.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Latency buckets in seconds: 0.5 ms to 60 s.
const SECONDS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Records per group commit: 1 to the writer's cap of 256.
const BATCH_RECORDS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Installs the recorder (and, with an address, its HTTP listener on this runtime); returns the
/// renderer for the gateway's own `/metrics`.
pub fn install(address: Option<SocketAddr>) -> anyhow::Result<coffer_gateway::MetricsRender> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS)
        .context("metric buckets")?
        .set_buckets_for_metric(Matcher::Full("coffer_blobnode_batch_records".into()), &BATCH_RECORDS)
        .context("metric buckets")?
        .set_buckets_for_metric(Matcher::Full("coffer_metadata_raft_batch_commands".into()), &BATCH_RECORDS)
        .context("metric buckets")?;
    let handle = match address {
        Some(address) => {
            let (recorder, exporter) =
                builder.with_http_listener(address).build().with_context(|| format!("serving metrics on {address}"))?;
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).context("installing the metrics recorder")?;
            tokio::spawn(async move {
                if let Err(e) = exporter.await {
                    tracing::error!(error = ?e, "the metrics listener stopped");
                }
            });
            tracing::info!(%address, "metrics on /metrics");
            handle
        }
        // Recorded all the same: the gateway serves them on its S3 port.
        None => builder.install_recorder().context("installing the metrics recorder")?,
    };
    Ok(Arc::new(move || handle.render()))
}
