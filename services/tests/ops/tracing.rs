//! End-to-end traces: with an OTLP endpoint configured, one S3 request is one trace with spans
//! from the gateway, the metadata service and the blobnodes, parent links intact, and its trace id
//! is the `x-amz-request-id` the client got. The endpoint is an OTLP receiver inside this test.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{Split, SplitOptions, free_port, pattern, runtime};
use aws_sdk_s3::operation::RequestId;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;

/// One received span: its service and the ids that tie the trace together.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    duration_ms: f64,
    start_ns: u64,
}

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                spans.push(Received {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex::encode(span.trace_id),
                    span_id: hex::encode(span.span_id),
                    parent: hex::encode(span.parent_span_id),
                    duration_ms: span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano) as f64 / 1e6,
                    start_ns: span.start_time_unix_nano,
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl Receiver {
    fn trace(&self, trace_id: &str) -> Vec<Received> {
        self.spans.lock().unwrap().iter().filter(|s| s.trace_id == trace_id).cloned().collect()
    }
}

/// The trace as an indented tree: `service  name  duration`.
fn render(spans: &[Received]) -> String {
    let mut children: BTreeMap<&str, Vec<&Received>> = BTreeMap::new();
    for span in spans {
        children.entry(span.parent.as_str()).or_default().push(span);
    }
    for list in children.values_mut() {
        list.sort_by_key(|s| s.start_ns);
    }
    fn walk(out: &mut String, children: &BTreeMap<&str, Vec<&Received>>, parent: &str, depth: usize) {
        for span in children.get(parent).into_iter().flatten() {
            out.push_str(&format!(
                "{:indent$}{} [{}] {:.2} ms\n",
                "",
                span.name,
                span.service,
                span.duration_ms,
                indent = depth * 2
            ));
            walk(out, children, &span.span_id, depth + 1);
        }
    }
    let mut out = String::new();
    walk(&mut out, &children, "", 0);
    out
}

/// Waits until the trace has spans from every role, then checks its shape.
fn checked_trace(receiver: &Receiver, trace_id: &str, root_name: &str) -> Vec<Received> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let wanted: BTreeSet<&str> = ["coffer-gateway", "coffer-metadata", "coffer-blobnode"].into();
    loop {
        let spans = receiver.trace(trace_id);
        let services: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
        if wanted.is_subset(&services) || Instant::now() > deadline {
            assert!(wanted.is_subset(&services), "trace {trace_id} has spans of {services:?} only: {spans:#?}");
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Late spans of the same trace (a last shard stream) may still be in flight: let them land.
    std::thread::sleep(Duration::from_millis(500));
    let spans = receiver.trace(trace_id);
    let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let roots: Vec<&Received> = spans.iter().filter(|s| s.parent.is_empty()).collect();
    assert_eq!(roots.len(), 1, "one root span: {roots:#?}");
    assert_eq!((roots[0].name.as_str(), roots[0].service.as_str()), (root_name, "coffer-gateway"));
    for span in &spans {
        assert!(span.parent.is_empty() || ids.contains(span.parent.as_str()), "orphan span {span:#?}");
    }
    spans
}

#[test]
fn one_request_is_one_trace_across_every_role() {
    let rt = runtime();
    let receiver = Receiver::default();
    let port = free_port();
    {
        let receiver = receiver.clone();
        rt.spawn(async move {
            let address = format!("127.0.0.1:{port}").parse().unwrap();
            tonic::transport::Server::builder().add_service(TraceServiceServer::new(receiver)).serve(address).await
        });
    }
    let endpoint = format!("http://127.0.0.1:{port}");
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "100")];
    let cluster = Split::start_opts(6, "4+2", SplitOptions { env: &env, ..SplitOptions::default() }, |_, _| Vec::new());
    let client = cluster.client();
    let size_mib: usize = std::env::var("COFFER_TRACE_OBJECT_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let data = pattern(size_mib << 20, 11);

    let (put_id, get_id) = rt.block_on(async {
        client.create_bucket().bucket("traced").send().await.expect("create bucket");
        let put = client
            .put_object()
            .bucket("traced")
            .key("k")
            .body(aws_sdk_s3::primitives::ByteStream::from(data.clone()))
            .send()
            .await
            .expect("put");
        let get = client.get_object().bucket("traced").key("k").send().await.expect("get");
        let get_id = get.request_id().unwrap_or_default().to_string();
        assert_eq!(get.body.collect().await.expect("body").into_bytes().as_ref(), data.as_slice());
        (put.request_id().unwrap_or_default().to_string(), get_id)
    });
    assert_eq!(put_id.len(), 32, "the request id is the trace id: {put_id}");

    let put = checked_trace(&receiver, &put_id, "PutObject");
    let shard_writes = put.iter().filter(|s| s.service == "coffer-blobnode" && s.name == "blobnode/PutShard").count();
    let stripes = (size_mib << 20).div_ceil(4 << 20);
    assert_eq!(shard_writes, stripes * 6, "a server span per shard written:\n{}", render(&put));
    assert!(put.iter().any(|s| s.name == "ec.encode"), "{}", render(&put));
    assert!(put.iter().any(|s| s.service == "coffer-metadata" && s.name == "metadata/PutObject"));
    eprintln!("PUT of {size_mib} MiB, trace {put_id}:\n{}", render(&put));

    let get = checked_trace(&receiver, &get_id, "GetObject");
    assert!(get.iter().any(|s| s.service == "coffer-blobnode" && s.name == "blobnode/GetShard"), "{}", render(&get));
}
