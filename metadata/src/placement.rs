//! Choosing the disks that hold the k+m shards of new data.

use coffer_proto::pb::metadata::{DiskInfo, NodeInfo, ShardLocation};
use rand::Rng;
use rand::seq::SliceRandom;

use crate::error::MetadataError;

/// Most shards one data may have (k + m).
pub const MAX_SHARDS: u32 = 32;

pub fn validate_shape(data_shards: u32, parity_shards: u32) -> Result<usize, MetadataError> {
    let total = data_shards.checked_add(parity_shards).filter(|&t| t <= MAX_SHARDS);
    match total {
        Some(total) if data_shards >= 1 => Ok(total as usize),
        _ => Err(MetadataError::InvalidArgument(format!(
            "{data_shards}+{parity_shards} shards: need at least one data shard and at most {MAX_SHARDS} in all"
        ))),
    }
}

pub fn usable(disk: &DiskInfo) -> bool {
    // A disk reporting no capacity has not measured it yet; only a measured full disk is skipped.
    disk.healthy && !(disk.capacity_bytes > 0 && disk.used_bytes >= disk.capacity_bytes)
}

/// `count` distinct usable disks of `nodes` (the alive ones), one per node while there are nodes
/// left, then a second disk of each node, and so on: losing one node then costs as few shards as
/// the cluster allows. Node and disk order are random so load spreads.
pub fn place(nodes: &[NodeInfo], count: usize, rng: &mut impl Rng) -> Result<Vec<ShardLocation>, MetadataError> {
    let mut candidates: Vec<(&str, Vec<&str>)> = nodes
        .iter()
        .map(|node| {
            let mut disks: Vec<&str> = node.disks.iter().filter(|d| usable(d)).map(|d| d.disk_id.as_str()).collect();
            disks.shuffle(rng);
            (node.node_id.as_str(), disks)
        })
        .filter(|(_, disks)| !disks.is_empty())
        .collect();
    let available: usize = candidates.iter().map(|(_, disks)| disks.len()).sum();
    if available < count {
        return Err(MetadataError::InsufficientCapacity(format!(
            "{count} shards need {count} healthy disks; {available} are available on {} alive nodes",
            candidates.len()
        )));
    }
    candidates.shuffle(rng);
    let mut out = Vec::with_capacity(count);
    // Terminates: each round takes at least one disk until `count` (≤ available) are taken.
    let mut round = 0;
    while out.len() < count {
        for (node_id, disks) in &candidates {
            if let Some(disk_id) = disks.get(round)
                && out.len() < count
            {
                out.push(ShardLocation { node_id: node_id.to_string(), disk_id: disk_id.to_string() });
            }
        }
        round += 1;
    }
    Ok(out)
}

