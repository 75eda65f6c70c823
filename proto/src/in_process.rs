//! gRPC between services that share one process (`coffer server`): in-memory duplex pipes instead of loopback
//! TCP, so a metadata call from the gateway costs no syscalls and no TCP stack. The protocol on the pipe is the
//! same HTTP/2 gRPC as on a socket; only the transport differs.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::{Stream, StreamExt};

/// The URL an in-process channel is built with; it never reaches a resolver.
pub const IN_PROCESS_URL: &str = "http://in-process.coffer.invalid";
/// Bytes buffered per direction of one pipe; a writer waits beyond it.
const PIPE_BYTES: usize = 1 << 20;
/// Connections handed over but not yet accepted by the server.
const PENDING_CONNECTIONS: usize = 16;

/// The client side: each connect makes a fresh pipe and hands its other end to the server.
#[derive(Clone)]
pub struct InProcessConnector {
    tx: mpsc::Sender<DuplexStream>,
}

/// The server side: the pipes clients have opened, to serve next to (or instead of) a TCP listener.
pub struct InProcessListener {
    rx: mpsc::Receiver<DuplexStream>,
}

pub fn in_process() -> (InProcessConnector, InProcessListener) {
    let (tx, rx) = mpsc::channel(PENDING_CONNECTIONS);
    (InProcessConnector { tx }, InProcessListener { rx })
}

impl tower::Service<http::Uri> for InProcessConnector {
    type Response = TokioIo<DuplexStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let tx = self.tx.clone();
        Box::pin(async move {
            let (client, server) = tokio::io::duplex(PIPE_BYTES);
            tx.send(server)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::ConnectionRefused, "in-process server has stopped"))?;
            Ok(TokioIo::new(client))
        })
    }
}

/// A connection a server accepted: from its TCP listener or from an in-process client.
pub enum ServerConn {
    Tcp(TcpStream),
    Pipe(DuplexStream),
}

impl tonic::transport::server::Connected for ServerConn {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for ServerConn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerConn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            ServerConn::Pipe(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerConn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            ServerConn::Pipe(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerConn::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ServerConn::Pipe(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ServerConn::Tcp(s) => s.is_write_vectored(),
            ServerConn::Pipe(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerConn::Tcp(s) => Pin::new(s).poll_flush(cx),
            ServerConn::Pipe(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerConn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            ServerConn::Pipe(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// What a gRPC server accepts: every TCP connection (with TCP_NODELAY, so small responses never wait for Nagle
/// and a delayed ACK), merged with the in-process pipes when there are any.
pub fn incoming(
    listener: TcpListener,
    pipes: Option<InProcessListener>,
) -> impl Stream<Item = io::Result<ServerConn>> + Send + 'static {
    let tcp = TcpListenerStream::new(listener).map(|conn| {
        conn.map(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set");
            }
            ServerConn::Tcp(stream)
        })
    });
    let pipes: Pin<Box<dyn Stream<Item = io::Result<ServerConn>> + Send>> = match pipes {
        Some(listener) => Box::pin(ReceiverStream::new(listener.rx).map(|pipe| Ok(ServerConn::Pipe(pipe)))),
        None => Box::pin(tokio_stream::empty()),
    };
    tcp.merge(pipes)
}
