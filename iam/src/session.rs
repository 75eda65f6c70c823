//! STS session credentials, stateless: nothing is stored per session.
//!
//! The access key is random (`ASIA…`); its secret is an HMAC of the access key under the cluster's
//! session signing key, so any gateway can recompute it. The session token carries the claims
//! (access key, parent identity, expiry, optional session policy) and an HMAC over them under the
//! same key. The signing key is its own random key, sealed in the metadata service like any
//! secret; it is never the root secret.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

use crate::IamError;
use crate::keygen::new_access_key;

pub const SESSION_KEY_PREFIX: &str = "ASIA";
/// Name of the setting holding the sealed signing key.
pub const SIGNING_KEY_SETTING: &str = "sts-signing-key";
pub const MAX_DURATION_SECS: u64 = 43_200;
pub const DEFAULT_DURATION_SECS: u64 = 3_600;
const SECRET_LEN: usize = 40;

/// The key that derives session secrets and signs session tokens. Never logged.
#[derive(Clone)]
pub struct SessionKey(hmac::Key);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

/// What a session token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionClaims {
    pub access_key: String,
    /// The identity whose rights the session has: a user name, or the root access key.
    pub parent: String,
    pub parent_is_root: bool,
    pub expires_unix_s: i64,
    /// A session policy that narrows the parent's rights.
    pub policy: Option<String>,
}

/// Credentials handed to an AssumeRole caller.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionCredentials {
    pub access_key: String,
    pub secret_key: String,
    pub token: String,
    pub expires_unix_s: i64,
}

impl std::fmt::Debug for SessionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCredentials").field("access_key", &self.access_key).finish_non_exhaustive()
    }
}

pub fn is_session_key(access_key: &str) -> bool {
    access_key.starts_with(SESSION_KEY_PREFIX)
}

impl SessionKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<SessionKey, IamError> {
        if bytes.len() < 32 {
            return Err(IamError::BadMasterKey("the session signing key must be at least 32 bytes".into()));
        }
        Ok(SessionKey(hmac::Key::new(hmac::HMAC_SHA256, bytes)))
    }

    /// 32 fresh random bytes for a new signing key.
    pub fn generate_bytes() -> [u8; 32] {
        rand::random()
    }

    fn mac(&self, purpose: &str, data: &[u8]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.0);
        context.update(purpose.as_bytes());
        context.update(b"\0");
        context.update(data);
        context.sign()
    }

    /// An HMAC of `data` for `purpose` (other token kinds, e.g. Swift's), URL-safe base64.
    pub fn mac_text(&self, purpose: &str, data: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(purpose, data).as_ref())
    }

    /// Checks a [`Self::mac_text`] in constant time.
    pub fn verify_text(&self, purpose: &str, data: &[u8], mac: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(mac) else { return false };
        hmac::verify(&self.0, &[purpose.as_bytes(), b"\0", data].concat(), &tag).is_ok()
    }

    /// The secret of a session access key.
    pub fn secret_for(&self, access_key: &str) -> String {
        let encoded = URL_SAFE_NO_PAD.encode(self.mac("secret", access_key.as_bytes()).as_ref());
        encoded.chars().take(SECRET_LEN).collect()
    }

    pub fn issue(&self, claims_without_key: SessionClaims) -> SessionCredentials {
        let access_key = new_access_key(SESSION_KEY_PREFIX);
        let claims = SessionClaims { access_key: access_key.clone(), ..claims_without_key };
        let payload = encode_claims(&claims);
        let tag = URL_SAFE_NO_PAD.encode(self.mac("token", payload.as_bytes()).as_ref());
        SessionCredentials {
            secret_key: self.secret_for(&access_key),
            access_key,
            token: format!("{payload}.{tag}"),
            expires_unix_s: claims.expires_unix_s,
        }
    }

    /// Checks the token's signature, that it belongs to `access_key` and has not expired.
    pub fn verify(&self, token: &str, access_key: &str, now_unix_s: i64) -> Result<SessionClaims, IamError> {
        let (payload, tag) = token.split_once('.').ok_or_else(|| bad("malformed"))?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| bad("malformed"))?;
        hmac::verify(&self.0, &[b"token\0".as_slice(), payload.as_bytes()].concat(), &tag)
            .map_err(|_| bad("signature does not verify"))?;
        let claims = decode_claims(payload)?;
        if claims.access_key != access_key {
            return Err(bad("issued for another access key"));
        }
        if claims.expires_unix_s <= now_unix_s {
            return Err(IamError::SessionExpired);
        }
        Ok(claims)
    }
}

