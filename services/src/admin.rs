//! `coffer admin`: operator commands. Node and repair commands talk to the metadata service
//! (`--metadata`); identity commands and `info` call a gateway's admin API (`--endpoint`, with
//! `--access-key`/`--secret-key`).
//!
//!   coffer admin node list
//!   coffer admin node drain ID        (undrain ID puts it back into service)
//!   coffer admin repair status [--repair-grace 15m]
//!   coffer admin user add NAME [--json]; user list|info|remove|enable|disable
//!   coffer admin key create|list|delete|enable|disable
//!   coffer admin group add|list|info|remove|members|enable|disable
//!   coffer admin policy create NAME FILE.json; policy list|info|remove; policy attach|detach POLICY --user NAME
//!   coffer admin info

use std::time::Duration;

use anyhow::Context;

use crate::admin_http::AdminClient;
use crate::admin_iam;
use clap::{Args, Subcommand};
use coffer_proto::metadata_client::{ClientConfig, MetadataClient};
use coffer_proto::pb::metadata::{
    DiskState, GetClusterMapRequest, GetRepairStatusRequest, NodeAdmin, NodeStatus, RemoveNodeRequest,
    SetNodeAdminRequest,
};

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Metadata service URL(s).
    #[arg(long = "metadata", env = "COFFER_METADATA", value_delimiter = ',', default_value = "http://127.0.0.1:9100")]
    metadata: Vec<String>,

    #[command(flatten)]
    grpc_tls: coffer_proto::grpc_tls::GrpcTlsArgs,

    #[command(flatten)]
    endpoint: crate::admin_http::EndpointArgs,

    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Blobnodes: list them, drain one (move every shard it holds elsewhere) or put it back.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// The replicated metadata group: replicas, leader, lag; removing a replica.
    Meta {
        #[command(subcommand)]
        command: crate::admin_meta::MetaCommand,
    },
    /// Repair progress.
    Repair {
        #[command(subcommand)]
        command: RepairCommand,
    },
    /// IAM users and their first access key.
    User {
        #[command(subcommand)]
        command: admin_iam::UserCommand,
    },
    /// Access keys and service accounts.
    Key {
        #[command(subcommand)]
        command: admin_iam::KeyCommand,
    },
    /// Groups of users sharing policies.
    Group {
        #[command(subcommand)]
        command: admin_iam::GroupCommand,
    },
    /// Managed policies (AWS IAM policy JSON) and their attachments.
    Policy {
        #[command(subcommand)]
        command: admin_iam::PolicyCommand,
    },
    /// Nodes, disks, capacity and repair progress, from a gateway's admin API.
    Info,
    /// Temporary credentials (STS AssumeRole) with the caller's rights, optionally narrowed.
    Session {
        #[command(subcommand)]
        command: admin_iam::SessionCommand,
    },
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    List,
    /// Stop placing shards on the node and have repair move its shards elsewhere; it shows as
    /// `drained` once no object needs it.
    Drain {
        node_id: String,
    },
    /// Put a drained or draining node back into service.
    Undrain {
        node_id: String,
    },
    /// Forget a node no object needs any more (drained, or dead with its shards rebuilt elsewhere).
    Remove {
        node_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum RepairCommand {
    /// Degraded columns and stripes, lost disks, and what has been repaired since the metadata
    /// service started.
    Status {
        /// Grace period to evaluate lost disks with (as the repair workers use).
        #[arg(long, env = "COFFER_REPAIR_GRACE", default_value = "15m", value_parser = humantime::parse_duration)]
        repair_grace: Duration,
    },
}

/// One admin API command, run on a blocking thread with a client for `--endpoint`.
type ApiCall = Box<dyn FnOnce(&AdminClient) -> anyhow::Result<()> + Send>;

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let json = args.json;
    let endpoint = args.endpoint.clone();
    let api = move |call: ApiCall| async move {
        tokio::task::spawn_blocking(move || call(&AdminClient::new(&endpoint)?)).await?
    };
    match args.command {
        AdminCommand::User { command } => return api(Box::new(move |c| admin_iam::user(c, command, json))).await,
        AdminCommand::Key { command } => return api(Box::new(move |c| admin_iam::key(c, command, json))).await,
        AdminCommand::Group { command } => return api(Box::new(move |c| admin_iam::group(c, command, json))).await,
        AdminCommand::Policy { command } => return api(Box::new(move |c| admin_iam::policy(c, command, json))).await,
        AdminCommand::Info => return api(Box::new(move |c| admin_iam::info(c, json))).await,
        AdminCommand::Session { command } => return api(Box::new(move |c| admin_iam::session(c, command, json))).await,
        _ => {}
    }
    let tls = coffer_proto::grpc_tls::GrpcTls::load(&args.grpc_tls).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let AdminCommand::Meta { command } = args.command {
        let config = ClientConfig { tls, ..ClientConfig::default() };
        return crate::admin_meta::run(&args.metadata, &config, command, args.json).await;
    }
    let client = MetadataClient::connect(&args.metadata, &ClientConfig { tls, ..ClientConfig::default() })
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("connecting to the metadata service")?;
    match args.command {
        AdminCommand::Node { command: NodeCommand::List } => {
            let nodes = client.rpc().get_cluster_map(GetClusterMapRequest {}).await?.into_inner().nodes;
            for node in &nodes {
                println!("{}", describe(node, args.json));
            }
        }
        AdminCommand::Node { command: NodeCommand::Drain { node_id } } => {
            set_admin(&client, node_id, NodeAdmin::Draining, args.json).await?;
        }
        AdminCommand::Node { command: NodeCommand::Undrain { node_id } } => {
            set_admin(&client, node_id, NodeAdmin::Active, args.json).await?;
        }
        AdminCommand::Node { command: NodeCommand::Remove { node_id } } => {
            client.rpc().remove_node(RemoveNodeRequest { node_id: node_id.clone() }).await?;
            println!("{node_id} removed");
        }
        AdminCommand::Repair { command: RepairCommand::Status { repair_grace } } => {
            let request = GetRepairStatusRequest { grace_ms: repair_grace.as_millis() as u64 };
            let s = client.rpc().get_repair_status(request).await?.into_inner();
            if args.json {
                let value = serde_json::json!({
                    "degraded_columns": s.degraded_columns,
                    "degraded_stripes": s.degraded_stripes,
                    "blocked_columns": s.blocked_columns,
                    "damaged_reports": s.damaged_reports,
                    "lost_disks": s.lost_disks,
                    "leased_columns": s.leased_columns,
                    "columns_repaired": s.columns_repaired,
                    "bytes_repaired": s.bytes_repaired,
                });
                println!("{value}");
            } else {
                println!(
                    "degraded: {} columns, {} stripes ({} waiting for a disk to move to); {} damage reports; \
                     {} lost disks; {} columns being repaired; repaired since start: {} columns, {} bytes",
                    s.degraded_columns,
                    s.degraded_stripes,
                    s.blocked_columns,
                    s.damaged_reports,
                    s.lost_disks,
                    s.leased_columns,
                    s.columns_repaired,
                    s.bytes_repaired
                );
            }
        }
        AdminCommand::Meta { .. }
        | AdminCommand::User { .. }
        | AdminCommand::Key { .. }
        | AdminCommand::Group { .. }
        | AdminCommand::Policy { .. }
        | AdminCommand::Info
        | AdminCommand::Session { .. } => {}
    }
    Ok(())
}

