//! The exporter a direction's spans leave through: the collector's own `otlp` (gRPC),
//! `otlphttp` or `zipkin` exporter, configured from the direction's [`Exporter`] settings as if
//! a collector config had said so, so the sidecar gets the same timeout, retry with backoff and
//! bounded sending queue (counted in spans) as the collector. Also the resource every span is
//! sent under.

use std::sync::Arc;

use ::config::{Map, Value};
use otlp::Signal;
use otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
use otlp::proto::resource::v1::Resource;
use pipeline::health::HealthReporter;
use pipeline::telemetry::Telemetry;
use pipeline::{BuildContext, ComponentId, Consumer, Factory, Kind, Lifecycle};

use super::TracingError;
use crate::config::{
    Exporter, HeaderValueSource, OtlpExporter, OtlpProtocol, ResourceDetector, Workload,
    ZipkinExporter,
};
use crate::environment::Environment;

/// A built exporter.
pub(crate) struct BuiltExporter {
    /// Where batches go.
    pub(crate) consumer: Arc<dyn Consumer>,
    /// Starts and drains it.
    pub(crate) lifecycle: Box<dyn Lifecycle>,
}

/// What every exporter of one sidecar shares.
pub(crate) struct ExporterContext<'a> {
    pub(crate) env: &'a Environment,
    /// Capacity of the exporter's sending queue, in spans.
    pub(crate) queue_spans: u64,
    /// Where the exporters count (`otelcol_exporter_*`).
    pub(crate) telemetry: &'a Arc<Telemetry>,
}

/// The collector config of the exporter for `exporter`: its type and its YAML tree.
pub(crate) fn exporter_config(
    exporter: &Exporter,
    context: &ExporterContext<'_>,
    warnings: &mut Vec<String>,
) -> (&'static str, Value) {
    match exporter {
        Exporter::Otlp(otlp) => otlp_config(otlp, context, warnings),
        Exporter::Zipkin(zipkin) => zipkin_config(zipkin, context),
    }
}

/// An `otlp` or `otlphttp` exporter's config.
fn otlp_config(
    exporter: &OtlpExporter,
    context: &ExporterContext<'_>,
    warnings: &mut Vec<String>,
) -> (&'static str, Value) {
    let mut map = Map::new();
    let base = format!("http://{}", exporter.endpoint);
    let type_name = match exporter.protocol {
        OtlpProtocol::Grpc => {
            map.insert("endpoint", Value::String(base));
            "otlp"
        }
        OtlpProtocol::Http => {
            match exporter.path.as_deref().filter(|path| !path.is_empty()) {
                Some(path) => map.insert("traces_endpoint", Value::String(url(&base, path))),
                None => map.insert("endpoint", Value::String(base)),
            };
            "otlphttp"
        }
    };
    let mut headers = Map::new();
    for header in &exporter.headers {
        let value = match &header.value {
            HeaderValueSource::Literal(value) => value.clone(),
            HeaderValueSource::Environment(name) => match context.env.var(name) {
                Some(value) => value,
                None => {
                    warnings.push(format!(
                        "tracing exporter header {:?}: environment variable {name} is not set; the header is not sent",
                        header.name
                    ));
                    continue;
                }
            },
        };
        headers.insert(header.name.clone(), Value::String(value));
    }
    if !headers.is_empty() {
        map.insert("headers", Value::Map(headers));
    }
    if let Some(timeout) = exporter.timeout {
        map.insert("timeout", Value::String(::config::Duration(timeout).to_string()));
    }
    // Envoy's OpenTelemetry tracer sends OTLP uncompressed. gzip cost ~4% of the sidecar's CPU
    // (measured when export still shared the request threads, where it also hurt p99 latency);
    // the collector is usually next door.
    map.insert("compression", Value::String("none".to_owned()));
    map.insert("sending_queue", sending_queue(context));
    (type_name, Value::Map(map))
}

