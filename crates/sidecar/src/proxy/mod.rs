//! The proxy: the sidecar's three listeners and the forwarding between them and the app.
//!
//! [`Sidecar::start`] binds, from the typed [`SidecarConfig`]:
//!
//! - **inbound** (`0.0.0.0:15006`): callers → the local app;
//! - **outbound** (`127.0.0.1:15001`): the app → other services, by `Host`/`:authority` or by
//!   an absolute-form URI, so an app run with `HTTP_PROXY=http://127.0.0.1:15001` is meshed
//!   without code changes;
//! - **admin** (`127.0.0.1:15000`): `/ready`, `/stats/prometheus`, `/config_dump`.
//!
//! Both proxy listeners speak HTTP/1.1 (keep-alive, upgrades) and HTTP/2 with prior knowledge
//! (gRPC: trailers, streaming) on both sides, pool upstream connections, and report every
//! exchange to the [`Observer`]. A request flows through these layers, one module each:
//!
//! 1. `listener.rs`: accept, limits against bad clients (header timeout, 431);
//! 2. `forward.rs`: the exchange, in order: route → headers → observe → send → relay;
//!    `upstream.rs` picks the destination and names its Envoy cluster, `headers.rs` applies
//!    the hop-by-hop and `x-forwarded-*` rules;
//! 3. `connect.rs`: upstream connections under the client's pool (resolve, connect, retry);
//! 4. `exchange.rs`: the bodies, counted and streamed, and the exchange completed exactly once;
//!    `idle.rs`: Envoy's stream idle timeout on the bodies and the wait for a response head;
//!    `local_reply.rs`: Envoy's answers when forwarding fails (`UF`, `URX`, `UC`, `UT`, `NR`,
//!    `SI`);
//! 5. `upgrade.rs`: tunnels: WebSocket-style after a `101`, and outbound `CONNECT`;
//! 6. `drain.rs`: two-step shutdown;
//! 7. `workers.rs`: the worker threads that run layers 1–5, each on its own single-threaded
//!    runtime (the admin listener runs on the caller's runtime).
//!
//! Defaults follow Istio's sidecar; [`ProxyOptions`] holds the knobs that are not in the
//! config file.

mod completions;
mod connect;
mod counting_io;
mod drain;
mod exchange;
mod forward;
pub(crate) mod headers;
mod idle;
mod listener;
mod local_reply;
mod pool;
mod upgrade;
pub(crate) mod upstream;
mod workers;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::config::ListenAddress;
use http::header::{self, HeaderValue};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use self::connect::ConnectSettings;
use self::drain::{Drain, Shutdown};
use self::exchange::ResponseBody;
use self::forward::{ForwardSettings, Forwarder};
use self::listener::{ConnectionInfo, Handler, Limits};
use self::upstream::Router;
use self::workers::Workers;
use crate::admin::{self, AdminState};
use crate::config::SidecarConfig;
use crate::observe::Observer;

/// Proxy settings that the config file does not carry; the defaults are Istio's.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Time a client has for each HTTP/1 request head, and any connection for its first
    /// request (slowloris); also closes idle HTTP/1 keep-alive connections. Default 30 s.
    pub header_read_timeout: Duration,
    /// Largest request head accepted, answered `431` beyond (Envoy's
    /// `max_request_headers_kb` default, 60 KiB).
    pub max_request_header_bytes: usize,
    /// Upstream connect timeout per attempt (Istio's `connectTimeout` default, 10 s).
    pub connect_timeout: Duration,
    /// Connect retries for outbound requests (Istio's default retry policy: 2 attempts on
    /// `connect-failure`); inbound requests are not retried, as in Istio.
    pub outbound_connect_retries: u32,
    /// Base of the jittered exponential back-off between connect retries (Envoy: 25 ms).
    pub retry_backoff: Duration,
    /// Longest wait for an upstream's response head, answered `504` (`UT`) beyond. `None`
    /// (Istio's default: route timeouts are disabled) waits as long as it takes.
    pub upstream_timeout: Option<Duration>,
    /// How long an idle pooled upstream connection is kept. Default 90 s.
    pub pool_idle_timeout: Duration,
    /// How long a stream may go without activity in either direction (Envoy's
    /// `stream_idle_timeout`): `408` (`SI`) before the response head, a reset after. Default
    /// 5 minutes, Envoy's; `None` never.
    pub stream_idle_timeout: Option<Duration>,
    /// How often a `CONNECT` tunnel's bytes are reported to the TCP metrics while it is open
    /// (Istio's `tcp_reporting_duration`, 5 s by default), besides at its close.
    pub tcp_report_interval: Duration,
    /// Worker threads serving the inbound and outbound listeners (Envoy's `--concurrency`);
    /// 0 counts as 1. Default 2, Istio's sidecar default.
    pub workers: usize,
}

