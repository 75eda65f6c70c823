//! Virtual-hosted-style addressing: `BUCKET.DOMAIN[:port]` names the bucket; any other host
//! (an IP address, `localhost`, a load balancer name) is path style. s3s's `MultiDomain` treats
//! unknown hosts as bucket names and does not strip the port, which breaks both.

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

pub struct Domains {
    domains: Vec<String>,
}

impl Domains {
    pub fn new(domains: &[String]) -> Self {
        Domains { domains: domains.iter().map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase()).collect() }
    }
}

fn without_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        // IPv6 literals keep their colons inside brackets.
        Some((name, port)) if !name.ends_with(']') || host.starts_with('[') => {
            if port.chars().all(|c| c.is_ascii_digit()) { name } else { host }
        }
        _ => host,
    }
}

impl Domains {
    /// Whether a request with this `Host` header addresses a bucket by name (virtual-hosted style).
    pub fn names_bucket(&self, host: &str) -> bool {
        self.parse_host_header(host).is_ok_and(|v| v.bucket().is_some())
    }
}

impl S3Host for Domains {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name = without_port(host);
        for domain in &self.domains {
            if name.len() > domain.len() + 1
                && name[name.len() - domain.len()..].eq_ignore_ascii_case(domain)
                && name.as_bytes()[name.len() - domain.len() - 1] == b'.'
            {
                let bucket = &name[..name.len() - domain.len() - 1];
                return Ok(VirtualHost::new(domain.as_str()).with_bucket(bucket));
            }
        }
        Ok(VirtualHost::new(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_come_from_subdomains_only() {
        let d = Domains::new(&["s3.example.com".to_string()]);
        let bucket = |h: &str| d.parse_host_header(h).ok().and_then(|v| v.bucket().map(str::to_string));
        assert_eq!(bucket("photos.s3.example.com"), Some("photos".to_string()));
        assert_eq!(bucket("photos.s3.example.com:9000"), Some("photos".to_string()));
        assert_eq!(bucket("a.b.s3.example.com"), Some("a.b".to_string()));
        assert_eq!(bucket("s3.example.com:9000"), None);
        assert_eq!(bucket("127.0.0.1:9000"), None);
        assert_eq!(bucket("localhost"), None);
        assert_eq!(bucket("xs3.example.com"), None);
        assert_eq!(bucket("[::1]:9000"), None);
    }
}
