//! Object lock (WORM) through the Rust AWS SDK: bucket configuration, retention and legal holds,
//! and the deletes they refuse.

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketVersioningStatus, DefaultRetention, Delete, ObjectIdentifier, ObjectLockConfiguration, ObjectLockEnabled,
    ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
    ObjectLockRule, VersioningConfiguration,
};

use crate::common::*;

fn in_days(days: i64) -> DateTime {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    DateTime::from_secs(secs + days * 86_400)
}

#[test]
fn object_lock_configuration_retention_and_legal_hold() {
    let server = Embedded::start(&[]);
    let s3 = server.client();
    runtime().block_on(async {
        // A bucket without object lock: no configuration, and none can be added.
        s3.create_bucket().bucket("plain").send().await.expect("create plain");
        assert_eq!(
            error_code(s3.get_object_lock_configuration().bucket("plain").send().await),
            "ObjectLockConfigurationNotFoundError"
        );
        let enabled = ObjectLockConfiguration::builder().object_lock_enabled(ObjectLockEnabled::Enabled).build();
        let refused =
            s3.put_object_lock_configuration().bucket("plain").object_lock_configuration(enabled.clone()).send().await;
        assert_eq!(error_code(refused), "InvalidBucketState");
        let with_lock = s3
            .put_object()
            .bucket("plain")
            .key("k")
            .body(ByteStream::from_static(b"x"))
            .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
            .send()
            .await;
        assert_eq!(error_code(with_lock), "InvalidRequest");

        // A lock bucket is versioned, and versioning cannot be suspended.
        s3.create_bucket().bucket("vault").object_lock_enabled_for_bucket(true).send().await.expect("create vault");
        let versioning = s3.get_bucket_versioning().bucket("vault").send().await.expect("versioning");
        assert_eq!(versioning.status(), Some(&BucketVersioningStatus::Enabled));
        let suspend = VersioningConfiguration::builder().status(BucketVersioningStatus::Suspended).build();
        let refused = s3.put_bucket_versioning().bucket("vault").versioning_configuration(suspend).send().await;
        assert_eq!(error_code(refused), "InvalidBucketState");
        let config = s3.get_object_lock_configuration().bucket("vault").send().await.expect("get config");
        let config = config.object_lock_configuration().expect("configuration");
        assert_eq!(config.object_lock_enabled(), Some(&ObjectLockEnabled::Enabled));
        assert!(config.rule().is_none());

        // Default retention: applied to a write that names none.
        let rule = ObjectLockRule::builder()
            .default_retention(DefaultRetention::builder().mode(ObjectLockRetentionMode::Governance).days(1).build())
            .build();
        let with_default =
            ObjectLockConfiguration::builder().object_lock_enabled(ObjectLockEnabled::Enabled).rule(rule).build();
        s3.put_object_lock_configuration()
            .bucket("vault")
            .object_lock_configuration(with_default)
            .send()
            .await
            .expect("put config");
        let got = s3.get_object_lock_configuration().bucket("vault").send().await.expect("get config");
        let retention = got.object_lock_configuration().and_then(|c| c.rule()).and_then(|r| r.default_retention());
        assert_eq!(retention.and_then(|r| r.days()), Some(1));
        let put = s3
            .put_object()
            .bucket("vault")
            .key("doc")
            .body(ByteStream::from_static(b"v1"))
            .send()
            .await
            .expect("put with default");
        let v1 = put.version_id().expect("version").to_string();
        let head = s3.head_object().bucket("vault").key("doc").send().await.expect("head");
        assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Governance));
        let until = head.object_lock_retain_until_date().expect("retain until").secs();
        assert!((until - in_days(1).secs()).abs() < 120, "about a day from now");

        // The locked version cannot be deleted, not even by root; a delete marker is fine.
        let delete = s3.delete_object().bucket("vault").key("doc").version_id(&v1).send().await;
        assert_eq!(error_code(delete), "AccessDenied");
        let marker = s3.delete_object().bucket("vault").key("doc").send().await.expect("delete marker");
        assert_eq!(marker.delete_marker(), Some(true));
        let batch = Delete::builder()
            .objects(ObjectIdentifier::builder().key("doc").version_id(&v1).build().expect("id"))
            .build()
            .expect("delete");
        let multi = s3.delete_objects().bucket("vault").delete(batch.clone()).send().await.expect("delete objects");
        assert_eq!(multi.errors().first().and_then(|e| e.code()), Some("AccessDenied"));

        // GOVERNANCE gives way to the bypass header (root holds every permission).
        let bypassed = s3
            .delete_objects()
            .bucket("vault")
            .delete(batch)
            .bypass_governance_retention(true)
            .send()
            .await
            .expect("bypass");
        assert!(bypassed.errors().is_empty(), "{:?}", bypassed.errors());

        // COMPLIANCE: may be extended, never shortened or removed.
        let put = s3
            .put_object()
            .bucket("vault")
            .key("law")
            .body(ByteStream::from_static(b"kept"))
            .content_md5("TYtghPPRZ7dsrGaiKpG+Ag==")
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(in_days(2))
            .send()
            .await
            .expect("put compliance");
        let law = put.version_id().expect("version").to_string();
        let retention = |mode: ObjectLockRetentionMode, days: i64| {
            ObjectLockRetention::builder().mode(mode).retain_until_date(in_days(days)).build()
        };
        let shorten = s3
            .put_object_retention()
            .bucket("vault")
            .key("law")
            .version_id(&law)
            .retention(retention(ObjectLockRetentionMode::Compliance, 1))
            .bypass_governance_retention(true)
            .send()
            .await;
        assert_eq!(error_code(shorten), "AccessDenied");
        s3.put_object_retention()
            .bucket("vault")
            .key("law")
            .version_id(&law)
            .retention(retention(ObjectLockRetentionMode::Compliance, 3))
            .send()
            .await
            .expect("extend");
        let got = s3.get_object_retention().bucket("vault").key("law").version_id(&law).send().await.expect("get");
        let got = got.retention().expect("retention");
        assert_eq!(got.mode(), Some(&ObjectLockRetentionMode::Compliance));
        assert!((got.retain_until_date().expect("date").secs() - in_days(3).secs()).abs() < 120);
        let delete = s3.delete_object().bucket("vault").key("law").version_id(&law).bypass_governance_retention(true);
        assert_eq!(error_code(delete.send().await), "AccessDenied");

        // Legal hold: blocks the delete until released; the bypass does not lift it.
        s3.put_object().bucket("vault").key("held").body(ByteStream::from_static(b"h")).send().await.expect("put");
        let head = s3.head_object().bucket("vault").key("held").send().await.expect("head");
        let held = head.version_id().expect("version").to_string();
        assert_eq!(
            error_code(s3.get_object_legal_hold().bucket("vault").key("held").send().await),
            "NoSuchObjectLockConfiguration"
        );
        let hold = |status: ObjectLockLegalHoldStatus| ObjectLockLegalHold::builder().status(status).build();
        s3.put_object_legal_hold()
            .bucket("vault")
            .key("held")
            .legal_hold(hold(ObjectLockLegalHoldStatus::On))
            .send()
            .await
            .expect("hold on");
        let got = s3.get_object_legal_hold().bucket("vault").key("held").send().await.expect("get hold");
        assert_eq!(got.legal_hold().and_then(|h| h.status()), Some(&ObjectLockLegalHoldStatus::On));
        let get = s3.get_object().bucket("vault").key("held").send().await.expect("get");
        assert_eq!(get.object_lock_legal_hold_status(), Some(&ObjectLockLegalHoldStatus::On));
        // Remove the default retention this version got, so only the hold protects it.
        s3.put_object_retention()
            .bucket("vault")
            .key("held")
            .version_id(&held)
            .retention(ObjectLockRetention::builder().build())
            .bypass_governance_retention(true)
            .send()
            .await
            .expect("remove governance retention with bypass");
        let delete = s3.delete_object().bucket("vault").key("held").version_id(&held).bypass_governance_retention(true);
        assert_eq!(error_code(delete.send().await), "AccessDenied");
        s3.put_object_legal_hold()
            .bucket("vault")
            .key("held")
            .version_id(&held)
            .legal_hold(hold(ObjectLockLegalHoldStatus::Off))
            .send()
            .await
            .expect("hold off");
        s3.delete_object().bucket("vault").key("held").version_id(&held).send().await.expect("delete released");

        // Lock headers need an integrity check of the body.
        let unchecked_client = aws_sdk_s3::Client::from_conf(
            config_with(&server.endpoint(), ACCESS_KEY, SECRET_KEY)
                .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
                .build(),
        );
        let unchecked = unchecked_client
            .put_object()
            .bucket("vault")
            .key("nocheck")
            .body(ByteStream::from_static(b"x"))
            .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::Off)
            .send()
            .await;
        assert_eq!(error_code(unchecked), "InvalidRequest");
        // A retain-until date in the past is refused.
        let past = s3
            .put_object()
            .bucket("vault")
            .key("past")
            .body(ByteStream::from_static(b"x"))
            .content_md5("ndTkYSaMgDT1yFZOFVxnpg==")
            .object_lock_mode(ObjectLockMode::Governance)
            .object_lock_retain_until_date(in_days(-1))
            .send()
            .await;
        assert_eq!(error_code(past), "InvalidArgument");
    });
}
