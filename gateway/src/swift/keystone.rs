//! Keystone v3 tokens for Swift: a user's `X-Auth-Token` is validated against Keystone's
//! `/v3/auth/tokens` with the gateway's own service token, and the answer is cached (bounded in
//! size and by the shorter of `--keystone-cache-ttl` and the token's expiry) so Keystone is not
//! asked on every request. The account is `AUTH_<project id>`; operator roles own it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::io::Read;

use serde::Deserialize;

use super::acl::AclIdentity;

/// Validated tokens kept at most; past this the cache starts over (Keystone absorbs the misses).
const MAX_CACHED_TOKENS: usize = 10_000;
/// A service token is renewed this long before Keystone says it expires.
const RENEW_MARGIN: Duration = Duration::from_secs(60);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach Keystone and who the gateway is there.
#[derive(Debug, Clone, clap::Args)]
pub struct KeystoneArgs {
    /// Keystone's v3 endpoint, e.g. http://keystone:5000/v3: Swift accepts Keystone tokens.
    #[arg(long, env = "COFFER_KEYSTONE_URL")]
    pub keystone_url: Option<String>,
    /// The gateway's service user (it needs the admin or service role to validate tokens).
    #[arg(long, env = "COFFER_KEYSTONE_USER", default_value = "swift")]
    pub keystone_user: String,
    #[arg(long, env = "COFFER_KEYSTONE_PASSWORD", default_value = "", hide_env_values = true)]
    pub keystone_password: String,
    #[arg(long, env = "COFFER_KEYSTONE_PROJECT", default_value = "service")]
    pub keystone_project: String,
    #[arg(long, env = "COFFER_KEYSTONE_DOMAIN", default_value = "Default")]
    pub keystone_domain: String,
    /// Roles that make a user an operator (owner) of its project's account.
    #[arg(
        long,
        env = "COFFER_KEYSTONE_OPERATOR_ROLES",
        value_delimiter = ',',
        default_value = "admin,member,swiftoperator"
    )]
    pub keystone_operator_roles: Vec<String>,
    /// The role that may act on every account.
    #[arg(long, env = "COFFER_KEYSTONE_RESELLER_ROLE", default_value = "ResellerAdmin")]
    pub keystone_reseller_role: String,
    /// How long a validated token is trusted before Keystone is asked again.
    #[arg(long, env = "COFFER_KEYSTONE_CACHE_TTL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub keystone_cache_ttl: Duration,
}

/// Who a Keystone token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeystoneIdentity {
    pub user: String,
    pub user_id: String,
    pub project_id: String,
    /// Set only when both the user and the project are in Keystone's default domain: as in
    /// keystoneauth, container ACLs may then name them by name (`project:user`) as well as by id.
    pub default_domain_names: Option<(String, String)>,
    /// The user's role names on the project; a bare container-ACL entry names a role.
    pub roles: Vec<String>,
    pub operator: bool,
    pub reseller_admin: bool,
}

impl KeystoneIdentity {
    pub fn account(&self) -> String {
        format!("{}{}", coffer_iam::tempauth::ACCOUNT_PREFIX, self.project_id)
    }

    /// Who this is in container-ACL terms (keystoneauth's `_authorize_cross_tenant`).
    pub fn acl_identity(&self) -> AclIdentity {
        let mut accounts = vec![self.project_id.clone()];
        let mut users = vec![self.user_id.clone()];
        if let Some((project, user)) = &self.default_domain_names {
            accounts.push(project.clone());
            users.push(user.clone());
        }
        AclIdentity { accounts, users, groups: self.roles.clone() }
    }
}

/// Keystone's default domain, the only one whose names keystoneauth accepts in ACLs.
const DEFAULT_DOMAIN_ID: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum KeystoneError {
    #[error("the token is not valid")]
    InvalidToken,
    #[error("keystone: {0}")]
    Unavailable(String),
}

