//! Every role serves Prometheus metrics: after real traffic, the main series of each exist with
//! sane values (the gateway on its S3 port, the other roles on `--metrics-address`).

use std::net::SocketAddr;

use crate::common::{Split, SplitOptions, free_port, get_bytes, http_get_body, pattern, put_bytes, runtime};

/// The value of the first sample of `name` whose labels include every `labels` pair.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, label_text) = series.split_once('{').map_or((series, ""), |(n, rest)| (n, rest));
        if series_name != name {
            return None;
        }
        let all = labels.iter().all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
        all.then(|| value.parse().ok()).flatten()
    })
}

fn scrape(addr: SocketAddr) -> String {
    http_get_body(addr, "/metrics").unwrap_or_else(|| panic!("no metrics at {addr}"))
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn every_role_reports_its_main_series_after_traffic() {
    let rt = runtime();
    let meta_metrics = free_port();
    let blob_metrics: Vec<u16> = (0..6).map(|_| free_port()).collect();
    let meta_flag = format!("127.0.0.1:{meta_metrics}");
    let cluster = Split::start_opts(
        6,
        "4+2",
        SplitOptions { metadata: &["--metrics-address", &meta_flag], gateway: &[], env: &[] },
        |i, _| vec!["--metrics-address".into(), format!("127.0.0.1:{}", blob_metrics[i])],
    );
    let repair_metrics = free_port();
    let _repair = cluster.start_repair("repair", &["--metrics-address", &format!("127.0.0.1:{repair_metrics}")]);
    let client = cluster.client();
    let data = pattern(5 << 20, 3);
    rt.block_on(async {
        client.create_bucket().bucket("obs").send().await.expect("create bucket");
        for i in 0..3 {
            put_bytes(&client, "obs", &format!("k{i}"), data.clone()).await;
        }
        assert_eq!(get_bytes(&client, "obs", "k0").await, data);
        let _ = client.head_object().bucket("obs").key("missing").send().await;
    });
    // Blobnode disk figures and repair gauges are published on their own timers.
    std::thread::sleep(std::time::Duration::from_secs(2));

    let gateway = scrape(cluster.addr);
    let puts = sample(&gateway, "coffer_s3_requests_total", &[("op", "PutObject"), ("status", "200")]);
    assert_eq!(puts, Some(3.0), "{gateway}");
    assert_eq!(sample(&gateway, "coffer_s3_requests_total", &[("op", "HeadObject"), ("status", "404")]), Some(1.0));
    let get_count = sample(&gateway, "coffer_s3_request_duration_seconds_count", &[("op", "GetObject")]);
    assert_eq!(get_count, Some(1.0), "{gateway}");
    assert!(sample(&gateway, "coffer_s3_bytes_in_total", &[]).is_some_and(|b| b >= 3.0 * data.len() as f64));
    assert!(sample(&gateway, "coffer_s3_bytes_out_total", &[]).is_some_and(|b| b >= data.len() as f64));
    assert_eq!(sample(&gateway, "coffer_s3_requests_in_flight", &[]), Some(0.0));
    let client_calls = sample(
        &gateway,
        "coffer_grpc_client_duration_seconds_count",
        &[("service", "blobnode"), ("method", "PutShard"), ("code", "0")],
    );
    assert!(client_calls.is_some_and(|n| n >= 18.0), "3 objects x 2 stripes x 6 shards:\n{gateway}");

    let metadata = scrape(addr(meta_metrics));
    let commits = sample(
        &metadata,
        "coffer_grpc_server_duration_seconds_count",
        &[("service", "metadata"), ("method", "PutObject")],
    );
    assert_eq!(commits, Some(3.0), "{metadata}");
    assert!(sample(&metadata, "coffer_metadata_rocksdb_compaction_pending_bytes", &[]).is_some(), "{metadata}");

    let mut shard_puts = 0.0;
    for port in &blob_metrics {
        let blobnode = scrape(addr(*port));
        let capacity = sample(&blobnode, "coffer_blobnode_disk_capacity_bytes", &[]);
        assert!(capacity.is_some_and(|c| c > 0.0), "{blobnode}");
        assert_eq!(sample(&blobnode, "coffer_blobnode_disk_healthy", &[]), Some(1.0));
        shard_puts += sample(&blobnode, "coffer_blobnode_shard_puts_total", &[]).unwrap_or(0.0);
        assert!(sample(&blobnode, "coffer_blobnode_fsyncs_total", &[]).is_some_and(|n| n >= 1.0), "{blobnode}");
    }
    assert_eq!(shard_puts, 36.0, "3 objects x 2 stripes x 6 shards");

    let repair = scrape(addr(repair_metrics));
    assert_eq!(sample(&repair, "coffer_repair_degraded_columns", &[]), Some(0.0), "{repair}");
}
