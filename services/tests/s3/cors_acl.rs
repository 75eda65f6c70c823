//! CORS (configuration, preflight, headers of actual requests), canned ACLs (and the anonymous
//! access they grant), PublicAccessBlock and ownership controls, through the Rust AWS SDK and
//! plain unsigned HTTP.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketCannedAcl, CorsConfiguration, CorsRule, ObjectCannedAcl, ObjectOwnership, OwnershipControls,
    OwnershipControlsRule, PublicAccessBlockConfiguration, Type,
};

use crate::common::*;

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// An unsigned request: (status, headers as lower-case (name, value), body).
fn raw(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> (u16, Vec<(String, String)>, String) {
    let mut request = ureq::request(method, url);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = match body {
        Some(bytes) => request.send_bytes(bytes),
        None => request.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url} failed: {e}"),
    };
    let status = response.status();
    let names = response.headers_names();
    let headers =
        names.iter().map(|n| (n.to_ascii_lowercase(), response.header(n).unwrap_or_default().to_string())).collect();
    (status, headers, response.into_string().unwrap_or_default())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn code_of(body: &str) -> &str {
    body.split("<Code>").nth(1).and_then(|s| s.split("</Code>").next()).unwrap_or("")
}

fn rule(origins: &[&str], methods: &[&str]) -> aws_sdk_s3::types::builders::CorsRuleBuilder {
    let mut builder = CorsRule::builder();
    for o in origins {
        builder = builder.allowed_origins(*o);
    }
    for m in methods {
        builder = builder.allowed_methods(*m);
    }
    builder
}

fn cors(rules: Vec<CorsRule>) -> CorsConfiguration {
    CorsConfiguration::builder().set_cors_rules(Some(rules)).build().expect("cors configuration")
}

#[test]
fn cors_configuration_preflight_and_actual_requests() {
    let server = Embedded::start(&[]);
    let s3 = server.client();
    let url = |path: &str| format!("{}{path}", server.endpoint());
    let rt = runtime();
    rt.block_on(async {
        s3.create_bucket().bucket("web").send().await.expect("create");
        put_bytes(&s3, "web", "page.html", b"<p>hi</p>".to_vec()).await;
        assert_eq!(error_code(s3.get_bucket_cors().bucket("web").send().await), "NoSuchCORSConfiguration");
        s3.delete_bucket_cors().bucket("web").send().await.expect("delete without configuration");

        // Validation.
        let bad_method = cors(vec![rule(&["*"], &["PATCH"]).build().expect("rule")]);
        let refused = s3.put_bucket_cors().bucket("web").cors_configuration(bad_method).send().await;
        assert_eq!(error_code(refused), "InvalidRequest");
        let two_wildcards = cors(vec![rule(&["http://*.*.example"], &["GET"]).build().expect("rule")]);
        let refused = s3.put_bucket_cors().bucket("web").cors_configuration(two_wildcards).send().await;
        assert_eq!(error_code(refused), "InvalidRequest");
        let too_many: Vec<CorsRule> = (0..101).map(|_| rule(&["*"], &["GET"]).build().expect("rule")).collect();
        let refused = s3.put_bucket_cors().bucket("web").cors_configuration(cors(too_many)).send().await;
        assert_eq!(error_code(refused), "MalformedXML");
        let missing = s3.put_bucket_cors().bucket("nope").cors_configuration(cors(vec![])).send().await;
        assert!(missing.is_err());

        let config = cors(vec![
            rule(&["https://*.app.example"], &["GET", "PUT"])
                .allowed_headers("x-amz-*")
                .allowed_headers("Content-Type")
                .expose_headers("ETag")
                .max_age_seconds(600)
                .build()
                .expect("rule"),
            rule(&["*"], &["HEAD"]).build().expect("rule"),
        ]);
        s3.put_bucket_cors().bucket("web").cors_configuration(config).send().await.expect("put cors");
        let got = s3.get_bucket_cors().bucket("web").send().await.expect("get cors");
        assert_eq!(got.cors_rules().len(), 2);
        assert_eq!(got.cors_rules()[0].allowed_methods(), ["GET", "PUT"]);
        assert_eq!(got.cors_rules()[0].allowed_headers(), ["x-amz-*", "Content-Type"]);
        assert_eq!(got.cors_rules()[0].max_age_seconds(), Some(600));
    });

    // Preflights (unsigned).
    let (status, _, body) = raw("OPTIONS", &url("/web/page.html"), &[("Access-Control-Request-Method", "GET")], None);
    assert_eq!((status, code_of(&body)), (400, "BadRequest"), "{body}");
    let origin = ("Origin", "https://www.app.example");
    let (status, headers, body) = raw(
        "OPTIONS",
        &url("/web/page.html"),
        &[
            origin,
            ("Access-Control-Request-Method", "PUT"),
            ("Access-Control-Request-Headers", "X-Amz-Date, content-type"),
        ],
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("https://www.app.example"));
    assert_eq!(header(&headers, "access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(header(&headers, "access-control-allow-headers"), Some("x-amz-date, content-type"));
    assert_eq!(header(&headers, "access-control-max-age"), Some("600"));
    assert_eq!(header(&headers, "access-control-expose-headers"), Some("ETag"));
    assert_eq!(header(&headers, "access-control-allow-credentials"), Some("true"));
    assert!(header(&headers, "vary").is_some_and(|v| v.starts_with("Origin")));
    for denied in [
        vec![origin, ("Access-Control-Request-Method", "DELETE")],
        vec![("Origin", "https://evil.example"), ("Access-Control-Request-Method", "GET")],
        vec![origin, ("Access-Control-Request-Method", "GET"), ("Access-Control-Request-Headers", "authorization")],
    ] {
        let (status, headers, body) = raw("OPTIONS", &url("/web/page.html"), &denied, None);
        assert_eq!((status, code_of(&body)), (403, "AccessForbidden"), "{denied:?}: {body}");
        assert!(body.contains("CORSResponse: This CORS request is not allowed"), "{body}");
        assert!(header(&headers, "access-control-allow-origin").is_none());
    }
    // Any origin: `*`, without credentials.
    let (status, headers, _) =
        raw("OPTIONS", &url("/web"), &[("Origin", "http://x.test"), ("Access-Control-Request-Method", "HEAD")], None);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&headers, "access-control-allow-credentials"), None);
    // No bucket, no configuration.
    let preflight = [("Origin", "http://x.test"), ("Access-Control-Request-Method", "GET")];
    let (status, _, body) = raw("OPTIONS", &url("/nope/k"), &preflight, None);
    assert_eq!(status, 403);
    assert!(body.contains("CORSResponse: Bucket not found"), "{body}");

    // Actual requests: the headers come with the answer, errors included.
    let (status, headers, _) = raw("GET", &url("/web/page.html"), &[origin], None);
    assert_eq!(status, 403, "unsigned and private");
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("https://www.app.example"));
    assert_eq!(header(&headers, "access-control-expose-headers"), Some("ETag"));
    let (_, headers, _) = raw("GET", &url("/web/page.html"), &[("Origin", "https://evil.example")], None);
    assert_eq!(header(&headers, "access-control-allow-origin"), None);
    let (_, headers, _) = raw("DELETE", &url("/web/page.html"), &[origin], None);
    assert_eq!(header(&headers, "access-control-allow-origin"), None, "DELETE is not allowed");

    rt.block_on(async {
        s3.delete_bucket_cors().bucket("web").send().await.expect("delete cors");
        assert_eq!(error_code(s3.get_bucket_cors().bucket("web").send().await), "NoSuchCORSConfiguration");
    });
    let (status, _, body) = raw("OPTIONS", &url("/web/page.html"), &preflight, None);
    assert_eq!(status, 403);
    assert!(body.contains("CORSResponse: CORS is not enabled for this bucket."), "{body}");
}