pub struct Keystone {
    args: KeystoneArgs,
    url: String,
    agent: ureq::Agent,
    service_token: Mutex<Option<(String, Instant)>>,
    cache: Mutex<HashMap<String, (KeystoneIdentity, Instant)>>,
    /// EC2 credentials by access key (`None`: Keystone has no such key), for S3 signatures.
    ec2: Mutex<HashMap<String, (Option<Ec2Credential>, Instant)>>,
}

/// A Keystone EC2 credential: the secret that signs S3 requests, and whose they are.
#[derive(Clone)]
pub struct Ec2Credential {
    pub secret: String,
    pub identity: KeystoneIdentity,
}

impl std::fmt::Debug for Ec2Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ec2Credential").field("identity", &self.identity).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct CredentialBody {
    credential: CredentialInfo,
}

#[derive(Deserialize)]
struct CredentialInfo {
    #[serde(rename = "type")]
    kind: String,
    blob: String,
    user_id: String,
    project_id: Option<String>,
}

#[derive(Deserialize)]
struct Ec2Blob {
    access: String,
    secret: String,
}

#[derive(Deserialize)]
struct Assignments {
    role_assignments: Vec<Assignment>,
}

#[derive(Deserialize)]
struct Assignment {
    role: Named,
    #[serde(default)]
    user: Option<Named>,
}

#[derive(Deserialize)]
struct TokenBody {
    token: TokenInfo,
}

