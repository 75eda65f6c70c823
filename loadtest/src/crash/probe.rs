//! The write probe that ends every wait for a metadata group (`--metadata-replicas` > 1): a striped PUT into a
//! bucket of its own must succeed. The gateway's readiness is a cached view, and a newly elected leader knows no
//! live blobnode until their heartbeats reach it, so "ready" alone can still mean "every write fails"; the probe
//! keeps the killer from stacking its next kill onto that. A single metadata service does without it, as before.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::workload::INLINE_MAX;
use crate::s3::{S3Conn, TargetConfig};

/// Large enough to be striped over the blobnodes (not stored inline in the metadata record).
const PROBE_BYTES: usize = INLINE_MAX + (64 << 10);
/// One probe that takes longer counts as a failure (the next one follows at once).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
const PROBE_KEY: &str = "probe";

pub struct WriteProbe {
    cfg: Arc<TargetConfig>,
    bucket: String,
    created: bool,
}

impl WriteProbe {
    /// Probes into `bucket` (created by the first probe; the workload's bucket is another one, so its listing
    /// is not disturbed).
    pub fn new(cfg: Arc<TargetConfig>, bucket: &str) -> WriteProbe {
        WriteProbe { cfg, bucket: bucket.to_string(), created: false }
    }

    /// One PUT through the gateway; the error says what failed.
    pub async fn write(&mut self) -> Result<(), String> {
        let attempt = async {
            // A fresh connection: the gateway may have been restarted since the last probe.
            let mut conn = S3Conn::new(self.cfg.clone());
            if !self.created {
                conn.create_bucket(&self.bucket).await.map_err(|e| format!("creating bucket {}: {e}", self.bucket))?;
                self.created = true;
            }
            let body = Bytes::from(vec![0x5a; PROBE_BYTES]);
            conn.put_object(&self.bucket, PROBE_KEY, body).await.map_err(|e| format!("probe PUT: {e}"))
        };
        tokio::time::timeout(PROBE_TIMEOUT, attempt)
            .await
            .unwrap_or_else(|_| Err(format!("probe PUT: no answer within {PROBE_TIMEOUT:?}")))
    }
}