impl Default for ProxyOptions {
    fn default() -> ProxyOptions {
        ProxyOptions {
            header_read_timeout: Duration::from_secs(30),
            max_request_header_bytes: 60 * 1024,
            connect_timeout: Duration::from_secs(10),
            outbound_connect_retries: 2,
            retry_backoff: Duration::from_millis(25),
            upstream_timeout: None,
            pool_idle_timeout: Duration::from_secs(90),
            stream_idle_timeout: Some(Duration::from_secs(300)),
            tcp_report_interval: Duration::from_secs(5),
            workers: 2,
        }
    }
}

/// Why the proxy could not start; start-up stops there (a permanent error).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound (or shared with the workers).
    #[error("{listener} listener: cannot listen on {endpoint}")]
    Listen {
        listener: &'static str,
        endpoint: String,
        #[source]
        source: io::Error,
    },
    /// The worker threads or their runtimes could not be made, or a worker could not accept on
    /// a listener.
    #[error("cannot start the proxy's worker threads")]
    Workers(#[source] io::Error),
}

/// Starts sidecars.
#[derive(Debug)]
pub struct Sidecar;

impl Sidecar {
    /// Binds the three listeners with the default [`ProxyOptions`] and starts serving.
    pub async fn start(
        config: &SidecarConfig,
        observer: Arc<dyn Observer>,
        admin: AdminState,
    ) -> Result<RunningSidecar, StartError> {
        Sidecar::start_with(config, observer, admin, ProxyOptions::default()).await
    }

    /// Binds the three listeners and starts serving. Every listener is bound before any is
    /// served, so a port in use fails start-up cleanly; `/ready` turns `LIVE` at the end.
    pub async fn start_with(
        config: &SidecarConfig,
        observer: Arc<dyn Observer>,
        admin: AdminState,
        options: ProxyOptions,
    ) -> Result<RunningSidecar, StartError> {
        let listeners = &config.listeners;
        let admin_listener = bind("admin", &listeners.admin).await?;
        let outbound_listener = bind("outbound", &listeners.outbound).await?;
        let inbound_listener = match &listeners.inbound {
            Some(inbound) => Some((bind("inbound", &inbound.listen).await?, inbound)),
            None => None,
        };
        let addresses = Addresses {
            inbound: inbound_listener.as_ref().and_then(|(l, _)| l.local_addr().ok()),
            outbound: local_addr(&outbound_listener),
            admin: local_addr(&admin_listener),
        };

        let (shutdown, drain) = drain::channel();
        let limits = Limits {
            header_read_timeout: options.header_read_timeout,
            max_header_bytes: options.max_request_header_bytes,
        };
        let forwarding = |retries| ForwardSettings {
            connect: ConnectSettings {
                timeout: options.connect_timeout,
                retries,
                backoff: options.retry_backoff,
                refuse: vec![addresses.outbound],
            },
            upstream_timeout: options.upstream_timeout,
            pool_idle_timeout: options.pool_idle_timeout,
            stream_idle_timeout: options.stream_idle_timeout,
            tcp_report_interval: options.tcp_report_interval,
        };
        let inbound = match inbound_listener {
            Some((listener, inbound)) => {
                tracing::info!(listener = "inbound", endpoint = %local_addr(&listener), "listening");
                let router = Arc::new(Router::inbound(&inbound.app));
                Some(Proxied::new("inbound", &inbound.listen, listener, router, forwarding(0))?)
            }
            None => None,
        };
        tracing::info!(listener = "outbound", endpoint = %addresses.outbound, "listening");
        let outbound = Proxied::new(
            "outbound",
            &listeners.outbound,
            outbound_listener,
            Arc::new(Router::outbound(config)),
            forwarding(options.outbound_connect_retries),
        )?;
        let mut setups = Vec::new();
        for _ in 0..options.workers.max(1) {
            let worker = Worker {
                inbound: match &inbound {
                    Some(proxied) => Some(proxied.try_clone()?),
                    None => None,
                },
                outbound: outbound.try_clone()?,
                observer: observer.clone(),
                limits,
                drain: drain.clone(),
            };
            setups.push(move || worker.serve());
        }
        drop((inbound, outbound));
        let workers = Workers::start(setups).await.map_err(StartError::Workers)?;
        tracing::debug!(workers = workers.count(), "proxy workers started");
        admin.set_config_dump(&admin::config_dump(
            config,
            addresses.describe(config),
            describe_options(&options),
        ));
        tracing::info!(listener = "admin", endpoint = %addresses.admin, "listening");
        let handler = Arc::new(AdminHandler(admin.clone()));
        listener::spawn("admin", admin_listener, handler, limits, drain);
        admin.set_live();
        Ok(RunningSidecar { addresses, admin, shutdown, workers })
    }
}

