//! Tunnels: exchanges that stop being HTTP and become a byte stream between two connections.
//!
//! - `Upgrade` (WebSocket and friends): the forwarder already sent the upgrade request
//!   upstream with `Connection: upgrade` and `Upgrade` kept (HTTP/1.1 only). After the
//!   upstream's `101 Switching Protocols`, the `101` goes back to the client ([`splice`]).
//! - `CONNECT` on the outbound listener (an app behind `HTTP_PROXY` reaching an HTTPS
//!   destination): the forwarder connected to the target; the client gets `200` and the
//!   tunnel runs straight to that TCP connection ([`connect`]).
//!
//! A task splices the two streams once hyper hands the client's over. The exchange stays open
//! while the tunnel does, as in Envoy, and completes when either side closes, with the
//! tunnel's bytes as body bytes (client → upstream as request bytes, upstream → client as
//! response bytes). A tunnel on which nothing moves for the stream idle timeout is closed
//! (`SI`), as Envoy closes an idle upgraded stream. Tunnels take part in draining: they run on
//! while the sidecar drains and are closed at the deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::Version;
use hyper::body::Incoming;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::counting_io::{CountingIo, OnClose};
use super::drain::{Drain, Phase};
use super::exchange::{Exchange, ResponseBody, ResponseFlags, shielded};
use super::headers;
use super::idle::{Activity, IdleTimer};
use crate::observe::{Direction, Observer, Tunnel};
use crate::received::Received;

/// How a tunnel is run: the drain it takes part in, the stream idle timeout, and how often a
/// `CONNECT` tunnel's bytes are reported while it runs.
#[derive(Clone)]
pub(crate) struct TunnelSettings {
    pub(crate) drain: Drain,
    pub(crate) idle_limit: Option<Duration>,
    pub(crate) report_interval: Duration,
}

/// Who hears about a `CONNECT` tunnel as TCP traffic (Istio's TCP metrics), and what the
/// [`Tunnel`] it reports says besides the upstream address.
///
/// Istio reports TCP metrics only for what its sidecar proxies as plain TCP (its stats filter
/// sits before `tcp_proxy`, never in an HTTP filter chain): an app's TLS traffic to an external
/// host, which reaches this sidecar as a `CONNECT`. HTTP connections, and upgrades on them,
/// are HTTP traffic there and here.
pub(crate) struct TcpReport {
    pub(crate) observer: Arc<dyn Observer>,
    pub(crate) direction: Direction,
    pub(crate) upstream_cluster: Arc<str>,
    pub(crate) authority: String,
}

/// Answers the client's upgrade with the upstream's `101` and starts the tunnel.
pub(crate) fn splice(
    response: Response<Incoming>,
    upstream_address: SocketAddr,
    downstream: OnUpgrade,
    upstream: OnUpgrade,
    mut exchange: Exchange,
    settings: TunnelSettings,
) -> Response<ResponseBody> {
    let (mut head, _empty) = response.into_parts();
    debug_assert_eq!(head.status, StatusCode::SWITCHING_PROTOCOLS);
    let received = headers::strip_response(&mut head.headers, true);
    exchange.response(
        head.status,
        head.version,
        &mut head.headers,
        received,
        Some(upstream_address),
    );
    tokio::spawn(async move {
        let Some(downstream) = client_side(downstream, &mut exchange).await else { return };
        let upstream = match upstream.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "upstream connection was not upgraded");
                exchange.flag(ResponseFlags::UPSTREAM_CONNECTION_TERMINATION);
                exchange.complete(0, 0, None);
                return;
            }
        };
        run(downstream, TokioIo::new(upstream), exchange, settings, None).await;
    });
    Response::from_parts(head, ResponseBody::empty())
}

/// Answers a `CONNECT` with `200` and starts the tunnel to `upstream`, the connection to its
/// target.
pub(crate) fn connect(
    upstream: TcpStream,
    downstream: OnUpgrade,
    mut exchange: Exchange,
    settings: TunnelSettings,
    version: Version,
    tcp: TcpReport,
) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::empty());
    *response.version_mut() = version;
    let address = upstream.peer_addr().ok();
    // The response was just made: it holds no header.
    exchange.response(
        StatusCode::OK,
        version,
        response.headers_mut(),
        Received::default(),
        address,
    );
    tokio::spawn(async move {
        let Some(downstream) = client_side(downstream, &mut exchange).await else { return };
        let meter = address.map(|upstream| Arc::new(TunnelMeter::opened(tcp, upstream)));
        run(downstream, upstream, exchange, settings, meter).await;
    });
    response
}

/// A `CONNECT` tunnel's TCP report: open at the start, its bytes every report interval and at
/// the end (each report the bytes since the one before), closed at the end.
struct TunnelMeter {
    report: TcpReport,
    upstream: SocketAddr,
    /// The totals already reported. Written from the tunnel's task only (its ticks, and the
    /// close when its client side is dropped), so a swap is enough.
    reported_sent: AtomicU64,
    reported_received: AtomicU64,
}

impl TunnelMeter {
    fn opened(report: TcpReport, upstream: SocketAddr) -> TunnelMeter {
        let meter = TunnelMeter {
            report,
            upstream,
            reported_sent: AtomicU64::new(0),
            reported_received: AtomicU64::new(0),
        };
        shielded("tunnel_opened", || meter.report.observer.tunnel_opened(&meter.tunnel()));
        meter
    }

