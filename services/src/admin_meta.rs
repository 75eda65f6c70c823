//! `coffer admin meta`: the metadata groups' replicas, their roles and how far each lags, removing
//! a replica, and creating a range group. Asks every `--metadata` URL directly (a follower answers
//! too); changes go to group 0's leader.

use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use coffer_proto::metadata_client::{ClientConfig, NOT_LEADER_HEADER, lazy_channel};
use coffer_proto::pb::metadata::metadata_raft_client::MetadataRaftClient;
use coffer_proto::pb::metadata::{
    CreateGroupRequest, KeyBound, KeyRange, LeaveRequest, MoveGroupRequest, RaftStatusRequest, RaftStatusResponse,
    RangeTableRequest, SplitGroupRequest,
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
    /// Split range group N at BUCKET/KEY: a new range group (same replicas) takes the keys from
    /// BUCKET/KEY to the group's end. Prints the new group's id.
    Split {
        #[arg(long)]
        group: u64,
        #[arg(long)]
        at: String,
    },
    /// Move range group N's replica from node FROM to node TO (node ids as `status` shows them;
    /// TO must be a replica of group 0, e.g. started with `--join`). With only --to a replica is
    /// added, with only --from one is removed. Returns once the group's new voters are recorded
    /// and FROM's copy is being deleted.
    Move {
        #[arg(long)]
        group: u64,
        #[arg(long)]
        from: Option<u64>,
        #[arg(long)]
        to: Option<u64>,
    },
}

/// The bound on one `move` call: adding a replica waits until it has caught up.
const MOVE_TIMEOUT: Duration = Duration::from_secs(600);

/// `BUCKET/KEY` (the first slash splits), `BUCKET` alone (key empty) or empty.
fn bound(text: &str) -> KeyBound {
    let (bucket, key) = text.split_once('/').unwrap_or((text, ""));
    KeyBound { bucket: bucket.to_string(), key: key.to_string() }
}

fn already_exists(status: &tonic::Status) -> bool {
    coffer_proto::RemoteError::from(status.clone()).code == coffer_proto::ErrorCode::EntityAlreadyExists
}

