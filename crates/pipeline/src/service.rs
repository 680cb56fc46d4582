//! A running collector: builds a [`Plan`], starts it and shuts it down in order.
//!
//! Start order is extensions, exporters, processors, receivers, so nothing receives data before
//! its destination can take it; shutdown is the reverse, so receivers stop taking data first and
//! everything accepted before the signal drains through processors and exporter queues within
//! the deadline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use otlp::Signal;

use crate::component::{BuildContext, BuildError, Built, ComponentId, Kind, Lifecycle};
use crate::consumer::{Consumer, FanOut};
use crate::graph::Plan;
use crate::health::{HealthReporter, Status};
use crate::http_server::{self, Server};
use crate::telemetry::Telemetry;

/// A built collector.
pub struct Service {
    /// Lifecycles in start order.
    stages: Vec<(Kind, ComponentId, Box<dyn Lifecycle>)>,
    started: usize,
    telemetry: Arc<Telemetry>,
    health: HealthReporter,
    metrics_address: Option<String>,
    metrics_server: Option<Server>,
    shut_down: bool,
}

impl Service {
    /// Builds every component the plan's pipelines use. Nothing is bound or started yet.
    pub fn build(mut plan: Plan) -> Result<Service, BuildError> {
        let telemetry = Arc::new(Telemetry::new());
        let health = HealthReporter::new();
        let context = |id: &ComponentId, kind: Kind| BuildContext {
            id: id.clone(),
            kind,
            signal: None,
            next: None,
            outputs: Vec::new(),
            telemetry: telemetry.clone(),
            health: health.clone(),
        };
        let build = |kind: Kind, context: BuildContext| -> Result<Built, BuildError> {
            let id = context.id.clone();
            let component = plan.configured.get(&(kind, id.clone())).ok_or_else(|| {
                BuildError::new(&id, "used in a pipeline but not configured").of(kind)
            })?;
            component.build(context).map_err(|error| error.of(kind))
        };

        let mut extensions = Vec::new();
        for id in &plan.extensions {
            let built = build(Kind::Extension, context(id, Kind::Extension))?;
            extensions.push((Kind::Extension, id.clone(), built.lifecycle));
        }

        // One exporter instance per id and signal, shared by the pipelines of that signal.
        let mut exporters: BTreeMap<(ComponentId, Signal), Arc<dyn Consumer>> = BTreeMap::new();
        let mut exporter_stages = Vec::new();
        for pipeline in &plan.pipelines {
            for id in &pipeline.exporters {
                let key = (id.clone(), pipeline.signal);
                if exporters.contains_key(&key) {
                    continue;
                }
                let mut ctx = context(id, Kind::Exporter);
                ctx.signal = Some(pipeline.signal);
                let built = build(Kind::Exporter, ctx)?;
                let consumer = built.consumer.ok_or_else(|| {
                    BuildError::new(id, "built without a consumer").of(Kind::Exporter)
                })?;
                exporters.insert(key, consumer);
                exporter_stages.push((Kind::Exporter, id.clone(), built.lifecycle));
            }
        }

        // Each pipeline owns its processor instances, built from the exporters backwards.
        let mut entries: Vec<Arc<dyn Consumer>> = Vec::new();
        let mut processor_stages = Vec::new();
        for pipeline in &plan.pipelines {
            let outputs = pipeline
                .exporters
                .iter()
                .filter_map(|id| exporters.get(&(id.clone(), pipeline.signal)).cloned())
                .collect();
            let mut next = FanOut::of(outputs);
            for id in pipeline.processors.iter().rev() {
                let mut ctx = context(id, Kind::Processor);
                ctx.signal = Some(pipeline.signal);
                ctx.next = Some(next.clone());
                let built = build(Kind::Processor, ctx)?;
                next = built.consumer.ok_or_else(|| {
                    BuildError::new(id, "built without a consumer").of(Kind::Processor)
                })?;
                processor_stages.push((Kind::Processor, id.clone(), built.lifecycle));
            }
            entries.push(next);
        }

        // A receiver is built once, however many pipelines use it, and fans out per signal.
        let mut receiver_ids: Vec<&ComponentId> = Vec::new();
        for pipeline in &plan.pipelines {
            for id in &pipeline.receivers {
                if !receiver_ids.contains(&id) {
                    receiver_ids.push(id);
                }
            }
        }
        let mut receiver_stages = Vec::new();
        for id in receiver_ids {
            let mut outputs = Vec::new();
            for signal in Signal::ALL {
                let consumers: Vec<Arc<dyn Consumer>> = plan
                    .pipelines
                    .iter()
                    .zip(&entries)
                    .filter(|(p, _)| p.signal == signal && p.receivers.contains(id))
                    .map(|(_, entry)| entry.clone())
                    .collect();
                if !consumers.is_empty() {
                    outputs.push((signal, FanOut::of(consumers)));
                }
            }
            let mut ctx = context(id, Kind::Receiver);
            ctx.outputs = outputs;
            let built = build(Kind::Receiver, ctx)?;
            receiver_stages.push((Kind::Receiver, id.clone(), built.lifecycle));
        }

        plan.configured.clear();
        let mut stages = extensions;
        stages.extend(exporter_stages);
        // Processors start downstream first, matching the order they were built in.
        stages.extend(processor_stages);
        stages.extend(receiver_stages);
        Ok(Service {
            stages,
            started: 0,
            telemetry,
            health,
            metrics_address: plan.telemetry.metrics_address.clone(),
            metrics_server: None,
            shut_down: false,
        })
    }

    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    pub fn health(&self) -> &HealthReporter {
        &self.health
    }

