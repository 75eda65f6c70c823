//! The split roles as child processes: the metadata service (one, or a Raft group of `--metadata-replicas`
//! replicas started with the same `--peers`, as in `services/tests/ops/metadata_raft.rs`), N blobnodes (one disk
//! each), one gateway and the repair worker, started with the flags the integration tests use
//! (`services/tests/common/mod.rs`, `Split::start_with`), each logging to `DIR/<name>.log` (appended across
//! restarts). Every other role gets every metadata URL and finds the leader itself. A killed service is started
//! again with the same arguments, port and data dir (a replica rejoins its group as a follower).

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use super::probe::WriteProbe;

/// A service that exits this often while the cluster is waited for is not coming back.
const MAX_EXITS_WHILE_WAITING: usize = 3;
/// A blobnode silent this long has its shards rebuilt elsewhere; longer than any planned downtime, so repair
/// mostly fills in what writes missed while a node was down, and moves data only after a real loss.
const REPAIR_GRACE: &str = "30s";

/// Log lines shown when a service fails to come back.
const LOG_TAIL_LINES: usize = 40;

/// A service of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Victim {
    /// Metadata replica `i` (0 when there is just one metadata service).
    Metadata(usize),
    Gateway,
    Blobnode(usize),
    /// The repair worker, which rebuilds shards that writes missed while a blobnode was down.
    Repair,
}

impl Victim {
    pub fn role(self) -> &'static str {
        match self {
            Victim::Metadata(_) => "metadata",
            Victim::Gateway => "gateway",
            Victim::Blobnode(_) => "blobnode",
            Victim::Repair => "repair",
        }
    }
}

impl fmt::Display for Victim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Victim::Blobnode(i) => write!(f, "blobnode{i}"),
            Victim::Metadata(i) => write!(f, "metadata{i}"),
            other => write!(f, "{}", other.role()),
        }
    }
}

