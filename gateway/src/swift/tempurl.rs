//! TempURL: a signed link that grants one method on one object (or every object under a prefix)
//! until it expires, with no token. Signatures are HMAC-SHA1, -SHA256 or -SHA512 (hex, or
//! `sha256:`/`sha512:` + base64) of `METHOD\nEXPIRES\nPATH` under one of the container's
//! `X-Container-Meta-Temp-URL-Key(-2)` keys. FormPost signs with the same keys and HMACs.

use std::collections::HashMap;

use base64::Engine;
use ring::hmac;

use super::SwiftApi;
use super::response::{self, SwiftResponse};

/// The query parameters of a temporary URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempUrl {
    pub signature: String,
    pub expires_unix_s: i64,
    /// `temp_url_prefix`: the signature covers every object whose name starts with this.
    pub prefix: Option<String>,
}

/// Container metadata names (lower-case, without `x-container-meta-`) of the keys.
pub const KEY_NAMES: [&str; 2] = ["temp-url-key", "temp-url-key-2"];

impl TempUrl {
    /// The parameters, when the query has a signature; `Err` when it is malformed.
    pub fn from_query(query: &[(String, String)]) -> Option<Result<TempUrl, String>> {
        let value = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let signature = value("temp_url_sig")?;
        let Some(expires) = value("temp_url_expires") else {
            return Some(Err("temp_url_expires is missing".into()));
        };
        let expires_unix_s = match expires.parse::<i64>() {
            Ok(s) => s,
            Err(_) => {
                match time::OffsetDateTime::parse(&expires, &time::format_description::well_known::Iso8601::DEFAULT) {
                    Ok(t) => t.unix_timestamp(),
                    Err(_) => return Some(Err("temp_url_expires is not a time".into())),
                }
            }
        };
        Some(Ok(TempUrl { signature, expires_unix_s, prefix: value("temp_url_prefix") }))
    }

    /// Whether the link grants `method` on `path` (`/v1/AUTH_a/c/o`, decoded) at `now`, under one of `keys`.
    pub fn grants(&self, method: &str, path: &str, keys: &[&str], now_unix_s: i64) -> bool {
        if self.expires_unix_s <= now_unix_s {
            return false;
        }
        let signed_path = match &self.prefix {
            Some(prefix) => {
                // The container path plus the prefix; the object must lie under it.
                let mut parts = path.splitn(5, '/');
                let (_, v1, account, container) = (parts.next(), parts.next(), parts.next(), parts.next());
                let object = parts.next().unwrap_or_default();
                if !object.starts_with(prefix.as_str()) {
                    return false;
                }
                format!(
                    "prefix:/{}/{}/{}/{prefix}",
                    v1.unwrap_or_default(),
                    account.unwrap_or_default(),
                    container.unwrap_or_default()
                )
            }
            None => path.to_string(),
        };
        // A HEAD is allowed by a GET, PUT or HEAD signature, as in Swift.
        let methods: &[&str] = if method == "HEAD" { &["HEAD", "GET", "PUT"] } else { &[method] };
        methods.iter().any(|m| {
            let message = format!("{m}\n{}\n{signed_path}", self.expires_unix_s);
            keys.iter().any(|key| signature_matches(&self.signature, key, message.as_bytes()))
        })
    }
}

/// The keys that sign for a container of `account`: the container's own (from its
/// `container_metadata`) and the account's.
pub async fn keys(
    api: &SwiftApi,
    account: &str,
    container_metadata: &HashMap<String, String>,
) -> Result<Vec<String>, SwiftResponse> {
    let request = coffer_proto::pb::metadata::GetAccountRequest { name: account.to_string() };
    let account_metadata = match api.metadata.rpc().get_account(request).await {
        Ok(r) => r.into_inner().account.unwrap_or_default().metadata,
        Err(status) => return Err(response::from_s3(&crate::error::GatewayError::Remote(status.into()).into())),
    };
    Ok(KEY_NAMES
        .iter()
        .flat_map(|name| [container_metadata.get(*name), account_metadata.get(*name)])
        .flatten()
        .cloned()
        .collect())
}

