//! A small HTTP/1.1 + HTTP/2 server for the collector's own endpoints and HTTP receivers.
//!
//! Binding is separate from serving so that a port already in use fails start-up with a clear
//! error, and so that the address actually bound (port 0 in tests) can be reported.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Handles one request.
pub type Handler =
    Arc<dyn Fn(Request<Incoming>) -> BoxFuture<'static, Response<Full<Bytes>>> + Send + Sync>;

/// Turns `host:port` as the collector writes it into something `bind` takes: an empty host
/// (`:4317`) means every interface.
pub fn bindable(endpoint: &str) -> String {
    match endpoint.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => endpoint.to_string(),
    }
}

/// Binds `endpoint`, naming `what` in the error.
pub async fn bind(what: &str, endpoint: &str) -> Result<TcpListener, String> {
    let address = bindable(endpoint);
    TcpListener::bind(&address)
        .await
        .map_err(|error| format!("{what}: cannot listen on {endpoint}: {error}"))
}

/// A running server; [`Server::shutdown`] stops accepting and lets open requests finish.
pub struct Server {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `listener` with `handler` until shut down.
    pub fn start(listener: TcpListener, handler: Handler) -> Server {
        let local_addr =
            listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, handler, stopped));
        Server { local_addr, stop, task: Some(task) }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections at once and waits until `deadline` for open ones to finish;
    /// connections still open then are closed.
    pub async fn shutdown(&mut self, deadline: Instant) {
        self.stop.send_replace(true);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout_at(deadline.into(), &mut task).await.is_err()
        {
            // The task owns every connection; aborting it closes them.
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, handler: Handler, mut stopped: watch::Receiver<bool>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    // Connections belong to this task, so aborting it at the shutdown deadline ends them too.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.wait_for(|stop| *stop) => break,
        };
        let (stream, _) = match accepted {
            Ok(connection) => connection,
            Err(error) => {
                // Running out of file descriptors must not end the server: wait and go on.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let service = service_fn(move |request| {
            let response = handler(request);
            async move { Ok::<_, Infallible>(response.await) }
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let connection = graceful.watch(connection.into_owned());
        connections.spawn(async move {
            let _ = connection.await;
        });
    }
    // Free the port before waiting for open requests, so nothing new connects meanwhile.
    drop(listener);
    graceful.shutdown().await;
    while connections.join_next().await.is_some() {}
}

/// A plain response with a status and body.
pub fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(http::header::CONTENT_TYPE, value);
    }
    response
}

/// Wraps an async function as a [`Handler`].
pub fn handler<F, Fut>(function: F) -> Handler
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    Arc::new(move |request| Box::pin(function(request)))
}
