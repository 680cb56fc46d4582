//! The OTLP/gRPC client: raw HTTP/2 (hyper) rather than a tonic client, so the pre-encoded
//! frames go out untouched. Requests are spread over a few HTTP/2 connections, each shared by
//! several workers and reconnected when it closes.

use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper::{Request, Response};
use hyper_util::rt::TokioExecutor;
use otlp::Signal;

use super::Shape;
use super::client::{Client, tcp};
use super::stats::Outcome;

/// One worker's client: its share of a connection, and where to post.
pub(super) struct GrpcClient {
    slot: Arc<H2Slot>,
    uri: http::Uri,
    gzip: bool,
}

/// `shape.concurrency` clients over `shape.connections` connections to `authority`.
pub(super) async fn clients(
    authority: &str,
    shape: &Shape,
    gzip: bool,
) -> anyhow::Result<Vec<Client>> {
    let uri: http::Uri = format!("http://{authority}{}", Signal::Traces.grpc_path())
        .parse()
        .context("invalid --target")?;
    let mut slots = Vec::new();
    for _ in 0..shape.connections.clamp(1, shape.concurrency) {
        let sender = connect_h2(authority).await?;
        slots.push(Arc::new(H2Slot {
            authority: authority.to_string(),
            sender: tokio::sync::Mutex::new(Some(sender)),
        }));
    }
    let mut clients = Vec::with_capacity(shape.concurrency);
    for worker in 0..shape.concurrency {
        let slot = slots.get(worker % slots.len()).cloned().context("no connection")?;
        clients.push(Client::Grpc(GrpcClient { slot, uri: uri.clone(), gzip }));
    }
    Ok(clients)
}

/// One HTTP/2 connection shared by several workers, reconnected when it closes.
struct H2Slot {
    authority: String,
    sender: tokio::sync::Mutex<Option<http2::SendRequest<Full<Bytes>>>>,
}

impl H2Slot {
    async fn sender(&self) -> Result<http2::SendRequest<Full<Bytes>>, String> {
        let mut guard = self.sender.lock().await;
        if let Some(sender) = guard.as_ref().filter(|sender| !sender.is_closed()) {
            return Ok(sender.clone());
        }
        *guard = None;
        let sender = connect_h2(&self.authority).await.map_err(|error| format!("{error:#}"))?;
        *guard = Some(sender.clone());
        Ok(sender)
    }
}

async fn connect_h2(authority: &str) -> anyhow::Result<http2::SendRequest<Full<Bytes>>> {
    let io = tcp(authority).await?;
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .handshake(io)
        .await
        .with_context(|| format!("HTTP/2 handshake with {authority} failed"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

impl GrpcClient {
    pub(super) async fn send(&self, body: Bytes) -> Outcome {
        let mut sender = match self.slot.sender().await {
            Ok(sender) => sender,
            Err(error) => return Outcome::Failed(error),
        };
        let mut request = Request::post(self.uri.clone())
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers")
            .header(http::header::USER_AGENT, "meshtrace-loadgen");
        if self.gzip {
            request = request.header("grpc-encoding", "gzip");
        }
        let request = match request.body(Full::new(body)) {
            Ok(request) => request,
            Err(error) => return Outcome::Failed(error.to_string()),
        };
        if let Err(error) = sender.ready().await {
            return Outcome::Failed(error.to_string());
        }
        match sender.send_request(request).await {
            Ok(response) => grpc_outcome(response).await,
            Err(error) => Outcome::Failed(error.to_string()),
        }
    }
}

async fn grpc_outcome(response: Response<Incoming>) -> Outcome {
    let (parts, body) = response.into_parts();
    let collected = match body.collect().await {
        Ok(collected) => collected,
        Err(error) => return Outcome::Failed(format!("reading the response: {error}")),
    };
    // A trailers-only answer (how errors usually come) carries the status in the headers.
    let trailers = collected.trailers();
    let field = |name: &str| {
        parts
            .headers
            .get(name)
            .or_else(|| trailers.and_then(|trailers| trailers.get(name)))
            .and_then(|value| value.to_str().ok())
    };
    classify_grpc(parts.status, field("grpc-status"), field("grpc-message"))
}

/// The outcome of a gRPC answer from its HTTP status and its `grpc-status`/`grpc-message`.
pub fn classify_grpc(
    status: http::StatusCode,
    grpc_status: Option<&str>,
    message: Option<&str>,
) -> Outcome {
    match grpc_status {
        Some("0") if status == http::StatusCode::OK => Outcome::Ok,
        Some(code) => Outcome::Refused(format!("grpc-status {code}: {}", message.unwrap_or(""))),
        None if status != http::StatusCode::OK => Outcome::Refused(format!("HTTP {status}")),
        None => Outcome::Failed("answer without grpc-status".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_answers_are_classified() {
        let ok = http::StatusCode::OK;
        assert_eq!(classify_grpc(ok, Some("0"), None), Outcome::Ok);
        assert!(
            matches!(classify_grpc(ok, Some("8"), Some("full")), Outcome::Refused(m) if m.contains("8: full"))
        );
        assert!(matches!(
            classify_grpc(http::StatusCode::BAD_GATEWAY, None, None),
            Outcome::Refused(_)
        ));
        assert!(matches!(classify_grpc(ok, None, None), Outcome::Failed(_)));
    }
}
