//! Test harness: starts the real `coffer` binary (embedded or as split roles) on free loopback
//! ports and hands out real AWS SDK clients pointed at it.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};

pub mod metadata_group;

pub const ACCESS_KEY: &str = "testadmin";
pub const SECRET_KEY: &str = "testadmin-secret";

pub fn coffer_bin() -> PathBuf {
    std::env::var_os("COFFER_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_coffer")))
}

/// A free port below Linux's ephemeral range (32768–60999): tests restart killed services on the same port, and
/// a port from that range can meanwhile be taken by any outgoing connection on the machine.
///
/// Never the same port twice in one test process: a port handed out is free until its child binds it, so a second
/// pick in between could land on it (two blobnodes of one cluster once did).
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for _ in 0..256 {
        let port = rand::random_range(20_000..32_768);
        if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return port;
        }
    }
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
    handed_out.insert(port);
    port
}

/// A `coffer` child process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, args: &[String], log_dir: &Path) -> Proc {
        Proc::spawn_with_env(name, args, &[], log_dir)
    }

    pub fn spawn_with_env(name: &str, args: &[String], env: &[(&str, &str)], log_dir: &Path) -> Proc {
        let mut command = Command::new(coffer_bin());
        command.args(args).envs(env.iter().copied());
        Proc::spawn_command(name, command, log_dir)
    }

    /// Like `spawn`, inside network namespace `netns` (needs root). `ip netns exec` execs `coffer`
    /// in place, so the child is `coffer` itself and stopping it stops the process.
    pub fn spawn_in_netns(netns: &str, name: &str, args: &[String], log_dir: &Path) -> Proc {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", netns]).arg(coffer_bin()).args(args);
        Proc::spawn_command(name, command, log_dir)
    }

    /// Starts `command` with the test credentials and logging; its output goes to `log_dir/NAME.log`.
    fn spawn_command(name: &str, mut command: Command, log_dir: &Path) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = command
            .env("COFFER_ROOT_USER", ACCESS_KEY)
            .env("COFFER_ROOT_PASSWORD", SECRET_KEY)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn coffer");
        Proc { name: name.to_string(), child: Some(child), log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// kill -9: no chance to clean up, as in a crash.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`, `libc::SIGCONT`) to the process while it runs.
    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            unsafe {
                libc::kill(child.id() as i32, signal);
            }
        }
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let code = self.terminate();
        // A failing test shows what the process said; its temp dir is about to vanish.
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("==== {} (exit {code:?}), last log lines ====", self.name);
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// The raw response to a plain HTTP GET (no TLS, `Connection: close`), or `None` when it fails.
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

pub fn http_get_body(addr: SocketAddr, path: &str) -> Option<String> {
    http_get(addr, path)?.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}

fn http_get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    http_get(addr, path)?.split_whitespace().nth(1)?.parse().ok()
}