async fn set_admin(client: &MetadataClient, node_id: String, admin: NodeAdmin, json: bool) -> anyhow::Result<()> {
    let response = client.rpc().set_node_admin(SetNodeAdminRequest { node_id, admin: admin.into() }).await?;
    if let Some(node) = response.into_inner().node {
        println!("{}", describe(&node, json));
    }
    Ok(())
}

fn admin_name(node: &NodeStatus) -> &'static str {
    match NodeAdmin::try_from(node.admin).unwrap_or_default() {
        NodeAdmin::Active => "active",
        NodeAdmin::Draining => "draining",
        NodeAdmin::Drained => "drained",
        NodeAdmin::Removed => "removed",
    }
}

fn describe(node: &NodeStatus, json: bool) -> String {
    let Some(info) = &node.info else {
        return String::new();
    };
    let disks: Vec<String> = info
        .disks
        .iter()
        .map(|d| {
            let state =
                DiskState::try_from(d.state).unwrap_or_default().as_str_name().trim_start_matches("DISK_STATE_");
            format!("{}:{}:{}/{}", d.disk_id, state.to_ascii_lowercase(), d.used_bytes, d.capacity_bytes)
        })
        .collect();
    let liveness = if node.alive { "alive" } else { "down" };
    if json {
        let disks: Vec<serde_json::Value> = info
            .disks
            .iter()
            .map(|d| {
                serde_json::json!({
                    "disk_id": d.disk_id,
                    "state": DiskState::try_from(d.state).unwrap_or_default().as_str_name(),
                    "used_bytes": d.used_bytes,
                    "capacity_bytes": d.capacity_bytes,
                })
            })
            .collect();
        let value = serde_json::json!({
            "node_id": info.node_id,
            "address": info.address,
            "alive": node.alive,
            "admin": admin_name(node),
            "disks": disks,
        });
        value.to_string()
    } else {
        format!("{} {} {} {} {}", info.node_id, info.address, liveness, admin_name(node), disks.join(" "))
    }
}
