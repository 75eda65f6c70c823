//! Whole policies: parsing, round trips, and decisions over several statements and policies.

use super::*;

fn alice() -> PrincipalId {
    PrincipalId::user("123456789012", "alice", "AKIAALICE")
}

fn bob() -> PrincipalId {
    PrincipalId::user("123456789012", "bob", "AKIABOB")
}

fn as_alice(action: &str, resource: &str) -> RequestContext {
    RequestContext::new(action, resource).with_principal(alice())
}

fn as_bob(action: &str, resource: &str) -> RequestContext {
    RequestContext::new(action, resource).with_principal(bob())
}

fn parse(text: &str) -> Policy {
    Policy::parse(text).unwrap_or_else(|err| panic!("{err}\n{text}"))
}

#[test]
fn statement_may_be_an_object_or_an_array() {
    let single = parse(r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#);
    let list = parse(
        r#"{"Version":"2012-10-17","Id":"p1","Statement":[
            {"Sid":"one","Effect":"Allow","Action":"s3:GetObject","Resource":"*"},
            {"Sid":"two","Effect":"Deny","Action":["s3:PutObject"],"Resource":["arn:aws:s3:::b/*"]}]}"#,
    );
    assert_eq!(single.statements().len(), 1);
    assert_eq!(single.version(), None);
    assert_eq!(list.version(), Some(CURRENT_VERSION));
    assert_eq!(list.id(), Some("p1"));
    assert_eq!(list.statements()[1].sid(), Some("two"));
    assert_eq!(list.statements()[1].effect(), Effect::Deny);
    assert!(!list.statements()[0].has_principal());
    assert!(
        parse(r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#)
            .statements()[0]
            .sid()
            .is_none()
    );
}

