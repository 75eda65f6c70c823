//! Gateways are stateless: two of them over the same metadata service and blobnodes serve the same
//! data, and whatever one acknowledges the other shows at once (read-after-write, overwrite and
//! delete), as behind a load balancer.

use std::net::SocketAddr;

use crate::common::{Proc, Split, client, free_port, get_bytes, pattern, put_bytes, runtime, wait_ready};

#[test]
fn two_gateways_agree_on_every_acknowledged_write() {
    let rt = runtime();
    let cluster = Split::start(6, "4+2");
    let second: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let args: Vec<String> = vec![
        "gateway".into(),
        "--address".into(),
        second.to_string(),
        "--metadata".into(),
        cluster.metadata_url.clone(),
        "--ec".into(),
        "4+2".into(),
    ];
    let gateway2 = Proc::spawn("gateway2", &args, cluster.dir.path());
    wait_ready(second, &[&gateway2]);
    let (one, two) = (cluster.client(), client(&format!("http://{second}")));

    rt.block_on(async {
        one.create_bucket().bucket("shared").send().await.expect("create bucket");
        for i in 0..8u64 {
            let key = format!("k{i}");
            let (writer, reader) = if i % 2 == 0 { (&one, &two) } else { (&two, &one) };
            let first = pattern(if i % 3 == 0 { 2 << 10 } else { 3 << 20 }, i);
            put_bytes(writer, "shared", &key, first.clone()).await;
            assert_eq!(get_bytes(reader, "shared", &key).await, first, "{key}: read after write elsewhere");
            let second = pattern(700 << 10, i + 100);
            put_bytes(reader, "shared", &key, second.clone()).await;
            assert_eq!(get_bytes(writer, "shared", &key).await, second, "{key}: overwrite seen elsewhere");
            writer.delete_object().bucket("shared").key(&key).send().await.expect("delete");
            let head = reader.head_object().bucket("shared").key(&key).send().await;
            assert!(head.is_err(), "{key}: a delete is seen elsewhere at once");
        }
        let listed = two.list_objects_v2().bucket("shared").send().await.expect("list");
        assert!(listed.contents().is_empty());
    });
}
