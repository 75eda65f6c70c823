//! `coffer admin meta`: the metadata groups' replicas, their roles and how far each lags, removing
//! a replica, and creating a range group. Asks every `--metadata` URL directly (a follower answers
//! too); changes go to group 0's leader.

use anyhow::Context;
use clap::Subcommand;
use coffer_proto::metadata_client::{ClientConfig, NOT_LEADER_HEADER, lazy_channel};
use coffer_proto::pb::metadata::metadata_raft_client::MetadataRaftClient;
use coffer_proto::pb::metadata::{
    CreateGroupRequest, KeyBound, KeyRange, LeaveRequest, RaftStatusRequest, RaftStatusResponse,
};
use coffer_proto::tonic;
use coffer_proto::tonic::transport::Channel;

#[derive(Debug, Subcommand)]
pub enum MetaCommand {
    /// Each replica's role, term and log position, and the leader's view of every replica's lag.
    Status,
    /// Remove a replica from the group (by its node id, as `status` shows it).
    Remove { node_id: u64 },
    /// Create range group N owning [start, end) of the (bucket, key) space, each bound written
    /// BUCKET/KEY (the key may hold more slashes); an empty end is the end of the key space. Its
    /// replicas are group 0's voters.
    CreateGroup {
        #[arg(long)]
        group: u64,
        #[arg(long, default_value = "")]
        start: String,
        #[arg(long, default_value = "")]
        end: String,
    },
}

/// `BUCKET/KEY` (the first slash splits), `BUCKET` alone (key empty) or empty.
fn bound(text: &str) -> KeyBound {
    let (bucket, key) = text.split_once('/').unwrap_or((text, ""));
    KeyBound { bucket: bucket.to_string(), key: key.to_string() }
}

fn range_text(range: Option<&KeyRange>) -> String {
    let Some(range) = range else { return "everything else (directory)".into() };
    let start = range.start.clone().unwrap_or_default();
    let end = range.end.clone().unwrap_or_default();
    let end = if end.bucket.is_empty() && end.key.is_empty() {
        "end".to_string()
    } else {
        format!("{}/{}", end.bucket, end.key)
    };
    let epoch = if range.epoch == 0 { String::new() } else { format!(" epoch {}", range.epoch) };
    format!("[{}/{}, {end}){epoch}", start.bucket, start.key)
}

/// Sends `call` to the leader of group 0, following "not leader" answers from `urls` on.
async fn on_leader<T, F>(urls: &[String], config: &ClientConfig, what: &str, mut call: F) -> anyhow::Result<T>
where
    F: AsyncFnMut(MetadataRaftClient<Channel>) -> Result<T, tonic::Status>,
{
    let mut targets: Vec<String> = urls.to_vec();
    let mut tried = 0;
    while let Some(url) = targets.get(tried).cloned() {
        tried += 1;
        let channel = lazy_channel(&url, config).map_err(|e| anyhow::anyhow!("{e}"))?;
        match call(MetadataRaftClient::new(channel)).await {
            Ok(answer) => return Ok(answer),
            Err(status) => {
                let hint = status.metadata().get(NOT_LEADER_HEADER).and_then(|v| v.to_str().ok());
                match hint {
                    Some(leader)
                        if !leader.is_empty() && !targets.iter().any(|t| t == leader) && targets.len() < 16 =>
                    {
                        targets.push(leader.to_string());
                    }
                    Some(_) => {}
                    None => anyhow::bail!("{what} via {url}: {}", status.message()),
                }
            }
        }
    }
    anyhow::bail!("{what}: no leader of the metadata group reachable")
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
        "group": s.group, "range": range_text(s.range.as_ref()),
        "groups": s.groups.iter().map(|g| to_json(url, g)).collect::<Vec<_>>(),
    })
}

/// The leader's view of each replica's lag (other replicas do not know it).
fn print_replicas(s: &RaftStatusResponse, indent: &str) {
    if s.state != "leader" {
        return;
    }
    for r in &s.replicas {
        let role = if r.voter { "voter" } else { "learner" };
        let lag = s.last_log_index.saturating_sub(r.matched_index);
        println!("{indent}replica {} {} {role}: matched {} (lag {lag})", r.node_id, r.address, r.matched_index);
    }
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
                        print_replicas(&s, "  ");
                        for g in &s.groups {
                            println!(
                                "  group {} {}: {} term {} leader {} ({}) log {} applied {}",
                                g.group,
                                range_text(g.range.as_ref()),
                                g.state,
                                g.term,
                                g.leader_id,
                                g.leader_address,
                                g.last_log_index,
                                g.applied_index
                            );
                            print_replicas(g, "    ");
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
            let what = format!("removing replica {node_id}");
            on_leader(urls, config, &what, async |mut client| client.leave(LeaveRequest { node_id }).await).await?;
            println!("replica {node_id} removed");
        }
        MetaCommand::CreateGroup { group, start, end } => {
            let range = KeyRange { start: Some(bound(&start)), end: Some(bound(&end)), epoch: 0 };
            let request = CreateGroupRequest { group, range: Some(range.clone()) };
            let what = format!("creating group {group}");
            let created =
                on_leader(urls, config, &what, async |mut client| client.create_group(request.clone()).await).await?;
            let voters = created.into_inner().voters;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"group": group, "range": range_text(Some(&range)), "voters": voters})
                );
            } else {
                println!("group {group} created for {} with voters {voters:?}", range_text(Some(&range)));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_split_at_the_first_slash() {
        assert_eq!(bound("b/k/deep"), KeyBound { bucket: "b".into(), key: "k/deep".into() });
        assert_eq!(bound("b"), KeyBound { bucket: "b".into(), key: String::new() });
        assert_eq!(bound(""), KeyBound::default());
    }
}
