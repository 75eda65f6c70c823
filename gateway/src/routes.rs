//! Requests on the S3 port that are not S3 operations: the admin API and STS.

use hyper::http::Extensions;
use hyper::{HeaderMap, Method, Uri};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result};

use crate::admin::{self, Admin};

pub struct Routes {
    pub admin: Admin,
    /// Shortest session AssumeRole grants, in seconds.
    pub sts_min_duration_secs: u64,
}

fn is_sts(method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
    method == Method::POST
        && uri.path() == "/"
        && headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

#[async_trait::async_trait]
impl S3Route for Routes {
    fn is_match(&self, method: &Method, uri: &Uri, headers: &HeaderMap, _extensions: &mut Extensions) -> bool {
        let path = uri.path();
        path.starts_with(admin::PREFIX)
            || admin::minio::PREFIXES.iter().any(|p| path.starts_with(p))
            || is_sts(method, uri, headers)
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        if is_sts(&req.method, &req.uri, &req.headers) {
            return Ok(crate::sts::handle(&self.admin.authorizer, self.sts_min_duration_secs, req).await);
        }
        self.admin.call(req).await
    }
}
