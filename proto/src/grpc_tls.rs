//! Mutual TLS between the services: with `--grpc-tls-cert`, `--grpc-tls-key` and `--grpc-tls-ca`
//! every gRPC server asks its clients for a certificate signed by the cluster CA, and every client
//! presents its own and checks the server's against the same CA. A process without a certificate
//! of the cluster can then neither read shards nor touch metadata. Certificates name the hosts
//! (or IPs) the services are reached at; URLs given as `http://` are dialled as `https://`.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::error::{ErrorCode, RemoteError};

/// The three flags, shared by every role that speaks gRPC.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GrpcTlsArgs {
    /// PEM certificate of this process for gRPC between services (mutual TLS; needs the key and CA too).
    #[arg(long, env = "COFFER_GRPC_TLS_CERT", requires_all = ["grpc_tls_key", "grpc_tls_ca"])]
    pub grpc_tls_cert: Option<PathBuf>,

    /// PEM private key of `--grpc-tls-cert`.
    #[arg(long, env = "COFFER_GRPC_TLS_KEY", requires_all = ["grpc_tls_cert", "grpc_tls_ca"])]
    pub grpc_tls_key: Option<PathBuf>,

    /// PEM certificate of the cluster CA: peers must present a certificate it signed.
    #[arg(long, env = "COFFER_GRPC_TLS_CA", requires_all = ["grpc_tls_cert", "grpc_tls_key"])]
    pub grpc_tls_ca: Option<PathBuf>,
}

fn read(path: &Path) -> Result<Vec<u8>, RemoteError> {
    std::fs::read(path)
        .map_err(|e| RemoteError::new(ErrorCode::InvalidArgument, format!("gRPC TLS: {}: {e}", path.display())))
}

/// Loaded once at start: what servers and clients need.
#[derive(Debug, Clone)]
pub struct GrpcTls {
    identity: Identity,
    ca: Certificate,
}

impl GrpcTls {
    /// `None` when the flags are not given (plain HTTP/2).
    pub fn load(args: &GrpcTlsArgs) -> Result<Option<GrpcTls>, RemoteError> {
        let (Some(cert), Some(key), Some(ca)) = (&args.grpc_tls_cert, &args.grpc_tls_key, &args.grpc_tls_ca) else {
            return Ok(None);
        };
        Ok(Some(GrpcTls {
            identity: Identity::from_pem(read(cert)?, read(key)?),
            ca: Certificate::from_pem(read(ca)?),
        }))
    }

    /// Servers: present our certificate, require a client certificate signed by the CA.
    pub fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(self.identity.clone()).client_ca_root(self.ca.clone())
    }

    /// Clients: trust only the CA, present our certificate.
    pub fn client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new().ca_certificate(self.ca.clone()).identity(self.identity.clone())
    }
}

/// `https://` for a URL dialled over TLS, whatever scheme the operator wrote.
pub fn tls_url(url: &str) -> String {
    match url.strip_prefix("http://") {
        Some(rest) => format!("https://{rest}"),
        None => url.to_string(),
    }
}
