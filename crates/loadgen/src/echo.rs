//! `echo`: a tiny upstream app for the sidecar benchmark.
//!
//! It answers every HTTP/1.1 request, whatever its method and path, with the same small
//! `200 OK` (`hello\n`, `text/plain`) over keep-alive connections with `TCP_NODELAY`, so what
//! the benchmark measures is the path to it, not the app.

use std::convert::Infallible;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The body of every response.
const BODY: &[u8] = b"hello\n";

#[derive(clap::Args)]
pub struct EchoArgs {
    /// Where to listen, e.g. 127.0.0.1:9080 (port 0 picks a free port).
    #[arg(long)]
    listen: String,
}

/// Runs the `echo` subcommand until SIGINT.
pub async fn command(args: EchoArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("echo: cannot listen on {}", args.listen))?;
    println!("listening {}", listener.local_addr().context("echo: no local address")?);
    tokio::select! {
        result = serve(listener) => result,
        signal = tokio::signal::ctrl_c() => signal.context("cannot wait for SIGINT"),
    }
}

async fn serve(listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (stream, _) = listener.accept().await.context("echo: accept failed")?;
        // Best effort: a connection without TCP_NODELAY still works, only slower.
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|_request: Request<Incoming>| async {
                let response = Response::builder()
                    .header(http::header::CONTENT_TYPE, "text/plain")
                    .body(Full::new(Bytes::from_static(BODY)));
                Ok::<_, Infallible>(response.unwrap_or_else(|_| Response::new(Full::default())))
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
