//! IAM with the Rust AWS SDK: users and policies made with `coffer admin`, enforced by the
//! gateway; STS sessions requested with a hand-signed AssumeRole.

use std::process::Command;
use std::time::SystemTime;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

use crate::common::{self, ACCESS_KEY, Embedded, SECRET_KEY, error_code};

fn admin(server: &Embedded, args: &[&str]) -> Result<String, String> {
    let output = Command::new(common::coffer_bin())
        .arg("admin")
        .args(args)
        .env("COFFER_ENDPOINT", server.endpoint())
        .env("COFFER_ACCESS_KEY", ACCESS_KEY)
        .env("COFFER_SECRET_KEY", SECRET_KEY)
        .output()
        .expect("run coffer admin");
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Creates a user with `policies`; returns its key pair.
fn add_user(server: &Embedded, name: &str, policies: &[&str]) -> (String, String) {
    let mut args = vec!["user", "add", name, "--json"];
    for p in policies {
        args.extend(["--policy", p]);
    }
    let out = admin(server, &args).expect("user add");
    let v: serde_json::Value = serde_json::from_str(&out).expect("user add --json prints JSON");
    assert_eq!(v["user"], name);
    (v["access_key"].as_str().expect("access_key").into(), v["secret_key"].as_str().expect("secret_key").into())
}

fn client(server: &Embedded, keys: &(String, String)) -> Client {
    common::client_with(&server.endpoint(), &keys.0, &keys.1)
}

/// AssumeRole signed for service `sts`, as the AWS SDKs send it.
fn assume_role(server: &Embedded, keys: &(String, String), form: &str) -> (u16, String) {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let identity = aws_credential_types::Credentials::new(&keys.0, &keys.1, None, None, "test").into();
    let url = format!("{}/", server.endpoint());
    let host = server.addr.to_string();
    let headers = [("host", host.as_str()), ("content-type", "application/x-www-form-urlencoded")];
    let signable = SignableRequest::new("POST", &url, headers.into_iter(), SignableBody::Bytes(form.as_bytes()))
        .expect("signable");
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("sts")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("params")
        .into();
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut request = ureq::post(&url).set("content-type", "application/x-www-form-urlencoded");
    for (name, value) in instructions.headers() {
        request = request.set(name, value);
    }
    match request.send_string(form) {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(status, r)) => (status, r.into_string().unwrap_or_default()),
        Err(e) => panic!("AssumeRole: {e}"),
    }
}

fn element(xml: &str, name: &str) -> String {
    let start = xml.find(&format!("<{name}>")).map(|i| i + name.len() + 2).expect(name);
    let end = start + xml[start..].find(&format!("</{name}>")).expect(name);
    xml[start..end].replace("&amp;", "&")
}

#[test]
fn policies_confine_users_and_sessions() {
    let server = Embedded::start(&[]);
    let rt = common::runtime();
    let root = server.client();
    rt.block_on(async {
        root.create_bucket().bucket("team-a").send().await.expect("create");
        for key in ["shared/plan.txt", "home/alice/notes.txt"] {
            root.put_object()
                .bucket("team-a")
                .key(key)
                .body(ByteStream::from_static(b"data"))
                .send()
                .await
                .expect("put");
        }
    });

    // A read-only user reads and lists; every write is AccessDenied.
    let reader = client(&server, &add_user(&server, "reader", &["readonly"]));
    rt.block_on(async {
        let body = reader.get_object().bucket("team-a").key("shared/plan.txt").send().await.expect("get");
        assert_eq!(body.body.collect().await.expect("body").into_bytes().as_ref(), b"data");
        let listed = reader.list_objects_v2().bucket("team-a").send().await.expect("list");
        assert_eq!(listed.key_count(), Some(2));
        let put = reader.put_object().bucket("team-a").key("x").body(ByteStream::from_static(b"x")).send().await;
        assert_eq!(error_code(put), "AccessDenied");
        assert_eq!(
            error_code(reader.delete_object().bucket("team-a").key("shared/plan.txt").send().await),
            "AccessDenied"
        );
        assert_eq!(error_code(reader.create_bucket().bucket("mine").send().await), "AccessDenied");
    });

    // A user confined to its home folder by a policy variable.
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],
        "Resource":"arn:aws:s3:::team-a/home/${aws:username}/*"}]}"#;
    let file = server.dir.path().join("home.json");
    std::fs::write(&file, policy).expect("policy file");
    admin(&server, &["policy", "create", "home", file.to_str().expect("path")]).expect("policy create");
    let alice_keys = add_user(&server, "alice", &[]);
    admin(&server, &["policy", "attach", "home", "--user", "alice"]).expect("attach");
    let alice = client(&server, &alice_keys);
    rt.block_on(async {
        alice.get_object().bucket("team-a").key("home/alice/notes.txt").send().await.expect("own folder");
        let put = alice.put_object().bucket("team-a").key("home/alice/new").body(ByteStream::from_static(b"n"));
        put.send().await.expect("put in own folder");
        assert_eq!(error_code(alice.get_object().bucket("team-a").key("shared/plan.txt").send().await), "AccessDenied");
        let other = alice.put_object().bucket("team-a").key("home/bob/x").body(ByteStream::from_static(b"x"));
        assert_eq!(error_code(other.send().await), "AccessDenied");
    });

    // Disabling a key rejects it on the next request.
    admin(&server, &["key", "disable", &alice_keys.0]).expect("disable key");
    rt.block_on(async {
        let code = error_code(alice.get_object().bucket("team-a").key("home/alice/notes.txt").send().await);
        assert_eq!(code, "InvalidAccessKeyId");
    });

    // A session narrowed to GetObject on shared/* by its session policy, from a readwrite user.
    let writer_keys = add_user(&server, "writer", &["readwrite"]);
    let session_policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::team-a/shared/*"}]}"#;
    let form = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A000000000000%3Arole%2Fx&RoleSessionName=t&Policy={}",
        percent_encoding::utf8_percent_encode(session_policy, percent_encoding::NON_ALPHANUMERIC)
    );
    let (status, xml) = assume_role(&server, &writer_keys, &form);
    assert_eq!(status, 200, "{xml}");
    let conf = common::config_with(&server.endpoint(), "unused", "unused")
        .credentials_provider(aws_credential_types::Credentials::new(
            element(&xml, "AccessKeyId"),
            element(&xml, "SecretAccessKey"),
            Some(element(&xml, "SessionToken")),
            None,
            "sts",
        ))
        .build();
    let session = Client::from_conf(conf);
    rt.block_on(async {
        session.get_object().bucket("team-a").key("shared/plan.txt").send().await.expect("session read");
        let put = session.put_object().bucket("team-a").key("shared/x").body(ByteStream::from_static(b"x"));
        assert_eq!(error_code(put.send().await), "AccessDenied", "the session policy narrows the user's rights");
    });
    let (status, xml) = assume_role(&server, &writer_keys, "Action=AssumeRole&DurationSeconds=60");
    assert_eq!((status, element(&xml, "Code").as_str()), (400, "ValidationError"), "{xml}");

    // Without admin rights, the admin API refuses.
    let denied = Command::new(common::coffer_bin())
        .args(["admin", "user", "list"])
        .env("COFFER_ENDPOINT", server.endpoint())
        .env("COFFER_ACCESS_KEY", &writer_keys.0)
        .env("COFFER_SECRET_KEY", &writer_keys.1)
        .output()
        .expect("run");
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("AccessDenied"));
}