    /// Where the metrics endpoint listens, once started.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_server.as_ref().map(Server::local_addr)
    }

    /// Starts everything; on failure, shuts down what already started and returns the error.
    pub async fn start(&mut self) -> Result<(), BuildError> {
        if let Some(address) = self.metrics_address.clone() {
            let listener = http_server::bind("service.telemetry.metrics", &address).await.map_err(
                |message| BuildError { kind: "service".into(), id: "telemetry".into(), message },
            )?;
            let telemetry = self.telemetry.clone();
            let server = Server::start(
                listener,
                http_server::handler(move |_request| {
                    let text = telemetry.encode();
                    async move {
                        http_server::respond(
                            200,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            text,
                        )
                    }
                }),
            );
            tracing::info!(endpoint = %server.local_addr(), "metrics listening");
            self.metrics_server = Some(server);
        }
        while self.started < self.stages.len() {
            let (kind, id, lifecycle) = &mut self.stages[self.started];
            if let Err(error) = lifecycle.start().await {
                tracing::error!(kind = kind.as_str(), id = %id, %error, "start failed");
                self.shutdown(Duration::from_secs(5)).await;
                return Err(error);
            }
            self.started += 1;
        }
        self.health.set_status(Status::Ready);
        tracing::info!(components = self.stages.len(), "everything is ready");
        Ok(())
    }

    /// Stops receivers first, then drains processors and exporters, all within `grace`.
    /// Calling it again does nothing.
    pub async fn shutdown(&mut self, grace: Duration) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        self.health.set_status(Status::ShuttingDown);
        // A huge `--shutdown-timeout` means "wait as long as it takes", not an overflow.
        let now = Instant::now();
        let deadline = now.checked_add(grace).unwrap_or(now + Duration::from_secs(86_400 * 365));
        tracing::info!(?grace, "shutting down");
        while self.started > 0 {
            self.started -= 1;
            let (kind, id, lifecycle) = &mut self.stages[self.started];
            lifecycle.shutdown(deadline).await;
            tracing::debug!(kind = kind.as_str(), id = %id, "stopped");
        }
        if let Some(mut server) = self.metrics_server.take() {
            server.shutdown(deadline.max(Instant::now() + Duration::from_millis(100))).await;
        }
        tracing::info!("shutdown complete");
    }
}
