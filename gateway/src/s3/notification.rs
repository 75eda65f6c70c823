//! Put/GetBucketNotificationConfiguration: queue configurations whose ARN names a webhook target
//! of the metadata service (`arn:coffer:sqs::ID:webhook`, or MinIO's `arn:minio:sqs::ID:webhook`).
//! Stored as a `NotificationConfiguration` message in the bucket's `notification` slot; the
//! metadata service checks the targets exist, records events with each change and delivers them.

use coffer_proto::Message;
use coffer_proto::pb::metadata::{
    NotificationConfiguration as PbConfiguration, NotificationFilterRule as PbRule, NotificationQueue,
};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result};

use super::CofferS3;
use super::bucket_config::names;

/// S3's message for a destination it cannot use.
const UNKNOWN_DESTINATION: &str = "Unable to validate the following destination configurations";
/// The events Coffer emits (and their families).
const EVENTS: [&str; 8] = [
    "s3:ObjectCreated:*",
    "s3:ObjectCreated:Put",
    "s3:ObjectCreated:Post",
    "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload",
    "s3:ObjectRemoved:*",
    "s3:ObjectRemoved:Delete",
    "s3:ObjectRemoved:DeleteMarkerCreated",
];
const MAX_FILTER_VALUE: usize = 1024;

fn invalid(message: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, message.into())
}

/// The webhook target id an ARN names: `arn:(coffer|minio):sqs:REGION:ID:webhook`.
pub fn target_of(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", "coffer" | "minio", "sqs", _region, id, "webhook"] if !id.is_empty() => Some(id),
        _ => None,
    }
}

fn queue_of(queue: &QueueConfiguration) -> S3Result<NotificationQueue> {
    let target = target_of(&queue.queue_arn).ok_or_else(|| invalid(UNKNOWN_DESTINATION))?;
    if queue.events.is_empty() {
        return Err(S3Error::with_message(
            S3ErrorCode::MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema",
        ));
    }
    let mut events = Vec::with_capacity(queue.events.len());
    for event in &queue.events {
        let name: &str = event.as_ref();
        if !EVENTS.contains(&name) {
            return Err(invalid("The event is not supported for notifications"));
        }
        events.push(name.to_string());
    }
    let mut rules: Vec<PbRule> = Vec::new();
    let given = queue.filter.as_ref().and_then(|f| f.key.as_ref()).and_then(|k| k.filter_rules.as_ref());
    for rule in given.into_iter().flatten() {
        let name = rule.name.as_ref().map(|n| n.as_str().to_string()).unwrap_or_default();
        let lower = name.to_ascii_lowercase();
        if lower != "prefix" && lower != "suffix" {
            return Err(invalid("filter rule name must be either prefix or suffix"));
        }
        if rules.iter().any(|r| r.name.eq_ignore_ascii_case(&lower)) {
            return Err(invalid(format!("Cannot specify more than one {lower} rule in a filter.")));
        }
        let value = rule.value.clone().unwrap_or_default();
        if value.len() > MAX_FILTER_VALUE {
            return Err(invalid("The filter value is too long"));
        }
        rules.push(PbRule { name, value });
    }
    Ok(NotificationQueue {
        id: queue.id.clone().filter(|id| !id.is_empty()).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        arn: queue.queue_arn.clone(),
        target: target.to_string(),
        events,
        rules,
    })
}

/// A configuration as S3 validates it (targets are checked by the metadata service).
pub fn configuration_of(config: &NotificationConfiguration) -> S3Result<PbConfiguration> {
    let other_destinations = config.topic_configurations.as_ref().is_some_and(|t| !t.is_empty())
        || config.lambda_function_configurations.as_ref().is_some_and(|l| !l.is_empty());
    if other_destinations {
        return Err(invalid(UNKNOWN_DESTINATION));
    }
    if config.event_bridge_configuration.is_some() {
        return Err(S3Error::with_message(S3ErrorCode::NotImplemented, "EventBridge notifications are not supported"));
    }
    let queues = config.queue_configurations.iter().flatten().map(queue_of).collect::<S3Result<Vec<_>>>()?;
    let mut ids: Vec<&str> = queues.iter().map(|q| q.id.as_str()).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid("Configuration IDs must be unique"));
    }
    Ok(PbConfiguration { queues })
}

/// A stored queue configuration as S3 shows it.
pub fn queue_dto(queue: &NotificationQueue) -> QueueConfiguration {
    let filter = (!queue.rules.is_empty()).then(|| NotificationConfigurationFilter {
        key: Some(S3KeyFilter {
            filter_rules: Some(
                queue
                    .rules
                    .iter()
                    .map(|r| FilterRule {
                        name: Some(FilterRuleName::from(r.name.clone())),
                        value: Some(r.value.clone()),
                    })
                    .collect(),
            ),
        }),
    });
    QueueConfiguration {
        events: queue.events.iter().map(|e| Event::from(e.clone())).collect(),
        filter,
        id: Some(queue.id.clone()),
        queue_arn: queue.arn.clone(),
    }
}