#[test]
fn canned_acls_are_shown_and_enforced() {
    let server = Embedded::start(&[]);
    let s3 = server.client();
    let url = |path: &str| format!("{}{path}", server.endpoint());
    let rt = runtime();
    rt.block_on(async {
        s3.create_bucket().bucket("pub").acl(BucketCannedAcl::PublicRead).send().await.expect("create public-read");
        let acl = s3.get_bucket_acl().bucket("pub").send().await.expect("bucket acl");
        let owner_id = acl.owner().and_then(|o| o.id()).expect("owner id").to_string();
        let grants: Vec<_> = acl
            .grants()
            .iter()
            .map(|g| {
                let grantee = g.grantee().expect("grantee");
                (
                    grantee.r#type().clone(),
                    grantee.uri().or(grantee.id()).unwrap_or_default().to_string(),
                    g.permission().map(|p| p.as_str().to_string()).unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            grants,
            [
                (Type::CanonicalUser, owner_id.clone(), "FULL_CONTROL".to_string()),
                (Type::Group, ALL_USERS.to_string(), "READ".to_string()),
            ]
        );
        s3.put_object()
            .bucket("pub")
            .key("open.txt")
            .acl(ObjectCannedAcl::PublicRead)
            .body(ByteStream::from_static(b"open"))
            .send()
            .await
            .expect("put public-read");
        put_bytes(&s3, "pub", "closed.txt", b"closed".to_vec()).await;
        let acl = s3.get_object_acl().bucket("pub").key("open.txt").send().await.expect("object acl");
        assert_eq!(acl.grants().len(), 2);
        assert_eq!(acl.grants()[1].grantee().and_then(|g| g.uri()), Some(ALL_USERS));
        let acl = s3.get_object_acl().bucket("pub").key("closed.txt").send().await.expect("object acl");
        assert_eq!(acl.grants().len(), 1, "private: the owner only");
        assert_eq!(
            error_code(
                s3.put_object_acl().bucket("pub").key("open.txt").acl(ObjectCannedAcl::from("world")).send().await
            ),
            "InvalidArgument"
        );
        assert_eq!(error_code(s3.get_object_acl().bucket("pub").key("none").send().await), "NoSuchKey");
    });

    // Anonymous: the object ACL opens objects, the bucket ACL opens the listing.
    let (status, _, body) = raw("GET", &url("/pub/open.txt"), &[], None);
    assert_eq!((status, body.as_str()), (200, "open"));
    assert_eq!(raw("HEAD", &url("/pub/open.txt"), &[], None).0, 200);
    assert_eq!(raw("GET", &url("/pub/closed.txt"), &[], None).0, 403);
    let (status, _, body) = raw("GET", &url("/pub/missing"), &[], None);
    assert_eq!((status, code_of(&body)), (404, "NoSuchKey"), "the bucket may be listed, so a miss is no secret");
    let (status, _, body) = raw("GET", &url("/pub?list-type=2"), &[], None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<Key>closed.txt</Key>"));
    assert_eq!(raw("PUT", &url("/pub/new"), &[], Some(b"x")).0, 403, "public-read writes nothing");

    rt.block_on(async {
        s3.put_object_acl().bucket("pub").key("open.txt").acl(ObjectCannedAcl::Private).send().await.expect("private");
        s3.put_bucket_acl().bucket("pub").acl(BucketCannedAcl::Private).send().await.expect("private bucket");
    });
    assert_eq!(raw("GET", &url("/pub/open.txt"), &[], None).0, 403);
    assert_eq!(raw("GET", &url("/pub?list-type=2"), &[], None).0, 403);
    assert_eq!(raw("GET", &url("/pub/missing"), &[], None).0, 403, "no listing: a miss is a 403");

    // public-read-write: anonymous writes and deletes.
    rt.block_on(async {
        s3.put_bucket_acl().bucket("pub").acl(BucketCannedAcl::PublicReadWrite).send().await.expect("rw");
        let acl = s3.get_bucket_acl().bucket("pub").send().await.expect("bucket acl");
        assert_eq!(acl.grants().len(), 3);
    });
    assert_eq!(raw("PUT", &url("/pub/anon.txt"), &[], Some(b"by anyone")).0, 200);
    rt.block_on(async {
        assert_eq!(get_bytes(&s3, "pub", "anon.txt").await, b"by anyone");
        let acl = s3.get_object_acl().bucket("pub").key("anon.txt").send().await.expect("acl");
        assert_eq!(acl.grants().len(), 1, "a new object is private");
    });
    assert_eq!(raw("DELETE", &url("/pub/anon.txt"), &[], None).0, 204);

    // Versions: an ACL on one version.
    rt.block_on(async {
        use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
        let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
        s3.put_bucket_versioning().bucket("pub").versioning_configuration(enabled).send().await.expect("versioning");
        let v1 = put_bytes(&s3, "pub", "v.txt", b"one".to_vec()).await;
        assert!(!v1.is_empty());
        let first = s3.list_object_versions().bucket("pub").prefix("v.txt").send().await.expect("versions");
        let v1_id = first.versions()[0].version_id().expect("id").to_string();
        put_bytes(&s3, "pub", "v.txt", b"two".to_vec()).await;
        s3.put_object_acl()
            .bucket("pub")
            .key("v.txt")
            .version_id(&v1_id)
            .acl(ObjectCannedAcl::PublicRead)
            .send()
            .await
            .expect("version acl");
        let acl = s3.get_object_acl().bucket("pub").key("v.txt").version_id(&v1_id).send().await.expect("acl");
        assert_eq!(acl.grants().len(), 2);
        let current = s3.get_object_acl().bucket("pub").key("v.txt").send().await.expect("acl");
        assert_eq!(current.grants().len(), 1);
        assert_eq!(
            error_code(
                s3.put_object_acl()
                    .bucket("pub")
                    .key("v.txt")
                    .version_id("nope")
                    .acl(ObjectCannedAcl::Private)
                    .send()
                    .await
            ),
            "InvalidArgument",
            "AWS: a malformed version id"
        );
        // AccessControlPolicy bodies that a canned ACL expresses are accepted.
        use aws_sdk_s3::types::{AccessControlPolicy, Grant, Grantee, Owner, Permission};
        let group = |uri: &str, p: Permission| {
            Grant::builder()
                .grantee(Grantee::builder().r#type(Type::Group).uri(uri).build().expect("grantee"))
                .permission(p)
                .build()
        };
        let owner = Owner::builder().id(acl.owner().and_then(|o| o.id()).unwrap_or_default()).build();
        let policy = AccessControlPolicy::builder()
            .owner(owner.clone())
            .grants(group(AUTHENTICATED_USERS, Permission::Read))
            .build();
        s3.put_object_acl().bucket("pub").key("v.txt").access_control_policy(policy).send().await.expect("body acl");
        let acl = s3.get_object_acl().bucket("pub").key("v.txt").send().await.expect("acl");
        assert_eq!(acl.grants()[1].grantee().and_then(|g| g.uri()), Some(AUTHENTICATED_USERS));
        let odd = AccessControlPolicy::builder().owner(owner).grants(group(ALL_USERS, Permission::WriteAcp)).build();
        assert_eq!(
            error_code(s3.put_object_acl().bucket("pub").key("v.txt").access_control_policy(odd).send().await),
            "NotImplemented"
        );
    });
    // authenticated-read: no anonymous reads.
    assert_eq!(raw("GET", &url("/pub/v.txt"), &[], None).0, 403);
}

#[test]
fn public_access_block_and_ownership_controls() {
    let server = Embedded::start(&[]);
    let s3 = server.client();
    let url = |path: &str| format!("{}{path}", server.endpoint());
    let rt = runtime();
    let public_policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::blocked/*"}]}"#;
    rt.block_on(async {
        s3.create_bucket().bucket("blocked").send().await.expect("create");
        s3.put_object()
            .bucket("blocked")
            .key("k")
            .acl(ObjectCannedAcl::PublicRead)
            .body(ByteStream::from_static(b"v"))
            .send()
            .await
            .expect("put");
        assert_eq!(
            error_code(s3.get_public_access_block().bucket("blocked").send().await),
            "NoSuchPublicAccessBlockConfiguration"
        );
    });
    assert_eq!(raw("GET", &url("/blocked/k"), &[], None).0, 200);

    let set = |c: PublicAccessBlockConfiguration| {
        rt.block_on(async {
            s3.put_public_access_block()
                .bucket("blocked")
                .public_access_block_configuration(c)
                .send()
                .await
                .expect("put public access block")
        });
    };
    set(PublicAccessBlockConfiguration::builder().ignore_public_acls(true).build());
    assert_eq!(raw("GET", &url("/blocked/k"), &[], None).0, 403, "IgnorePublicAcls");
    rt.block_on(async {
        let got = s3.get_public_access_block().bucket("blocked").send().await.expect("get");
        let c = got.public_access_block_configuration().expect("configuration");
        assert_eq!(
            (c.block_public_acls(), c.ignore_public_acls(), c.block_public_policy(), c.restrict_public_buckets()),
            (Some(false), Some(true), Some(false), Some(false))
        );
    });

    set(PublicAccessBlockConfiguration::builder().block_public_acls(true).block_public_policy(true).build());
    assert_eq!(raw("GET", &url("/blocked/k"), &[], None).0, 200, "existing public ACLs still count");
    rt.block_on(async {
        let refused = s3.put_object_acl().bucket("blocked").key("k").acl(ObjectCannedAcl::PublicRead).send().await;
        assert_eq!(error_code(refused), "AccessDenied");
        let refused = s3
            .put_object()
            .bucket("blocked")
            .key("k2")
            .acl(ObjectCannedAcl::PublicReadWrite)
            .body(ByteStream::from_static(b"v"))
            .send()
            .await;
        assert_eq!(error_code(refused), "AccessDenied");
        let refused = s3.put_bucket_acl().bucket("blocked").acl(BucketCannedAcl::AuthenticatedRead).send().await;
        assert_eq!(error_code(refused), "AccessDenied");
        s3.put_object_acl().bucket("blocked").key("k").acl(ObjectCannedAcl::Private).send().await.expect("private ok");
        s3.put_object_acl()
            .bucket("blocked")
            .key("k")
            .acl(ObjectCannedAcl::PublicRead)
            .send()
            .await
            .expect_err("blocked");
        let refused = s3.put_bucket_policy().bucket("blocked").policy(public_policy).send().await;
        assert_eq!(error_code(refused), "AccessDenied");
        let pinned = public_policy
            .replace(r#""Resource""#, r#""Condition":{"IpAddress":{"aws:SourceIp":"127.0.0.1/32"}},"Resource""#);
        s3.put_bucket_policy().bucket("blocked").policy(pinned).send().await.expect("a pinned policy is not public");
    });
    assert_eq!(raw("GET", &url("/blocked/k"), &[], None).0, 200, "the pinned policy serves 127.0.0.1");

    set(PublicAccessBlockConfiguration::builder().restrict_public_buckets(true).build());
    assert_eq!(raw("GET", &url("/blocked/k"), &[], None).0, 200, "RestrictPublicBuckets spares non-public policies");
    rt.block_on(async {
        s3.put_bucket_policy().bucket("blocked").policy(public_policy).send().await.expect("public policy");
    });
    assert_eq!(raw("GET", &url("/blocked/k"), &[], None).0, 403, "RestrictPublicBuckets");
    rt.block_on(async {
        assert!(get_bytes(&s3, "blocked", "k").await == b"v", "signed requests are unaffected");
        s3.delete_public_access_block().bucket("blocked").send().await.expect("delete");
        assert_eq!(
            error_code(s3.get_public_access_block().bucket("blocked").send().await),
            "NoSuchPublicAccessBlockConfiguration"
        );
    });
    assert_eq!(raw("GET", &url("/blocked/k"), &[], None).0, 200);

    // Ownership controls: BucketOwnerEnforced turns ACLs off.
    rt.block_on(async {
        s3.delete_bucket_policy().bucket("blocked").send().await.expect("delete policy");
        s3.put_object_acl().bucket("blocked").key("k").acl(ObjectCannedAcl::PublicRead).send().await.expect("public");
        assert_eq!(
            error_code(s3.get_bucket_ownership_controls().bucket("blocked").send().await),
            "OwnershipControlsNotFoundError"
        );
        let enforced = OwnershipControls::builder()
            .rules(
                OwnershipControlsRule::builder()
                    .object_ownership(ObjectOwnership::BucketOwnerEnforced)
                    .build()
                    .expect("rule"),
            )
            .build()
            .expect("controls");
        s3.put_bucket_ownership_controls().bucket("blocked").ownership_controls(enforced).send().await.expect("put");
    });
    assert_eq!(raw("GET", &url("/blocked/k"), &[], None).0, 403, "ACLs grant nothing");
    rt.block_on(async {
        let got = s3.get_bucket_ownership_controls().bucket("blocked").send().await.expect("get");
        assert_eq!(
            got.ownership_controls().map(|c| c.rules()[0].object_ownership().clone()),
            Some(ObjectOwnership::BucketOwnerEnforced)
        );
        let refused = s3.put_object_acl().bucket("blocked").key("k").acl(ObjectCannedAcl::PublicRead).send().await;
        assert_eq!(error_code(refused), "AccessControlListNotSupported");
        s3.put_object_acl().bucket("blocked").key("k").acl(ObjectCannedAcl::Private).send().await.expect("private ok");
    });
    rt.block_on(async {
        s3.delete_bucket_ownership_controls().bucket("blocked").send().await.expect("delete");
        assert_eq!(
            error_code(s3.get_bucket_ownership_controls().bucket("blocked").send().await),
            "OwnershipControlsNotFoundError"
        );
    });
}
