//! The worker loop: claim columns from the metadata service, rebuild them a few at a time, report
//! each one done. Anything that fails is simply not completed: its lease runs out and it is
//! claimed again, by this worker or another.

use std::sync::Arc;
use std::time::Duration;

use coffer_proto::RemoteError;
use coffer_proto::blobnode_client::BlobnodePool;
use coffer_proto::metadata_client::{GROUP_HEADER, MetadataClient};
use coffer_proto::pb::metadata::{
    ClaimRepairsRequest, CompleteRepairRequest, GetClusterMapRequest, GetRepairStatusRequest, RepairTask,
};
use futures::StreamExt;

use crate::config::RepairConfig;
use crate::error::RepairError;
use crate::pace::Pacer;
use crate::rebuild::{Column, rebuild};

/// Claims per round at most, as a multiple of the concurrency: enough to keep every slot busy.
const CLAIM_FACTOR: usize = 2;
/// Pause after a failed claim (metadata unreachable), doubling up to the work interval.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// How often the cluster-wide repair backlog is fetched for the gauges (it is a scan on the
/// metadata service).
const STATUS_EVERY: Duration = Duration::from_secs(15);

pub struct Worker {
    metadata: MetadataClient,
    pool: BlobnodePool,
    config: RepairConfig,
    name: String,
    pacer: Arc<Pacer>,
}

impl Worker {
    pub fn new(metadata: MetadataClient, pool: BlobnodePool, config: RepairConfig) -> Worker {
        let name = config.worker.clone().unwrap_or_else(|| format!("repair-{}", uuid::Uuid::new_v4().simple()));
        let pacer = Arc::new(Pacer::new(config.repair_rate));
        Worker { metadata, pool, config, name, pacer }
    }

    /// Works until the process ends (the caller races it against shutdown).
    pub async fn run(self) {
        tracing::info!(worker = %self.name, grace = ?self.config.repair_grace, "repair worker started");
        let mut pause = RETRY_PAUSE;
        let mut status_due = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= status_due {
                self.publish_backlog().await;
                status_due = tokio::time::Instant::now() + STATUS_EVERY;
            }
            match self.round().await {
                Ok(0) => tokio::time::sleep(self.config.repair_interval).await,
                Ok(_) => pause = RETRY_PAUSE,
                Err(e) => {
                    tracing::warn!(error = %e, "repair round failed");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(self.config.repair_interval.max(RETRY_PAUSE));
                }
            }
        }
    }

    /// One claim from every metadata group in turn (each plans the repairs of the data it holds)
    /// and its work; returns how many columns were claimed. A group that cannot be claimed from is
    /// skipped this round; the round fails only when none could.
    pub async fn round(&self) -> Result<usize, RepairError> {
        self.refresh_nodes().await?;
        let mut claimed = 0;
        let mut failure = None;
        let groups = self.metadata.groups().await;
        let count = groups.len();
        for group in groups {
            match self.round_in(group).await {
                Ok(n) => claimed += n,
                Err(e) => {
                    tracing::debug!(group, error = %e, "cannot claim repairs from a metadata group");
                    failure.get_or_insert(e);
                }
            }
        }
        match failure {
            Some(e) if claimed == 0 && count > 0 => Err(e),
            _ => Ok(claimed),
        }
    }

    /// One claim from metadata group `group` and its work.
    async fn round_in(&self, group: u64) -> Result<usize, RepairError> {
        let request = ClaimRepairsRequest {
            worker: self.name.clone(),
            limit: (self.config.repair_concurrency * CLAIM_FACTOR) as u32,
            grace_ms: self.config.repair_grace.as_millis() as u64,
            lease_ms: self.config.repair_lease.as_millis() as u64,
        };
        let mut request = coffer_proto::tonic::Request::new(request);
        if group != 0 {
            request.metadata_mut().insert(GROUP_HEADER, group.into());
        }
        let mut tasks = self.metadata.rpc().claim_repairs(request).await.map_err(RemoteError::from)?.into_inner().tasks;
        // Completed where it was claimed (a service from before groups names none).
        for task in &mut tasks {
            task.group = group;
        }
        let claimed = tasks.len();
        futures::stream::iter(tasks)
            .for_each_concurrent(self.config.repair_concurrency, |task| async move {
                if let Err(e) = self.repair(&task).await {
                    metrics::counter!("coffer_repair_columns_total", "result" => "failed").increment(1);
                    let data_id = task.layout.as_ref().map(|l| hex::encode(&l.data_id)).unwrap_or_default();
                    tracing::warn!(data_id = %data_id, index = task.index, error = %e, "repair failed; will retry");
                }
            })
            .await;
        Ok(claimed)
    }

    /// The cluster's repair backlog as gauges (`coffer_repair_*`), for dashboards and alerts.
    async fn publish_backlog(&self) {
        let request = GetRepairStatusRequest { grace_ms: self.config.repair_grace.as_millis() as u64 };
        match self.metadata.rpc().get_repair_status(request).await {
            Ok(status) => {
                let s = status.into_inner();
                metrics::gauge!("coffer_repair_degraded_columns").set(s.degraded_columns as f64);
                metrics::gauge!("coffer_repair_degraded_stripes").set(s.degraded_stripes as f64);
                metrics::gauge!("coffer_repair_blocked_columns").set(s.blocked_columns as f64);
                metrics::gauge!("coffer_repair_damaged_reports").set(s.damaged_reports as f64);
                metrics::gauge!("coffer_repair_lost_disks").set(s.lost_disks as f64);
            }
            Err(e) => tracing::debug!(error = %e, "repair status unavailable"),
        }
    }

    async fn refresh_nodes(&self) -> Result<(), RepairError> {
        let map = self.metadata.rpc().get_cluster_map(GetClusterMapRequest {}).await.map_err(RemoteError::from)?;
        let nodes = map.into_inner().nodes.into_iter().filter_map(|n| n.info).map(|i| (i.node_id, i.address));
        self.pool.set_nodes(nodes);
        Ok(())
    }

    async fn repair(&self, task: &RepairTask) -> Result<(), RepairError> {
        let column = Column::of(task)?;
        let bytes = rebuild(&self.pool, &column, &self.pacer).await?;
        let request = CompleteRepairRequest {
            worker: self.name.clone(),
            data_id: column.layout.data_id.clone(),
            index: task.index,
            source: task.source.clone(),
            target: task.target.clone(),
            bytes,
            group: task.group,
        };
        let applied =
            self.metadata.rpc().complete_repair(request).await.map_err(RemoteError::from)?.into_inner().applied;
        let result = if applied { "applied" } else { "superseded" };
        metrics::counter!("coffer_repair_columns_total", "result" => result).increment(1);
        metrics::counter!("coffer_repair_bytes_total").increment(bytes);
        tracing::info!(data_id = %hex::encode(&column.layout.data_id), index = task.index, reason = %task.reason,
            target = %column.target.node_id, bytes, applied, "column repaired");
        Ok(())
    }
}
