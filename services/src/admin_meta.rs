//! `coffer admin meta`: the metadata group's replicas, their roles and how far each lags, and
//! removing a replica. Asks every `--metadata` URL directly (a follower answers too).

use anyhow::Context;
use clap::Subcommand;
use coffer_proto::metadata_client::{ClientConfig, NOT_LEADER_HEADER, lazy_channel};
use coffer_proto::pb::metadata::metadata_raft_client::MetadataRaftClient;
use coffer_proto::pb::metadata::{LeaveRequest, RaftStatusRequest, RaftStatusResponse};

#[derive(Debug, Subcommand)]
pub enum MetaCommand {
    /// Each replica's role, term and log position, and the leader's view of every replica's lag.
    Status,
    /// Remove a replica from the group (by its node id, as `status` shows it).
    Remove { node_id: u64 },
}

async fn status_of(url: &str, config: &ClientConfig) -> anyhow::Result<RaftStatusResponse> {
    let channel = lazy_channel(url, config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let answer = MetadataRaftClient::new(channel).status(RaftStatusRequest {}).await;
    Ok(answer.with_context(|| format!("asking {url} (is it a replicated metadata service?)"))?.into_inner())
}

fn to_json(url: &str, s: &RaftStatusResponse) -> serde_json::Value {
    let replicas: Vec<_> = s
        .replicas
        .iter()
        .map(|r| {
            serde_json::json!({
                "node_id": r.node_id, "address": r.address, "voter": r.voter, "matched_index": r.matched_index,
                "lag": s.last_log_index.saturating_sub(r.matched_index),
            })
        })
        .collect();
    serde_json::json!({
        "url": url, "node_id": s.node_id, "address": s.address, "state": s.state, "term": s.term,
        "leader_id": s.leader_id, "leader_address": s.leader_address, "last_log_index": s.last_log_index,
        "applied_index": s.applied_index, "snapshot_index": s.snapshot_index, "replicas": replicas,
    })
}

pub async fn run(urls: &[String], config: &ClientConfig, command: MetaCommand, json: bool) -> anyhow::Result<()> {
    match command {
        MetaCommand::Status => {
            let mut failed = 0;
            for url in urls {
                match status_of(url, config).await {
                    Ok(s) if json => println!("{}", to_json(url, &s)),
                    Ok(s) => {
                        println!(
                            "{url}: node {} {} term {} leader {} ({}) log {} applied {} snapshot {}",
                            s.node_id,
                            s.state,
                            s.term,
                            s.leader_id,
                            s.leader_address,
                            s.last_log_index,
                            s.applied_index,
                            s.snapshot_index
                        );
                        if s.state == "leader" {
                            for r in &s.replicas {
                                let role = if r.voter { "voter" } else { "learner" };
                                let lag = s.last_log_index.saturating_sub(r.matched_index);
                                println!(
                                    "  replica {} {} {role}: matched {} (lag {lag})",
                                    r.node_id, r.address, r.matched_index
                                );
                            }
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        if json {
                            println!("{}", serde_json::json!({"url": url, "error": format!("{e:#}")}));
                        } else {
                            println!("{url}: unreachable: {e:#}");
                        }
                    }
                }
            }
            anyhow::ensure!(failed < urls.len(), "no metadata replica answered");
        }
        MetaCommand::Remove { node_id } => {
            let mut targets: Vec<String> = urls.to_vec();
            let mut tried = 0;
            while let Some(url) = targets.get(tried).cloned() {
                tried += 1;
                let channel = lazy_channel(&url, config).map_err(|e| anyhow::anyhow!("{e}"))?;
                match MetadataRaftClient::new(channel).leave(LeaveRequest { node_id }).await {
                    Ok(_) => {
                        println!("replica {node_id} removed");
                        return Ok(());
                    }
                    Err(status) => {
                        let hint = status.metadata().get(NOT_LEADER_HEADER).and_then(|v| v.to_str().ok());
                        match hint {
                            Some(leader)
                                if !leader.is_empty() && !targets.iter().any(|t| t == leader) && targets.len() < 16 =>
                            {
                                targets.push(leader.to_string());
                            }
                            Some(_) => {}
                            None => anyhow::bail!("removing replica {node_id} via {url}: {}", status.message()),
                        }
                    }
                }
            }
            anyhow::bail!("no metadata replica could remove replica {node_id} (no leader reachable)");
        }
    }
    Ok(())
}
