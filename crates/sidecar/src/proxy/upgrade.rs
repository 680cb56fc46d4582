//! `Upgrade` (WebSocket and friends): after the upstream's `101 Switching Protocols`, the
//! exchange stops being HTTP and becomes a byte tunnel between the two connections.
//!
//! The forwarder already sent the upgrade request upstream with `Connection: upgrade` and
//! `Upgrade` kept (HTTP/1.1 only). Here the `101` goes back to the client, and a task splices
//! the two upgraded streams once hyper hands them over. The exchange stays open while the
//! tunnel does, as in Envoy, and completes when either side closes, with the tunnel's bytes as
//! body bytes (client → app as request bytes, app → client as response bytes). Tunnels take
//! part in draining: they run on while the sidecar drains and are closed at the deadline.

use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::counting_io::CountingIo;
use super::drain::{Drain, Phase};
use super::exchange::{Exchange, ResponseBody, ResponseFlags};
use super::headers;

/// Answers the client's upgrade with the upstream's `101` and starts the tunnel.
pub(crate) fn splice(
    response: Response<Incoming>,
    upstream_address: SocketAddr,
    downstream: OnUpgrade,
    upstream: OnUpgrade,
    mut exchange: Exchange,
    drain: Drain,
) -> Response<ResponseBody> {
    let (mut head, _empty) = response.into_parts();
    debug_assert_eq!(head.status, StatusCode::SWITCHING_PROTOCOLS);
    headers::strip_response(&mut head.headers, true);
    exchange.response(head.status, head.version, &mut head.headers, Some(upstream_address));
    tokio::spawn(tunnel(downstream, upstream, exchange, drain));
    Response::from_parts(head, ResponseBody::empty())
}

async fn tunnel(
    downstream: OnUpgrade,
    upstream: OnUpgrade,
    mut exchange: Exchange,
    mut drain: Drain,
) {
    let downstream = match downstream.await {
        Ok(upgraded) => upgraded,
        Err(error) => {
            tracing::debug!(%error, "client connection was not upgraded");
            exchange.flag(ResponseFlags::DOWNSTREAM_TERMINATION);
            exchange.complete(0, 0, None);
            return;
        }
    };
    let upstream = match upstream.await {
        Ok(upgraded) => upgraded,
        Err(error) => {
            tracing::debug!(%error, "upstream connection was not upgraded");
            exchange.flag(ResponseFlags::UPSTREAM_CONNECTION_TERMINATION);
            exchange.complete(0, 0, None);
            return;
        }
    };
    let mut client = CountingIo::new(TokioIo::new(downstream), None);
    let mut app = TokioIo::new(upstream);
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut client, &mut app) => {
            if let Err(error) = result {
                tracing::debug!(%error, "upgraded tunnel ended with an error");
            }
        }
        () = drain.reached(Phase::Closed) => {}
    }
    exchange.complete(client.received(), client.sent(), None);
}
