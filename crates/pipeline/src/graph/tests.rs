//! Whole-config validation and service wiring, with minimal components defined here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use otlp::{Batch, Signal};
use serde::Deserialize;

use super::*;
use crate::component::{
    BuildContext, BuildError, Built, Factory, Lifecycle, NoLifecycle, Stability,
};
use crate::consumer::{ConsumeError, Consumer};
use crate::service::Service;

/// Everything the test components saw.
#[derive(Default)]
struct Log {
    receivers_built: AtomicUsize,
    processors_built: AtomicUsize,
    outputs: Mutex<Vec<(String, Vec<Signal>)>>,
    delivered: Mutex<Vec<(String, u64)>>,
    entries: Mutex<Vec<(Signal, Arc<dyn Consumer>)>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct EndpointConfig {
    endpoint: String,
}

struct TestFactory {
    kind: Kind,
    type_name: &'static str,
    signals: &'static [(Signal, Stability)],
    log: Arc<Log>,
}

struct TestConfigured {
    kind: Kind,
    endpoint: String,
    path: String,
    log: Arc<Log>,
}

impl Factory for TestFactory {
    fn kind(&self) -> Kind {
        self.kind
    }
    fn type_name(&self) -> &'static str {
        self.type_name
    }
    fn signals(&self) -> &'static [(Signal, Stability)] {
        self.signals
    }
    fn configure(&self, raw: &Value, path: &str) -> Result<Box<dyn Configured>, ConfigErrors> {
        let config: EndpointConfig = config::from_value(raw, path)?;
        Ok(Box::new(TestConfigured {
            kind: self.kind,
            endpoint: config.endpoint,
            path: path.to_string(),
            log: self.log.clone(),
        }))
    }
}

/// Passes batches on (processor) or records them under its id (exporter).
struct Stage {
    id: String,
    next: Option<Arc<dyn Consumer>>,
    log: Arc<Log>,
}

impl Consumer for Stage {
    fn consume(&self, batch: Batch) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(async move {
            match &self.next {
                Some(next) => next.consume(batch).await,
                None => {
                    self.log.delivered.lock().unwrap().push((self.id.clone(), batch.items()));
                    Ok(())
                }
            }
        })
    }
}

impl Configured for TestConfigured {
    fn listen_addresses(&self) -> Vec<(String, String)> {
        if self.endpoint.is_empty() {
            return Vec::new();
        }
        vec![(format!("{}.endpoint", self.path), self.endpoint.clone())]
    }

    fn build(&self, context: BuildContext) -> Result<Built, BuildError> {
        let lifecycle: Box<dyn Lifecycle> = Box::new(NoLifecycle);
        match self.kind {
            Kind::Receiver => {
                self.log.receivers_built.fetch_add(1, Ordering::SeqCst);
                let signals = context.outputs.iter().map(|(s, _)| *s).collect();
                self.log.outputs.lock().unwrap().push((context.id.to_string(), signals));
                self.log.entries.lock().unwrap().extend(context.outputs.iter().cloned());
                Ok(Built { consumer: None, lifecycle })
            }
            Kind::Processor => {
                self.log.processors_built.fetch_add(1, Ordering::SeqCst);
                let next = Some(context.require_next()?);
                let stage = Stage { id: context.id.to_string(), next, log: self.log.clone() };
                Ok(Built { consumer: Some(Arc::new(stage)), lifecycle })
            }
            Kind::Exporter => {
                let id = format!("{}:{}", context.id, context.require_signal()?);
                let stage = Stage { id, next: None, log: self.log.clone() };
                Ok(Built { consumer: Some(Arc::new(stage)), lifecycle })
            }
            Kind::Extension => Ok(Built { consumer: None, lifecycle }),
        }
    }
}

const ALL: &[(Signal, Stability)] = &[
    (Signal::Traces, Stability::Beta),
    (Signal::Logs, Stability::Beta),
    (Signal::Metrics, Stability::Beta),
];
const TRACES_ONLY: &[(Signal, Stability)] = &[(Signal::Traces, Stability::Beta)];

fn registry(log: &Arc<Log>) -> Registry {
    let mut registry = Registry::new();
    for (kind, type_name, signals) in [
        (Kind::Receiver, "otlp", ALL),
        (Kind::Processor, "batch", ALL),
        (Kind::Exporter, "otlp", ALL),
        (Kind::Exporter, "zipkin", TRACES_ONLY),
        (Kind::Extension, "health_check", &[][..]),
    ] {
        registry.register(TestFactory { kind, type_name, signals, log: log.clone() });
    }
    registry
}

fn parse(yaml: &str) -> Value {
    config::parse_yaml(yaml, "test.yaml").unwrap()
}