/// `base` (scheme and authority) joined with a provider's `path`, which may omit its `/`.
fn url(base: &str, path: &str) -> String {
    let separator = if path.starts_with('/') { "" } else { "/" };
    format!("{base}{separator}{path}")
}

/// A `zipkin` exporter's config: JSON, uncompressed, as Envoy's Zipkin tracer sends under
/// Istio (`HTTP_JSON`).
fn zipkin_config(
    exporter: &ZipkinExporter,
    context: &ExporterContext<'_>,
) -> (&'static str, Value) {
    let mut map = Map::new();
    let endpoint = url(&format!("http://{}", exporter.endpoint), &exporter.path);
    map.insert("endpoint", Value::String(endpoint));
    map.insert("format", Value::String("json".to_owned()));
    map.insert("sending_queue", sending_queue(context));
    ("zipkin", Value::Map(map))
}

/// The sending queue every exporter of the sidecar has: bounded in spans.
fn sending_queue(context: &ExporterContext<'_>) -> Value {
    let mut queue = Map::new();
    queue.insert("sizer", Value::String("items".to_owned()));
    queue.insert("queue_size", Value::Int(i64::try_from(context.queue_spans).unwrap_or(i64::MAX)));
    queue.insert("num_consumers", Value::Int(2));
    Value::Map(queue)
}

/// Configures and builds the exporter for `exporter` under the component id `id` (`otlp/inbound`,
/// …); `path` names the settings in errors.
pub(crate) fn build_exporter(
    exporter: &Exporter,
    id: &str,
    path: &str,
    context: &ExporterContext<'_>,
    warnings: &mut Vec<String>,
) -> Result<BuiltExporter, TracingError> {
    let (type_name, value) = exporter_config(exporter, context, warnings);
    let configured = match exporter {
        Exporter::Otlp(otlp) => match otlp.protocol {
            OtlpProtocol::Grpc => exporters::OtlpExporterFactory.configure(&value, path),
            OtlpProtocol::Http => exporters::OtlpHttpExporterFactory.configure(&value, path),
        },
        Exporter::Zipkin(_) => exporters::ZipkinExporterFactory.configure(&value, path),
    }
    .map_err(|errors| TracingError::new(errors.to_string()))?;
    let id = ComponentId::parse(&format!("{type_name}/{id}")).map_err(TracingError::new)?;
    let built = configured
        .build(BuildContext {
            id: id.clone(),
            kind: Kind::Exporter,
            signal: Some(Signal::Traces),
            next: None,
            outputs: Vec::new(),
            telemetry: context.telemetry.clone(),
            health: HealthReporter::new(),
        })
        .map_err(|error| TracingError::new(error.to_string()))?;
    let consumer = built
        .consumer
        .ok_or_else(|| TracingError::new(format!("exporter {id}: built without a consumer")))?;
    Ok(BuiltExporter { consumer, lifecycle: built.lifecycle })
}