/// A started sidecar. Dropping it without [`shutdown`](RunningSidecar::shutdown) closes
/// every listener and connection without draining (the workers' as they see the signal, a
/// moment later, on their own threads).
#[derive(Debug)]
pub struct RunningSidecar {
    addresses: Addresses,
    admin: AdminState,
    shutdown: Shutdown,
    workers: Workers,
}

#[derive(Debug, Clone, Copy)]
struct Addresses {
    inbound: Option<SocketAddr>,
    outbound: SocketAddr,
    admin: SocketAddr,
}

impl RunningSidecar {
    /// Where the inbound listener is bound (`None` for a client-only workload).
    pub fn inbound_addr(&self) -> Option<SocketAddr> {
        self.addresses.inbound
    }

    /// Where the outbound listener is bound.
    pub fn outbound_addr(&self) -> SocketAddr {
        self.addresses.outbound
    }

    /// Where the admin listener is bound.
    pub fn admin_addr(&self) -> SocketAddr {
        self.addresses.admin
    }

    /// Stops accepting at once (listeners close), lets open exchanges finish until
    /// `deadline`, then closes what is left. Returns whether everything finished in time.
    pub async fn shutdown(self, deadline: Instant) -> bool {
        self.admin.set_draining();
        tracing::info!("sidecar draining");
        let drained = self.shutdown.run(deadline).await;
        self.workers.stop().await;
        tracing::info!(drained, "sidecar stopped");
        drained
    }
}

impl Addresses {
    fn describe(&self, config: &SidecarConfig) -> Value {
        let listeners = &config.listeners;
        json!({
            "inbound": listeners.inbound.as_ref().map(|inbound| json!({
                "listen": inbound.listen.to_string(),
                "bound": self.inbound.map(|a| a.to_string()),
                "app": inbound.app.to_string(),
                "cluster": format!("inbound|{}||", inbound.app.port),
                "service": inbound.service.as_ref().map(ToString::to_string),
            })),
            "outbound": {"listen": listeners.outbound.to_string(), "bound": self.outbound.to_string()},
            "admin": {"listen": listeners.admin.to_string(), "bound": self.admin.to_string()},
        })
    }
}

