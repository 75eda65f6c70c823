//! `coffer admin user|key|group|policy|info`: identity and cluster administration through the
//! admin API of a gateway (see `admin_http`). Tables by default, the API's JSON with `--json`.

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::admin_http::AdminClient;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user and its first access key; prints the key pair (the secret is shown only now).
    Add {
        name: String,
        /// Policies to attach at once (repeatable).
        #[arg(long = "policy")]
        policies: Vec<String>,
    },
    List,
    Info {
        name: String,
    },
    /// Delete the user and all its keys.
    Remove {
        name: String,
    },
    Enable {
        name: String,
    },
    /// Every key of the user stops working at once.
    Disable {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create another access key for USER (or a service account key with --service-account).
    Create {
        user: String,
        /// A service account: a key of USER whose rights can be narrowed by --policy.
        #[arg(long)]
        service_account: bool,
        /// Policy JSON file narrowing the service account's rights.
        #[arg(long, requires = "service_account")]
        policy: Option<std::path::PathBuf>,
        #[arg(long, default_value = "")]
        description: String,
    },
    List {
        user: String,
    },
    Delete {
        #[arg(value_name = "ACCESS_KEY")]
        key_id: String,
    },
    Enable {
        #[arg(value_name = "ACCESS_KEY")]
        key_id: String,
    },
    Disable {
        #[arg(value_name = "ACCESS_KEY")]
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Ask for temporary credentials: a key, secret and session token valid for --duration.
    Create {
        /// How long the credentials are valid (15m to 12h).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// A policy JSON file narrowing the session's rights.
        #[arg(long)]
        policy: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    Add {
        name: String,
        #[arg(long = "member")]
        members: Vec<String>,
    },
    List,
    Info {
        name: String,
    },
    Remove {
        name: String,
    },
    /// Add or remove members.
    Members {
        name: String,
        #[arg(long)]
        add: Vec<String>,
        #[arg(long)]
        remove: Vec<String>,
    },
    Enable {
        name: String,
    },
    Disable {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Create (or replace) a policy from an AWS IAM policy JSON file.
    Create {
        name: String,
        file: std::path::PathBuf,
    },
    List,
    Info {
        name: String,
    },
    Remove {
        name: String,
    },
    Attach {
        policy: String,
        #[arg(long, conflicts_with = "group", required_unless_present = "group")]
        user: Option<String>,
        #[arg(long)]
        group: Option<String>,
    },
    Detach {
        policy: String,
        #[arg(long, conflicts_with = "group", required_unless_present = "group")]
        user: Option<String>,
        #[arg(long)]
        group: Option<String>,
    },
}

/// Everything but RFC 3986's unreserved characters, as SigV4 canonical paths encode.
const PATH_SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn enc(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, PATH_SEGMENT).to_string()
}

fn read_policy(path: &std::path::Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

fn target(user: Option<String>, group: Option<String>) -> Value {
    match (user, group) {
        (Some(user), _) => json!({ "user": user }),
        (None, group) => json!({ "group": group }),
    }
}

fn text(value: &Value, field: &str) -> String {
    match value.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items.iter().map(|v| v.as_str().unwrap_or_default()).collect::<Vec<_>>().join(","),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// Prints `rows` as aligned columns with a header.
fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn rows(value: &Value, fields: &[&str]) -> Vec<Vec<String>> {
    let items = value.as_array().cloned().unwrap_or_else(|| vec![value.clone()]);
    items.iter().map(|item| fields.iter().map(|f| text(item, f)).collect()).collect()
}

fn show(value: &Value, json_output: bool, fields: &[&str]) {
    if json_output {
        println!("{value}");
    } else {
        table(fields, &rows(value, fields));
    }
}

pub fn user(client: &AdminClient, command: UserCommand, json_output: bool) -> anyhow::Result<()> {
    let user_fields = ["user", "status", "policies", "groups"];
    match command {
        UserCommand::Add { name, policies } => {
            let answer = client.call("POST", "users", Some(&json!({ "name": name, "policies": policies })))?;
            show(&answer, json_output, &["user", "access_key", "secret_key"]);
        }
        UserCommand::List => show(&client.call("GET", "users", None)?, json_output, &user_fields),
        UserCommand::Info { name } => {
            show(&client.call("GET", &format!("users/{}", enc(&name)), None)?, json_output, &user_fields)
        }
        UserCommand::Remove { name } => {
            show(&client.call("DELETE", &format!("users/{}", enc(&name)), None)?, json_output, &["deleted"]);
        }
        UserCommand::Enable { name } => {
            show(
                &client.call("POST", &format!("users/{}/enable", enc(&name)), None)?,
                json_output,
                &["user", "status"],
            );
        }
        UserCommand::Disable { name } => {
            show(
                &client.call("POST", &format!("users/{}/disable", enc(&name)), None)?,
                json_output,
                &["user", "status"],
            );
        }
    }
    Ok(())
}

pub fn key(client: &AdminClient, command: KeyCommand, json_output: bool) -> anyhow::Result<()> {
    let key_fields = ["access_key", "user", "status", "service_account", "description"];
    match command {
        KeyCommand::Create { user, service_account, policy, description } => {
            let answer = if service_account {
                let policy = policy.as_deref().map(read_policy).transpose()?;
                let body = json!({ "policy": policy, "description": description });
                client.call("POST", &format!("users/{}/service-accounts", enc(&user)), Some(&body))?
            } else {
                client.call("POST", &format!("users/{}/keys", enc(&user)), None)?
            };
            show(&answer, json_output, &["user", "access_key", "secret_key"]);
        }
        KeyCommand::List { user } => {
            show(&client.call("GET", &format!("users/{}/keys", enc(&user)), None)?, json_output, &key_fields);
        }
        KeyCommand::Delete { key_id } => {
            show(&client.call("DELETE", &format!("keys/{}", enc(&key_id)), None)?, json_output, &["deleted"]);
        }
        KeyCommand::Enable { key_id } => {
            let answer = client.call("POST", &format!("keys/{}/enable", enc(&key_id)), None)?;
            show(&answer, json_output, &["access_key", "status"]);
        }
        KeyCommand::Disable { key_id } => {
            let answer = client.call("POST", &format!("keys/{}/disable", enc(&key_id)), None)?;
            show(&answer, json_output, &["access_key", "status"]);
        }
    }
    Ok(())
}

pub fn group(client: &AdminClient, command: GroupCommand, json_output: bool) -> anyhow::Result<()> {
    let fields = ["group", "status", "members", "policies"];
    let answer = match command {
        GroupCommand::Add { name, members } => {
            client.call("POST", "groups", Some(&json!({ "name": name, "members": members })))?
        }
        GroupCommand::List => client.call("GET", "groups", None)?,
        GroupCommand::Info { name } => client.call("GET", &format!("groups/{}", enc(&name)), None)?,
        GroupCommand::Remove { name } => {
            let answer = client.call("DELETE", &format!("groups/{}", enc(&name)), None)?;
            show(&answer, json_output, &["deleted"]);
            return Ok(());
        }
        GroupCommand::Members { name, add, remove } => {
            let body = json!({ "add": add, "remove": remove });
            client.call("POST", &format!("groups/{}/members", enc(&name)), Some(&body))?
        }
        GroupCommand::Enable { name } => client.call("POST", &format!("groups/{}/enable", enc(&name)), None)?,
        GroupCommand::Disable { name } => client.call("POST", &format!("groups/{}/disable", enc(&name)), None)?,
    };
    show(&answer, json_output, &fields);
    Ok(())
}

pub fn policy(client: &AdminClient, command: PolicyCommand, json_output: bool) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Create { name, file } => {
            let document = read_policy(&file)?;
            let answer = client.call("POST", "policies", Some(&json!({ "name": name, "document": document })))?;
            show(&answer, json_output, &["name", "builtin"]);
        }
        PolicyCommand::List => show(&client.call("GET", "policies", None)?, json_output, &["name", "builtin"]),
        PolicyCommand::Info { name } => {
            let answer = client.call("GET", &format!("policies/{}", enc(&name)), None)?;
            if json_output {
                println!("{answer}");
            } else {
                let document = answer.get("document").cloned().unwrap_or_default();
                println!("{}", serde_json::to_string_pretty(&document).unwrap_or_default());
            }
        }
        PolicyCommand::Remove { name } => {
            show(&client.call("DELETE", &format!("policies/{}", enc(&name)), None)?, json_output, &["deleted"]);
        }
        PolicyCommand::Attach { policy, user, group } => {
            let answer =
                client.call("POST", &format!("policies/{}/attach", enc(&policy)), Some(&target(user, group)))?;
            show(&answer, json_output, &["policy", "attached"]);
        }
        PolicyCommand::Detach { policy, user, group } => {
            let answer =
                client.call("POST", &format!("policies/{}/detach", enc(&policy)), Some(&target(user, group)))?;
            show(&answer, json_output, &["policy", "attached"]);
        }
    }
    Ok(())
}

pub fn info(client: &AdminClient, json_output: bool) -> anyhow::Result<()> {
    let answer = client.call("GET", "info", None)?;
    if json_output {
        println!("{answer}");
        return Ok(());
    }
    println!(
        "capacity {} bytes, used {} bytes, disks {}/{} healthy",
        text(&answer, "capacity_bytes"),
        text(&answer, "used_bytes"),
        text(&answer, "disks_healthy"),
        text(&answer, "disks_total")
    );
    let nodes = answer.get("nodes").cloned().unwrap_or_default();
    table(&["node_id", "address", "alive", "admin"], &rows(&nodes, &["node_id", "address", "alive", "admin"]));
    let repair = answer.get("repair").cloned().unwrap_or_default();
    println!(
        "repair: {} degraded columns, {} degraded stripes, {} lost disks, {} columns repaired",
        text(&repair, "degraded_columns"),
        text(&repair, "degraded_stripes"),
        text(&repair, "lost_disks"),
        text(&repair, "columns_repaired")
    );
    Ok(())
}

pub fn session(client: &AdminClient, command: SessionCommand, json_output: bool) -> anyhow::Result<()> {
    let SessionCommand::Create { duration, policy } = command;
    let policy = policy.as_deref().map(read_policy).transpose()?.map(|p| p.to_string());
    let answer = client.assume_role(duration.as_secs(), policy.as_deref())?;
    show(&answer, json_output, &["access_key", "secret_key", "session_token", "expiration"]);
    Ok(())
}