/// Whether `signature` (hex, or `sha1:`/`sha256:`/`sha512:` + base64) is the HMAC of `message`
/// under `key`.
pub fn signature_matches(signature: &str, key: &str, message: &[u8]) -> bool {
    let (algorithm, expected) = if let Some((name, b64)) = signature.split_once(':') {
        let algorithm = match name {
            "sha1" => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            "sha256" => hmac::HMAC_SHA256,
            "sha512" => hmac::HMAC_SHA512,
            _ => return false,
        };
        // Standard or URL-safe base64, padded or not; a `+` may arrive as a space after query decoding.
        let normalized: String = b64
            .trim_end_matches('=')
            .chars()
            .map(|c| match c {
                '+' | ' ' => '-',
                '/' => '_',
                c => c,
            })
            .collect();
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let Ok(bytes) = engine.decode(normalized) else { return false };
        (algorithm, bytes)
    } else {
        let Ok(bytes) = hex::decode(signature) else { return false };
        let algorithm = match bytes.len() {
            20 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            32 => hmac::HMAC_SHA256,
            64 => hmac::HMAC_SHA512,
            _ => return false,
        };
        (algorithm, bytes)
    };
    hmac::verify(&hmac::Key::new(algorithm, key.as_bytes()), message, &expected).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(algorithm: hmac::Algorithm, key: &str, message: &str) -> String {
        hex::encode(hmac::sign(&hmac::Key::new(algorithm, key.as_bytes()), message.as_bytes()).as_ref())
    }

    #[test]
    fn signatures_grant_one_method_on_one_path_until_expiry() {
        let path = "/v1/AUTH_test/c/o";
        for algorithm in [hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, hmac::HMAC_SHA256, hmac::HMAC_SHA512] {
            let link = TempUrl {
                signature: sign(algorithm, "k", &format!("GET\n2000\n{path}")),
                expires_unix_s: 2000,
                prefix: None,
            };
            assert!(link.grants("GET", path, &["other", "k"], 1000));
            assert!(link.grants("HEAD", path, &["k"], 1000));
            assert!(!link.grants("PUT", path, &["k"], 1000));
            assert!(!link.grants("GET", "/v1/AUTH_test/c/other", &["k"], 1000));
            assert!(!link.grants("GET", path, &["k"], 2000), "expired");
            assert!(!link.grants("GET", path, &["wrong"], 1000));
        }
        let prefixed = TempUrl {
            signature: sign(hmac::HMAC_SHA256, "k", "GET\n2000\nprefix:/v1/AUTH_test/c/dir/"),
            expires_unix_s: 2000,
            prefix: Some("dir/".into()),
        };
        assert!(prefixed.grants("GET", "/v1/AUTH_test/c/dir/a", &["k"], 1000));
        assert!(!prefixed.grants("GET", "/v1/AUTH_test/c/else", &["k"], 1000));
        let query = vec![
            ("temp_url_sig".to_string(), "ab".to_string()),
            ("temp_url_expires".to_string(), "1970-01-01T00:16:40Z".to_string()),
        ];
        assert_eq!(TempUrl::from_query(&query).unwrap().unwrap().expires_unix_s, 1000);
        assert!(TempUrl::from_query(&[]).is_none());
        // Every base64 spelling of one signature works, including `+` decoded to a space.
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"k"), format!("GET\n2000\n{path}").as_bytes());
        let standard = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
        let url_safe = base64::engine::general_purpose::URL_SAFE.encode(tag.as_ref());
        for spelling in
            [standard.clone(), standard.trim_end_matches('=').to_string(), url_safe, standard.replace('+', " ")]
        {
            let link = TempUrl { signature: format!("sha256:{spelling}"), expires_unix_s: 2000, prefix: None };
            assert!(link.grants("GET", path, &["k"], 1000), "{spelling}");
        }
    }
}