fn describe_options(options: &ProxyOptions) -> Value {
    let millis = |duration: Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    json!({
        "header_read_timeout_ms": millis(options.header_read_timeout),
        "max_request_header_bytes": options.max_request_header_bytes,
        "connect_timeout_ms": millis(options.connect_timeout),
        "outbound_connect_retries": options.outbound_connect_retries,
        "retry_backoff_ms": millis(options.retry_backoff),
        "upstream_timeout_ms": options.upstream_timeout.map(millis),
        "pool_idle_timeout_ms": millis(options.pool_idle_timeout),
        "stream_idle_timeout_ms": options.stream_idle_timeout.map(millis),
        "tcp_report_interval_ms": millis(options.tcp_report_interval),
        "workers": options.workers.max(1),
    })
}

async fn bind(listener: &'static str, address: &ListenAddress) -> Result<TcpListener, StartError> {
    let host = if address.host().is_empty() { "0.0.0.0" } else { address.host() };
    TcpListener::bind((host, address.port()))
        .await
        .map_err(listen_error(listener, address.to_string()))
}

/// The error of `listener`, configured at `endpoint`, that could not listen or share its socket.
fn listen_error(listener: &'static str, endpoint: String) -> impl FnOnce(io::Error) -> StartError {
    move |source| StartError::Listen { listener, endpoint, source }
}

fn local_addr(listener: &TcpListener) -> SocketAddr {
    listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// One proxy listener as the workers share it.
struct Proxied {
    name: &'static str,
    /// The configured address, for errors.
    endpoint: String,
    listener: std::net::TcpListener,
    router: Arc<Router>,
    settings: ForwardSettings,
}

impl Proxied {
    /// The bound `listener` as a std listener, whose clones the workers register with their own
    /// runtimes.
    fn new(
        name: &'static str,
        address: &ListenAddress,
        listener: TcpListener,
        router: Arc<Router>,
        settings: ForwardSettings,
    ) -> Result<Proxied, StartError> {
        let endpoint = address.to_string();
        let listener = listener.into_std().map_err(listen_error(name, endpoint.clone()))?;
        Ok(Proxied { name, endpoint, listener, router, settings })
    }

    /// Another handle on the same listening socket, for one more worker.
    fn try_clone(&self) -> Result<Proxied, StartError> {
        let listener =
            self.listener.try_clone().map_err(listen_error(self.name, self.endpoint.clone()))?;
        Ok(Proxied {
            name: self.name,
            endpoint: self.endpoint.clone(),
            listener,
            router: self.router.clone(),
            settings: self.settings.clone(),
        })
    }
}

/// What one worker serves.
struct Worker {
    inbound: Option<Proxied>,
    outbound: Proxied,
    observer: Arc<dyn Observer>,
    limits: Limits,
    drain: Drain,
}

impl Worker {
    /// Registers the worker's listeners with its runtime and starts its accept loops; runs on
    /// the worker's runtime.
    fn serve(self) -> io::Result<()> {
        let Worker { inbound, outbound, observer, limits, drain } = self;
        let mut accepting = Vec::new();
        for proxied in [inbound, Some(outbound)] {
            let Some(Proxied { name, endpoint, listener, router, settings }) = proxied else {
                continue;
            };
            let listener = TcpListener::from_std(listener).map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("{name} listener ({endpoint}): a worker cannot accept on it: {error}"),
                )
            })?;
            accepting.push((name, listener, router, settings));
        }
        for (name, listener, router, settings) in accepting {
            let forwarder = Forwarder::new(router, observer.clone(), settings, drain.clone());
            let handler = Arc::new(forwarder);
            listener::spawn(name, listener, handler, limits, drain.clone());
        }
        tokio::spawn(completions::run());
        Ok(())
    }
}

/// Serves [`AdminState`] answers.
struct AdminHandler(AdminState);

impl Handler for AdminHandler {
    fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        _connection: ConnectionInfo,
    ) -> impl Future<Output = Response<ResponseBody>> + Send + 'static {
        let reply = self.0.answer(request.method(), request.uri().path());
        let mut response = Response::new(ResponseBody::local(reply.body, None));
        *response.status_mut() = reply.status;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
        std::future::ready(response)
    }
}
