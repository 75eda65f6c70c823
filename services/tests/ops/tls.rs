//! HTTPS on the S3 port: a real AWS SDK client over TLS 1.2 and 1.3 with a CA of our own (rcgen),
//! plain HTTP refused, and a renewed certificate picked up without dropping open connections; the
//! console and Swift ports serve the same certificate.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{ACCESS_KEY, Proc, SECRET_KEY, free_port, pattern, runtime, test_root};
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};

type Ca = CertifiedIssuer<'static, KeyPair>;

fn new_ca() -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "Coffer test CA");
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// Writes a server certificate for localhost/127.0.0.1 signed by `ca`; returns its DER.
fn write_server_cert(ca: &Ca, name: &str, cert: &Path, key: &Path) -> CertificateDer<'static> {
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    let server_key = KeyPair::generate().unwrap();
    let issued = params.signed_by(&server_key, &**ca).unwrap();
    // Write to temporary names and rename, as certificate tooling does, so the server never reads half a file.
    std::fs::write(cert.with_extension("tmp"), issued.pem()).unwrap();
    std::fs::write(key.with_extension("tmp"), server_key.serialize_pem()).unwrap();
    std::fs::rename(key.with_extension("tmp"), key).unwrap();
    std::fs::rename(cert.with_extension("tmp"), cert).unwrap();
    issued.der().clone()
}

fn https_client(endpoint: &str, ca_pem: &str) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .tls_context(
            TlsContext::builder().with_trust_store(TrustStore::empty().with_pem_certificate(ca_pem)).build().unwrap(),
        )
        .build_https();
    Client::from_conf(crate::common::config_with(endpoint, ACCESS_KEY, SECRET_KEY).http_client(http).build())
}

/// The certificate the server presents to a fresh connection limited to `version`.
async fn presented(
    addr: SocketAddr,
    ca: &Ca,
    version: &'static rustls::SupportedProtocolVersion,
) -> CertificateDer<'static> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let (_, session) = tls.get_ref();
    assert_eq!(session.protocol_version(), Some(version.version));
    session.peer_certificates().and_then(|c| c.first()).cloned().expect("a certificate")
}

#[test]
fn s3_over_https_with_reload_and_no_plain_http() {
    let rt = runtime();
    let dir = tempfile::Builder::new().prefix("coffer-tls").tempdir_in(test_root()).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ca = new_ca();
    let first = write_server_cert(&ca, "first", &cert, &key);
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let console: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let swift: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let args: Vec<String> = vec![
        "server".into(),
        dir.path().join("data").display().to_string(),
        "--address".into(),
        addr.to_string(),
        "--console-address".into(),
        console.to_string(),
        "--swift-address".into(),
        swift.to_string(),
        "--tls-cert".into(),
        cert.display().to_string(),
        "--tls-key".into(),
        key.display().to_string(),
    ];
    let server = Proc::spawn("server", &args, dir.path());
    let client = https_client(&format!("https://localhost:{}", addr.port()), &ca.pem());
    let data = pattern(300 << 10, 5);

    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while client.list_buckets().send().await.is_err() {
            assert!(Instant::now() < deadline, "no HTTPS S3 service:\n{}", server.log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        client.create_bucket().bucket("secure").send().await.expect("create bucket");
        crate::common::put_bytes(&client, "secure", "k", data.clone()).await;
        assert_eq!(crate::common::get_bytes(&client, "secure", "k").await, data);

        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            assert_eq!(presented(addr, &ca, version).await, first);
        }
        // The console and Swift ports serve HTTPS with the same certificate.
        for port in [console, swift] {
            assert_eq!(presented(port, &ca, &rustls::version::TLS13).await, first);
        }
        assert!(https_get(swift, &ca, "/info").await.contains("max_object_name_length"), "Swift /info over HTTPS");
        assert!(https_get(console, &ca, "/").await.contains("<html"), "console page over HTTPS");
    });

    // Plain HTTP gets no HTTP answer.
    let plain = crate::common::http_get_body(addr, "/health/live");
    assert!(plain.as_ref().is_none_or(|body| !body.contains("OK")), "plain HTTP was served: {plain:?}");

    // A renewed certificate is served to new connections; the client's open connection keeps working.
    let second = write_server_cert(&ca, "second", &cert, &key);
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while presented(addr, &ca, &rustls::version::TLS13).await != second {
            assert!(Instant::now() < deadline, "the renewed certificate was not picked up:\n{}", server.log());
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(crate::common::get_bytes(&client, "secure", "k").await, data);
        for port in [console, swift] {
            assert_eq!(presented(port, &ca, &rustls::version::TLS13).await, second, "renewed on {port}");
        }
    });
}

