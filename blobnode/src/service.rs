//! The gRPC edge: protocol checks on the shard streams, and the one place errors become statuses (and get logged).

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use coffer_proto::limits::MAX_CHUNK_BYTES;
use coffer_proto::pb::blobnode::blobnode_server::Blobnode;
use coffer_proto::pb::blobnode::put_shard_request::Msg;
use coffer_proto::pb::blobnode::{
    DeleteDataRequest, DeleteDataResponse, GetShardRequest, GetShardResponse, PutShardHeader, PutShardRequest,
    PutShardResponse, StatShardRequest, StatShardResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::budget::IoPermit;
use crate::engine::{Engine, OpenShard};
use crate::error::BlobnodeError;
use crate::key::{ShardKey, check_data_id};
use crate::record::{self, BLOCK_BYTES, ShardImage};
use crate::store::Store;

/// GetShard reads and sends one window at a time: a whole number of blocks, and at most one chunk.
const READ_WINDOW_BYTES: u64 = MAX_CHUNK_BYTES as u64;
const _: () = assert!(MAX_CHUNK_BYTES.is_multiple_of(BLOCK_BYTES));

pub struct BlobnodeService {
    store: Arc<Store>,
}

impl BlobnodeService {
    pub fn new(store: Arc<Store>) -> Self {
        BlobnodeService { store }
    }

    async fn put(&self, mut stream: Streaming<PutShardRequest>) -> Result<(), BlobnodeError> {
        let header = match stream.message().await.map_err(BlobnodeError::RequestStream)? {
            Some(PutShardRequest { msg: Some(Msg::Header(header)) }) => header,
            Some(_) => {
                return Err(BlobnodeError::InvalidArgument("the first message must be the header".into()));
            }
            None => return Err(BlobnodeError::InvalidArgument("empty PutShard stream".into())),
        };
        let PutShardHeader { disk_id, id, length, crc32c } = header;
        let engine = self.store.engine(&disk_id)?;
        let key = ShardKey::from_proto(id)?;
        record::check_len(length)?;
        let _permit = self.store.budget().acquire(record::record_bytes(length)).await?;
        let mut image = ShardImage::new(key.clone(), length, engine.pool())?;
        while let Some(message) = stream.message().await.map_err(BlobnodeError::RequestStream)? {
            match message.msg {
                Some(Msg::Chunk(chunk)) if chunk.len() > MAX_CHUNK_BYTES => {
                    return Err(BlobnodeError::InvalidArgument(format!(
                        "chunk of {} bytes exceeds the limit of {MAX_CHUNK_BYTES}",
                        chunk.len()
                    )));
                }
                Some(Msg::Chunk(chunk)) => image.append(&chunk)?,
                Some(Msg::Header(_)) => return Err(BlobnodeError::InvalidArgument("second header in stream".into())),
                None => return Err(BlobnodeError::InvalidArgument("message without header or chunk".into())),
            }
        }
        // Verified against the sender's CRC before a byte reaches the disk.
        let sealed = image.seal(crc32c)?;
        engine.put(sealed).await?;
        tracing::debug!(shard = %key, disk = %disk_id, length, "shard stored");
        Ok(())
    }

    async fn open(
        &self,
        disk_id: &str,
        id: Option<coffer_proto::pb::blobnode::ShardId>,
    ) -> Result<(Arc<Engine>, OpenShard), BlobnodeError> {
        let engine = self.store.engine(disk_id)?;
        let key = ShardKey::from_proto(id)?;
        let shard = self.store.open_shard(Arc::clone(&engine), key).await?;
        Ok((engine, shard))
    }

    async fn get(&self, request: GetShardRequest) -> Result<GetShardStream, BlobnodeError> {
        let (engine, shard) = self.open(&request.disk_id, request.id).await?;
        let range = shard.header().range(request.offset, request.length)?;
        // One window queued while the next is read: two windows per reader at most, each under a budget permit.
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(send_range(Arc::clone(&self.store), engine, shard, range, tx));
        // The permit is released as the server takes the chunk to encode it.
        Ok(Box::pin(ReceiverStream::new(rx).map(|item| item.map(|(response, _permit)| response))))
    }
}

type GetShardStream = Pin<Box<dyn Stream<Item = Result<GetShardResponse, Status>> + Send>>;
type WindowSender = mpsc::Sender<Result<(GetShardResponse, IoPermit), Status>>;

async fn send_range(store: Arc<Store>, engine: Arc<Engine>, shard: OpenShard, range: Range<u64>, tx: WindowSender) {
    let mut position = range.start;
    while position < range.end {
        let window_end = ((position / READ_WINDOW_BYTES + 1) * READ_WINDOW_BYTES).min(range.end);
        let window = position..window_end;
        let item = read_window(&store, &engine, &shard, window).await.map_err(|e| edge_error("GetShard", e));
        let failed = item.is_err();
        // A send error means the client went away; nothing left to do.
        if tx.send(item).await.is_err() || failed {
            return;
        }
        position = window_end;
    }
}

async fn read_window(
    store: &Store,
    engine: &Arc<Engine>,
    shard: &OpenShard,
    window: Range<u64>,
) -> Result<(GetShardResponse, IoPermit), BlobnodeError> {
    // The aligned read buffer is what goes out (sliced, not copied), so it is all the window holds.
    let bytes = shard.header().plan_read(window.clone()).read_len as u64;
    let permit = store.budget().acquire(bytes).await?;
    let data = store.read_range(Arc::clone(engine), shard.clone(), window).await?;
    Ok((GetShardResponse { crc32c: record::crc32c(&data), data }, permit))
}

/// Turns an error into the status the caller sees, logging it once, here, at a level matching who must act.
fn edge_error(operation: &'static str, error: BlobnodeError) -> Status {
    match &error {
        BlobnodeError::CorruptShard { .. } => tracing::error!(operation, %error, "corrupt shard refused"),
        BlobnodeError::Io { .. } | BlobnodeError::Internal(_) => tracing::error!(operation, %error, "request failed"),
        BlobnodeError::DiskUnavailable { .. } => tracing::warn!(operation, %error, "request refused"),
        _ => tracing::debug!(operation, %error, "request refused"),
    }
    error.into()
}

#[tonic::async_trait]
impl Blobnode for BlobnodeService {
    async fn put_shard(
        &self,
        request: Request<Streaming<PutShardRequest>>,
    ) -> Result<Response<PutShardResponse>, Status> {
        self.put(request.into_inner()).await.map_err(|e| edge_error("PutShard", e))?;
        Ok(Response::new(PutShardResponse {}))
    }

    type GetShardStream = GetShardStream;

    async fn get_shard(&self, request: Request<GetShardRequest>) -> Result<Response<Self::GetShardStream>, Status> {
        let stream = self.get(request.into_inner()).await.map_err(|e| edge_error("GetShard", e))?;
        Ok(Response::new(stream))
    }

    async fn delete_data(&self, request: Request<DeleteDataRequest>) -> Result<Response<DeleteDataResponse>, Status> {
        let DeleteDataRequest { disk_id, data_id } = request.into_inner();
        let result = async {
            let engine = self.store.engine(&disk_id)?;
            check_data_id(&data_id)?;
            engine.delete(data_id).await
        };
        result.await.map_err(|e| edge_error("DeleteData", e))?;
        Ok(Response::new(DeleteDataResponse {}))
    }

    async fn stat_shard(&self, request: Request<StatShardRequest>) -> Result<Response<StatShardResponse>, Status> {
        let StatShardRequest { disk_id, id } = request.into_inner();
        // Reads and verifies the header only; block checksums are checked when the bytes are read.
        let (_, shard) = self.open(&disk_id, id).await.map_err(|e| edge_error("StatShard", e))?;
        let header = shard.header();
        Ok(Response::new(StatShardResponse { length: header.shard_len, crc32c: header.crc32c }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_proto::limits::MAX_MESSAGE_BYTES;
    use coffer_proto::pb::blobnode::ShardId;
    use coffer_proto::pb::blobnode::blobnode_client::BlobnodeClient;
    use coffer_proto::pb::blobnode::blobnode_server::BlobnodeServer;
    use coffer_proto::{ErrorCode, RemoteError};
    use tokio_stream::wrappers::TcpListenerStream;
    use tonic::transport::Channel;

    use crate::record::tests::pattern;

    struct Node {
        dir: tempfile::TempDir,
        disk_id: String,
        client: BlobnodeClient<Channel>,
    }

    async fn start() -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            Store::open(vec![dir.path().into()], crate::store::tests::test_config(), 16 << 20).await.expect("store"),
        );
        let disk_id = store.engines()[0].id().to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let service = BlobnodeServer::new(BlobnodeService::new(store))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let server = tonic::transport::Server::builder().add_service(service);
        tokio::spawn(server.serve_with_incoming(TcpListenerStream::new(listener)));
        let client = BlobnodeClient::connect(format!("http://{addr}")).await.expect("connect");
        Node { dir, disk_id, client: client.max_decoding_message_size(MAX_MESSAGE_BYTES) }
    }

    fn shard_id(stripe: u32) -> Option<ShardId> {
        Some(ShardId { data_id: b"data-1".to_vec(), stripe, index: 2 })
    }

    fn header(disk_id: &str, stripe: u32, length: u64, crc32c: u32) -> PutShardRequest {
        let header = PutShardHeader { disk_id: disk_id.into(), id: shard_id(stripe), length, crc32c };
        PutShardRequest { msg: Some(Msg::Header(header)) }
    }

    fn chunks(data: &[u8], chunk_bytes: usize) -> impl Iterator<Item = PutShardRequest> + '_ {
        data.chunks(chunk_bytes).map(|c| PutShardRequest { msg: Some(Msg::Chunk(bytes::Bytes::copy_from_slice(c))) })
    }

    impl Node {
        async fn put_raw(&self, messages: Vec<PutShardRequest>) -> Result<(), RemoteError> {
            self.client.clone().put_shard(tokio_stream::iter(messages)).await?;
            Ok(())
        }

        async fn put(&self, stripe: u32, data: &[u8]) -> Result<(), RemoteError> {
            let mut messages = vec![header(&self.disk_id, stripe, data.len() as u64, record::crc32c(data))];
            messages.extend(chunks(data, 300_000));
            self.put_raw(messages).await
        }

        /// The chunks received before the stream ended, and how it ended.
        async fn get(&self, stripe: u32, offset: u64, length: u64) -> (Vec<u8>, Result<(), RemoteError>) {
            let request = GetShardRequest { disk_id: self.disk_id.clone(), id: shard_id(stripe), offset, length };
            let mut received = Vec::new();
            let mut stream = match self.client.clone().get_shard(request).await {
                Ok(response) => response.into_inner(),
                Err(status) => return (received, Err(status.into())),
            };
            loop {
                match stream.message().await {
                    Ok(Some(chunk)) => {
                        assert!(chunk.data.len() <= MAX_CHUNK_BYTES);
                        assert_eq!(chunk.crc32c, record::crc32c(&chunk.data));
                        received.extend_from_slice(&chunk.data);
                    }
                    Ok(None) => return (received, Ok(())),
                    Err(status) => return (received, Err(status.into())),
                }
            }
        }

        async fn stat(&self, stripe: u32) -> Result<StatShardResponse, RemoteError> {
            let request = StatShardRequest { disk_id: self.disk_id.clone(), id: shard_id(stripe) };
            Ok(self.client.clone().stat_shard(request).await?.into_inner())
        }

        fn tmp_is_empty(&self) -> bool {
            std::fs::read_dir(self.dir.path().join("tmp")).expect("list tmp").next().is_none()
        }
    }

    fn code<T: std::fmt::Debug>(result: Result<T, RemoteError>) -> ErrorCode {
        result.expect_err("call should fail").code
    }

    #[tokio::test]
    async fn put_get_stat_delete() {
        let node = start().await;
        let data = pattern(3 * MAX_CHUNK_BYTES + 3, 1);
        node.put(0, &data).await.expect("put");
        let (all, end) = node.get(0, 0, 0).await;
        end.expect("get");
        assert_eq!(all, data);
        for (offset, length) in [(MAX_CHUNK_BYTES as u64 - 5, 10), (70_000, 2_000_000), (data.len() as u64 - 1, 0)] {
            let (part, end) = node.get(0, offset, length).await;
            end.expect("range");
            let end_at = if length == 0 { data.len() } else { (offset + length) as usize };
            assert_eq!(part, &data[offset as usize..end_at], "{offset}+{length}");
        }
        let stat = node.stat(0).await.expect("stat");
        assert_eq!((stat.length, stat.crc32c), (data.len() as u64, record::crc32c(&data)));

        node.put(1, b"").await.expect("empty shard");
        let (empty, end) = node.get(1, 0, 0).await;
        assert!(end.is_ok() && empty.is_empty());

        let delete = DeleteDataRequest { disk_id: node.disk_id.clone(), data_id: b"data-1".to_vec() };
        node.client.clone().delete_data(delete.clone()).await.expect("delete");
        node.client.clone().delete_data(delete).await.expect("delete is idempotent");
        assert_eq!(code(node.stat(0).await), ErrorCode::NoSuchShard);
        assert_eq!(code(node.get(1, 0, 0).await.1), ErrorCode::NoSuchShard);
    }

    #[tokio::test]
    async fn bad_puts_are_refused_and_leave_nothing() {
        let node = start().await;
        let data = pattern(100_000, 2);
        let crc = record::crc32c(&data);
        let len = data.len() as u64;
        let with = |header: PutShardRequest, body: &[u8]| {
            let mut messages = vec![header];
            messages.extend(chunks(body, 10_000));
            messages
        };
        let d = node.disk_id.as_str();
        assert_eq!(code(node.put_raw(with(header(d, 0, len, crc ^ 1), &data)).await), ErrorCode::ChecksumMismatch);
        assert_eq!(code(node.put_raw(with(header(d, 0, len, crc), &data[1..])).await), ErrorCode::InvalidArgument);
        assert_eq!(code(node.put_raw(with(header(d, 0, len - 1, crc), &data)).await), ErrorCode::InvalidArgument);
        assert_eq!(code(node.put_raw(with(header("nope", 0, len, crc), &data)).await), ErrorCode::NoSuchDisk);
        let too_big = header(d, 0, record::MAX_SHARD_BYTES + 1, 0);
        assert_eq!(code(node.put_raw(vec![too_big]).await), ErrorCode::InvalidArgument);
        assert_eq!(code(node.put_raw(chunks(&data, 10_000).collect()).await), ErrorCode::InvalidArgument);
        assert_eq!(code(node.put_raw(vec![]).await), ErrorCode::InvalidArgument);
        let twice = vec![header(d, 0, 0, 0), header(d, 0, 0, 0)];
        assert_eq!(code(node.put_raw(twice).await), ErrorCode::InvalidArgument);

        let big = pattern(MAX_CHUNK_BYTES + 1, 3);
        let mut oversized_chunk = vec![header(d, 0, big.len() as u64, record::crc32c(&big))];
        oversized_chunk.extend(chunks(&big, big.len()));
        assert_eq!(code(node.put_raw(oversized_chunk).await), ErrorCode::InvalidArgument);

        assert_eq!(code(node.stat(0).await), ErrorCode::NoSuchShard);
        assert!(node.tmp_is_empty());
    }

    #[tokio::test]
    async fn bad_reads_are_refused() {
        let node = start().await;
        node.put(0, b"0123456789").await.expect("put");
        assert_eq!(code(node.get(0, 11, 0).await.1), ErrorCode::InvalidArgument);
        assert_eq!(code(node.get(0, 5, 6).await.1), ErrorCode::InvalidArgument);
        assert_eq!(code(node.get(9, 0, 0).await.1), ErrorCode::NoSuchShard);
        let request = GetShardRequest { disk_id: "nope".into(), id: shard_id(0), offset: 0, length: 0 };
        let status = node.client.clone().get_shard(request).await.expect_err("unknown disk");
        assert_eq!(RemoteError::from(status).code, ErrorCode::NoSuchDisk);
        let (bytes, end) = node.get(0, 3, 4).await;
        end.expect("valid range");
        assert_eq!(bytes, b"3456");
    }

    #[tokio::test]
    async fn corruption_ends_the_stream_with_data_loss_and_no_wrong_bytes() {
        let node = start().await;
        let data = pattern(3 * MAX_CHUNK_BYTES, 4);
        node.put(0, &data).await.expect("put");
        // The only record: in the first chunk, right after the chunk header.
        let path = node.dir.path().join("chunks").join(crate::chunk::file_name(1));
        let mut bytes = std::fs::read(&path).expect("read");
        let data_start = (crate::chunk::CHUNK_HEADER_BYTES as usize) + record::HEADER_BYTES;
        bytes[data_start + 2 * MAX_CHUNK_BYTES + 12_345] ^= 0x80;
        std::fs::write(&path, &bytes).expect("damage");

        let (received, end) = node.get(0, 0, 0).await;
        assert_eq!(code(end), ErrorCode::CorruptShard);
        assert_eq!(received, &data[..2 * MAX_CHUNK_BYTES]);
        let (intact, end) = node.get(0, 0, MAX_CHUNK_BYTES as u64).await;
        end.expect("undamaged range still served");
        assert_eq!(intact, &data[..MAX_CHUNK_BYTES]);
    }
}