#[derive(Deserialize)]
struct TokenInfo {
    expires_at: Option<String>,
    #[serde(default)]
    roles: Vec<Named>,
    project: Option<Scoped>,
    user: Scoped,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

/// A user or project in a token: its id, name and domain.
#[derive(Deserialize)]
struct Scoped {
    id: String,
    name: String,
    #[serde(default)]
    domain: Option<DomainRef>,
}

impl Scoped {
    fn in_default_domain(&self) -> bool {
        self.domain.as_ref().is_some_and(|d| d.id == DEFAULT_DOMAIN_ID)
    }
}

#[derive(Deserialize)]
struct DomainRef {
    id: String,
}

/// Token answers are a few KiB; anything larger is not one.
const MAX_ANSWER_BYTES: u64 = 1 << 20;

fn parse(response: ureq::Response) -> Result<TokenBody, KeystoneError> {
    read_json(response)
}

fn read_json<T: serde::de::DeserializeOwned>(response: ureq::Response) -> Result<T, KeystoneError> {
    let mut text = String::new();
    response
        .into_reader()
        .take(MAX_ANSWER_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| KeystoneError::Unavailable(format!("reading keystone's answer: {e}")))?;
    serde_json::from_str(&text).map_err(|e| KeystoneError::Unavailable(format!("keystone's answer: {e}")))
}

/// Seconds until an ISO 8601 `expires_at`, if it parses.
fn remaining(expires_at: Option<&str>) -> Option<Duration> {
    let expires =
        time::OffsetDateTime::parse(expires_at?, &time::format_description::well_known::Iso8601::DEFAULT).ok()?;
    let left = expires - time::OffsetDateTime::now_utc();
    Some(Duration::from_secs(left.whole_seconds().max(0) as u64))
}

impl Keystone {
    pub fn new(args: KeystoneArgs) -> Option<Keystone> {
        let url = args.keystone_url.clone()?.trim_end_matches('/').to_string();
        let agent = ureq::AgentBuilder::new().timeout(HTTP_TIMEOUT).build();
        Some(Keystone {
            args,
            url,
            agent,
            service_token: Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
            ec2: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, token: &str) -> Option<KeystoneIdentity> {
        let cache = self.cache.lock().ok()?;
        let (identity, until) = cache.get(token)?;
        (Instant::now() < *until).then(|| identity.clone())
    }

    /// The identity behind a user's token (blocking; call from a blocking thread).
    pub fn validate_blocking(&self, token: &str) -> Result<KeystoneIdentity, KeystoneError> {
        if let Some(identity) = self.cached(token) {
            return Ok(identity);
        }
        let service = self.service_token()?;
        let answer = self
            .agent
            .get(&format!("{}/auth/tokens", self.url))
            .set("x-auth-token", &service)
            .set("x-subject-token", token)
            .call();
        let body: TokenBody = match answer {
            Ok(response) => parse(response)?,
            Err(ureq::Error::Status(401 | 404, _)) => return Err(KeystoneError::InvalidToken),
            Err(ureq::Error::Status(code, _)) => {
                // The service token may have been revoked: forget it so the next call gets a new one.
                if let Ok(mut service) = self.service_token.lock() {
                    *service = None;
                }
                return Err(KeystoneError::Unavailable(format!("token validation answered {code}")));
            }
            Err(e) => return Err(KeystoneError::Unavailable(e.to_string())),
        };
        let project = body.token.project.ok_or(KeystoneError::InvalidToken)?;
        let has = |role: &str| body.token.roles.iter().any(|r| r.name.eq_ignore_ascii_case(role));
        let user = body.token.user;
        let default_domain_names = (user.in_default_domain() && project.in_default_domain())
            .then(|| (project.name.clone(), user.name.clone()));
        let identity = KeystoneIdentity {
            user: user.name,
            user_id: user.id,
            project_id: project.id,
            default_domain_names,
            roles: body.token.roles.iter().map(|r| r.name.clone()).collect(),
            operator: self.args.keystone_operator_roles.iter().any(|r| has(r)),
            reseller_admin: has(&self.args.keystone_reseller_role),
        };
        let ttl = remaining(body.token.expires_at.as_deref())
            .map_or(self.args.keystone_cache_ttl, |left| left.min(self.args.keystone_cache_ttl));
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHED_TOKENS {
                cache.clear();
            }
            cache.insert(token.to_string(), (identity.clone(), Instant::now() + ttl));
        }
        Ok(identity)
    }

    /// The EC2 credential of `access`, as last looked up (within `--keystone-cache-ttl`).
    pub fn ec2_cached(&self, access: &str) -> Option<Option<Ec2Credential>> {
        let cache = self.ec2.lock().ok()?;
        let (credential, until) = cache.get(access)?;
        (Instant::now() < *until).then(|| credential.clone())
    }

    /// Looks up the EC2 credential of `access` in Keystone (blocking): the credential (its id is
    /// the SHA-256 of the access key, as Keystone files EC2 credentials) and the owner's roles on
    /// its project. Reading other users' credentials needs the service user to hold the admin role.
    pub fn ec2_credential_blocking(&self, access: &str) -> Result<Option<Ec2Credential>, KeystoneError> {
        if let Some(known) = self.ec2_cached(access) {
            return Ok(known);
        }
        let service = self.service_token()?;
        let id = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(access.as_bytes()));
        let answer = self.agent.get(&format!("{}/credentials/{id}", self.url)).set("x-auth-token", &service).call();
        let credential = match answer {
            Ok(response) => Some(read_json::<CredentialBody>(response)?.credential),
            Err(ureq::Error::Status(404, _)) => None,
            Err(ureq::Error::Status(code, _)) => {
                return Err(KeystoneError::Unavailable(format!("reading an EC2 credential answered {code}")));
            }
            Err(e) => return Err(KeystoneError::Unavailable(e.to_string())),
        };
        let found = match credential {
            Some(c) if c.kind == "ec2" => {
                let blob: Ec2Blob = serde_json::from_str(&c.blob)
                    .map_err(|e| KeystoneError::Unavailable(format!("an EC2 credential's blob: {e}")))?;
                match c.project_id.filter(|_| blob.access == access) {
                    Some(project_id) => Some(Ec2Credential {
                        secret: blob.secret,
                        identity: self.project_identity(&service, &c.user_id, project_id)?,
                    }),
                    None => None,
                }
            }
            _ => None,
        };
        if let Ok(mut cache) = self.ec2.lock() {
            if cache.len() >= MAX_CACHED_TOKENS {
                cache.clear();
            }
            cache.insert(access.to_string(), (found.clone(), Instant::now() + self.args.keystone_cache_ttl));
        }
        Ok(found)
    }