/// The resource of the sidecar's spans: `service.name` (Istio's tracing service name), the
/// workload's namespace, the SDK attributes newer Envoys add, then what the exporter's resource
/// detectors find (the environment detector reads `OTEL_RESOURCE_ATTRIBUTES`; a later value
/// wins, as in the OpenTelemetry resource merge).
pub(crate) fn resource(
    service_name: &str,
    workload: &Workload,
    detectors: &[ResourceDetector],
    env: &Environment,
    warnings: &mut Vec<String>,
) -> Resource {
    let mut attributes: Vec<(String, String)> = vec![
        ("service.name".into(), service_name.into()),
        ("k8s.namespace.name".into(), workload.namespace.clone()),
        ("telemetry.sdk.language".into(), "rust".into()),
        ("telemetry.sdk.name".into(), "meshtrace".into()),
        ("telemetry.sdk.version".into(), env!("CARGO_PKG_VERSION").into()),
    ];
    for detector in detectors {
        match detector {
            ResourceDetector::Environment => {
                let text = env.var("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default();
                for (key, value) in parse_resource_attributes(&text) {
                    attributes.retain(|(existing, _)| *existing != key);
                    attributes.push((key, value));
                }
            }
            ResourceDetector::Dynatrace => warnings.push(
                "tracing resource detector dynatrace is not supported; its attributes are not added"
                    .to_owned(),
            ),
        }
    }
    string_resource(attributes)
}

/// The resource of spans sent to Zipkin: only the service name, which becomes the spans' local
/// endpoint, as in Envoy's Zipkin tracer (whose local endpoint also has the pod's IP, which
/// the sidecar does not know); anything more would be a tag on every span.
pub(crate) fn zipkin_resource(service_name: &str) -> Resource {
    string_resource(vec![("service.name".into(), service_name.into())])
}

fn string_resource(attributes: Vec<(String, String)>) -> Resource {
    Resource {
        attributes: attributes
            .into_iter()
            .map(|(key, value)| KeyValue {
                key,
                value: Some(AnyValue { value: Some(any_value::Value::StringValue(value)) }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// `OTEL_RESOURCE_ATTRIBUTES`: `key=value` pairs separated by commas, values percent-encoded;
/// malformed pairs are skipped.
fn parse_resource_attributes(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for pair in text.split(',') {
        let Some((key, value)) = pair.split_once('=') else { continue };
        let key = key.trim();
        if key.is_empty() {
            continue;
        }
        out.push((key.to_owned(), percent_decode(value.trim())));
    }
    out
}

/// Decodes `%XX` escapes; anything else is kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{Endpoint, ExportHeader};

    fn otlp(protocol: OtlpProtocol, path: Option<&str>) -> OtlpExporter {
        OtlpExporter {
            protocol,
            endpoint: Endpoint::new("127.0.0.1", 4317),
            authority: "otel-collector.observability:4317".into(),
            path: path.map(str::to_owned),
            timeout: Some(Duration::from_secs(3)),
            headers: vec![
                ExportHeader {
                    name: "x-tenant".into(),
                    value: HeaderValueSource::Literal("a".into()),
                },
                ExportHeader {
                    name: "authorization".into(),
                    value: HeaderValueSource::Environment("TOKEN".into()),
                },
                ExportHeader {
                    name: "x-missing".into(),
                    value: HeaderValueSource::Environment("NOPE".into()),
                },
            ],
            resource_detectors: Vec::new(),
        }
    }

    fn context<'a>(env: &'a Environment, telemetry: &'a Arc<Telemetry>) -> ExporterContext<'a> {
        ExporterContext { env, queue_spans: 4096, telemetry }
    }

    #[test]
    fn grpc_and_http_providers_become_collector_exporter_configs() {
        let env = Environment::Fixed([("TOKEN".to_owned(), "Bearer t".to_owned())].into());
        let telemetry = Arc::new(Telemetry::new());
        let mut warnings = Vec::new();
        let (kind, value) = exporter_config(
            &Exporter::Otlp(otlp(OtlpProtocol::Grpc, None)),
            &context(&env, &telemetry),
            &mut warnings,
        );
        assert_eq!(kind, "otlp");
        assert_eq!(value.get("endpoint").and_then(Value::as_str), Some("http://127.0.0.1:4317"));
        assert_eq!(
            value.get_path(&["headers", "authorization"]).and_then(Value::as_str),
            Some("Bearer t")
        );
        assert_eq!(value.get_path(&["headers", "x-missing"]), None);
        assert_eq!(value.get("timeout").and_then(Value::as_str), Some("3s"));
        assert_eq!(value.get("compression").and_then(Value::as_str), Some("none"));
        assert_eq!(
            value.get_path(&["sending_queue", "queue_size"]).and_then(Value::as_i64),
            Some(4096)
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");

        let (kind, value) = exporter_config(
            &Exporter::Otlp(otlp(OtlpProtocol::Http, Some("/v1/traces"))),
            &context(&env, &telemetry),
            &mut warnings,
        );
        assert_eq!(kind, "otlphttp");
        assert_eq!(
            value.get("traces_endpoint").and_then(Value::as_str),
            Some("http://127.0.0.1:4317/v1/traces")
        );
        // Both configs are valid for the collector's factories, and build.
        let exporter = Exporter::Otlp(otlp(OtlpProtocol::Http, Some("v1/traces")));
        assert!(
            build_exporter(&exporter, "t", "tracing", &context(&env, &telemetry), &mut warnings)
                .is_ok()
        );
        let exporter = Exporter::Otlp(otlp(OtlpProtocol::Grpc, None));
        assert!(
            build_exporter(&exporter, "g", "tracing", &context(&env, &telemetry), &mut warnings)
                .is_ok()
        );
    }

    #[test]
    fn a_zipkin_provider_becomes_the_collector_zipkin_exporter() {
        let env = Environment::Fixed(Default::default());
        let telemetry = Arc::new(Telemetry::new());
        let mut warnings = Vec::new();
        let zipkin = |path: &str| {
            Exporter::Zipkin(ZipkinExporter {
                endpoint: Endpoint::new("127.0.0.1", 9411),
                authority: "zipkin.istio-system:9411".into(),
                path: path.into(),
                trace_id_64bit: false,
            })
        };
        let (kind, value) =
            exporter_config(&zipkin("/api/v2/spans"), &context(&env, &telemetry), &mut warnings);
        assert_eq!(kind, "zipkin");
        assert_eq!(
            value.get("endpoint").and_then(Value::as_str),
            Some("http://127.0.0.1:9411/api/v2/spans")
        );
        assert_eq!(value.get("format").and_then(Value::as_str), Some("json"));
        let (_, value) =
            exporter_config(&zipkin("spans"), &context(&env, &telemetry), &mut warnings);
        assert_eq!(
            value.get("endpoint").and_then(Value::as_str),
            Some("http://127.0.0.1:9411/spans")
        );
        assert!(
            build_exporter(
                &zipkin("/api/v2/spans"),
                "z",
                "tracing",
                &context(&env, &telemetry),
                &mut warnings
            )
            .is_ok()
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let resource = zipkin_resource("productpage.default");
        assert_eq!(resource.attributes.len(), 1);
        assert_eq!(resource.attributes[0].key, "service.name");
    }

    #[test]
    fn the_resource_has_the_service_name_and_detected_attributes() {
        let env = Environment::Fixed(
            [(
                "OTEL_RESOURCE_ATTRIBUTES".to_owned(),
                "deployment.environment=prod,service.name=x%20y,bad".to_owned(),
            )]
            .into(),
        );
        let workload = Workload {
            name: "w".into(),
            namespace: "shop".into(),
            labels: Default::default(),
            annotations: Default::default(),
        };
        let get = |resource: &Resource, key: &str| {
            resource.attributes.iter().find(|kv| kv.key == key).and_then(|kv| match &kv.value {
                Some(AnyValue { value: Some(any_value::Value::StringValue(v)) }) => Some(v.clone()),
                _ => None,
            })
        };
        let mut warnings = Vec::new();
        let plain = resource("productpage.default", &workload, &[], &env, &mut warnings);
        assert_eq!(get(&plain, "service.name").as_deref(), Some("productpage.default"));
        assert_eq!(get(&plain, "k8s.namespace.name").as_deref(), Some("shop"));
        assert_eq!(get(&plain, "deployment.environment"), None);
        let detected = resource(
            "productpage.default",
            &workload,
            &[ResourceDetector::Environment],
            &env,
            &mut warnings,
        );
        assert_eq!(get(&detected, "deployment.environment").as_deref(), Some("prod"));
        assert_eq!(get(&detected, "service.name").as_deref(), Some("x y"), "later wins");
        assert!(warnings.is_empty());
    }
}
