//! Cluster information: nodes, disks, capacity and repair progress.

use coffer_proto::pb::metadata::{GetClusterMapRequest, GetRepairStatusRequest, NodeAdmin};
use hyper::Method;
use serde::Serialize;

use super::{Admin, AdminError, AdminResult, Call, ok};

/// The grace `coffer repair` uses by default, so "lost disks" means the same thing here.
const REPAIR_GRACE_MS: u64 = 15 * 60 * 1000;

#[derive(Serialize)]
struct Info {
    nodes: Vec<NodeView>,
    capacity_bytes: u64,
    used_bytes: u64,
    disks_total: usize,
    disks_healthy: usize,
    repair: RepairView,
}

#[derive(Serialize)]
struct NodeView {
    node_id: String,
    address: String,
    alive: bool,
    admin: &'static str,
    last_heartbeat_unix_ms: i64,
    disks: Vec<DiskView>,
}

#[derive(Serialize)]
struct DiskView {
    disk_id: String,
    path: String,
    capacity_bytes: u64,
    used_bytes: u64,
    healthy: bool,
}

#[derive(Serialize)]
struct RepairView {
    degraded_columns: u64,
    degraded_stripes: u64,
    blocked_columns: u64,
    lost_disks: u64,
    columns_repaired: u64,
    bytes_repaired: u64,
}

fn admin_name(admin: i32) -> &'static str {
    match NodeAdmin::try_from(admin).unwrap_or_default() {
        NodeAdmin::Active => "active",
        NodeAdmin::Draining => "draining",
        NodeAdmin::Drained => "drained",
        NodeAdmin::Removed => "removed",
    }
}

pub async fn handle(admin: &Admin, call: &Call<'_>) -> AdminResult {
    if call.method != Method::GET || call.segments.len() != 1 {
        return Err(AdminError::method());
    }
    admin.require(call, "admin:ServerInfo")?;
    let mut rpc = admin.plane.metadata.rpc();
    let map = rpc.get_cluster_map(GetClusterMapRequest {}).await?.into_inner();
    let repair = rpc.get_repair_status(GetRepairStatusRequest { grace_ms: REPAIR_GRACE_MS }).await?.into_inner();
    let nodes: Vec<NodeView> = map
        .nodes
        .into_iter()
        .map(|node| {
            let info = node.info.unwrap_or_default();
            NodeView {
                node_id: info.node_id,
                address: info.address,
                alive: node.alive,
                admin: admin_name(node.admin),
                last_heartbeat_unix_ms: node.last_heartbeat_unix_ms,
                disks: info
                    .disks
                    .into_iter()
                    .map(|d| DiskView {
                        disk_id: d.disk_id,
                        path: d.path,
                        capacity_bytes: d.capacity_bytes,
                        used_bytes: d.used_bytes,
                        healthy: d.healthy && node.alive,
                    })
                    .collect(),
            }
        })
        .collect();
    let disks = nodes.iter().flat_map(|n| &n.disks);
    let info = Info {
        capacity_bytes: disks.clone().map(|d| d.capacity_bytes).sum(),
        used_bytes: disks.clone().map(|d| d.used_bytes).sum(),
        disks_total: disks.clone().count(),
        disks_healthy: disks.filter(|d| d.healthy).count(),
        nodes,
        repair: RepairView {
            degraded_columns: repair.degraded_columns,
            degraded_stripes: repair.degraded_stripes,
            blocked_columns: repair.blocked_columns,
            lost_disks: repair.lost_disks,
            columns_repaired: repair.columns_repaired,
            bytes_repaired: repair.bytes_repaired,
        },
    };
    ok(info)
}