    /// Reports what moved since the last report, given the totals so far.
    fn bytes(&self, sent: u64, received: u64) {
        let sent = sent.saturating_sub(self.reported_sent.swap(sent, Ordering::Relaxed));
        let received =
            received.saturating_sub(self.reported_received.swap(received, Ordering::Relaxed));
        if sent > 0 || received > 0 {
            shielded("tunnel_bytes", || {
                self.report.observer.tunnel_bytes(&self.tunnel(), sent, received);
            });
        }
    }

    /// The client side's closing report: the last bytes, then the close.
    fn closer(self: Arc<Self>) -> OnClose {
        Box::new(move |sent, received| {
            self.bytes(sent, received);
            shielded("tunnel_closed", || self.report.observer.tunnel_closed(&self.tunnel()));
        })
    }

    fn tunnel(&self) -> Tunnel<'_> {
        Tunnel {
            direction: self.report.direction,
            upstream: self.upstream,
            upstream_cluster: &self.report.upstream_cluster,
            authority: &self.report.authority,
        }
    }
}

/// The client's side of the tunnel once hyper hands it over; `None` (the exchange completed
/// with `DC`) when the client went away first.
async fn client_side(downstream: OnUpgrade, exchange: &mut Exchange) -> Option<Upgraded> {
    match downstream.await {
        Ok(upgraded) => Some(upgraded),
        Err(error) => {
            tracing::debug!(%error, "client connection was not upgraded");
            exchange.flag(ResponseFlags::DOWNSTREAM_TERMINATION);
            exchange.complete(0, 0, None);
            None
        }
    }
}

/// The next tick, if there are ticks; never without them.
async fn tick(ticks: &mut Option<tokio::time::Interval>) -> Option<tokio::time::Instant> {
    match ticks {
        Some(ticks) => Some(ticks.tick().await),
        None => std::future::pending().await,
    }
}

/// Copies both ways until either side closes, nothing moves for the idle limit, or the drain
/// deadline passes; a metered tunnel's bytes are reported every report interval meanwhile.
async fn run(
    downstream: Upgraded,
    mut upstream: impl AsyncRead + AsyncWrite + Unpin,
    mut exchange: Exchange,
    settings: TunnelSettings,
    meter: Option<Arc<TunnelMeter>>,
) {
    let TunnelSettings { mut drain, idle_limit, report_interval } = settings;
    let activity = Arc::new(Activity::new());
    let mut idle_timer = IdleTimer::new(idle_limit);
    // Every byte through the tunnel passes the client side, so it alone counts and watches;
    // its drop sends the closing report, however the tunnel ends (even a task aborted).
    let on_close = meter.clone().map(TunnelMeter::closer);
    let mut client = CountingIo::new(TokioIo::new(downstream), on_close).watching(activity.clone());
    let counts = client.counts();
    {
        let idle = idle_timer.expired(&activity);
        let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
        tokio::pin!(idle, copy);
        // Only a metered tunnel ticks; a zero interval (which tokio refuses) ticks every 1 ms.
        let mut ticks = meter.as_ref().map(|_| {
            let every = report_interval.max(Duration::from_millis(1));
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            // A late tick reports once, not once per interval missed.
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks
        });
        loop {
            tokio::select! {
                result = &mut copy => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "tunnel ended with an error");
                    }
                    break;
                }
                () = drain.reached(Phase::Closed) => break,
                () = &mut idle => {
                    tracing::debug!("tunnel idle; closed");
                    exchange.flag(ResponseFlags::STREAM_IDLE_TIMEOUT);
                    break;
                }
                Some(_) = tick(&mut ticks) => {
                    if let Some(meter) = &meter {
                        meter.bytes(counts.sent(), counts.received());
                    }
                }
            }
        }
    }
    exchange.complete(client.received(), client.sent(), None);
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::observe::{Completion, Observation, RequestView};

    /// Records the tunnel reports: `("bytes", sent, received)`, `("opened" | "closed", 0, 0)`.
    #[derive(Default)]
    struct Reports(Mutex<Vec<(&'static str, u64, u64)>>);

    struct Nothing;

    impl Observation for Nothing {
        fn response(&mut self, _response: &mut crate::observe::ResponseView<'_>) {}
        fn complete(self: Box<Self>, _completion: &Completion<'_>) {}
    }

    impl Observer for Reports {
        fn request(&self, _request: &mut RequestView<'_>) -> Box<dyn Observation> {
            Box::new(Nothing)
        }
        fn tunnel_opened(&self, _tunnel: &Tunnel<'_>) {
            self.0.lock().unwrap().push(("opened", 0, 0));
        }
        fn tunnel_bytes(&self, _tunnel: &Tunnel<'_>, sent: u64, received: u64) {
            self.0.lock().unwrap().push(("bytes", sent, received));
        }
        fn tunnel_closed(&self, _tunnel: &Tunnel<'_>) {
            self.0.lock().unwrap().push(("closed", 0, 0));
        }
    }

    #[test]
    fn each_byte_is_reported_once_by_a_tick_or_by_the_close() {
        let reports = Arc::new(Reports::default());
        let report = TcpReport {
            observer: reports.clone(),
            direction: Direction::Outbound,
            upstream_cluster: Arc::from("PassthroughCluster"),
            authority: "api.example.com:443".to_owned(),
        };
        let meter = Arc::new(TunnelMeter::opened(report, "10.0.0.1:443".parse().unwrap()));
        meter.bytes(9, 4);
        meter.bytes(9, 4); // a tick with nothing new reports nothing
        meter.closer()(19, 9);
        let reports = reports.0.lock().unwrap().clone();
        assert_eq!(
            reports,
            [("opened", 0, 0), ("bytes", 9, 4), ("bytes", 10, 5), ("closed", 0, 0)]
        );
    }
}
