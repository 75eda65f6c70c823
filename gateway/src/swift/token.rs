//! Tempauth tokens, stateless: `AUTH_tk` + the login and expiry, HMAC-signed with the cluster's
//! session signing key (shared by every gateway, never the root secret), so any gateway accepts
//! a token another one issued and nothing is stored per token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coffer_iam::session::SessionKey;

const PREFIX: &str = "AUTH_tk";
/// Swift tempauth's default `token_life`.
pub const TOKEN_LIFE_SECS: i64 = 86_400;

fn payload(login: &str, expires_unix_s: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{login}|{expires_unix_s}"))
}

pub fn issue(key: &SessionKey, login: &str, now_unix_s: i64) -> (String, i64) {
    let expires = now_unix_s.saturating_add(TOKEN_LIFE_SECS);
    let payload = payload(login, expires);
    let mac = key.mac_text("swift-token", payload.as_bytes());
    (format!("{PREFIX}{payload}.{mac}"), expires)
}

/// The login a valid, unexpired token was issued to.
pub fn verify(key: &SessionKey, token: &str, now_unix_s: i64) -> Option<String> {
    let (payload, mac) = token.strip_prefix(PREFIX)?.split_once('.')?;
    if !key.verify_text("swift-token", payload.as_bytes(), mac) {
        return None;
    }
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let (login, expires) = text.rsplit_once('|')?;
    (expires.parse::<i64>().ok()? > now_unix_s).then(|| login.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_until_they_expire() {
        let key = SessionKey::from_bytes(&[7; 32]).unwrap();
        let (token, expires) = issue(&key, "test:tester", 1_000);
        assert_eq!(expires, 1_000 + TOKEN_LIFE_SECS);
        assert_eq!(verify(&key, &token, 1_001).as_deref(), Some("test:tester"));
        assert_eq!(verify(&key, &token, expires), None);
        assert_eq!(verify(&SessionKey::from_bytes(&[8; 32]).unwrap(), &token, 1_001), None);
        let forged = format!("{PREFIX}{}.{}", payload("test:admin", 9_999_999), token.rsplit_once('.').unwrap().1);
        assert_eq!(verify(&key, &forged, 1_001), None);
    }
}