/// Like [`place`], but when fewer than `count` usable disks exist and at least `min_usable` do
/// (the writer's quorum), every usable disk is taken and the last shards go to disks of nodes that
/// are down (`down`, as (node id, disk id)). The writer fails to write those, records them as
/// unwritten and repair fills them in: a write keeps going through a node loss without ever
/// holding fewer than `min_usable` durable shards. The down disks take the last (parity) slots,
/// so reads need no decoding.
pub fn place_with_fallback(
    nodes: &[NodeInfo],
    count: usize,
    min_usable: usize,
    down: &[(String, String)],
    rng: &mut impl Rng,
) -> Result<Vec<ShardLocation>, MetadataError> {
    let available: usize = nodes.iter().map(|n| n.disks.iter().filter(|d| usable(d)).count()).sum();
    if available >= count || min_usable == 0 || available < min_usable {
        return place(nodes, count, rng);
    }
    let mut out = place(nodes, available, rng)?;
    let mut down = down.to_vec();
    down.shuffle(rng);
    for (node_id, disk_id) in down {
        if out.len() == count {
            break;
        }
        if !out.iter().any(|s| s.node_id == node_id && s.disk_id == disk_id) {
            out.push(ShardLocation { node_id, disk_id });
        }
    }
    if out.len() < count {
        return Err(MetadataError::InsufficientCapacity(format!(
            "{count} shards need {count} disks; {available} are usable and too few others are known"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn node(id: &str, disks: &[(&str, bool)]) -> NodeInfo {
        NodeInfo {
            node_id: id.into(),
            address: format!("http://{id}"),
            disks: disks
                .iter()
                .map(|&(d, healthy)| DiskInfo {
                    disk_id: d.into(),
                    capacity_bytes: 100,
                    used_bytes: 10,
                    healthy,
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn shape_limits() {
        assert_eq!(validate_shape(1, 0).unwrap(), 1);
        assert_eq!(validate_shape(28, 4).unwrap(), 32);
        for (k, m) in [(0, 2), (30, 3), (u32::MAX, 1)] {
            assert!(matches!(validate_shape(k, m), Err(MetadataError::InvalidArgument(_))), "{k}+{m}");
        }
    }

    #[test]
    fn shards_land_on_distinct_nodes_while_there_are_enough() {
        let nodes: Vec<NodeInfo> =
            (0..6).map(|i| node(&format!("n{i}"), &[("d0", true), ("d1", true), ("d2", true)])).collect();
        let mut rng = StdRng::seed_from_u64(7);
        let mut first_node_counts = BTreeMap::new();
        for _ in 0..200 {
            let placed = place(&nodes, 6, &mut rng).unwrap();
            let distinct_nodes: BTreeSet<&str> = placed.iter().map(|s| s.node_id.as_str()).collect();
            assert_eq!(distinct_nodes.len(), 6);
            *first_node_counts.entry(placed[0].node_id.clone()).or_insert(0) += 1;
        }
        assert_eq!(first_node_counts.len(), 6, "placement is randomised: {first_node_counts:?}");
    }

    #[test]
    fn more_shards_than_nodes_use_distinct_disks_evenly() {
        let nodes = vec![
            node("a", &[("d0", true), ("d1", true), ("d2", true)]),
            node("b", &[("d0", true), ("d1", true), ("d2", true)]),
            node("c", &[("d0", true), ("d1", false), ("d2", true)]),
        ];
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            let placed = place(&nodes, 6, &mut rng).unwrap();
            let distinct: BTreeSet<(&str, &str)> =
                placed.iter().map(|s| (s.node_id.as_str(), s.disk_id.as_str())).collect();
            assert_eq!(distinct.len(), 6);
            assert!(!distinct.contains(&("c", "d1")), "unhealthy disks are never chosen");
            let mut per_node = BTreeMap::new();
            for s in &placed {
                *per_node.entry(s.node_id.as_str()).or_insert(0) += 1;
            }
            assert!(per_node.values().all(|&n| n == 2), "{per_node:?}");
        }
    }

    #[test]
    fn a_short_cluster_fills_the_last_slots_with_down_disks_down_to_the_quorum() {
        let nodes: Vec<NodeInfo> = (0..5).map(|i| node(&format!("n{i}"), &[("d", true)])).collect();
        let down = vec![("n5".to_string(), "d5".to_string())];
        let mut rng = StdRng::seed_from_u64(3);
        let placed = place_with_fallback(&nodes, 6, 5, &down, &mut rng).unwrap();
        assert_eq!(placed.len(), 6);
        assert_eq!(placed[5], ShardLocation { node_id: "n5".into(), disk_id: "d5".into() }, "down disk last");
        assert!(placed[..5].iter().all(|s| s.node_id != "n5"));
        assert!(matches!(
            place_with_fallback(&nodes, 6, 6, &down, &mut rng),
            Err(MetadataError::InsufficientCapacity(_))
        ));
        assert!(matches!(
            place_with_fallback(&nodes, 6, 0, &down, &mut rng),
            Err(MetadataError::InsufficientCapacity(_))
        ));
        assert!(matches!(
            place_with_fallback(&nodes, 7, 5, &down, &mut rng),
            Err(MetadataError::InsufficientCapacity(_))
        ));
    }

    #[test]
    fn not_enough_disks_is_insufficient_capacity() {
        let mut full = node("b", &[("d0", true)]);
        full.disks[0].used_bytes = 100;
        let nodes = vec![node("a", &[("d0", true), ("d1", false)]), full];
        let result = place(&nodes, 2, &mut StdRng::seed_from_u64(0));
        assert!(matches!(result, Err(MetadataError::InsufficientCapacity(_))));
        assert_eq!(place(&nodes, 1, &mut StdRng::seed_from_u64(0)).unwrap().len(), 1);
    }
}