fn messages(yaml: &str) -> Vec<String> {
    let log = Arc::new(Log::default());
    match plan(&parse(yaml), &registry(&log)) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn every_mistake_is_reported_with_its_key_path() {
    let errors = messages(
        r#"
receivers:
  otlp:
  jaeger:
processors:
  batch:
    colour: blue
exporters:
  otlp:
  zipkin:
connectors:
  spanmetrics:
service:
  extensions: [pprof]
  pipelines:
    traces:
      receivers: [otlp, kafka]
      processors: [batch, batch]
      exporters: [otlp, datadog]
    metrics:
      receivers: [otlp]
      exporters: [zipkin]
    spans:
      receivers: [otlp]
      exporters: [otlp]
"#,
    );
    let expected = [
        "connectors: connectors are not supported yet (found spanmetrics); route data with pipelines that share receivers or exporters instead",
        "receivers.jaeger: unknown receiver type \"jaeger\"; supported receiver types: otlp",
        "processors.batch.colour: unknown key \"colour\"; valid keys: endpoint",
        "service.extensions[0]: references extension \"pprof\" which is not configured; configured extensions: none",
        "service.pipelines.metrics.exporters[0]: exporter \"zipkin\" does not support metrics",
        "service.pipelines.spans: unknown pipeline type \"spans\"; expected traces, metrics or logs",
        "service.pipelines.traces.receivers[1]: references receiver \"kafka\" which is not configured; configured receivers: jaeger, otlp",
        "service.pipelines.traces.processors[1]: processor \"batch\" is listed twice",
        "service.pipelines.traces.exporters[1]: references exporter \"datadog\" which is not configured; configured exporters: otlp, zipkin",
    ];
    for line in expected {
        assert!(errors.iter().any(|e| e == line), "missing {line:?} in {errors:#?}");
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

#[test]
fn two_components_on_one_port_are_reported_but_port_zero_never_clashes() {
    let errors = messages(
        r#"
receivers:
  otlp:
    endpoint: 0.0.0.0:4317
  otlp/2:
    endpoint: localhost:4317
  otlp/3:
    endpoint: 127.0.0.1:0
  otlp/4:
    endpoint: 127.0.0.1:0
exporters:
  otlp:
service:
  telemetry:
    metrics:
      address: 127.0.0.1:4317
  pipelines:
    traces:
      receivers: [otlp, otlp/2, otlp/3, otlp/4]
      exporters: [otlp]
"#,
    );
    assert_eq!(
        errors,
        [
            "receivers.otlp.endpoint: address \"0.0.0.0:4317\" is already used by service.telemetry.metrics.address",
            "receivers.otlp/2.endpoint: address \"localhost:4317\" is already used by service.telemetry.metrics.address",
        ]
    );
}

#[test]
fn a_pipeline_needs_receivers_and_exporters_and_the_service_needs_pipelines() {
    assert_eq!(
        messages("receivers: {otlp: }\nservice:\n  pipelines:\n    logs:\n      processors: []\n"),
        [
            "service.pipelines.logs.receivers: a pipeline needs at least one of its receivers",
            "service.pipelines.logs.exporters: a pipeline needs at least one of its exporters",
        ]
    );
    assert_eq!(
        messages("receivers: {otlp: }\n"),
        ["service: missing: a collector needs at least one pipeline under service.pipelines"]
    );
    assert_eq!(
        messages(
            "exporters: {otlp: }\nservice:\n  telemetry:\n    logs:\n      level: loud\n  pipelines: {}\n"
        ),
        [
            "service.pipelines: at least one pipeline is required",
            "service.telemetry.logs.level: invalid level \"loud\": expected debug, info, warn or error",
        ]
    );
    assert_eq!(messages("recievers: {}\n").len(), 1, "an unknown top-level key is an error");
}

#[tokio::test]
async fn a_shared_receiver_is_built_once_and_fans_out_to_each_pipeline() {
    let log = Arc::new(Log::default());
    let yaml = r#"
receivers:
  otlp:
processors:
  batch:
exporters:
  otlp:
  zipkin:
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp, zipkin]
    traces/copy:
      receivers: [otlp]
      exporters: [otlp]
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
"#;
    let plan = plan(&parse(yaml), &registry(&log)).unwrap();
    let mut service = Service::build(plan).unwrap();
    service.start().await.unwrap();
    assert_eq!(log.receivers_built.load(Ordering::SeqCst), 1);
    assert_eq!(log.processors_built.load(Ordering::SeqCst), 2, "one batch instance per pipeline");
    assert_eq!(
        *log.outputs.lock().unwrap(),
        [("otlp".to_string(), vec![Signal::Traces, Signal::Logs])]
    );

    let entries = log.entries.lock().unwrap().clone();
    for (signal, entry) in &entries {
        let batch = match signal {
            Signal::Traces => Batch::from_traces(otlp::fixtures::sidecar_traces(3, 1)),
            _ => Batch::from_logs(otlp::fixtures::sidecar_logs(2, 1)),
        };
        entry.consume(batch).await.unwrap();
    }
    let mut delivered = log.delivered.lock().unwrap().clone();
    delivered.sort();
    // traces: both traces pipelines reach the shared otlp exporter, one reaches zipkin.
    assert_eq!(
        delivered,
        [
            ("otlp:logs".to_string(), 2),
            ("otlp:traces".to_string(), 3),
            ("otlp:traces".to_string(), 3),
            ("zipkin:traces".to_string(), 3),
        ]
    );
    service.shutdown(Duration::from_secs(1)).await;
    service.shutdown(Duration::from_secs(1)).await;
}
