//! gRPC between services that share one process (`coffer server`). When the server hands its service over
//! ([`InProcessListener::serve_directly`]), a call is that service's `call` on the caller's task: the same gRPC
//! messages, codec, layers and status codes, but no HTTP/2 framing, no pipe and no hand-off to the server's
//! connection and stream tasks (those cost more CPU than the metadata lookup of a small GET). Until then, and
//! for servers that do not hand it over, calls go over in-memory duplex pipes with the same HTTP/2 gRPC as on a
//! socket: no syscalls and no TCP stack.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::{Stream, StreamExt};
use tower::util::BoxCloneSyncService;

/// The URL an in-process channel is built with; it never reaches a resolver.
pub const IN_PROCESS_URL: &str = "http://in-process.coffer.invalid";
/// Bytes buffered per direction of one pipe; a writer waits beyond it.
const PIPE_BYTES: usize = 1 << 20;
/// Connections handed over but not yet accepted by the server.
const PENDING_CONNECTIONS: usize = 16;

type HttpRequest = http::Request<tonic::body::Body>;
type HttpResponse = http::Response<tonic::body::Body>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A server's whole gRPC service (its layers included), as in-process clients call it.
pub type DirectService = BoxCloneSyncService<HttpRequest, HttpResponse, Infallible>;

/// Where the server leaves its service for the clients; empty until it does.
type DirectSlot = Arc<OnceLock<DirectService>>;

/// The client side: each connect makes a fresh pipe and hands its other end to the server.
#[derive(Clone)]
pub struct InProcessConnector {
    tx: mpsc::Sender<DuplexStream>,
    direct: DirectSlot,
}

/// The server side: the pipes clients have opened, to serve next to (or instead of) a TCP listener.
pub struct InProcessListener {
    rx: mpsc::Receiver<DuplexStream>,
    direct: DirectSlot,
}

pub fn in_process() -> (InProcessConnector, InProcessListener) {
    let (tx, rx) = mpsc::channel(PENDING_CONNECTIONS);
    let direct = DirectSlot::default();
    (InProcessConnector { tx, direct: direct.clone() }, InProcessListener { rx, direct })
}

impl InProcessListener {
    /// From now on in-process clients call `service` directly instead of over a pipe. It should be the service
    /// the server's connections reach, with the same layers, so both ways answer alike. Only the first call
    /// counts.
    pub fn serve_directly<S>(&self, service: S)
    where
        S: tower::Service<HttpRequest, Response = HttpResponse, Error = Infallible> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
    {
        let _ = self.direct.set(BoxCloneSyncService::new(service));
    }
}

/// The transport of an in-process client: the server's service when it handed it over, else HTTP/2 over `pipe`.
#[derive(Clone)]
pub struct InProcessTransport<P> {
    direct: DirectSlot,
    pipe: P,
    /// Which way `poll_ready` made ready, so `call` takes the same one.
    ready: Option<Way>,
}

#[derive(Clone, Copy)]
enum Way {
    Direct,
    Pipe,
}

impl<P> InProcessTransport<P> {
    /// `pipe`: a channel over `connector`'s pipes, for calls made before the server hands its service over.
    pub fn new(connector: &InProcessConnector, pipe: P) -> Self {
        InProcessTransport { direct: connector.direct.clone(), pipe, ready: None }
    }
}

impl<P> tower::Service<HttpRequest> for InProcessTransport<P>
where
    P: tower::Service<HttpRequest, Response = HttpResponse>,
    P::Error: Into<BoxError>,
    P::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.direct.get().is_some() {
            self.ready = Some(Way::Direct);
            return Poll::Ready(Ok(()));
        }
        let ready = std::task::ready!(self.pipe.poll_ready(cx)).map_err(Into::into);
        self.ready = ready.is_ok().then_some(Way::Pipe);
        Poll::Ready(ready)
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        match (self.ready.take(), self.direct.get()) {
            (Some(Way::Direct), Some(service)) => {
                // The boxed service is always ready (tonic's generated servers are); `oneshot` waits anyway.
                let call = tower::ServiceExt::oneshot(service.clone(), request);
                Box::pin(async move { call.await.map_err(|never| match never {}) })
            }
            _ => {
                let call = self.pipe.call(request);
                Box::pin(async move { call.await.map_err(Into::into) })
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use tower::ServiceExt;

    use super::*;

    fn answer(way: &'static str) -> HttpResponse {
        let mut response = http::Response::new(tonic::body::Body::empty());
        response.headers_mut().insert("x-way", http::HeaderValue::from_static(way));
        response
    }

    async fn way_of<P>(transport: InProcessTransport<P>) -> String
    where
        P: tower::Service<HttpRequest, Response = HttpResponse>,
        P::Error: Into<BoxError>,
        P::Future: Send + 'static,
    {
        let response = transport.oneshot(http::Request::new(tonic::body::Body::empty())).await.unwrap();
        response.headers()["x-way"].to_str().unwrap().to_string()
    }

    #[tokio::test]
    async fn calls_go_direct_once_the_server_hands_its_service_over() {
        let (connector, listener) = in_process();
        let pipe = tower::service_fn(|_: HttpRequest| async { Ok::<_, io::Error>(answer("pipe")) });
        let transport = InProcessTransport::new(&connector, pipe);
        assert_eq!(way_of(transport.clone()).await, "pipe");
        listener.serve_directly(tower::service_fn(|_: HttpRequest| async { Ok::<_, Infallible>(answer("direct")) }));
        assert_eq!(way_of(transport.clone()).await, "direct");
        // Only the first service handed over counts.
        listener.serve_directly(tower::service_fn(|_: HttpRequest| async { Ok::<_, Infallible>(answer("second")) }));
        assert_eq!(way_of(transport).await, "direct");
    }
}