/// One child process and how to start it again.
struct Service {
    victim: Victim,
    args: Vec<String>,
    /// Where it accepts connections; `None` for a worker that serves nothing.
    addr: Option<SocketAddr>,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

/// The credentials and binary every service is started with.
pub struct Launch {
    pub bin: PathBuf,
    pub dir: PathBuf,
    pub access_key: String,
    pub secret_key: String,
    pub blobnodes: usize,
    pub ec: String,
    /// 1: one metadata service, as without Raft; more: a Raft group of that many replicas.
    pub metadata_replicas: usize,
}

pub struct Cluster {
    launch: Launch,
    started: Instant,
    services: Vec<Service>,
    pub gateway_addr: SocketAddr,
    /// Every metadata replica's URL (one without a group).
    metadata_urls: Vec<String>,
    /// A write that must succeed before the cluster counts as ready (set for a metadata group).
    probe: Option<WriteProbe>,
}

/// Ports are picked below Linux's ephemeral range (32768–60999 by default): a service keeps its port across
/// restarts, and a port from that range, free while the service is down, can be taken in the meantime by any
/// outgoing connection on the machine ("Address already in use" at restart). Ports below it are only ever taken
/// by an explicit bind.
const PORTS_BELOW_EPHEMERAL: std::ops::Range<u16> = 20_000..32_768;
const PORT_ATTEMPTS: usize = 64;

fn free_addr() -> anyhow::Result<SocketAddr> {
    for _ in 0..PORT_ATTEMPTS {
        let port = rand::random_range(PORTS_BELOW_EPHEMERAL);
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return listener.local_addr().context("finding a free port");
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    listener.local_addr().context("finding a free port")
}

impl Cluster {
    /// Starts every service (without waiting for them: see `wait_ready`).
    pub fn start(launch: Launch) -> anyhow::Result<Cluster> {
        let dir = launch.dir.clone();
        if launch.metadata_replicas == 0 {
            bail!("at least one metadata service is needed");
        }
        let meta_addrs: Vec<SocketAddr> =
            (0..launch.metadata_replicas).map(|_| free_addr()).collect::<Result<_, _>>()?;
        let metadata_urls: Vec<String> = meta_addrs.iter().map(|addr| format!("http://{addr}")).collect();
        let meta_url = metadata_urls.join(",");
        let mut services = Vec::new();
        for (i, addr) in meta_addrs.iter().enumerate() {
            let mut args: Vec<String> = vec![
                "metadata".into(),
                "--listen".into(),
                addr.to_string(),
                "--db".into(),
                dir.join(format!("meta{i}")).display().to_string(),
            ];
            // A single service keeps its local applier: no group at all, exactly as before replication.
            if launch.metadata_replicas > 1 {
                args.extend(["--peers".to_string(), meta_url.clone()]);
            }
            services.push(Service {
                victim: Victim::Metadata(i),
                args,
                addr: Some(*addr),
                log: dir.join(format!("metadata{i}.log")),
                child: None,
                starts: 0,
            });
        }
        for i in 0..launch.blobnodes {
            let disk = dir.join(format!("node{i}-disk"));
            std::fs::create_dir_all(&disk).with_context(|| format!("creating {}", disk.display()))?;
            let addr = free_addr()?;
            services.push(Service {
                victim: Victim::Blobnode(i),
                args: vec![
                    "blobnode".into(),
                    "--listen".into(),
                    addr.to_string(),
                    "--disk".into(),
                    disk.display().to_string(),
                    "--metadata".into(),
                    meta_url.clone(),
                    "--heartbeat-interval".into(),
                    "500ms".into(),
                ],
                addr: Some(addr),
                log: dir.join(format!("blobnode{i}.log")),
                child: None,
                starts: 0,
            });
        }
        let gateway_addr = free_addr()?;
        services.push(Service {
            victim: Victim::Gateway,
            args: vec![
                "gateway".into(),
                "--address".into(),
                gateway_addr.to_string(),
                "--metadata".into(),
                meta_url.clone(),
                "--ec".into(),
                launch.ec.clone(),
            ],
            addr: Some(gateway_addr),
            log: dir.join("gateway.log"),
            child: None,
            starts: 0,
        });
        services.push(Service {
            victim: Victim::Repair,
            args: vec![
                "repair".into(),
                "--metadata".into(),
                meta_url,
                "--repair-grace".into(),
                REPAIR_GRACE.into(),
                "--repair-interval".into(),
                "1s".into(),
            ],
            addr: None,
            log: dir.join("repair.log"),
            child: None,
            starts: 0,
        });
        let mut cluster =
            Cluster { launch, started: Instant::now(), services, gateway_addr, metadata_urls, probe: None };
        let all: Vec<Victim> = cluster.services.iter().map(|s| s.victim).collect();
        for victim in all {
            cluster.spawn(victim)?;
        }
        Ok(cluster)
    }

    /// Whether the metadata service is a Raft group.
    pub fn is_group(&self) -> bool {
        self.metadata_urls.len() > 1
    }

    /// From now on `wait_ready` also waits until `probe` writes.
    pub fn require_writes(&mut self, probe: WriteProbe) {
        self.probe = Some(probe);
    }

    fn service(&mut self, victim: Victim) -> anyhow::Result<&mut Service> {
        self.services.iter_mut().find(|s| s.victim == victim).with_context(|| format!("no service {victim}"))
    }

    /// Starts the service (again), with the same arguments and port.
    pub fn spawn(&mut self, victim: Victim) -> anyhow::Result<()> {
        let elapsed = self.started.elapsed().as_secs_f64();
        let bin = self.launch.bin.clone();
        let (access, secret) = (self.launch.access_key.clone(), self.launch.secret_key.clone());
        let service = self.service(victim)?;
        if service.child.is_some() {
            bail!("{victim} is already running");
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&service.log)
            .with_context(|| format!("opening {}", service.log.display()))?;
        service.starts += 1;
        writeln!(log, "==== coffer-loadtest crash: start #{} of {victim} at {elapsed:.1}s ====", service.starts)
            .with_context(|| format!("writing {}", service.log.display()))?;
        let err = log.try_clone().context("duplicating the log file")?;
        let child = Command::new(&bin)
            .args(&service.args)
            .env("COFFER_ROOT_USER", access)
            .env("COFFER_ROOT_PASSWORD", secret)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} {}", bin.display(), service.args.join(" ")))?;
        service.child = Some(child);
        Ok(())
    }

    /// kill -9, and reap the process. Refuses when another service is down: one victim at a time.
    pub async fn kill(&mut self, victim: Victim) -> anyhow::Result<()> {
        if let Some(down) = self.services.iter().find(|s| s.child.is_none()) {
            bail!("refusing to kill {victim} while {} is down", down.victim);
        }
        let service = self.service(victim)?;
        if let Some(mut child) = service.child.take() {
            child.kill().await.with_context(|| format!("killing {victim}"))?;
        }
        Ok(())
    }

    /// Kills every service at once (kill -9).
    pub async fn kill_all(&mut self) {
        for service in &mut self.services {
            if let Some(mut child) = service.child.take() {
                let _ = child.kill().await;
            }
        }
    }

    /// Services that exited without being killed by the harness: they are marked down, with their exit status.
    pub fn reap(&mut self) -> Vec<(Victim, ExitStatus)> {
        let mut exited = Vec::new();
        for service in &mut self.services {
            if let Some(child) = service.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                service.child = None;
                exited.push((service.victim, status));
            }
        }
        exited
    }

