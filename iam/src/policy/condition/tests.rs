//! Every operator against present, absent and multi-valued keys.

use super::ConditionBlock;
use crate::policy::RequestContext;
use crate::policy::json::Json;
use crate::policy::template::Variables;

type Values<'a> = &'a [(&'a str, &'a [&'a str])];

fn holds(condition: &str, values: Values) -> bool {
    let block = ConditionBlock::parse(&Json::parse(condition).unwrap(), Variables::Substitute)
        .unwrap_or_else(|err| panic!("{condition}: {err}"));
    let mut ctx = RequestContext::new("s3:ListBucket", "arn:aws:s3:::bucket");
    for (key, key_values) in values {
        ctx.set_values(key, key_values.iter().copied());
    }
    block.holds(&ctx)
}

fn check(cases: &[(&str, Values, bool)]) {
    let failures: Vec<String> = cases
        .iter()
        .filter(|(condition, values, expected)| holds(condition, values) != *expected)
        .map(|(condition, values, expected)| format!("{condition} with {values:?}: expected {expected}"))
        .collect();
    assert!(failures.is_empty(), "{} failing case(s):\n{}", failures.len(), failures.join("\n"));
}

const NONE: Values = &[];

#[test]
fn string_operators() {
    check(&[
        (r#"{"StringEquals":{"s3:prefix":"home/"}}"#, &[("s3:prefix", &["home/"])], true),
        (r#"{"StringEquals":{"s3:prefix":"home/"}}"#, &[("s3:prefix", &["Home/"])], false),
        (r#"{"StringEquals":{"s3:prefix":"home/"}}"#, NONE, false),
        (r#"{"StringEquals":{"s3:prefix":["work/","home/"]}}"#, &[("s3:prefix", &["home/"])], true),
        (r#"{"StringEquals":{"s3:prefix":"home/*"}}"#, &[("s3:prefix", &["home/x"])], false),
        (r#"{"StringEquals":{"s3:prefix":"home/*"}}"#, &[("s3:prefix", &["home/*"])], true),
        (r#"{"StringEquals":{"s3:max-keys":10}}"#, &[("s3:max-keys", &["10"])], true),
        (r#"{"StringNotEquals":{"s3:prefix":"home/"}}"#, &[("s3:prefix", &["work/"])], true),
        (r#"{"StringNotEquals":{"s3:prefix":"home/"}}"#, &[("s3:prefix", &["home/"])], false),
        (r#"{"StringNotEquals":{"s3:prefix":"home/"}}"#, NONE, true),
        (r#"{"StringNotEquals":{"s3:prefix":["a","b"]}}"#, &[("s3:prefix", &["b"])], false),
        (r#"{"StringNotEquals":{"s3:prefix":["a","b"]}}"#, &[("s3:prefix", &["c"])], true),
        (r#"{"StringEqualsIgnoreCase":{"s3:prefix":"HOME/"}}"#, &[("s3:prefix", &["home/"])], true),
        (r#"{"StringEqualsIgnoreCase":{"s3:prefix":"HOME/"}}"#, &[("s3:prefix", &["work/"])], false),
        (r#"{"StringEqualsIgnoreCase":{"s3:prefix":"HOME/"}}"#, NONE, false),
        (r#"{"StringNotEqualsIgnoreCase":{"s3:prefix":"HOME/"}}"#, &[("s3:prefix", &["home/"])], false),
        (r#"{"StringNotEqualsIgnoreCase":{"s3:prefix":"HOME/"}}"#, &[("s3:prefix", &["work/"])], true),
        (r#"{"StringNotEqualsIgnoreCase":{"s3:prefix":"HOME/"}}"#, NONE, true),
        (r#"{"StringLike":{"s3:prefix":"home/*"}}"#, &[("s3:prefix", &["home/alice/x"])], true),
        (r#"{"StringLike":{"s3:prefix":"home/*"}}"#, &[("s3:prefix", &["work/"])], false),
        (r#"{"StringLike":{"s3:prefix":"home/*"}}"#, &[("s3:prefix", &["HOME/x"])], false),
        (r#"{"StringLike":{"s3:prefix":"v?/*"}}"#, &[("s3:prefix", &["v2/x"])], true),
        (r#"{"StringLike":{"s3:prefix":"home/*"}}"#, NONE, false),
        (r#"{"StringNotLike":{"s3:prefix":"home/*"}}"#, &[("s3:prefix", &["work/"])], true),
        (r#"{"StringNotLike":{"s3:prefix":"home/*"}}"#, &[("s3:prefix", &["home/x"])], false),
        (r#"{"StringNotLike":{"s3:prefix":"home/*"}}"#, NONE, true),
    ]);
}

#[test]
fn numeric_operators() {
    check(&[
        (r#"{"NumericEquals":{"s3:max-keys":10}}"#, &[("s3:max-keys", &["10"])], true),
        (r#"{"NumericEquals":{"s3:max-keys":"10"}}"#, &[("s3:max-keys", &["10.0"])], true),
        (r#"{"NumericEquals":{"s3:max-keys":10}}"#, &[("s3:max-keys", &["11"])], false),
        (r#"{"NumericEquals":{"s3:max-keys":10}}"#, &[("s3:max-keys", &["ten"])], false),
        (r#"{"NumericEquals":{"s3:max-keys":10}}"#, NONE, false),
        (r#"{"NumericNotEquals":{"s3:max-keys":10}}"#, &[("s3:max-keys", &["11"])], true),
        (r#"{"NumericNotEquals":{"s3:max-keys":10}}"#, &[("s3:max-keys", &["10"])], false),
        (r#"{"NumericNotEquals":{"s3:max-keys":10}}"#, NONE, true),
        (r#"{"NumericLessThan":{"s3:max-keys":100}}"#, &[("s3:max-keys", &["99"])], true),
        (r#"{"NumericLessThan":{"s3:max-keys":100}}"#, &[("s3:max-keys", &["100"])], false),
        (r#"{"NumericLessThan":{"s3:max-keys":100}}"#, NONE, false),
        (r#"{"NumericLessThan":{"s3:max-keys":"-1.5"}}"#, &[("s3:max-keys", &["-2"])], true),
        (r#"{"NumericLessThanEquals":{"s3:max-keys":100}}"#, &[("s3:max-keys", &["100"])], true),
        (r#"{"NumericLessThanEquals":{"s3:max-keys":100}}"#, &[("s3:max-keys", &["101"])], false),
        (r#"{"NumericGreaterThan":{"s3:max-keys":5}}"#, &[("s3:max-keys", &["6"])], true),
        (r#"{"NumericGreaterThan":{"s3:max-keys":5}}"#, &[("s3:max-keys", &["5"])], false),
        (r#"{"NumericGreaterThanEquals":{"s3:max-keys":5}}"#, &[("s3:max-keys", &["5"])], true),
        (r#"{"NumericGreaterThanEquals":{"s3:max-keys":5}}"#, &[("s3:max-keys", &["4"])], false),
        (r#"{"NumericGreaterThanEquals":{"s3:max-keys":5}}"#, NONE, false),
    ]);
}

#[test]
fn date_operators() {
    const NOON: &str = "2024-05-01T12:00:00Z";
    const BEFORE: &str = "2024-05-01T11:59:59Z";
    const AFTER: &str = "2024-05-01T12:00:01Z";
    let when = |op: &str| format!(r#"{{"{op}":{{"aws:CurrentTime":"{NOON}"}}}}"#);
    let owned: Vec<(String, Values, bool)> = vec![
        (when("DateEquals"), &[("aws:CurrentTime", &[NOON])], true),
        (when("DateEquals"), &[("aws:CurrentTime", &["1714564800"])], true),
        (when("DateEquals"), &[("aws:CurrentTime", &[AFTER])], false),
        (when("DateEquals"), &[("aws:CurrentTime", &["yesterday"])], false),
        (when("DateEquals"), NONE, false),
        (when("DateNotEquals"), &[("aws:CurrentTime", &[AFTER])], true),
        (when("DateNotEquals"), &[("aws:CurrentTime", &[NOON])], false),
        (when("DateNotEquals"), NONE, true),
        (when("DateLessThan"), &[("aws:CurrentTime", &[BEFORE])], true),
        (when("DateLessThan"), &[("aws:CurrentTime", &[NOON])], false),
        (when("DateLessThan"), NONE, false),
        (when("DateLessThanEquals"), &[("aws:CurrentTime", &[NOON])], true),
        (when("DateLessThanEquals"), &[("aws:CurrentTime", &[AFTER])], false),
        (when("DateGreaterThan"), &[("aws:CurrentTime", &[AFTER])], true),
        (when("DateGreaterThan"), &[("aws:CurrentTime", &[NOON])], false),
        (when("DateGreaterThanEquals"), &[("aws:CurrentTime", &[NOON])], true),
        (when("DateGreaterThanEquals"), &[("aws:CurrentTime", &[BEFORE])], false),
        (r#"{"DateGreaterThan":{"aws:EpochTime":1700000000}}"#.to_owned(), &[("aws:EpochTime", &["1700000001"])], true),
        (
            r#"{"DateGreaterThan":{"aws:EpochTime":1700000000}}"#.to_owned(),
            &[("aws:EpochTime", &["1600000000"])],
            false,
        ),
        (r#"{"DateLessThan":{"aws:CurrentTime":"2025-01-01"}}"#.to_owned(), &[("aws:CurrentTime", &[NOON])], true),
    ];
    let cases: Vec<(&str, Values, bool)> = owned.iter().map(|(c, v, e)| (c.as_str(), *v, *e)).collect();
    check(&cases);
}

#[test]
fn bool_binary_ip_and_arn_operators() {
    let topic = "arn:aws:sns:us-east-1:123456789012:uploads";
    check(&[
        (r#"{"Bool":{"aws:SecureTransport":"true"}}"#, &[("aws:SecureTransport", &["true"])], true),
        (r#"{"Bool":{"aws:SecureTransport":true}}"#, &[("aws:SecureTransport", &["TRUE"])], true),
        (r#"{"Bool":{"aws:SecureTransport":"true"}}"#, &[("aws:SecureTransport", &["false"])], false),
        (r#"{"Bool":{"aws:SecureTransport":"true"}}"#, &[("aws:SecureTransport", &["yes"])], false),
        (r#"{"Bool":{"aws:SecureTransport":false}}"#, NONE, false),
        (r#"{"BinaryEquals":{"s3:x-amz-blob":"QmluYXJ5"}}"#, &[("s3:x-amz-blob", &["QmluYXJ5"])], true),
        (r#"{"BinaryEquals":{"s3:x-amz-blob":"QmluYXJ5"}}"#, &[("s3:x-amz-blob", &["T3RoZXI="])], false),
        (r#"{"BinaryEquals":{"s3:x-amz-blob":"QmluYXJ5"}}"#, &[("s3:x-amz-blob", &["!!"])], false),
        (r#"{"BinaryEquals":{"s3:x-amz-blob":"QmluYXJ5"}}"#, NONE, false),
        (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, &[("aws:SourceIp", &["203.0.113.9"])], true),
        (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, &[("aws:SourceIp", &["198.51.100.1"])], false),
        (
            r#"{"IpAddress":{"aws:SourceIp":["203.0.113.0/24","2001:db8::/32"]}}"#,
            &[("aws:SourceIp", &["2001:db8::7"])],
            true,
        ),
        (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, &[("aws:SourceIp", &["garbage"])], false),
        (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, NONE, false),
        (r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, &[("aws:SourceIp", &["198.51.100.1"])], true),
        (r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, &[("aws:SourceIp", &["203.0.113.9"])], false),
        (r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, NONE, true),
        (
            r#"{"ArnEquals":{"aws:SourceArn":"arn:aws:sns:us-east-1:123456789012:uploads"}}"#,
            &[("aws:SourceArn", &[topic])],
            true,
        ),
        (
            r#"{"ArnEquals":{"aws:SourceArn":"arn:aws:sns:us-east-1:999999999999:uploads"}}"#,
            &[("aws:SourceArn", &[topic])],
            false,
        ),
        (r#"{"ArnEquals":{"aws:SourceArn":"arn:aws:sns:*:123456789012:*"}}"#, &[("aws:SourceArn", &[topic])], true),
        (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:sns:*:123456789012:*"}}"#, &[("aws:SourceArn", &[topic])], true),
        (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:sns:*:9*:*"}}"#, &[("aws:SourceArn", &[topic])], false),
        (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:sns:*:123456789012:*"}}"#, &[("aws:SourceArn", &["uploads"])], false),
        (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:sns:*:123456789012:*"}}"#, NONE, false),
        (
            r#"{"ArnNotEquals":{"aws:SourceArn":"arn:aws:sns:us-east-1:123456789012:uploads"}}"#,
            &[("aws:SourceArn", &[topic])],
            false,
        ),
        (
            r#"{"ArnNotEquals":{"aws:SourceArn":"arn:aws:sns:us-east-1:123456789012:other"}}"#,
            &[("aws:SourceArn", &[topic])],
            true,
        ),
        (r#"{"ArnNotEquals":{"aws:SourceArn":"arn:aws:sns:us-east-1:123456789012:other"}}"#, NONE, true),
        (r#"{"ArnNotLike":{"aws:SourceArn":"arn:aws:sns:*:*:up*"}}"#, &[("aws:SourceArn", &[topic])], false),
        (r#"{"ArnNotLike":{"aws:SourceArn":"arn:aws:sqs:*:*:*"}}"#, &[("aws:SourceArn", &[topic])], true),
        (r#"{"ArnNotLike":{"aws:SourceArn":"arn:aws:sqs:*:*:*"}}"#, NONE, true),
    ]);
}

#[test]
fn null_operator() {
    check(&[
        (r#"{"Null":{"aws:SourceIp":true}}"#, NONE, true),
        (r#"{"Null":{"aws:SourceIp":"true"}}"#, &[("aws:SourceIp", &["10.0.0.1"])], false),
        (r#"{"Null":{"aws:SourceIp":false}}"#, &[("aws:SourceIp", &["10.0.0.1"])], true),
        (r#"{"Null":{"aws:SourceIp":"false"}}"#, NONE, false),
        (r#"{"Null":{"aws:SourceIp":false}}"#, &[("aws:SourceIp", &[])], false),
    ]);
}

#[test]
fn if_exists_passes_missing_keys_only() {
    check(&[
        (r#"{"StringEqualsIfExists":{"s3:prefix":"home/"}}"#, NONE, true),
        (r#"{"StringEqualsIfExists":{"s3:prefix":"home/"}}"#, &[("s3:prefix", &["home/"])], true),
        (r#"{"StringEqualsIfExists":{"s3:prefix":"home/"}}"#, &[("s3:prefix", &["work/"])], false),
        (r#"{"StringNotEqualsIfExists":{"s3:prefix":"home/"}}"#, NONE, true),
        (r#"{"StringNotEqualsIfExists":{"s3:prefix":"home/"}}"#, &[("s3:prefix", &["home/"])], false),
        (r#"{"StringLikeIfExists":{"s3:prefix":"home/*"}}"#, &[("s3:prefix", &["work/"])], false),
        (r#"{"NumericLessThanIfExists":{"s3:max-keys":10}}"#, NONE, true),
        (r#"{"NumericLessThanIfExists":{"s3:max-keys":10}}"#, &[("s3:max-keys", &["50"])], false),
        (r#"{"DateLessThanIfExists":{"aws:CurrentTime":"2024-01-01"}}"#, NONE, true),
        (r#"{"BoolIfExists":{"aws:SecureTransport":false}}"#, NONE, true),
        (r#"{"BoolIfExists":{"aws:SecureTransport":false}}"#, &[("aws:SecureTransport", &["true"])], false),
        (r#"{"BinaryEqualsIfExists":{"s3:x-amz-blob":"QmluYXJ5"}}"#, NONE, true),
        (r#"{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#, NONE, true),
        (r#"{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#, &[("aws:SourceIp", &["192.0.2.1"])], false),
        (r#"{"ArnLikeIfExists":{"aws:SourceArn":"arn:aws:sns:*:*:*"}}"#, NONE, true),
    ]);
}

#[test]
fn set_qualifiers() {
    check(&[
        // ForAnyValue: at least one request value must pass; nothing passes over no values.
        (r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}"#, &[("aws:TagKeys", &["c", "a"])], true),
        (r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}"#, &[("aws:TagKeys", &["c", "d"])], false),
        (r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}"#, NONE, false),
        (r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}"#, &[("aws:TagKeys", &[])], false),
        (r#"{"ForAnyValue:StringEqualsIfExists":{"aws:TagKeys":"a"}}"#, NONE, true),
        (r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["a", "b"])], true),
        (r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["a"])], false),
        (r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"a"}}"#, NONE, false),
        (r#"{"ForAnyValue:StringLike":{"aws:TagKeys":"env/*"}}"#, &[("aws:TagKeys", &["x", "env/prod"])], true),
        (
            r#"{"ForAnyValue:IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            &[("aws:SourceIp", &["192.0.2.1", "10.1.1.1"])],
            true,
        ),
        // ForAllValues: every request value must pass; vacuously true over no values.
        (r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}"#, &[("aws:TagKeys", &["a", "b"])], true),
        (r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}"#, &[("aws:TagKeys", &["a", "c"])], false),
        (r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}"#, NONE, true),
        (r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}"#, &[("aws:TagKeys", &[])], true),
        (r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["b", "c"])], true),
        (r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["a", "b"])], false),
        (r#"{"ForAllValues:StringLike":{"aws:TagKeys":"env/*"}}"#, &[("aws:TagKeys", &["env/a", "env/b"])], true),
        (r#"{"ForAllValues:NumericLessThan":{"s3:max-keys":10}}"#, &[("s3:max-keys", &["1", "2"])], true),
        (r#"{"ForAllValues:NumericLessThan":{"s3:max-keys":10}}"#, &[("s3:max-keys", &["1", "20"])], false),
        // Without a qualifier, any request value matching counts; the negation is of that.
        (r#"{"StringEquals":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["b", "a"])], true),
        (r#"{"StringNotEquals":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["b", "a"])], false),
    ]);
}

#[test]
fn keys_and_operators_and_together() {
    let two_keys = r#"{"StringEquals":{"s3:prefix":"home/","s3:delimiter":"/"}}"#;
    let two_operators = r#"{"StringEquals":{"s3:prefix":"home/"},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#;
    check(&[
        (two_keys, &[("s3:prefix", &["home/"]), ("s3:delimiter", &["/"])], true),
        (two_keys, &[("s3:prefix", &["home/"]), ("s3:delimiter", &["-"])], false),
        (two_keys, &[("s3:prefix", &["home/"])], false),
        (two_operators, &[("s3:prefix", &["home/"]), ("aws:SourceIp", &["10.2.3.4"])], true),
        (two_operators, &[("s3:prefix", &["home/"]), ("aws:SourceIp", &["192.0.2.1"])], false),
        ("{}", NONE, true),
    ]);
}

#[test]
fn key_names_ignore_case_but_tag_names_do_not() {
    check(&[
        (r#"{"IpAddress":{"AWS:SOURCEIP":"10.0.0.0/8"}}"#, &[("aws:SourceIp", &["10.0.0.1"])], true),
        (r#"{"StringEquals":{"s3:ExistingObjectTag/Project":"x"}}"#, &[("S3:existingobjecttag/Project", &["x"])], true),
        (
            r#"{"StringEquals":{"s3:ExistingObjectTag/Project":"x"}}"#,
            &[("s3:ExistingObjectTag/project", &["x"])],
            false,
        ),
    ]);
}

#[test]
fn variables_in_condition_values() {
    let home = r#"{"StringLike":{"s3:prefix":["","home/","home/${aws:username}/*"]}}"#;
    let not_home = r#"{"StringNotLike":{"s3:prefix":"home/${aws:username}/*"}}"#;
    let own_arn = r#"{"ArnEquals":{"aws:SourceArn":"arn:aws:iam::123456789012:user/${aws:username}"}}"#;
    check(&[
        (home, &[("aws:username", &["alice"]), ("s3:prefix", &["home/alice/docs/"])], true),
        (home, &[("aws:username", &["alice"]), ("s3:prefix", &["home/"])], true),
        (home, &[("aws:username", &["alice"]), ("s3:prefix", &["home/bob/"])], false),
        (home, &[("s3:prefix", &["home/bob/"])], false),
        // The unresolvable value matches nothing, so the negation still holds.
        (not_home, &[("s3:prefix", &["home/bob/"])], true),
        (not_home, &[("aws:username", &["bob"]), ("s3:prefix", &["home/bob/"])], false),
        (own_arn, &[("aws:username", &["alice"]), ("aws:SourceArn", &["arn:aws:iam::123456789012:user/alice"])], true),
        (own_arn, &[("aws:username", &["alice"]), ("aws:SourceArn", &["arn:aws:iam::123456789012:user/bob"])], false),
    ]);
}

#[test]
fn malformed_conditions_are_refused() {
    let cases = [
        r#"{"StringEqual":{"s3:prefix":"a"}}"#,
        r#"{"NullIfExists":{"s3:prefix":true}}"#,
        r#"{"StringEquals":"s3:prefix"}"#,
        r#"{"StringEquals":{}}"#,
        r#"{"StringEquals":{"":"a"}}"#,
        r#"{"StringEquals":{"s3:prefix":[]}}"#,
        r#"{"StringEquals":{"s3:prefix":{"a":"b"}}}"#,
        r#"{"StringEquals":{"s3:prefix":null}}"#,
        r#"{"StringEquals":{"s3:prefix":"home/${aws:username"}}"#,
        r#"{"NumericEquals":{"s3:max-keys":"ten"}}"#,
        r#"{"NumericEquals":{"s3:max-keys":"0x10"}}"#,
        r#"{"DateLessThan":{"aws:CurrentTime":"next tuesday"}}"#,
        r#"{"Bool":{"aws:SecureTransport":"yes"}}"#,
        r#"{"Null":{"aws:SecureTransport":1}}"#,
        r#"{"BinaryEquals":{"s3:x-amz-blob":"not base64!"}}"#,
        r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}"#,
        r#"{"ArnLike":{"aws:SourceArn":"uploads"}}"#,
        r#"["StringEquals"]"#,
    ];
    for condition in cases {
        let parsed = ConditionBlock::parse(&Json::parse(condition).unwrap(), Variables::Substitute);
        assert!(parsed.is_err(), "{condition} was accepted");
    }
}

#[test]
fn error_messages_name_operator_key_and_value() {
    let json = Json::parse(r#"{"NumericEquals":{"s3:max-keys":"ten"}}"#).unwrap();
    let err = ConditionBlock::parse(&json, Variables::Substitute).unwrap_err().to_string();
    assert!(err.contains("NumericEquals") && err.contains("s3:max-keys") && err.contains("\"ten\""), "{err}");
}