fn bad(why: &str) -> IamError {
    IamError::BadSessionToken(why.to_string())
}

/// Fields joined by `|`, each text field URL-safe base64: simple, unambiguous, no JSON
/// dependency in the hot path.
fn encode_claims(claims: &SessionClaims) -> String {
    let field = |v: &str| URL_SAFE_NO_PAD.encode(v.as_bytes());
    let body = format!(
        "v1|{}|{}|{}|{}|{}",
        field(&claims.access_key),
        field(&claims.parent),
        u8::from(claims.parent_is_root),
        claims.expires_unix_s,
        field(claims.policy.as_deref().unwrap_or_default())
    );
    URL_SAFE_NO_PAD.encode(body.as_bytes())
}

fn decode_claims(payload: &str) -> Result<SessionClaims, IamError> {
    let body = URL_SAFE_NO_PAD.decode(payload).map_err(|_| bad("malformed"))?;
    let body = String::from_utf8(body).map_err(|_| bad("malformed"))?;
    let parts: Vec<&str> = body.split('|').collect();
    let [version, access_key, parent, root, expires, policy] = parts.as_slice() else {
        return Err(bad("malformed"));
    };
    if *version != "v1" {
        return Err(bad("unknown version"));
    }
    let text = |v: &str| -> Result<String, IamError> {
        let bytes = URL_SAFE_NO_PAD.decode(v).map_err(|_| bad("malformed"))?;
        String::from_utf8(bytes).map_err(|_| bad("malformed"))
    };
    let policy = text(policy)?;
    Ok(SessionClaims {
        access_key: text(access_key)?,
        parent: text(parent)?,
        parent_is_root: *root == "1",
        expires_unix_s: expires.parse().map_err(|_| bad("malformed"))?,
        policy: (!policy.is_empty()).then_some(policy),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(expires_unix_s: i64) -> SessionClaims {
        SessionClaims {
            access_key: String::new(),
            parent: "alice".into(),
            parent_is_root: false,
            expires_unix_s,
            policy: Some(r#"{"Statement":[]}"#.into()),
        }
    }

    #[test]
    fn tokens_verify_until_expiry_and_only_for_their_key() {
        let key = SessionKey::from_bytes(&SessionKey::generate_bytes()).unwrap();
        let creds = key.issue(claims(2_000));
        assert!(is_session_key(&creds.access_key));
        assert_eq!(key.secret_for(&creds.access_key), creds.secret_key);
        assert_eq!(creds.secret_key.len(), SECRET_LEN);
        let verified = key.verify(&creds.token, &creds.access_key, 1_999).unwrap();
        assert_eq!(verified.parent, "alice");
        assert_eq!(verified.policy.as_deref(), Some(r#"{"Statement":[]}"#));
        assert!(matches!(key.verify(&creds.token, &creds.access_key, 2_000), Err(IamError::SessionExpired)));
        assert!(key.verify(&creds.token, "ASIAOTHER", 1_000).is_err());
        let other = SessionKey::from_bytes(&SessionKey::generate_bytes()).unwrap();
        assert!(other.verify(&creds.token, &creds.access_key, 1_000).is_err(), "another cluster's key");
        let (payload, tag) = creds.token.split_once('.').unwrap();
        let forged = encode_claims(&SessionClaims { expires_unix_s: 9_999_999, ..claims(0) });
        assert!(key.verify(&format!("{forged}.{tag}"), &creds.access_key, 1_000).is_err());
        assert!(key.verify(payload, &creds.access_key, 1_000).is_err());
        assert!(SessionKey::from_bytes(&[1; 8]).is_err());
    }
}
