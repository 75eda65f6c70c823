//! The process's Prometheus endpoint: `--metrics-address` serves every `coffer_*` series the roles
//! in this process record (through the `metrics` facade) as text on `/metrics`.

use std::net::SocketAddr;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusBuilder;

/// Installs the recorder and its HTTP listener; without an address nothing is recorded.
pub fn install(address: Option<SocketAddr>) -> anyhow::Result<()> {
    let Some(address) = address else {
        return Ok(());
    };
    PrometheusBuilder::new()
        .with_http_listener(address)
        .install()
        .with_context(|| format!("serving metrics on {address}"))?;
    tracing::info!(%address, "metrics on /metrics");
    Ok(())
}