tokio::task_local! {
    /// How the object being written was created (`Copy`, `Post`), for its notification event.
    static CREATED_BY: &'static str;
}

/// The gRPC metadata that tells the metadata service how an object was created.
pub const CREATED_BY_HEADER: &str = "x-coffer-created-by";

/// Runs `write` as a write of the given kind: its commit's event is `ObjectCreated:<how>`.
pub async fn created_by<F: std::future::Future>(how: &'static str, write: F) -> F::Output {
    CREATED_BY.scope(how, write).await
}

/// A commit request carrying how its object was created, when that is not a plain PUT.
pub fn hinted<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(how) = CREATED_BY.try_with(|how| *how) {
        request.metadata_mut().insert(CREATED_BY_HEADER, tonic::metadata::MetadataValue::from_static(how));
    }
    request
}

impl CofferS3 {
    pub(super) async fn do_put_bucket_notification_configuration(
        &self,
        input: PutBucketNotificationConfigurationInput,
    ) -> S3Result<PutBucketNotificationConfigurationOutput> {
        let config = configuration_of(&input.notification_configuration)?;
        let value = (!config.queues.is_empty()).then(|| config.encode_to_vec());
        self.set_bucket_config(&input.bucket, names::NOTIFICATION, value).await.map_err(|e| {
            // The metadata service knows the webhook targets; its refusal reads as S3's.
            if *e.code() == S3ErrorCode::InvalidArgument && e.message().is_some_and(|m| m.contains(UNKNOWN_DESTINATION))
            {
                invalid(UNKNOWN_DESTINATION)
            } else {
                e
            }
        })?;
        Ok(PutBucketNotificationConfigurationOutput::default())
    }

    pub(super) async fn do_get_bucket_notification_configuration(
        &self,
        input: GetBucketNotificationConfigurationInput,
    ) -> S3Result<GetBucketNotificationConfigurationOutput> {
        let Some(bytes) = self.bucket_config(&input.bucket, names::NOTIFICATION).await? else {
            return Ok(GetBucketNotificationConfigurationOutput::default());
        };
        let stored = PbConfiguration::decode(bytes.as_slice()).map_err(|e| {
            S3Error::with_message(S3ErrorCode::InternalError, format!("stored notification configuration: {e}"))
        })?;
        Ok(GetBucketNotificationConfigurationOutput {
            queue_configurations: Some(stored.queues.iter().map(queue_dto).collect()),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(arn: &str, events: &[&str]) -> QueueConfiguration {
        QueueConfiguration {
            events: events.iter().map(|e| Event::from(e.to_string())).collect(),
            filter: Some(NotificationConfigurationFilter {
                key: Some(S3KeyFilter {
                    filter_rules: Some(vec![FilterRule {
                        name: Some(FilterRuleName::from_static(FilterRuleName::PREFIX)),
                        value: Some("img/".into()),
                    }]),
                }),
            }),
            id: Some("q1".into()),
            queue_arn: arn.into(),
        }
    }

    fn code(result: S3Result<impl std::fmt::Debug>) -> S3ErrorCode {
        result.expect_err("expected an error").code().clone()
    }

    #[test]
    fn arns_name_webhook_targets() {
        assert_eq!(target_of("arn:coffer:sqs::hook:webhook"), Some("hook"));
        assert_eq!(target_of("arn:minio:sqs:us-east-1:1:webhook"), Some("1"));
        assert_eq!(target_of("arn:aws:sqs:us-east-1:123456789012:queue"), None);
        assert_eq!(target_of("arn:coffer:sqs:::webhook"), None);
    }

    #[test]
    fn queues_round_trip_and_bad_ones_are_refused() {
        let original = queue("arn:coffer:sqs::hook:webhook", &["s3:ObjectCreated:*"]);
        let stored = queue_of(&original).unwrap();
        assert_eq!(stored.target, "hook");
        assert_eq!(queue_dto(&stored), original);
        assert_eq!(
            code(queue_of(&queue("arn:aws:sqs:us-east-1:1:q", &["s3:ObjectCreated:*"]))),
            S3ErrorCode::InvalidArgument
        );
        assert_eq!(code(queue_of(&queue("arn:coffer:sqs::hook:webhook", &["s3:Nope"]))), S3ErrorCode::InvalidArgument);
        let mut twice = original.clone();
        if let Some(rules) = twice.filter.as_mut().and_then(|f| f.key.as_mut()).and_then(|k| k.filter_rules.as_mut()) {
            rules.push(rules[0].clone());
        }
        assert_eq!(code(queue_of(&twice)), S3ErrorCode::InvalidArgument);
    }
}
