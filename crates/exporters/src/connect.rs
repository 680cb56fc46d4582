//! The one TCP (+ TLS) connector both OTLP exporters dial with.
//!
//! tonic's and hyper-rustls' own TLS set-ups each take their own settings; the collector's
//! `tls:` block (minimum version, client certificates, server name override) is turned into a
//! rustls config by the transport crate, so dialing here with tokio-rustls applies every key
//! the same way for gRPC and HTTP, and keeps the ring provider the only one in the binary.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A validated TLS client set-up.
#[derive(Clone)]
pub(crate) struct TlsSettings {
    pub(crate) config: Arc<ClientConfig>,
    /// `server_name_override`: the name the certificate is checked against instead of the host.
    pub(crate) server_name: Option<ServerName<'static>>,
}

/// Dials the URI's host and port, then runs a TLS handshake when set up with TLS.
///
/// Whether to use TLS is decided when the connector is made, not from the URI's scheme: for
/// gRPC the channel is given an `http://` URI (tonic refuses to dial `https://` through a
/// custom connector) while the requests still carry the `https` origin.
#[derive(Clone)]
pub(crate) struct Connector {
    tls: Option<TlsSettings>,
}

impl Connector {
    pub(crate) fn new(tls: Option<TlsSettings>) -> Connector {
        Connector { tls }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Stream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .map(|host| host.trim_start_matches('[').trim_end_matches(']').to_string())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host to dial"))?;
            let default_port = if tls.is_some() { 443 } else { 80 };
            let port = uri.port_u16().unwrap_or(default_port);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            // Export requests are written whole; Nagle would only delay the last segment.
            tcp.set_nodelay(true)?;
            let Some(tls) = tls else {
                return Ok(Stream::Plain(TokioIo::new(tcp)));
            };
            let server_name = match tls.server_name {
                Some(name) => name,
                None => ServerName::try_from(host.clone()).map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("\"{host}\" is not a valid TLS server name"),
                    )
                })?,
            };
            let stream = TlsConnector::from(tls.config).connect(server_name, tcp).await?;
            Ok(Stream::Tls(Box::new(TokioIo::new(stream))))
        })
    }
}

/// A dialed connection, plain or TLS.
pub(crate) enum Stream {
    Plain(TokioIo<TcpStream>),
    /// Boxed: a TLS stream is several kilobytes, a plain one a few words.
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Stream::Plain(_) => Connected::new(),
            Stream::Tls(stream) => {
                // hyper-util's client switches to HTTP/2 when ALPN chose it.
                let (_, session) = stream.inner().get_ref();
                if session.alpn_protocol() == Some(b"h2") {
                    Connected::new().negotiated_h2()
                } else {
                    Connected::new()
                }
            }
        }
    }
}

impl hyper::rt::Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(stream) => stream.is_write_vectored(),
            Stream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
}
