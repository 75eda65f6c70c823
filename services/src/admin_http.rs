//! A small client for the admin API (`/coffer/admin/v1/...` on the S3 port): JSON requests signed
//! with SigV4 like any S3 request. Blocking (ureq); the CLI makes one call at a time.

use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use clap::Args;

const PREFIX: &str = "/coffer/admin/v1/";
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Args, Clone)]
pub struct EndpointArgs {
    /// The S3 endpoint of a gateway (the admin API shares its port).
    #[arg(long, env = "COFFER_ENDPOINT", default_value = "http://127.0.0.1:9000", global = true)]
    pub endpoint: String,

    /// Access key of an identity with admin rights (root, or a consoleAdmin user).
    #[arg(long, env = "COFFER_ACCESS_KEY", global = true)]
    pub access_key: Option<String>,

    /// Its secret key.
    #[arg(long, env = "COFFER_SECRET_KEY", hide_env_values = true, global = true)]
    pub secret_key: Option<String>,

    /// Region to sign for.
    #[arg(long, env = "COFFER_REGION", default_value = "us-east-1", global = true)]
    pub region: String,
}

pub struct AdminClient {
    endpoint: String,
    host: String,
    identity: Identity,
    region: String,
    agent: ureq::Agent,
}

/// An admin API error answer: its HTTP status, IAM-style code and message.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message} (HTTP {status})")]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl AdminClient {
    pub fn new(args: &EndpointArgs) -> anyhow::Result<AdminClient> {
        let (Some(access_key), Some(secret_key)) = (&args.access_key, &args.secret_key) else {
            bail!("admin credentials are needed: --access-key/--secret-key or COFFER_ACCESS_KEY/COFFER_SECRET_KEY");
        };
        let endpoint = args.endpoint.trim_end_matches('/').to_string();
        let host = endpoint
            .split_once("://")
            .map(|(_, rest)| rest)
            .with_context(|| format!("--endpoint {endpoint} must start with http:// or https://"))?
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let identity = Credentials::new(access_key, secret_key, None, None, "coffer-admin").into();
        let agent = ureq::AgentBuilder::new().timeout(TIMEOUT).build();
        Ok(AdminClient { endpoint, host, identity, region: args.region.clone(), agent })
    }

    /// Calls `METHOD /coffer/admin/v1/{path}` with an optional JSON body; returns the JSON answer.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{PREFIX}{path}", self.endpoint);
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        // S3's canonical path: each segment encoded once (the path is already encoded).
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        let headers = [("host", self.host.as_str()), ("content-type", "application/json")];
        let signable = SignableRequest::new(method, &url, headers.into_iter(), SignableBody::Bytes(payload.as_bytes()))
            .context("signing the request")?;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .context("signing the request")?
            .into();
        let (instructions, _) = sign(signable, &params).context("signing the request")?.into_parts();
        let mut request = self.agent.request(method, &url).set("content-type", "application/json");
        for (name, value) in instructions.headers() {
            request = request.set(name, value);
        }
        let response = match request.send_bytes(payload.as_bytes()) {
            Ok(response) => response,
            Err(ureq::Error::Status(status, response)) => {
                let text = response.into_string().unwrap_or_default();
                let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                // Signature and key errors come from the S3 layer, as S3 XML.
                let field = |name: &str| match value.get(name).and_then(|v| v.as_str()) {
                    Some(found) => found.to_string(),
                    None => xml_element(&text, name).unwrap_or_default(),
                };
                let (code, message) = (field("Code"), field("Message"));
                let message = if code.is_empty() && message.is_empty() { text } else { message };
                return Err(ApiError { status, code, message }.into());
            }
            Err(e) => return Err(anyhow::anyhow!("cannot reach {url}: {e}")),
        };
        let text = response.into_string().context("reading the answer")?;
        serde_json::from_str(&text).with_context(|| format!("the answer is not JSON: {text}"))
    }
}

impl AdminClient {
    /// STS AssumeRole with these credentials: temporary credentials with the caller's rights,
    /// narrowed by `policy` when given. Returns the `Credentials` element's fields.
    pub fn assume_role(&self, duration_secs: u64, policy: Option<&str>) -> anyhow::Result<serde_json::Value> {
        let encode = |v: &str| percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string();
        let mut form = format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=coffer-admin&DurationSeconds={duration_secs}",
            encode("arn:aws:iam::000000000000:role/coffer-admin")
        );
        if let Some(policy) = policy {
            form.push_str(&format!("&Policy={}", encode(policy)));
        }
        let url = format!("{}/", self.endpoint);
        let content_type = "application/x-www-form-urlencoded";
        let headers = [("host", self.host.as_str()), ("content-type", content_type)];
        let signable = SignableRequest::new("POST", &url, headers.into_iter(), SignableBody::Bytes(form.as_bytes()))
            .context("signing the request")?;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("sts")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .context("signing the request")?
            .into();
        let (instructions, _) = sign(signable, &params).context("signing the request")?.into_parts();
        let mut request = self.agent.post(&url).set("content-type", content_type);
        for (name, value) in instructions.headers() {
            request = request.set(name, value);
        }
        let text = match request.send_string(&form) {
            Ok(response) => response.into_string().context("reading the answer")?,
            Err(ureq::Error::Status(status, response)) => {
                let text = response.into_string().unwrap_or_default();
                let code = xml_element(&text, "Code").unwrap_or_default();
                let message = xml_element(&text, "Message").unwrap_or(text);
                return Err(ApiError { status, code, message }.into());
            }
            Err(e) => return Err(anyhow::anyhow!("cannot reach {url}: {e}")),
        };
        let field = |name: &str| xml_element(&text, name).map(|v| v.replace("&amp;", "&")).unwrap_or_default();
        Ok(serde_json::json!({
            "access_key": field("AccessKeyId"),
            "secret_key": field("SecretAccessKey"),
            "session_token": field("SessionToken"),
            "expiration": field("Expiration"),
        }))
    }
}

/// The text of the first `<name>` element of a small XML document.
fn xml_element(text: &str, name: &str) -> Option<String> {
    let start = text.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + text[start..].find(&format!("</{name}>"))?;
    Some(text[start..end].to_string())
}
