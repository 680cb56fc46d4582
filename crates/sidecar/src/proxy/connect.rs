//! Opening upstream connections for the pools.
//!
//! The connector does what Envoy's cluster does on connect: resolve names with tokio's
//! `lookup_host`, try each address, bound each attempt by the connect timeout (Istio's
//! `connectTimeout`, 10 s), set `TCP_NODELAY`, and retry a failed connect with Envoy's jittered
//! exponential back-off (25 ms base, at most 10× that) as Istio's default outbound retry
//! policy does (2 retries on `connect-failure`). Where an authority lives is the router's
//! answer ([`Router::target`]): the forwarded request keeps the authority the app called. The
//! number of attempts travels in [`ConnectError`] so the forwarder can report `URX` when
//! retries were exhausted.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use tokio::net::TcpStream;

use super::upstream::Router;
use crate::config::Endpoint;

/// How the connector connects.
#[derive(Debug, Clone)]
pub(crate) struct ConnectSettings {
    pub(crate) timeout: Duration,
    /// Extra attempts after a failed connect.
    pub(crate) retries: u32,
    /// Back-off base; attempt `n` waits a random time below `base × 2ⁿ⁻¹`, capped at 10× base.
    pub(crate) backoff: Duration,
    /// The sidecar's own outbound listener: a passthrough to it would loop forever (Istio
    /// avoids this with iptables rules that exempt the proxy's own traffic).
    pub(crate) refuse: Vec<SocketAddr>,
}

/// A connect that failed after `attempts` tries. Cheap to clone, so that the requests that
/// waited for one connect can all fail with its error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("upstream connect failed after {attempts} attempt(s): {source}")]
pub(crate) struct ConnectError {
    pub(crate) attempts: u32,
    #[source]
    source: Arc<io::Error>,
}

impl ConnectError {
    pub(crate) fn new(attempts: u32, source: io::Error) -> ConnectError {
        ConnectError { attempts, source: Arc::new(source) }
    }
}

/// Opens connections to where a forwarded request's authority lives.
#[derive(Debug)]
pub(crate) struct Connector {
    router: Arc<Router>,
    settings: ConnectSettings,
}

impl Connector {
    pub(crate) fn new(router: Arc<Router>, settings: ConnectSettings) -> Connector {
        Connector { router, settings }
    }

    /// A connection to `authority`'s upstream, with the retries the settings allow.
    pub(crate) async fn connect(&self, authority: &Authority) -> Result<TcpStream, ConnectError> {
        let Some(target) = self.router.target(Some(authority)) else {
            let source = io::Error::new(io::ErrorKind::InvalidInput, "no upstream authority");
            return Err(ConnectError::new(1, source));
        };
        connect(&target, &self.settings).await
    }
}

async fn connect(target: &Endpoint, settings: &ConnectSettings) -> Result<TcpStream, ConnectError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let attempt = connect_once(target, &settings.refuse);
        let error = match tokio::time::timeout(settings.timeout, attempt).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(error)) => error,
            Err(_) => io::Error::new(io::ErrorKind::TimedOut, "connect timeout"),
        };
        if attempts > settings.retries {
            return Err(ConnectError::new(attempts, error));
        }
        tracing::debug!(%error, upstream = %target, attempts, "upstream connect failed; retrying");
        tokio::time::sleep(backoff(settings.backoff, attempts)).await;
    }
}

async fn connect_once(target: &Endpoint, refuse: &[SocketAddr]) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "name resolved to no address");
    for address in tokio::net::lookup_host((target.host.as_str(), target.port)).await? {
        if loops_back(address, refuse) {
            last = io::Error::new(io::ErrorKind::ConnectionRefused, "the sidecar's own listener");
            continue;
        }
        match TcpStream::connect(address).await {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(error) => last = error,
        }
    }
    Err(last)
}

/// Whether `address` is one of `refuse`, also when that listener is bound to every interface
/// and `address` is a loopback address on its port.
fn loops_back(address: SocketAddr, refuse: &[SocketAddr]) -> bool {
    refuse.iter().any(|own| {
        *own == address
            || (own.port() == address.port()
                && own.ip().is_unspecified()
                && (address.ip().is_loopback() || address.ip().is_unspecified()))
    })
}

/// Envoy's back-off: a random wait below `base × 2^(attempt-1)`, capped at 10× base.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let ceiling = base.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(base * 10);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(rand::random_range(0..millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_below_its_ceiling() {
        let base = Duration::from_millis(25);
        for attempt in 1..40 {
            assert!(backoff(base, attempt) < Duration::from_millis(250));
        }
        assert!(backoff(base, 1) < base);
    }

    #[test]
    fn the_own_listener_is_refused() {
        let parse = |text: &str| text.parse::<SocketAddr>().unwrap_or_else(|e| panic!("{e}"));
        let own = [parse("127.0.0.1:15001")];
        assert!(loops_back(parse("127.0.0.1:15001"), &own));
        assert!(!loops_back(parse("127.0.0.1:15002"), &own));
        let everywhere = [parse("0.0.0.0:15001")];
        assert!(loops_back(parse("127.0.0.1:15001"), &everywhere));
        assert!(loops_back(parse("[::1]:15001"), &everywhere));
        assert!(!loops_back(parse("10.0.0.1:15001"), &everywhere));
    }
}
