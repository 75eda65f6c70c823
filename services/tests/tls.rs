//! HTTPS on the S3 port: a real AWS SDK client over TLS 1.2 and 1.3 with a CA of our own (rcgen),
//! plain HTTP refused, and a renewed certificate picked up without dropping open connections.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use common::{ACCESS_KEY, Proc, SECRET_KEY, free_port, pattern, runtime, test_root};
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
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .force_path_style(true)
        .http_client(http)
        .build();
    Client::from_conf(config)
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
    let args: Vec<String> = vec![
        "server".into(),
        dir.path().join("data").display().to_string(),
        "--address".into(),
        addr.to_string(),
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
        common::put_bytes(&client, "secure", "k", data.clone()).await;
        assert_eq!(common::get_bytes(&client, "secure", "k").await, data);

        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            assert_eq!(presented(addr, &ca, version).await, first);
        }
    });

    // Plain HTTP gets no HTTP answer.
    let plain = common::http_get_body(addr, "/health/live");
    assert!(plain.as_ref().is_none_or(|body| !body.contains("OK")), "plain HTTP was served: {plain:?}");

    // A renewed certificate is served to new connections; the client's open connection keeps working.
    let second = write_server_cert(&ca, "second", &cert, &key);
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while presented(addr, &ca, &rustls::version::TLS13).await != second {
            assert!(Instant::now() < deadline, "the renewed certificate was not picked up:\n{}", server.log());
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(common::get_bytes(&client, "secure", "k").await, data);
    });
}
