//! Whether a replicated metadata group (`--metadata-replicas` > 1) is whole again: every replica answers and follows
//! one leader. Asked through `coffer admin --json meta status` (one JSON line per replica), so that the harness needs
//! no gRPC client of its own; used by `Cluster::wait_ready` after every restart, so that the next kill never finds a
//! restarted replica still outside the group (which could leave less than a majority up).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

/// A status query that takes longer counts as "not ready yet" (a replica that is down answers at once).
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// `Ok(())` when every replica in `urls` answered, exactly one calls itself leader and every other one follows it;
/// otherwise what is missing (for the error when the group never gets there).
pub async fn ready(bin: &Path, urls: &[String]) -> Result<(), String> {
    let query = Command::new(bin)
        .args(["admin", "--metadata", &urls.join(","), "--json", "meta", "status"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(STATUS_TIMEOUT, query).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(format!("running {} admin meta status: {e}", bin.display())),
        Err(_) => return Err(format!("admin meta status did not answer within {STATUS_TIMEOUT:?}")),
    };
    // It exits non-zero only when no replica answered; the lines say more than the status.
    judge(&String::from_utf8_lossy(&output.stdout), urls)
}

/// The verdict on the status lines.
fn judge(lines: &str, urls: &[String]) -> Result<(), String> {
    let answers: Vec<Value> = lines.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    let mut leaders = Vec::new();
    let mut problems = Vec::new();
    for url in urls {
        let Some(answer) = answers.iter().find(|a| a["url"].as_str() == Some(url.as_str())) else {
            problems.push(format!("{url}: no answer"));
            continue;
        };
        if let Some(error) = answer["error"].as_str() {
            problems.push(format!("{url}: {error}"));
            continue;
        }
        match answer["state"].as_str() {
            Some("leader") => leaders.push(answer["node_id"].as_u64()),
            Some("follower") => {}
            other => problems.push(format!("{url}: state {}", other.unwrap_or("unknown"))),
        }
    }
    match leaders.as_slice() {
        [Some(leader)] => {
            for answer in answers.iter().filter(|a| a["state"].as_str() == Some("follower")) {
                if answer["leader_id"].as_u64() != Some(*leader) {
                    problems.push(format!(
                        "{}: follows {} instead of leader {leader}",
                        answer["url"].as_str().unwrap_or("?"),
                        answer["leader_id"]
                    ));
                }
            }
        }
        [] => problems.push("no leader".into()),
        _ => problems.push(format!("{} replicas call themselves leader", leaders.len())),
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls() -> Vec<String> {
        (1..=3).map(|i| format!("http://127.0.0.1:900{i}")).collect()
    }

    fn line(i: u64, state: &str, leader: u64) -> String {
        format!(r#"{{"url":"http://127.0.0.1:900{i}","node_id":{i},"state":"{state}","leader_id":{leader},"term":4}}"#)
    }

    #[test]
    fn a_group_is_ready_when_everyone_follows_one_leader() {
        let whole = [line(1, "follower", 2), line(2, "leader", 2), line(3, "follower", 2)].join("\n");
        assert_eq!(judge(&whole, &urls()), Ok(()));
    }

    #[test]
    fn a_missing_replica_a_candidate_or_a_stale_follower_is_not_ready() {
        let down = [
            line(1, "follower", 2),
            line(2, "leader", 2),
            r#"{"url":"http://127.0.0.1:9003","error":"connection refused"}"#.into(),
        ]
        .join("\n");
        assert!(judge(&down, &urls()).expect_err("down").contains("9003: connection refused"));
        let electing = [line(1, "candidate", 0), line(2, "follower", 0), line(3, "follower", 0)].join("\n");
        let verdict = judge(&electing, &urls()).expect_err("electing");
        assert!(verdict.contains("state candidate") && verdict.contains("no leader"), "{verdict}");
        let stale = [line(1, "follower", 3), line(2, "leader", 2), line(3, "follower", 2)].join("\n");
        assert!(judge(&stale, &urls()).expect_err("stale").contains("9001: follows 3"));
        assert!(judge("", &urls()).expect_err("nothing").contains("no answer"));
    }
}
