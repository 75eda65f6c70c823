//! Announcing the node to the metadata service: RegisterNode, then a Heartbeat every interval with fresh disk
//! figures. Runs beside the server for the node's whole life; an unreachable metadata service is retried with
//! bounded exponential backoff, never given up on and never spun on.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use coffer_proto::metadata_client::{ClientConfig, MetadataClient};
use coffer_proto::pb::metadata::{HeartbeatRequest, NodeInfo, RegisterNodeRequest};
use coffer_proto::{ErrorCode, RemoteError};

use crate::store::Store;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A call that hangs must not stall the loop, whatever the client's own timeouts are.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// While the metadata service stays unreachable, repeat the warning every this many failures (≈ every 100 s).
const WARN_EVERY_FAILURES: u32 = 20;

/// Client limits for the announcer: a hung metadata replica delays one heartbeat, not the next ones.
pub(crate) fn client_config(tls: Option<coffer_proto::grpc_tls::GrpcTls>) -> ClientConfig {
    ClientConfig { timeout: CALL_TIMEOUT, tls, ..ClientConfig::default() }
}

/// The two calls the loop makes; a trait so tests can stand in for the metadata service.
pub(crate) trait Registry: Send + Sync + 'static {
    fn register(&self, node: NodeInfo) -> impl Future<Output = Result<(), RemoteError>> + Send;
    fn heartbeat(&self, node: NodeInfo) -> impl Future<Output = Result<(), RemoteError>> + Send;
}

impl Registry for MetadataClient {
    async fn register(&self, node: NodeInfo) -> Result<(), RemoteError> {
        self.rpc().register_node(RegisterNodeRequest { node: Some(node) }).await?;
        Ok(())
    }

    async fn heartbeat(&self, node: NodeInfo) -> Result<(), RemoteError> {
        self.rpc().heartbeat(HeartbeatRequest { node: Some(node) }).await?;
        Ok(())
    }
}

fn backoff(consecutive_failures: u32) -> Duration {
    let doublings = consecutive_failures.saturating_sub(1).min(16);
    BACKOFF_MIN.saturating_mul(1 << doublings).min(BACKOFF_MAX)
}

async fn node_info(store: &Store, address: &str) -> NodeInfo {
    NodeInfo { node_id: store.node_id().to_string(), address: address.to_string(), disks: store.disk_infos().await }
}

async fn call(fut: impl Future<Output = Result<(), RemoteError>>) -> Result<(), RemoteError> {
    tokio::time::timeout(CALL_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| Err(RemoteError::new(ErrorCode::Unavailable, "metadata call timed out")))
}

/// Never returns; stop it by dropping or aborting its task.
pub(crate) async fn announce(registry: impl Registry, store: Arc<Store>, address: String, interval: Duration) {
    let mut registered = false;
    let mut failures: u32 = 0;
    loop {
        let node = node_info(&store, &address).await;
        let result =
            if registered { call(registry.heartbeat(node)).await } else { call(registry.register(node)).await };
        let pause = match result {
            Ok(()) => {
                if !registered {
                    tracing::info!(node_id = %store.node_id(), %address, "registered with the metadata service");
                }
                registered = true;
                failures = 0;
                interval
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures == 1 || failures.is_multiple_of(WARN_EVERY_FAILURES) {
                    tracing::warn!(error = %e, failures, "metadata service unreachable; retrying with backoff");
                } else {
                    tracing::debug!(error = %e, failures, "metadata call failed");
                }
                // The metadata service may have restarted and forgotten us: announce in full again.
                registered = false;
                backoff(failures)
            }
        };
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Instant;

    #[derive(Default)]
    struct FakeRegistry {
        calls: Mutex<Vec<(&'static str, Instant, NodeInfo)>>,
        /// Indices of the calls that fail.
        fail_at: Vec<usize>,
    }

    impl FakeRegistry {
        fn record(&self, kind: &'static str, node: NodeInfo) -> Result<(), RemoteError> {
            let mut calls = self.calls.lock().expect("lock");
            calls.push((kind, Instant::now(), node));
            if self.fail_at.contains(&(calls.len() - 1)) {
                return Err(RemoteError::new(ErrorCode::Unavailable, "connection refused"));
            }
            Ok(())
        }
    }

    impl Registry for Arc<FakeRegistry> {
        async fn register(&self, node: NodeInfo) -> Result<(), RemoteError> {
            self.record("register", node)
        }
        async fn heartbeat(&self, node: NodeInfo) -> Result<(), RemoteError> {
            self.record("heartbeat", node)
        }
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert_eq!(backoff(1), BACKOFF_MIN);
        assert_eq!(backoff(2), BACKOFF_MIN * 2);
        assert!(backoff(3) > backoff(2));
        assert_eq!(backoff(1000), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[tokio::test]
    async fn retries_until_registered_then_heartbeats() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            Store::open(vec![dir.path().into()], crate::store::tests::test_config(), 1 << 20).await.expect("store"),
        );
        let registry = Arc::new(FakeRegistry { fail_at: vec![0, 1, 2], ..Default::default() });
        let task = tokio::spawn(announce(
            Arc::clone(&registry),
            Arc::clone(&store),
            "http://127.0.0.1:1".into(),
            Duration::from_millis(20),
        ));
        tokio::time::sleep(Duration::from_millis(1200)).await;
        task.abort();

        let calls = registry.calls.lock().expect("lock");
        let kinds: Vec<&str> = calls.iter().map(|c| c.0).collect();
        // Three failed registrations, a successful one, then heartbeats only.
        assert_eq!(&kinds[..4], ["register"; 4]);
        assert!(kinds.len() > 6, "{kinds:?}");
        assert!(kinds[4..].iter().all(|&k| k == "heartbeat"), "{kinds:?}");
        // Backoff: no retry sooner than the minimum pause.
        for pair in calls[..4].windows(2) {
            assert!(pair[1].1 - pair[0].1 >= BACKOFF_MIN);
        }
        let node = &calls[4].2;
        assert_eq!(node.node_id, store.node_id());
        assert_eq!(node.address, "http://127.0.0.1:1");
        assert_eq!(node.disks.len(), 1);
        assert!(node.disks[0].capacity_bytes > 0);
    }

    #[tokio::test]
    async fn failed_heartbeat_leads_to_a_fresh_registration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            Store::open(vec![dir.path().into()], crate::store::tests::test_config(), 1 << 20).await.expect("store"),
        );
        let registry = Arc::new(FakeRegistry { fail_at: vec![2], ..Default::default() });
        let task = tokio::spawn(announce(Arc::clone(&registry), store, "http://x".into(), Duration::from_millis(10)));
        tokio::time::sleep(Duration::from_millis(400)).await;
        task.abort();
        let kinds: Vec<&str> = registry.calls.lock().expect("lock").iter().map(|c| c.0).collect();
        assert_eq!(&kinds[..5], ["register", "heartbeat", "heartbeat", "register", "heartbeat"], "{kinds:?}");
    }
}
