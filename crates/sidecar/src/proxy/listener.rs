//! Accepting connections and serving HTTP on them.
//!
//! One accept loop per listener. Each connection is served by hyper-util's auto builder
//! (HTTP/1.1 with keep-alive, or HTTP/2 with prior knowledge, chosen by the connection's first
//! bytes) with upgrades enabled. This layer is where bad clients are stopped before they cost
//! anything:
//!
//! - **slowloris**: an HTTP/1 request head must arrive within the header timeout (hyper's
//!   `header_read_timeout`, armed for every head, so an idle keep-alive connection is closed
//!   after it too); and any connection, HTTP/2 included, that has not produced its first
//!   request within that time is closed (hyper has no timeout for the HTTP/2 preface);
//! - **oversized headers**: an HTTP/1 head larger than the limit (Envoy's
//!   `max_request_headers_kb`, 60 KiB) is answered `431` by hyper; HTTP/2 advertises the same
//!   `SETTINGS_MAX_HEADER_LIST_SIZE` and h2 answers `431` too;
//! - **malformed heads** get hyper's `400` and the connection closes.
//!
//! Connections get `TCP_NODELAY` and take part in the two-step [`drain`](super::drain).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};

use super::completions;
use super::drain::{Drain, Phase};
use super::exchange::ResponseBody;

/// The downstream connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionInfo {
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
}

/// Serves the requests of one listener.
pub(crate) trait Handler: Send + Sync + 'static {
    fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        connection: ConnectionInfo,
    ) -> impl Future<Output = Response<ResponseBody>> + Send + 'static;
}

/// Limits applied to every downstream connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) header_read_timeout: Duration,
    pub(crate) max_header_bytes: usize,
}

/// Starts the accept loop of `listener` (already bound) on the runtime.
pub(crate) fn spawn<H: Handler>(
    name: &'static str,
    listener: TcpListener,
    handler: Arc<H>,
    limits: Limits,
    drain: Drain,
) {
    let builder = Arc::new(builder(limits));
    tokio::spawn(accept_loop(name, listener, handler, builder, limits, drain));
}

fn builder(limits: Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper refuses a buffer below 8 KiB; the head must fit in the buffer, so this is the
    // header limit (hyper answers 431 when it is exceeded).
    let max_buf = limits.max_header_bytes.max(8192);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(max_buf);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

async fn accept_loop<H: Handler>(
    name: &'static str,
    listener: TcpListener,
    handler: Arc<H>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Limits,
    mut drain: Drain,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = drain.reached(Phase::Draining) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: the listener must survive it.
                tracing::warn!(listener = name, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let local = stream.local_addr().unwrap_or_else(|_| {
            listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
        });
        let connection = ConnectionInfo { peer, local };
        tokio::spawn(completions::after_each_poll(serve(
            stream,
            connection,
            handler.clone(),
            builder.clone(),
            limits,
            drain.clone(),
        )));
    }
    drop(listener);
    tracing::info!(listener = name, "stopped listening");
}

async fn serve<H: Handler>(
    stream: TcpStream,
    connection: ConnectionInfo,
    handler: Arc<H>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Limits,
    mut drain: Drain,
) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
    let io = TokioIo::new(stream);
    let requested = Arc::new(AtomicBool::new(false));
    let seen = requested.clone();
    let service = service_fn(move |request| {
        seen.store(true, Ordering::Relaxed);
        // `map`, not an `async` block awaiting the handler's future: such a block keeps the
        // future it captured and the one it awaits side by side, twice the size, and hyper
        // keeps this future in a box that lives as long as the connection (BENCHMARKS.md,
        // "Sidecar", "The size of a request's future").
        handler.clone().handle(request, connection).map(Ok::<_, Infallible>)
    });
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let first_request = tokio::time::sleep(limits.header_read_timeout);
    tokio::pin!(first_request);
    let mut waiting_for_first = true;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, peer = %connection.peer, "connection ended with an error");
                }
                return;
            }
            () = &mut first_request, if waiting_for_first => {
                if !requested.load(Ordering::Relaxed) {
                    tracing::debug!(peer = %connection.peer, "no request within the header timeout; closing");
                    return;
                }
                waiting_for_first = false;
            }
            () = drain.reached(Phase::Draining) => break,
        }
    }
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        _ = conn.as_mut() => {}
        () = drain.reached(Phase::Closed) => {}
    }
}