#[test]
fn round_trips_through_serde_as_written() {
    let text = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Public","Effect":"Allow","Principal":"*","Action":["s3:GetObject"],"Resource":"arn:aws:s3:::www/*","Condition":{"NumericLessThan":{"s3:max-keys":10},"Bool":{"aws:SecureTransport":true}}}]}"#;
    let policy = parse(text);
    assert_eq!(policy.to_json(), text);
    assert_eq!(serde_json::to_string(&policy).unwrap(), text);
    let again: Policy = serde_json::from_str(&policy.to_json()).unwrap();
    assert_eq!(again, policy);
    let pretty = serde_json::to_string_pretty(&policy).unwrap();
    assert_eq!(parse(&pretty), policy);
    assert!(serde_json::from_str::<Policy>(r#"{"Statement":[]}"#).is_err());
}

#[test]
fn malformed_policies_are_refused_with_a_reason() {
    let allow = r#""Effect":"Allow","Action":"s3:GetObject","Resource":"*""#;
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "not valid JSON"),
        ("[]".into(), "policy must be a JSON object"),
        (r#"{"Version":"2012-10-17"}"#.into(), "missing required field Statement"),
        (r#"{"Statement":[]}"#.into(), "no statements"),
        (r#"{"Version":"2020-01-01","Statement":[]}"#.into(), "Version \"2020-01-01\" is not supported"),
        (r#"{"Version":20121017,"Statement":[]}"#.into(), "Version must be a string"),
        (format!(r#"{{"Statement":{{{allow}}},"Extra":1}}"#), "unknown field \"Extra\""),
        (format!(r#"{{"Statement":{{{allow},"Effects":"Deny"}}}}"#), "unknown field \"Effects\""),
        (format!(r#"{{"Statement":{{{allow},"effect":"Deny"}}}}"#), "unknown field \"effect\""),
        (r#"{"Statement":{"Effect":"Allow","Effect":"Deny"}}"#.into(), "duplicate key \"Effect\""),
        (r#"{"Statement":["x"]}"#.into(), "Statement must be an object"),
        (r#"{"Statement":{"Action":"s3:GetObject","Resource":"*"}}"#.into(), "missing required field Effect"),
        (r#"{"Statement":{"Effect":"allow","Action":"s3:GetObject","Resource":"*"}}"#.into(), "\"allow\""),
        (r#"{"Statement":{"Effect":true,"Action":"s3:GetObject","Resource":"*"}}"#.into(), "Effect must be"),
        (r#"{"Statement":{"Effect":"Allow","Resource":"*"}}"#.into(), "either Action or NotAction"),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","NotAction":"s3:PutObject","Resource":"*"}}"#.into(),
            "Action and NotAction cannot both",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","NotResource":"*"}}"#.into(),
            "Resource and NotResource cannot both",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"s3:*","Resource":"*"}}"#
                .into(),
            "Principal and NotPrincipal cannot both",
        ),
        (r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject"}}"#.into(), "either Resource or NotResource"),
        (r#"{"Statement":{"Effect":"Allow","Action":"*"}}"#.into(), "either Resource or NotResource"),
        (r#"{"Statement":{"Effect":"Allow","Action":"GetObject","Resource":"*"}}"#.into(), "invalid action"),
        (r#"{"Statement":{"Effect":"Allow","Action":"s3:Get Object","Resource":"*"}}"#.into(), "invalid action"),
        (r#"{"Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}"#.into(), "non-empty list of actions"),
        (r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"bucket/*"}}"#.into(), "invalid resource"),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":"alice","Action":"s3:*","Resource":"*"}}"#.into(),
            "Principal must be",
        ),
        (
            format!(r#"{{"Statement":{{{allow},"Condition":{{"StringEqualz":{{"s3:prefix":"a"}}}}}}}}"#),
            "unknown condition operator \"StringEqualz\"",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/${aws:username"}}"#.into(),
            "invalid policy variable",
        ),
        (format!(r#"{{"Statement":{{{allow},"Sid":7}}}}"#), "Sid must be a string"),
        (
            format!(r#"{{"Statement":[{{{allow}}},{{"Sid":"Second","Effect":"Maybe","Action":"s3:*","Resource":"*"}}]}}"#),
            "statement 2 (Sid \"Second\"): Effect must be",
        ),
    ];
    for (text, expected) in &cases {
        match Policy::parse(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(err) => assert!(err.to_string().contains(expected), "{text}\n  gave: {err}\n  wanted: {expected}"),
        }
    }
}

#[test]
fn admin_statements_may_omit_resource() {
    let policy = parse(r#"{"Statement":{"Effect":"Allow","Action":["admin:*","sts:AssumeRole"]}}"#);
    assert_eq!(policy.evaluate(&as_alice("admin:ServerInfo", "*")), Decision::Allow);
    assert_eq!(policy.evaluate(&as_alice("s3:GetObject", "arn:aws:s3:::b/k")), Decision::NotApplicable);
}

#[test]
fn identity_and_resource_kinds() {
    let with_principal = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}}"#;
    let without = r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#;
    let identity = |text| Policy::parse_as(text, PolicyKind::Identity);
    let resource = |text| Policy::parse_as(text, PolicyKind::Resource);
    assert!(identity(without).is_ok());
    assert!(resource(with_principal).is_ok());
    assert!(
        matches!(identity(with_principal), Err(PolicyError::InStatement { source, .. }) if *source == PolicyError::PrincipalNotAllowed)
    );
    assert!(
        matches!(resource(without), Err(PolicyError::InStatement { source, .. }) if *source == PolicyError::PrincipalRequired)
    );
    assert!(Policy::parse(with_principal).is_ok() && Policy::parse(without).is_ok());
}

#[test]
fn policy_variables_confine_users_to_their_home() {
    let policy = parse(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::team-a",
             "Condition":{"StringLike":{"s3:prefix":["home/${aws:username}/*"]}}},
            {"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],
             "Resource":"arn:aws:s3:::team-a/home/${aws:username}/*"}]}"#,
    );
    let cases = [
        (as_alice("s3:GetObject", "arn:aws:s3:::team-a/home/alice/cv.pdf"), Decision::Allow),
        (as_alice("s3:PutObject", "arn:aws:s3:::team-a/home/alice/sub/dir/x"), Decision::Allow),
        (as_alice("s3:GetObject", "arn:aws:s3:::team-a/home/bob/cv.pdf"), Decision::NotApplicable),
        (as_alice("s3:GetObject", "arn:aws:s3:::team-a/home/alice"), Decision::NotApplicable),
        (as_alice("s3:GetObject", "arn:aws:s3:::team-b/home/alice/cv.pdf"), Decision::NotApplicable),
        (as_bob("s3:GetObject", "arn:aws:s3:::team-a/home/bob/cv.pdf"), Decision::Allow),
        (as_bob("s3:GetObject", "arn:aws:s3:::team-a/home/alice/cv.pdf"), Decision::NotApplicable),
        (as_alice("s3:ListBucket", "arn:aws:s3:::team-a").with_value("s3:prefix", "home/alice/"), Decision::Allow),
        (
            as_alice("s3:ListBucket", "arn:aws:s3:::team-a").with_value("s3:prefix", "home/bob/"),
            Decision::NotApplicable,
        ),
        (as_alice("s3:ListBucket", "arn:aws:s3:::team-a"), Decision::NotApplicable),
        // Anonymous callers have no user name, so the variable matches nothing.
        (RequestContext::new("s3:GetObject", "arn:aws:s3:::team-a/home//x"), Decision::NotApplicable),
    ];
    for (ctx, expected) in cases {
        assert_eq!(policy.evaluate(&ctx), expected, "{} on {}", ctx.action(), ctx.resource());
    }
}

#[test]
fn variables_are_plain_text_without_the_2012_version() {
    let policy = parse(
        r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:username}/*"}}"#,
    );
    assert_eq!(policy.evaluate(&as_alice("s3:GetObject", "arn:aws:s3:::b/alice/x")), Decision::NotApplicable);
    assert_eq!(policy.evaluate(&as_alice("s3:GetObject", "arn:aws:s3:::b/${aws:username}/x")), Decision::Allow);
}

#[test]
fn deny_outside_home_keeps_denying_callers_without_a_name() {
    let policy = parse(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"},
            {"Effect":"Deny","Principal":"*","Action":"s3:GetObject","NotResource":"arn:aws:s3:::b/${aws:username}/*"}]}"#,
    );
    assert_eq!(policy.evaluate(&as_alice("s3:GetObject", "arn:aws:s3:::b/alice/x")), Decision::Allow);
    assert_eq!(policy.evaluate(&as_alice("s3:GetObject", "arn:aws:s3:::b/bob/x")), Decision::ExplicitDeny);
    let anonymous = RequestContext::new("s3:GetObject", "arn:aws:s3:::b/alice/x");
    assert_eq!(policy.evaluate(&anonymous), Decision::ExplicitDeny);
}

#[test]
fn deny_wins_within_a_policy_and_across_policies() {
    let allow_all = parse(r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::*"}}"#);
    let deny_secret =
        parse(r#"{"Statement":{"Effect":"Deny","Action":"s3:Get*","Resource":"arn:aws:s3:::vault/secret/*"}}"#);
    let unrelated = parse(r#"{"Statement":{"Effect":"Allow","Action":"admin:*"}}"#);
    let both = parse(
        r#"{"Statement":[
            {"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::*"},
            {"Effect":"Deny","Action":"s3:Get*","Resource":"arn:aws:s3:::vault/secret/*"}]}"#,
    );
    let secret = as_alice("s3:GetObject", "arn:aws:s3:::vault/secret/plans");
    let public = as_alice("s3:GetObject", "arn:aws:s3:::vault/public/readme");
    assert_eq!(both.evaluate(&secret), Decision::ExplicitDeny);
    assert_eq!(both.evaluate(&public), Decision::Allow);
    assert_eq!(evaluate_all([&allow_all, &deny_secret, &unrelated], &secret), Decision::ExplicitDeny);
    assert_eq!(evaluate_all([&deny_secret, &allow_all], &secret), Decision::ExplicitDeny);
    assert_eq!(evaluate_all([&allow_all, &deny_secret], &public), Decision::Allow);
    assert_eq!(evaluate_all([&unrelated, &deny_secret], &public), Decision::NotApplicable);
    assert_eq!(evaluate_all(&[allow_all.clone(), unrelated.clone()], &public), Decision::Allow);
    assert_eq!(evaluate_all(std::iter::empty(), &public), Decision::NotApplicable);
    assert!(Decision::Allow.is_allowed() && !Decision::ExplicitDeny.is_allowed());
    assert!(!Decision::NotApplicable.is_allowed());
}

#[test]
fn not_action_covers_everything_else() {
    let policy = parse(
        r#"{"Statement":[
            {"Effect":"Allow","NotAction":["s3:Delete*","s3:PutBucketPolicy"],"Resource":"arn:aws:s3:::*"}]}"#,
    );
    assert_eq!(policy.evaluate(&as_alice("s3:GetObject", "arn:aws:s3:::b/k")), Decision::Allow);
    assert_eq!(policy.evaluate(&as_alice("s3:PutObject", "arn:aws:s3:::b/k")), Decision::Allow);
    assert_eq!(policy.evaluate(&as_alice("s3:DeleteObject", "arn:aws:s3:::b/k")), Decision::NotApplicable);
    assert_eq!(policy.evaluate(&as_alice("s3:deletebucket", "arn:aws:s3:::b")), Decision::NotApplicable);
    assert_eq!(policy.evaluate(&as_alice("s3:PutBucketPolicy", "arn:aws:s3:::b")), Decision::NotApplicable);
}

#[test]
fn not_resource_covers_everything_else() {
    let policy = parse(
        r#"{"Statement":[
            {"Effect":"Deny","Action":"s3:*","NotResource":["arn:aws:s3:::shared","arn:aws:s3:::shared/*"]},
            {"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
    );
    assert_eq!(policy.evaluate(&as_alice("s3:GetObject", "arn:aws:s3:::shared/k")), Decision::Allow);
    assert_eq!(policy.evaluate(&as_alice("s3:ListBucket", "arn:aws:s3:::shared")), Decision::Allow);
    assert_eq!(policy.evaluate(&as_alice("s3:GetObject", "arn:aws:s3:::private/k")), Decision::ExplicitDeny);
    assert_eq!(policy.evaluate(&as_alice("s3:ListAllMyBuckets", "*")), Decision::ExplicitDeny);
}

#[test]
fn principal_forms_in_bucket_policies() {
    let bucket_policy = |principal: &str| {
        let text = format!(
            r#"{{"Statement":{{"Effect":"Allow","Principal":{principal},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}}}"#
        );
        Policy::parse_as(&text, PolicyKind::Resource).unwrap_or_else(|err| panic!("{err}"))
    };
    let anonymous = RequestContext::new("s3:GetObject", "arn:aws:s3:::b/k");
    let as_alice = as_alice("s3:GetObject", "arn:aws:s3:::b/k");
    let as_bob = as_bob("s3:GetObject", "arn:aws:s3:::b/k");
    let stranger = RequestContext::new("s3:GetObject", "arn:aws:s3:::b/k").with_principal(PrincipalId::user(
        "999999999999",
        "eve",
        "AKIAEVE",
    ));
    let cases = [
        (r#""*""#, [true, true, true, true]),
        (r#"{"AWS":"*"}"#, [true, true, true, true]),
        (r#"{"AWS":"arn:aws:iam::123456789012:user/alice"}"#, [false, true, false, false]),
        (r#"{"AWS":["arn:aws:iam::123456789012:user/alice","bob"]}"#, [false, true, true, false]),
        (r#"{"AWS":"alice"}"#, [false, true, false, false]),
        (r#"{"AWS":"AKIABOB"}"#, [false, false, true, false]),
        (r#"{"AWS":"123456789012"}"#, [false, true, true, false]),
        (r#"{"AWS":"arn:aws:iam::999999999999:root"}"#, [false, false, false, true]),
        (r#"{"CanonicalUser":"*"}"#, [true, true, true, true]),
    ];
    for (principal, expected) in cases {
        let policy = bucket_policy(principal);
        let got = [&anonymous, &as_alice, &as_bob, &stranger].map(|ctx| policy.evaluate(ctx).is_allowed());
        assert_eq!(got, expected, "Principal {principal} for [anonymous, alice, bob, eve]");
    }
}

#[test]
fn not_principal_denies_everyone_else() {
    let policy = Policy::parse_as(
        r#"{"Statement":[
            {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"},
            {"Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::123456789012:user/alice"]},
             "Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#,
        PolicyKind::Resource,
    )
    .unwrap();
    assert_eq!(policy.evaluate(&as_alice("s3:GetObject", "arn:aws:s3:::b/k")), Decision::Allow);
    assert_eq!(policy.evaluate(&as_bob("s3:GetObject", "arn:aws:s3:::b/k")), Decision::ExplicitDeny);
    assert_eq!(policy.evaluate(&RequestContext::new("s3:GetObject", "arn:aws:s3:::b/k")), Decision::ExplicitDeny);
}

#[test]
fn wildcards_in_action_and_resource() {
    let policy = parse(
        r#"{"Statement":{"Effect":"Allow","Action":["s3:Get*","s3:List?ucket"],
            "Resource":["arn:aws:s3:::logs-20??","arn:aws:s3:::logs-20??/*"]}}"#,
    );
    let cases = [
        ("s3:GetObject", "arn:aws:s3:::logs-2024/app/x.log", Decision::Allow),
        ("S3:GETOBJECT", "arn:aws:s3:::logs-2024/x", Decision::Allow),
        ("s3:GetObjectTagging", "arn:aws:s3:::logs-2099/x", Decision::Allow),
        ("s3:ListBucket", "arn:aws:s3:::logs-2024", Decision::Allow),
        ("s3:ListBuckets", "arn:aws:s3:::logs-2024", Decision::NotApplicable),
        ("s3:GetObject", "arn:aws:s3:::logs-202/x", Decision::NotApplicable),
        ("s3:GetObject", "arn:aws:s3:::LOGS-2024/x", Decision::NotApplicable),
        ("s3:PutObject", "arn:aws:s3:::logs-2024/x", Decision::NotApplicable),
    ];
    for (action, resource, expected) in cases {
        assert_eq!(policy.evaluate(&as_alice(action, resource)), expected, "{action} on {resource}");
    }
}

#[test]
fn conditions_gate_statements() {
    let policy = parse(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::www/*",
             "Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}},
            {"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::www/*",
             "Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#,
    );
    let request = |ip: &str, tls: &str| {
        RequestContext::new("s3:GetObject", "arn:aws:s3:::www/index.html")
            .with_value("aws:SourceIp", ip)
            .with_value("aws:SecureTransport", tls)
    };
    assert_eq!(policy.evaluate(&request("203.0.113.5", "true")), Decision::Allow);
    assert_eq!(policy.evaluate(&request("198.51.100.5", "true")), Decision::NotApplicable);
    assert_eq!(policy.evaluate(&request("203.0.113.5", "false")), Decision::ExplicitDeny);
}

#[test]
fn time_window_from_the_clock() {
    let policy = parse(
        r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*",
            "Condition":{"DateGreaterThan":{"aws:CurrentTime":"2024-01-01T00:00:00Z"},
                         "DateLessThan":{"aws:EpochTime":1735689600}}}}"#,
    );
    let at = |secs| {
        let now = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
        RequestContext::new("s3:GetObject", "arn:aws:s3:::b/k").with_time(now)
    };
    assert_eq!(policy.evaluate(&at(1_714_564_800)), Decision::Allow);
    assert_eq!(policy.evaluate(&at(1_700_000_000)), Decision::NotApplicable);
    assert_eq!(policy.evaluate(&at(1_735_689_600)), Decision::NotApplicable);
    assert_eq!(policy.evaluate(&RequestContext::new("s3:GetObject", "arn:aws:s3:::b/k")), Decision::NotApplicable);
}
