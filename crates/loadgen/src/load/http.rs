//! The OTLP/HTTP client: one HTTP/1.1 keep-alive connection per worker, as HTTP/1.1 cannot
//! multiplex; reconnected when it closes.

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::{Request, Response};
use otlp::Signal;

use super::Shape;
use super::client::{Client, tcp};
use super::stats::Outcome;

/// One worker's client and its connection.
pub(super) struct HttpClient {
    authority: String,
    sender: Option<http1::SendRequest<Full<Bytes>>>,
    gzip: bool,
}

/// `shape.concurrency` clients, each with its own connection to `authority`.
pub(super) async fn clients(
    authority: &str,
    shape: &Shape,
    gzip: bool,
) -> anyhow::Result<Vec<Client>> {
    let mut clients = Vec::with_capacity(shape.concurrency);
    for _ in 0..shape.concurrency {
        let sender = connect_h1(authority).await?;
        clients.push(Client::Http(HttpClient {
            authority: authority.to_string(),
            sender: Some(sender),
            gzip,
        }));
    }
    Ok(clients)
}

/// An HTTP/1.1 connection to `authority`, sending bodies of type `B`; also how `run` scrapes
/// the collector's metrics and how `http-load` connects.
pub(crate) async fn connect_h1<B>(authority: &str) -> anyhow::Result<http1::SendRequest<B>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = tcp(authority).await?;
    let (sender, connection) = http1::handshake(io)
        .await
        .with_context(|| format!("HTTP/1.1 handshake with {authority} failed"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

impl HttpClient {
    pub(super) async fn send(&mut self, body: Bytes) -> Outcome {
        let HttpClient { authority, sender, gzip } = self;
        let ready = match sender.as_mut() {
            Some(sender) if !sender.is_closed() => sender.ready().await.is_ok(),
            _ => false,
        };
        if !ready {
            *sender = None;
            match connect_h1(authority).await {
                Ok(connected) => *sender = Some(connected),
                Err(error) => return Outcome::Failed(format!("{error:#}")),
            }
        }
        let Some(sender) = sender.as_mut() else {
            return Outcome::Failed("not connected".into());
        };
        let mut request = Request::post(Signal::Traces.http_path())
            .header(http::header::HOST, authority.as_str())
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .header(http::header::USER_AGENT, "meshtrace-loadgen");
        if *gzip {
            request = request.header(http::header::CONTENT_ENCODING, "gzip");
        }
        let request = match request.body(Full::new(body)) {
            Ok(request) => request,
            Err(error) => return Outcome::Failed(error.to_string()),
        };
        match sender.send_request(request).await {
            Ok(response) => http_outcome(response).await,
            Err(error) => Outcome::Failed(error.to_string()),
        }
    }
}

async fn http_outcome(response: Response<Incoming>) -> Outcome {
    let status = response.status();
    match response.into_body().collect().await {
        Err(error) => Outcome::Failed(format!("reading the response: {error}")),
        Ok(_) if status.is_success() => Outcome::Ok,
        Ok(body) => {
            let text = body.to_bytes();
            let text = String::from_utf8_lossy(&text[..text.len().min(200)]).trim().to_string();
            Outcome::Refused(format!("HTTP {status}: {text}"))
        }
    }
}
