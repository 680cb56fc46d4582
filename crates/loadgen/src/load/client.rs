//! One client per worker, over the protocol the load sends: [`GrpcClient`] (requests spread
//! over a few shared HTTP/2 connections) or [`HttpClient`] (one HTTP/1.1 connection each).

use anyhow::Context;
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::grpc::GrpcClient;
use super::http::HttpClient;
use super::stats::Outcome;

pub(super) enum Client {
    Grpc(GrpcClient),
    Http(HttpClient),
}

impl Client {
    pub(super) async fn send(&mut self, body: Bytes) -> Outcome {
        match self {
            Client::Grpc(client) => client.send(body).await,
            Client::Http(client) => client.send(body).await,
        }
    }
}

/// A TCP connection to `authority` with `TCP_NODELAY`, ready for hyper.
pub(super) async fn tcp(authority: &str) -> anyhow::Result<TokioIo<TcpStream>> {
    let stream = TcpStream::connect(authority)
        .await
        .with_context(|| format!("cannot connect to {authority}"))?;
    stream.set_nodelay(true).context("cannot set TCP_NODELAY")?;
    Ok(TokioIo::new(stream))
}