    /// Starts whatever is down.
    pub fn spawn_missing(&mut self) -> anyhow::Result<Vec<Victim>> {
        let down: Vec<Victim> = self.services.iter().filter(|s| s.child.is_none()).map(|s| s.victim).collect();
        for victim in &down {
            self.spawn(*victim)?;
        }
        Ok(down)
    }

    /// Waits until every service runs and accepts connections, the gateway reports ready and, for a metadata group,
    /// every replica follows one leader (the first election takes a second or two; a restarted replica must be
    /// back in the group before anything else is killed) and the write probe (`require_writes`) succeeds. A
    /// service that exits meanwhile is started again (and reported through `on_exit`); the error after `timeout`
    /// carries the log tail of what is not up.
    pub async fn wait_ready(
        &mut self,
        timeout: Duration,
        mut on_exit: impl FnMut(Victim, ExitStatus),
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut exits: Vec<Victim> = Vec::new();
        let metadata: Vec<Victim> = (0..self.metadata_urls.len()).map(Victim::Metadata).collect();
        loop {
            for (victim, status) in self.reap() {
                on_exit(victim, status);
                exits.push(victim);
                if exits.iter().filter(|v| **v == victim).count() > MAX_EXITS_WHILE_WAITING {
                    bail!("{victim} keeps exiting ({status}); last lines of its log:\n{}", self.log_tail(victim));
                }
                // Give a port the previous process held a moment before binding it again.
                tokio::time::sleep(Duration::from_millis(200)).await;
                self.spawn(victim)?;
            }
            let mut not_up = Vec::new();
            for service in &self.services {
                if let Some(addr) = service.addr
                    && !accepts(addr).await
                {
                    not_up.push(service.victim);
                }
            }
            let gateway_ready = not_up.is_empty() && http_status(self.gateway_addr, "/health/ready").await == Some(200);
            let group = if not_up.is_empty() { self.group_ready().await } else { Ok(()) };
            let write = match self.probe.as_mut() {
                Some(probe) if gateway_ready && group.is_ok() => probe.write().await,
                _ => Ok(()),
            };
            if gateway_ready && group.is_ok() && write.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let blame = match (not_up.is_empty(), gateway_ready && write.is_ok()) {
                    (false, _) => not_up,
                    (true, false) => [vec![Victim::Gateway], metadata.clone()].concat(),
                    (true, true) => metadata.clone(),
                };
                let mut text = format!(
                    "the cluster did not become ready within {} (not accepting connections or not ready: {})",
                    humantime::format_duration(timeout),
                    blame.iter().map(Victim::to_string).collect::<Vec<_>>().join(", ")
                );
                if let Err(group) = group {
                    text.push_str(&format!("\nmetadata group: {group}"));
                }
                if let Err(write) = write {
                    text.push_str(&format!("\nwrite probe: {write}"));
                }
                for victim in blame {
                    text.push_str(&format!("\n---- last lines of {} ----\n{}", victim, self.log_tail(victim)));
                }
                bail!(text);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the metadata group follows one leader with every replica (always, for a single metadata service).
    async fn group_ready(&self) -> Result<(), String> {
        if self.metadata_urls.len() < 2 {
            return Ok(());
        }
        super::group::ready(&self.launch.bin, &self.metadata_urls).await
    }

    /// The last lines of a service's log.
    pub fn log_tail(&self, victim: Victim) -> String {
        let Some(service) = self.services.iter().find(|s| s.victim == victim) else {
            return String::new();
        };
        let text = std::fs::read_to_string(&service.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

/// Whether something accepts TCP connections at `addr`.
async fn accepts(addr: SocketAddr) -> bool {
    matches!(tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await, Ok(Ok(_)))
}

/// The status of a plain `GET path` (None when there is no complete answer within a few seconds).
pub async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        String::from_utf8_lossy(&response).split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(3), exchange).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;

    /// A stand-in for `coffer`: a script that ignores its arguments and sleeps.
    fn fake_bin(dir: &Path) -> PathBuf {
        let bin = dir.join("fake-coffer");
        std::fs::write(&bin, "#!/bin/sh\nexec sleep 60\n").expect("script");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        bin
    }

    #[tokio::test]
    async fn one_victim_at_a_time() {
        let dir = std::env::temp_dir().join(format!("coffer-crash-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let launch = Launch {
            bin: fake_bin(&dir),
            dir: dir.clone(),
            access_key: "a".into(),
            secret_key: "s".into(),
            blobnodes: 3,
            ec: "2+1".into(),
            metadata_replicas: 1,
        };
        let mut cluster = Cluster::start(launch).expect("start");
        assert!(cluster.reap().is_empty());
        cluster.kill(Victim::Blobnode(0)).await.expect("first kill");
        let refused = cluster.kill(Victim::Blobnode(1)).await.expect_err("a second blobnode down");
        assert!(refused.to_string().contains("blobnode0 is down"), "{refused}");
        assert!(cluster.kill(Victim::Gateway).await.is_err());
        assert!(cluster.spawn(Victim::Metadata(0)).is_err(), "metadata is running");
        assert_eq!(cluster.spawn_missing().expect("respawn"), vec![Victim::Blobnode(0)]);
        cluster.kill(Victim::Blobnode(1)).await.expect("kill after the restart");
        cluster.spawn(Victim::Blobnode(1)).expect("restart");
        cluster.kill_all().await;
        let log = std::fs::read_to_string(dir.join("blobnode0.log")).expect("log");
        assert!(log.contains("start #1 of blobnode0") && log.contains("start #2 of blobnode0"), "{log}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// The arguments of a service, joined.
    fn args_of(cluster: &Cluster, victim: Victim) -> String {
        cluster.services.iter().find(|s| s.victim == victim).map(|s| s.args.join(" ")).unwrap_or_default()
    }

    #[tokio::test]
    async fn replicas_form_a_group_and_every_role_gets_every_url() {
        let dir = std::env::temp_dir().join(format!("coffer-crash-unit-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let launch = |metadata_replicas| Launch {
            bin: fake_bin(&dir),
            dir: dir.clone(),
            access_key: "a".into(),
            secret_key: "s".into(),
            blobnodes: 3,
            ec: "2+1".into(),
            metadata_replicas,
        };

        let mut single = Cluster::start(launch(1)).expect("start one");
        assert!(!args_of(&single, Victim::Metadata(0)).contains("--peers"), "one service runs without a group");
        assert!(
            args_of(&single, Victim::Gateway).ends_with(&format!("--metadata {} --ec 2+1", single.metadata_urls[0]))
        );
        single.kill_all().await;

        let mut group = Cluster::start(launch(3)).expect("start three");
        let urls = group.metadata_urls.join(",");
        assert_eq!(group.metadata_urls.len(), 3);
        for i in 0..3 {
            let args = args_of(&group, Victim::Metadata(i));
            assert!(args.contains(&format!("meta{i} --peers {urls}")), "{args}");
        }
        for victim in [Victim::Blobnode(0), Victim::Gateway, Victim::Repair] {
            assert!(args_of(&group, victim).contains(&format!("--metadata {urls} ")), "{victim}");
        }
        // One replica down at a time, like any other service; it restarts with the same arguments.
        group.kill(Victim::Metadata(1)).await.expect("kill a replica");
        assert!(group.kill(Victim::Metadata(2)).await.is_err(), "a second replica down");
        assert_eq!(group.spawn_missing().expect("respawn"), vec![Victim::Metadata(1)]);
        group.kill_all().await;
        let log = std::fs::read_to_string(dir.join("metadata1.log")).expect("log");
        assert!(log.contains("start #2 of metadata1"), "{log}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