    /// A user's rights on a project, from its effective role assignments there.
    fn project_identity(
        &self,
        service: &str,
        user_id: &str,
        project_id: String,
    ) -> Result<KeystoneIdentity, KeystoneError> {
        let url = format!(
            "{}/role_assignments?user.id={user_id}&scope.project.id={project_id}&effective&include_names",
            self.url
        );
        let assignments = match self.agent.get(&url).set("x-auth-token", service).call() {
            Ok(response) => read_json::<Assignments>(response)?.role_assignments,
            Err(e) => return Err(KeystoneError::Unavailable(format!("role assignments: {e}"))),
        };
        let has = |role: &str| assignments.iter().any(|a| a.role.name.eq_ignore_ascii_case(role));
        let user = assignments.iter().find_map(|a| a.user.as_ref().map(|u| u.name.clone()));
        Ok(KeystoneIdentity {
            user: user.unwrap_or_else(|| user_id.to_string()),
            user_id: user_id.to_string(),
            project_id,
            // S3 requests signed with EC2 credentials never meet container ACLs.
            default_domain_names: None,
            roles: assignments.iter().map(|a| a.role.name.clone()).collect(),
            operator: self.args.keystone_operator_roles.iter().any(|r| has(r)),
            reseller_admin: has(&self.args.keystone_reseller_role),
        })
    }

    /// The gateway's own token, renewed shortly before it expires.
    fn service_token(&self) -> Result<String, KeystoneError> {
        if let Ok(service) = self.service_token.lock()
            && let Some((token, until)) = service.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let request = serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.args.keystone_user, "domain": {"name": self.args.keystone_domain},
                "password": self.args.keystone_password}}},
            "scope": {"project": {"name": self.args.keystone_project, "domain": {"name": self.args.keystone_domain}}}
        }});
        let response = self
            .agent
            .post(&format!("{}/auth/tokens", self.url))
            .set("content-type", "application/json")
            .send_string(&request.to_string())
            .map_err(|e| KeystoneError::Unavailable(format!("service login: {e}")))?;
        let token = response
            .header("x-subject-token")
            .ok_or_else(|| KeystoneError::Unavailable("service login returned no token".into()))?
            .to_string();
        let body = parse(response)?;
        let life = remaining(body.token.expires_at.as_deref()).unwrap_or(Duration::from_secs(300));
        let until = Instant::now() + life.saturating_sub(RENEW_MARGIN);
        if let Ok(mut service) = self.service_token.lock() {
            *service = Some((token.clone(), until));
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_read_from_keystone_timestamps() {
        let soon = (time::OffsetDateTime::now_utc() + time::Duration::minutes(5))
            .format(&time::format_description::well_known::Iso8601::DEFAULT)
            .unwrap();
        let left = remaining(Some(&soon)).unwrap();
        assert!(left > Duration::from_secs(290) && left <= Duration::from_secs(300));
        assert_eq!(remaining(Some("2000-01-01T00:00:00.000000Z")), Some(Duration::ZERO));
        assert_eq!(remaining(None), None);
        let identity = KeystoneIdentity {
            user: "u".into(),
            user_id: "uid".into(),
            project_id: "abc".into(),
            default_domain_names: Some(("proj".into(), "u".into())),
            roles: vec!["member".into()],
            operator: true,
            reseller_admin: false,
        };
        assert_eq!(identity.account(), "AUTH_abc");
        let acl = identity.acl_identity();
        assert_eq!(acl.accounts, ["abc", "proj"]);
        assert_eq!(acl.users, ["uid", "u"]);
    }
}