/// The body of a GET over HTTPS (HTTP/1.1, connection closed after the answer).
async fn https_get(addr: SocketAddr, ca: &Ca, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Writes a certificate usable as both TLS server and client for 127.0.0.1/localhost, signed by `ca`.
fn write_peer_cert(ca: &Ca, dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages =
        vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &**ca).unwrap();
    let (cert_path, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}-key.pem")));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

fn tls_args(cert: &Path, key: &Path, ca: &Path) -> coffer_proto::grpc_tls::GrpcTlsArgs {
    coffer_proto::grpc_tls::GrpcTlsArgs {
        grpc_tls_cert: Some(cert.to_path_buf()),
        grpc_tls_key: Some(key.to_path_buf()),
        grpc_tls_ca: Some(ca.to_path_buf()),
    }
}

#[test]
fn services_talk_mutual_tls_and_refuse_a_foreign_certificate() {
    use coffer_proto::blobnode_client::BlobnodePool;
    use coffer_proto::grpc_tls::GrpcTls;
    use coffer_proto::metadata_client::{ClientConfig, MetadataClient};
    use coffer_proto::pb::blobnode::ShardId;
    use coffer_proto::pb::metadata::GetClusterMapRequest;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = runtime();
    let certs = tempfile::Builder::new().prefix("coffer-mtls").tempdir_in(test_root()).unwrap();
    let ca = new_ca();
    let ca_path = certs.path().join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let (cert, key) = write_peer_cert(&ca, certs.path(), "cluster");
    let flags: Vec<String> = vec![
        "--grpc-tls-cert".into(),
        cert.display().to_string(),
        "--grpc-tls-key".into(),
        key.display().to_string(),
        "--grpc-tls-ca".into(),
        ca_path.display().to_string(),
    ];
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let cluster = crate::common::Split::start_opts(
        6,
        "4+2",
        crate::common::SplitOptions { metadata: &flag_refs, gateway: &flag_refs, env: &[] },
        |_, _| flags.clone(),
    );
    let client = cluster.client();
    let data = pattern(1 << 20, 9);
    rt.block_on(async {
        client.create_bucket().bucket("mtls").send().await.expect("create bucket");
        crate::common::put_bytes(&client, "mtls", "k", data.clone()).await;
        assert_eq!(
            crate::common::get_bytes(&client, "mtls", "k").await,
            data,
            "S3 works with every gRPC hop on mutual TLS"
        );
    });

    let ours = GrpcTls::load(&tls_args(&cert, &key, &ca_path)).unwrap();
    let foreign_ca = new_ca();
    let foreign_ca_path = certs.path().join("foreign-ca.pem");
    std::fs::write(&foreign_ca_path, foreign_ca.pem()).unwrap();
    let (foreign_cert, foreign_key) = write_peer_cert(&foreign_ca, certs.path(), "intruder");
    // The intruder trusts our CA (it knows whom it talks to) but its own certificate is not ours.
    let foreign = GrpcTls::load(&tls_args(&foreign_cert, &foreign_key, &ca_path)).unwrap();

    rt.block_on(async {
        let url = std::slice::from_ref(&cluster.metadata_url);
        let metadata =
            MetadataClient::connect(url, &ClientConfig { tls: ours.clone(), ..ClientConfig::default() }).unwrap();
        let nodes = metadata.rpc().get_cluster_map(GetClusterMapRequest {}).await.expect("cluster map over mTLS");
        let node = nodes.into_inner().nodes.into_iter().find_map(|n| n.info).expect("a blobnode");
        let disk = node.disks[0].disk_id.clone();
        let shard = ShardId { data_id: vec![7; 16], stripe: 0, index: 0 };

        let trusted = BlobnodePool::new(ClientConfig { tls: ours, ..ClientConfig::default() });
        trusted.set_nodes([(node.node_id.clone(), node.address.clone())]);
        // The shard does not exist: NoSuchShard proves the call got through and was answered.
        let reached = trusted.stat_shard(&node.node_id, &disk, shard.clone()).await;
        let answered = reached.as_ref().err().is_none_or(|e| e.code == coffer_proto::ErrorCode::NoSuchShard);
        assert!(answered, "a cluster certificate reaches the blobnode: {reached:?}");

        for (what, tls) in [("a foreign certificate", foreign.clone()), ("no certificate", None)] {
            let pool = BlobnodePool::new(ClientConfig { tls, ..ClientConfig::default() });
            pool.set_nodes([(node.node_id.clone(), node.address.clone())]);
            let refused = pool.stat_shard(&node.node_id, &disk, shard.clone()).await;
            let code = refused.as_ref().err().map(|e| e.code);
            assert!(
                code.is_some_and(|c| c != coffer_proto::ErrorCode::NoSuchShard),
                "a client with {what} got {refused:?}"
            );
        }
        let intruder = MetadataClient::connect(url, &ClientConfig { tls: foreign, ..ClientConfig::default() }).unwrap();
        assert!(intruder.rpc().get_cluster_map(GetClusterMapRequest {}).await.is_err(), "metadata served an intruder");
    });
}