/// `recorded` (as the range table shows it, with its epoch) covers the same keys as `asked`.
fn same_range(recorded: Option<&KeyRange>, asked: &KeyRange) -> bool {
    recorded.is_some_and(|r| r.start == asked.start && r.end == asked.end)
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

/// How long a change keeps looking for group 0's leader: right after the group starts (or after
/// its leader dies) every replica may answer "not leader" with no hint for an election or two.
const LEADER_DEADLINE: Duration = Duration::from_secs(30);
/// Between two rounds over the replicas while none of them leads.
const LEADER_RETRY: Duration = Duration::from_millis(200);

/// Whether `status` says "ask again, elsewhere or later": a "not leader" answer (with or without a
/// hint), or an unreachable or overloaded replica (no typed error: transport failure, timeout).
fn retryable(status: &tonic::Status) -> bool {
    status.metadata().get(NOT_LEADER_HEADER).is_some()
        || coffer_proto::RemoteError::from(status.clone()).code == coffer_proto::ErrorCode::Unavailable
}

/// Sends `call` to the leader of group 0, following "not leader" answers from `urls` on, and
/// going round the replicas again (after [`LEADER_RETRY`]) while none leads or answers, until
/// [`LEADER_DEADLINE`]. `call` learns its attempt number (1 first): an attempt after an ambiguous
/// failure (the leader stepped down, a timeout) may meet the effect of an earlier one.
async fn on_leader<T, F>(urls: &[String], config: &ClientConfig, what: &str, mut call: F) -> anyhow::Result<T>
where
    F: AsyncFnMut(MetadataRaftClient<Channel>, u32) -> Result<T, tonic::Status>,
{
    let deadline = tokio::time::Instant::now() + LEADER_DEADLINE;
    let mut attempt = 0;
    // The URL to try next: a hinted leader first, else the next of `urls` in turn.
    let mut hinted: Option<String> = None;
    let mut next = 0usize;
    let mut last_error = String::from("no replica answered");
    loop {
        let url = match hinted.take() {
            Some(url) => url,
            None => {
                if next > 0 && next.is_multiple_of(urls.len().max(1)) {
                    // A whole round without a leader: an election is likely under way.
                    if tokio::time::Instant::now() >= deadline {
                        anyhow::bail!(
                            "{what}: no leader of the metadata group within {LEADER_DEADLINE:?}: {last_error}"
                        );
                    }
                    tokio::time::sleep(LEADER_RETRY).await;
                }
                let Some(url) = urls.get(next % urls.len().max(1)) else { anyhow::bail!("{what}: no metadata URL") };
                next += 1;
                url.clone()
            }
        };
        attempt += 1;
        if attempt > 2 * urls.len() as u32 {
            // Past a round of hints and a round of replicas: pace the rest (two replicas naming
            // each other during a change of leader must not spin).
            tokio::time::sleep(LEADER_RETRY / 4).await;
        }
        let channel = lazy_channel(&url, config).map_err(|e| anyhow::anyhow!("{e}"))?;
        match call(MetadataRaftClient::new(channel), attempt).await {
            Ok(answer) => return Ok(answer),
            Err(status) if retryable(&status) && tokio::time::Instant::now() < deadline => {
                last_error = format!("{url}: {}", status.message());
                let hint = status.metadata().get(NOT_LEADER_HEADER).and_then(|v| v.to_str().ok());
                // Follow a hint to another replica; a replica naming itself (or nobody) is no lead.
                if let Some(leader) = hint.filter(|leader| !leader.is_empty() && *leader != url) {
                    hinted = Some(leader.to_string());
                    continue;
                }
                // On stderr, so an operator (or a test log) sees why a change takes a while.
                eprintln!("{what}: {last_error}; retrying");
                if hint.is_some_and(|leader| leader == url) {
                    tokio::time::sleep(LEADER_RETRY).await;
                }
            }
            Err(status) => anyhow::bail!("{what} via {url}: {}", status.message()),
        }
    }
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
            on_leader(urls, config, &what, async |mut client, _| client.leave(LeaveRequest { node_id }).await).await?;
            println!("replica {node_id} removed");
        }
        MetaCommand::CreateGroup { group, start, end } => {
            let range = KeyRange { start: Some(bound(&start)), end: Some(bound(&end)), epoch: 0 };
            let request = CreateGroupRequest { group, range: Some(range.clone()) };
            let what = format!("creating group {group}");
            let voters = on_leader(urls, config, &what, async |mut client, attempt| {
                match client.create_group(request.clone()).await {
                    Ok(created) => Ok(created.into_inner().voters),
                    // An earlier attempt may have created it after all (its answer was lost, or
                    // its leader stepped down after replicating it): the same group over the
                    // same range is this command's success, anything else its failure.
                    Err(status) if attempt > 1 && already_exists(&status) => {
                        let table = client.range_table(RangeTableRequest {}).await?.into_inner();
                        match table.groups.into_iter().find(|g| g.group == group) {
                            Some(entry) if same_range(entry.range.as_ref(), &range) => Ok(Vec::new()),
                            _ => Err(status),
                        }
                    }
                    Err(status) => Err(status),
                }
            })
            .await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"group": group, "range": range_text(Some(&range)), "voters": voters})
                );
            } else {
                println!("group {group} created for {} with voters {voters:?}", range_text(Some(&range)));
            }
        }
        MetaCommand::Split { group, at } => {
            let at = bound(&at);
            let request = SplitGroupRequest { group, at: Some(at.clone()) };
            let what = format!("splitting group {group}");
            let child = on_leader(urls, config, &what, async |mut client, attempt| {
                match client.split_group(request.clone()).await {
                    Ok(split) => Ok(split.into_inner().child),
                    // An earlier attempt may have split it after all: a group whose range starts
                    // at `at` is this command's success.
                    Err(status) if attempt > 1 => {
                        let table = client.range_table(RangeTableRequest {}).await?.into_inner();
                        let starts_at = |g: &coffer_proto::pb::metadata::RangeGroupEntry| {
                            g.range.as_ref().and_then(|r| r.start.as_ref()) == Some(&at)
                        };
                        table.groups.iter().find(|g| starts_at(g)).map(|g| g.group).ok_or(status)
                    }
                    Err(status) => Err(status),
                }
            })
            .await?;
            if json {
                println!("{}", serde_json::json!({"group": group, "child": child}));
            } else {
                println!("group {group} split at {}/{}: group {child} owns the keys from there", at.bucket, at.key);
            }
        }
        MetaCommand::Move { group, from, to } => {
            if from.is_none() && to.is_none() {
                anyhow::bail!("name a replica to move: --from, --to or both");
            }
            let request = MoveGroupRequest { group, from: from.unwrap_or(0), to: to.unwrap_or(0) };
            let config = ClientConfig { timeout: MOVE_TIMEOUT, ..config.clone() };
            let what = format!("moving group {group}'s replica");
            on_leader(urls, &config, &what, async |mut client, _| client.move_group(request).await.map(|_| ())).await?;
            if json {
                println!("{}", serde_json::json!({"group": group, "from": from, "to": to}));
            } else {
                let side = |id: Option<u64>| id.map_or_else(|| "-".to_string(), |id| format!("node {id}"));
                println!("group {group}'s replica moved from {} to {}", side(from), side(to));
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