pub fn wait_ready(addr: SocketAddr, procs: &[&Proc]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if http_get_status(addr, "/health/ready") == Some(200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for p in procs {
        eprintln!("==== {} log ====\n{}", p.name, p.log());
    }
    panic!("coffer at {addr} did not become ready");
}

/// `coffer server DIR` on a free port.
pub struct Embedded {
    pub addr: SocketAddr,
    // Fields drop in order: the process stops (and a failing test prints its log) before its folder goes.
    pub proc: Proc,
    pub dir: tempfile::TempDir,
}

impl Embedded {
    pub fn start(extra: &[&str]) -> Embedded {
        let dir = tempfile::Builder::new().prefix("coffer-test").tempdir_in(test_root()).expect("tempdir");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let mut args = vec!["server".to_string(), dir.path().join("data").display().to_string()];
        args.extend(["--address".to_string(), addr.to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let proc = Proc::spawn("server", &args, dir.path());
        wait_ready(addr, &[&proc]);
        Embedded { dir, addr, proc }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn client(&self) -> Client {
        client(&self.endpoint())
    }
}

/// The split roles as separate processes: 1 metadata, N blobnodes (one disk each), 1 gateway.
pub struct Split {
    pub addr: SocketAddr,
    pub metadata: Proc,
    pub blobnodes: Vec<Proc>,
    pub blobnode_disks: Vec<PathBuf>,
    /// The arguments each blobnode was started with, to restart it as it was.
    pub blobnode_args: Vec<Vec<String>>,
    pub gateway: Proc,
    pub metadata_url: String,
    // Last, so it drops last: the processes stop (and a failing test prints their logs) before their folder goes.
    // Removed first, it raced the running blobnodes and left their disks behind, reserved chunks and all.
    pub dir: tempfile::TempDir,
}

/// Extra flags for the roles of a [`Split`].
#[derive(Default, Clone, Copy)]
pub struct SplitOptions<'a> {
    pub metadata: &'a [&'a str],
    pub gateway: &'a [&'a str],
    /// Environment of every process.
    pub env: &'a [(&'a str, &'a str)],
}

impl Split {
    pub fn start(blobnodes: usize, ec: &str) -> Split {
        Split::start_with(blobnodes, ec, |_, _| Vec::new())
    }

    /// Like `start`, with `configure(i, disk)` called for blobnode `i` once its (empty) disk folder exists: it may
    /// prepare the folder and returns extra flags for that blobnode.
    pub fn start_with(blobnodes: usize, ec: &str, configure: impl Fn(usize, &Path) -> Vec<String>) -> Split {
        Split::start_opts(blobnodes, ec, SplitOptions::default(), configure)
    }

    pub fn start_opts(
        blobnodes: usize,
        ec: &str,
        options: SplitOptions<'_>,
        configure: impl Fn(usize, &Path) -> Vec<String>,
    ) -> Split {
        let dir = tempfile::Builder::new().prefix("coffer-split").tempdir_in(test_root()).expect("tempdir");
        let meta_port = free_port();
        let meta_url = format!("http://127.0.0.1:{meta_port}");
        let mut meta_args: Vec<String> = vec![
            "metadata".into(),
            "--listen".into(),
            format!("127.0.0.1:{meta_port}"),
            "--db".into(),
            dir.path().join("meta").display().to_string(),
        ];
        meta_args.extend(options.metadata.iter().map(|s| s.to_string()));
        let metadata = Proc::spawn_with_env("metadata", &meta_args, options.env, dir.path());
        let (mut blobnode_procs, mut blobnode_disks, mut blobnode_args) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..blobnodes {
            let disk = dir.path().join(format!("node{i}-disk"));
            std::fs::create_dir_all(&disk).expect("disk dir");
            let mut args = blobnode_args_for(&disk, &meta_url);
            args.extend(configure(i, &disk));
            blobnode_procs.push(Proc::spawn_with_env(&format!("blobnode{i}"), &args, options.env, dir.path()));
            blobnode_disks.push(disk);
            blobnode_args.push(args);
        }
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let mut gateway_args: Vec<String> = vec![
            "gateway".into(),
            "--address".into(),
            addr.to_string(),
            "--metadata".into(),
            meta_url.clone(),
            "--ec".into(),
            ec.into(),
        ];
        gateway_args.extend(options.gateway.iter().map(|s| s.to_string()));
        let gateway = Proc::spawn_with_env("gateway", &gateway_args, options.env, dir.path());
        let mut all: Vec<&Proc> = vec![&metadata, &gateway];
        all.extend(blobnode_procs.iter());
        wait_ready(addr, &all);
        Split {
            dir,
            addr,
            metadata,
            blobnodes: blobnode_procs,
            blobnode_disks,
            blobnode_args,
            gateway,
            metadata_url: meta_url,
        }
    }

    /// Stops every process and hands back the folder, for a test that must undo something in it (a mount) before
    /// it goes.
    pub fn stop(self) -> tempfile::TempDir {
        let Split { gateway, blobnodes, metadata, dir, .. } = self;
        drop(gateway);
        drop(blobnodes);
        drop(metadata);
        dir
    }

    /// Starts one more blobnode with a fresh disk; returns its index.
    pub fn add_blobnode(&mut self) -> usize {
        let i = self.blobnodes.len();
        let disk = self.dir.path().join(format!("node{i}-disk"));
        std::fs::create_dir_all(&disk).expect("disk dir");
        let args = blobnode_args_for(&disk, &self.metadata_url);
        self.blobnodes.push(Proc::spawn(&format!("blobnode{i}"), &args, self.dir.path()));
        self.blobnode_disks.push(disk);
        self.blobnode_args.push(args);
        i
    }

    /// Starts blobnode `i` again (after `kill9`) with its disk and address.
    pub fn restart_blobnode(&mut self, i: usize) {
        self.blobnodes[i] = Proc::spawn(&format!("blobnode{i}-again"), &self.blobnode_args[i], self.dir.path());
    }

    /// The `host:port` blobnode `i` listens on.
    pub fn blobnode_address(&self, i: usize) -> &str {
        let args = &self.blobnode_args[i];
        args.iter().position(|a| a == "--listen").and_then(|p| args.get(p + 1)).map_or("", String::as_str)
    }

    /// A `coffer repair` worker against this cluster.
    pub fn start_repair(&self, name: &str, extra: &[&str]) -> Proc {
        let mut args: Vec<String> = vec!["repair".into(), "--metadata".into(), self.metadata_url.clone()];
        args.extend(extra.iter().map(|s| s.to_string()));
        Proc::spawn(name, &args, self.dir.path())
    }

    /// Runs `coffer admin ARGS` against this cluster; returns its stdout (panics when it fails).
    pub fn admin(&self, args: &[&str]) -> String {
        let out = Command::new(coffer_bin())
            .arg("admin")
            .args(["--metadata", &self.metadata_url])
            .args(args)
            .output()
            .expect("run coffer admin");
        assert!(out.status.success(), "coffer admin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn client(&self) -> Client {
        client(&format!("http://{}", self.addr))
    }
}

/// How a test blobnode with one disk is started: a free port, a fast heartbeat. `metadata_url` may
/// list several replicas, comma-separated.
pub fn blobnode_args_for(disk: &Path, metadata_url: &str) -> Vec<String> {
    vec![
        "blobnode".into(),
        "--listen".into(),
        format!("127.0.0.1:{}", free_port()),
        "--disk".into(),
        disk.display().to_string(),
        "--metadata".into(),
        metadata_url.to_string(),
        "--heartbeat-interval".into(),
        "500ms".into(),
    ]
}

/// Where test data lives: under the target dir (a real disk, where O_DIRECT alignment is
/// enforced), not tmpfs.
pub fn test_root() -> PathBuf {
    let root = std::env::var_os("COFFER_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("coffer-tests"));
    std::fs::create_dir_all(&root).expect("test root");
    root
}

/// The SDK configuration every test client starts from: path style, us-east-1, static keys.
pub fn config_with(endpoint: &str, access: &str, secret: &str) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(access, secret, None, None, "test"))
        .force_path_style(true)
}

pub fn client_with(endpoint: &str, access: &str, secret: &str) -> Client {
    Client::from_conf(config_with(endpoint, access, secret).build())
}

pub fn client(endpoint: &str) -> Client {
    client_with(endpoint, ACCESS_KEY, SECRET_KEY)
}

/// Deterministic, incompressible-looking bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(data))
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

pub async fn get_bytes(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client.get_object().bucket(bucket).key(key).send().await.expect("get_object");
    out.body.collect().await.expect("body").into_bytes().to_vec()
}

pub async fn get_range(client: &Client, bucket: &str, key: &str, first: u64, last: u64) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .range(format!("bytes={first}-{last}"))
        .send()
        .await
        .expect("ranged get_object");
    out.body.collect().await.expect("body").into_bytes().to_vec()
}

pub async fn put_bytes(client: &Client, bucket: &str, key: &str, data: Vec<u8>) -> String {
    let out = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from(data))
        .send()
        .await
        .expect("put_object");
    out.e_tag.unwrap_or_default()
}

/// The S3 error code of a failed SDK call.
pub fn error_code<E, R>(result: Result<R, aws_sdk_s3::error::SdkError<E>>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match result {
        Ok(r) => panic!("expected an error, got {r:?}"),
        Err(e) => e.as_service_error().and_then(|s| s.code()).map(str::to_string).unwrap_or_else(|| {
            // HEAD errors and some early failures carry no body: fall back to the raw status.
            e.raw_response().map(|r| format!("HTTP {}", r.status().as_u16())).unwrap_or_else(|| format!("{e:?}"))
        }),
    }
}
