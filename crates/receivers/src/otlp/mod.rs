//! The `otlp` receiver: OTLP/gRPC and OTLP/HTTP, as the collector's own.
//!
//! - [`config`]: the YAML and its validation.
//! - `ingest`: validation, hand-off to the pipeline and counting, shared by both transports.
//! - `grpc`, `http` (+ `cors`): the transports, translating outcomes into their status codes.

pub mod config;
mod cors;
mod grpc;
mod http;
mod ingest;
mod tls_incoming;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::future::BoxFuture;
use otlp::Signal;
use pipeline::http_server::{self, Server};
use pipeline::{
    BuildContext, BuildError, Built, ComponentId, Configured, Factory, Kind, Lifecycle, Stability,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use self::config::OtlpReceiverConfig;
use self::ingest::Ingest;

/// Makes `otlp` receivers.
pub struct OtlpReceiverFactory;

impl Factory for OtlpReceiverFactory {
    fn kind(&self) -> Kind {
        Kind::Receiver
    }

    fn type_name(&self) -> &'static str {
        "otlp"
    }

    fn signals(&self) -> &'static [(Signal, Stability)] {
        &[
            (Signal::Traces, Stability::Stable),
            (Signal::Metrics, Stability::Stable),
            (Signal::Logs, Stability::Beta),
        ]
    }

    fn configure(
        &self,
        raw: &::config::Value,
        path: &str,
    ) -> Result<Box<dyn Configured>, ::config::ConfigErrors> {
        Ok(Box::new(self.configure_typed(raw, path)?))
    }
}

impl OtlpReceiverFactory {
    /// [`Factory::configure`] with the concrete type, so a caller can build the receiver as
    /// [`OtlpReceiver`] (see [`ConfiguredOtlp::receiver`]) and ask for the addresses it bound.
    pub fn configure_typed(
        &self,
        raw: &::config::Value,
        path: &str,
    ) -> Result<ConfiguredOtlp, ::config::ConfigErrors> {
        let config: OtlpReceiverConfig = ::config::from_value(raw, path)?;
        let grpc_tls = config.validate(path)?;
        Ok(ConfiguredOtlp { config, path: path.to_string(), grpc_tls })
    }
}

/// An `otlp` receiver whose settings are valid.
pub struct ConfiguredOtlp {
    config: OtlpReceiverConfig,
    path: String,
    /// Built once while validating.
    grpc_tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

impl ConfiguredOtlp {
    /// The receiver, as [`Configured::build`] makes it, with its concrete type: after `start`,
    /// [`OtlpReceiver::bound_addresses`] tells the ports picked for port 0.
    pub fn receiver(&self, context: &BuildContext) -> OtlpReceiver {
        let ingests = |transport: &str| -> Vec<Ingest> {
            context
                .outputs
                .iter()
                .map(|(signal, consumer)| {
                    let metrics = context.telemetry.receiver(&context.id, transport, *signal);
                    Ingest::new(*signal, consumer.clone(), metrics)
                })
                .collect()
        };
        OtlpReceiver {
            id: context.id.clone(),
            config: self.config.clone(),
            grpc_tls: self.grpc_tls.clone(),
            grpc_ingests: ingests("grpc"),
            http_ingests: ingests("http"),
            grpc: None,
            http: None,
            bound: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl Configured for ConfiguredOtlp {
    fn listen_addresses(&self) -> Vec<(String, String)> {
        let mut addresses = Vec::new();
        if let Some(grpc) = &self.config.protocols.grpc {
            addresses
                .push((format!("{}.protocols.grpc.endpoint", self.path), grpc.endpoint.clone()));
        }
        if let Some(http) = &self.config.protocols.http {
            addresses
                .push((format!("{}.protocols.http.endpoint", self.path), http.endpoint.clone()));
        }
        addresses
    }

    fn build(&self, context: BuildContext) -> Result<Built, BuildError> {
        Ok(Built { consumer: None, lifecycle: Box::new(self.receiver(&context)) })
    }
}

/// A running (or ready to run) `otlp` receiver.
pub struct OtlpReceiver {
    id: ComponentId,
    config: OtlpReceiverConfig,
    grpc_tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    grpc_ingests: Vec<Ingest>,
    http_ingests: Vec<Ingest>,
    grpc: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    http: Option<Server>,
    bound: Arc<Mutex<Vec<(&'static str, SocketAddr)>>>,
}

impl OtlpReceiver {
    fn record(&self, protocol: &'static str, address: SocketAddr) {
        tracing::info!(receiver = %self.id, protocol, endpoint = %address, "listening");
        if let Ok(mut bound) = self.bound.lock() {
            bound.push((protocol, address));
        }
    }

    async fn start_grpc(&mut self) -> Result<(), BuildError> {
        let Some(grpc) = self.config.protocols.grpc.clone() else { return Ok(()) };
        let listener = http_server::bind("protocols.grpc.endpoint", &grpc.endpoint)
            .await
            .map_err(|message| BuildError::new(&self.id, message))?;
        if let Ok(address) = listener.local_addr() {
            self.record("grpc", address);
        }
        let tls = self.grpc_tls.clone();
        let max_bytes = usize::try_from(grpc.max_recv_msg_size_mib.saturating_mul(1024 * 1024))
            .unwrap_or(usize::MAX);
        let (stop, stopped) = oneshot::channel::<()>();
        let id = self.id.clone();
        let serve = grpc::serve(
            listener,
            tls,
            self.grpc_ingests.clone(),
            max_bytes,
            grpc.max_concurrent_streams,
            async move {
                let _ = stopped.await;
            },
        );
        let task = tokio::spawn(async move {
            if let Err(error) = serve.await {
                tracing::error!(receiver = %id, %error, "grpc server failed");
            }
        });
        self.grpc = Some((stop, task));
        Ok(())
    }

    async fn start_http(&mut self) -> Result<(), BuildError> {
        let Some(config) = self.config.protocols.http.clone() else { return Ok(()) };
        let listener = http_server::bind("protocols.http.endpoint", &config.endpoint)
            .await
            .map_err(|message| BuildError::new(&self.id, message))?;
        let receiver = Arc::new(http::HttpReceiver::new(&config, self.http_ingests.clone()));
        let server = Server::start(
            listener,
            http_server::handler(move |request| receiver.clone().handle(request)),
        );
        self.record("http", server.local_addr());
        self.http = Some(server);
        Ok(())
    }

    /// The addresses bound, by protocol: useful when the config asked for port 0.
    pub fn bound_addresses(&self) -> Vec<(&'static str, SocketAddr)> {
        self.bound.lock().map(|bound| bound.clone()).unwrap_or_default()
    }
}

impl Lifecycle for OtlpReceiver {
    fn start(&mut self) -> BoxFuture<'_, Result<(), BuildError>> {
        Box::pin(async move {
            self.start_grpc().await?;
            self.start_http().await
        })
    }

    fn shutdown(&mut self, deadline: Instant) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // Both transports stop taking new work first, then drain side by side: draining one
            // before even stopping the other would keep the second accepting meanwhile.
            let grpc = self.grpc.take();
            let mut http = self.http.take();
            let id = &self.id;
            let grpc = async move {
                let Some((stop, task)) = grpc else { return };
                let _ = stop.send(());
                if tokio::time::timeout_at(deadline.into(), task).await.is_err() {
                    tracing::warn!(receiver = %id, "grpc server did not stop before the deadline");
                }
            };
            let http = async {
                if let Some(server) = http.as_mut() {
                    server.shutdown(deadline).await;
                }
            };
            tokio::join!(grpc, http);
        })
    }
}
