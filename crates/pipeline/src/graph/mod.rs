//! From a loaded config to a validated plan of pipelines.
//!
//! Everything that can be checked without binding a port is checked here, and every error is
//! collected before returning, each with its key path: unknown component types (with the
//! supported ones), component config errors, pipelines that name undeclared components (with the
//! declared ones), components that do not support a pipeline's signal, and two components that
//! would listen on one address. `meshtrace validate` is this function.

use std::collections::BTreeMap;

use config::{ConfigError, ConfigErrors, Value};
use otlp::Signal;
use serde::Deserialize;

use crate::component::{ComponentId, Configured, Kind};
use crate::registry::Registry;

/// The top level of a collector config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopLevel {
    #[serde(default)]
    receivers: BTreeMap<String, Value>,
    #[serde(default)]
    processors: BTreeMap<String, Value>,
    #[serde(default)]
    exporters: BTreeMap<String, Value>,
    #[serde(default)]
    extensions: BTreeMap<String, Value>,
    #[serde(default)]
    connectors: BTreeMap<String, Value>,
    service: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ServiceConfig {
    #[serde(default)]
    extensions: Vec<String>,
    #[serde(default)]
    pipelines: BTreeMap<String, PipelineConfig>,
    #[serde(default)]
    telemetry: TelemetryConfig,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PipelineConfig {
    #[serde(default)]
    receivers: Vec<String>,
    #[serde(default)]
    processors: Vec<String>,
    #[serde(default)]
    exporters: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TelemetryConfig {
    #[serde(default)]
    logs: LogsConfig,
    #[serde(default)]
    metrics: MetricsConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LogsConfig {
    level: String,
    encoding: String,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig { level: "info".into(), encoding: "console".into() }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct MetricsConfig {
    level: String,
    address: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { level: "basic".into(), address: "localhost:8888".into() }
    }
}

/// One pipeline, its components named by id.
#[derive(Debug, Clone)]
pub struct PipelinePlan {
    /// As written: `traces`, `traces/backend`.
    pub name: String,
    pub signal: Signal,
    pub receivers: Vec<ComponentId>,
    pub processors: Vec<ComponentId>,
    pub exporters: Vec<ComponentId>,
}

/// The collector's own logs and metrics.
#[derive(Debug, Clone)]
pub struct TelemetryPlan {
    /// `debug`, `info`, `warn` or `error`.
    pub log_level: String,
    pub log_encoding: String,
    /// Where Prometheus text is served; `None` when `level: none`.
    pub metrics_address: Option<String>,
}

/// A validated config: every component configured, every reference resolved.
pub struct Plan {
    pub configured: BTreeMap<(Kind, ComponentId), Box<dyn Configured>>,
    pub pipelines: Vec<PipelinePlan>,
    pub extensions: Vec<ComponentId>,
    pub telemetry: TelemetryPlan,
}

/// Validates `root` against `registry`, returning the plan or every error found.
pub fn plan(root: &Value, registry: &Registry) -> Result<Plan, ConfigErrors> {
    let mut errors = ConfigErrors::new();
    let top: TopLevel = config::from_value(root, "")?;
    if !top.connectors.is_empty() {
        let ids: Vec<&str> = top.connectors.keys().map(String::as_str).collect();
        errors.push(ConfigError::new(
            "connectors",
            format!("connectors are not supported yet (found {}); route data with pipelines that share receivers or exporters instead", ids.join(", ")),
        ));
    }

    let sections = [
        (Kind::Receiver, &top.receivers),
        (Kind::Processor, &top.processors),
        (Kind::Exporter, &top.exporters),
        (Kind::Extension, &top.extensions),
    ];
    let mut configured = BTreeMap::new();
    let mut declared: BTreeMap<Kind, Vec<ComponentId>> = BTreeMap::new();
    for (kind, section) in sections {
        for (key, raw) in section {
            let path = format!("{}.{key}", kind.section());
            let id = match ComponentId::parse(key) {
                Ok(id) => id,
                Err(message) => {
                    errors.push(ConfigError::new(path, message));
                    continue;
                }
            };
            declared.entry(kind).or_default().push(id.clone());
            let Some(factory) = registry.get(kind, id.type_name()) else {
                errors.push(ConfigError::new(
                    path,
                    format!(
                        "unknown {} type \"{}\"; supported {} types: {}",
                        kind.as_str(),
                        id.type_name(),
                        kind.as_str(),
                        registry.type_names(kind).join(", ")
                    ),
                ));
                continue;
            };
            match factory.configure(raw, &path) {
                Ok(component) => {
                    configured.insert((kind, id), component);
                }
                Err(found) => errors.extend(found),
            }
        }
    }

    let service: ServiceConfig = match &top.service {
        None => {
            errors.push(ConfigError::new(
                "service",
                "missing: a collector needs at least one pipeline under service.pipelines",
            ));
            ServiceConfig::default()
        }
        Some(raw) => match config::from_value(raw, "service") {
            Ok(service) => service,
            Err(found) => {
                errors.extend(found);
                ServiceConfig::default()
            }
        },
    };
    if top.service.is_some() && service.pipelines.is_empty() && errors.is_empty() {
        errors.push(ConfigError::new("service.pipelines", "at least one pipeline is required"));
    }

    let resolver = Resolver { registry, declared: &declared };
    let extensions = resolver.references(
        Kind::Extension,
        "service.extensions",
        &service.extensions,
        None,
        &mut errors,
    );
    let mut pipelines = Vec::new();
    for (name, pipeline) in &service.pipelines {
        let path = format!("service.pipelines.{name}");
        let type_name = name.split_once('/').map_or(name.as_str(), |(t, _)| t);
        let Some(signal) = Signal::from_name(type_name) else {
            errors.push(ConfigError::new(
                path,
                format!("unknown pipeline type \"{type_name}\"; expected traces, metrics or logs"),
            ));
            continue;
        };
        if name.ends_with('/') {
            errors.push(ConfigError::new(
                path.clone(),
                "the pipeline name after \"/\" must be non-empty",
            ));
        }
        for (list, what) in [(&pipeline.receivers, "receivers"), (&pipeline.exporters, "exporters")]
        {
            if list.is_empty() {
                errors.push(ConfigError::new(
                    format!("{path}.{what}"),
                    format!("a pipeline needs at least one of its {what}"),
                ));
            }
        }
        pipelines.push(PipelinePlan {
            name: name.clone(),
            signal,
            receivers: resolver.references(
                Kind::Receiver,
                &format!("{path}.receivers"),
                &pipeline.receivers,
                Some(signal),
                &mut errors,
            ),
            processors: resolver.references(
                Kind::Processor,
                &format!("{path}.processors"),
                &pipeline.processors,
                Some(signal),
                &mut errors,
            ),
            exporters: resolver.references(
                Kind::Exporter,
                &format!("{path}.exporters"),
                &pipeline.exporters,
                Some(signal),
                &mut errors,
            ),
        });
    }

    let telemetry = telemetry_plan(&service.telemetry, &mut errors);
    check_addresses(&configured, &pipelines, &extensions, &telemetry, &mut errors);
    errors.into_result()?;
    Ok(Plan { configured, pipelines, extensions, telemetry })
}

struct Resolver<'a> {
    registry: &'a Registry,
    declared: &'a BTreeMap<Kind, Vec<ComponentId>>,
}

impl Resolver<'_> {
    /// Resolves a list of ids of `kind`, reporting unknown, duplicate and wrong-signal entries.
    fn references(
        &self,
        kind: Kind,
        path: &str,
        names: &[String],
        signal: Option<Signal>,
        errors: &mut ConfigErrors,
    ) -> Vec<ComponentId> {
        let declared = self.declared.get(&kind).map(Vec::as_slice).unwrap_or_default();
        let mut resolved: Vec<ComponentId> = Vec::new();
        for (index, name) in names.iter().enumerate() {
            let path = format!("{path}[{index}]");
            let Some(id) = declared.iter().find(|id| id.to_string() == *name) else {
                let choices: Vec<String> = declared.iter().map(ToString::to_string).collect();
                let choices =
                    if choices.is_empty() { "none".to_string() } else { choices.join(", ") };
                errors.push(ConfigError::new(
                    path,
                    format!("references {} \"{name}\" which is not configured; configured {}: {choices}", kind.as_str(), kind.section()),
                ));
                continue;
            };
            if resolved.contains(id) {
                errors.push(ConfigError::new(
                    path,
                    format!("{} \"{name}\" is listed twice", kind.as_str()),
                ));
                continue;
            }
            if let Some(signal) = signal
                && let Some(factory) = self.registry.get(kind, id.type_name())
                && !factory.signals().iter().any(|(s, _)| *s == signal)
            {
                errors.push(ConfigError::new(
                    path,
                    format!("{} \"{name}\" does not support {signal}", kind.as_str()),
                ));
                continue;
            }
            resolved.push(id.clone());
        }
        resolved
    }
}

fn telemetry_plan(config: &TelemetryConfig, errors: &mut ConfigErrors) -> TelemetryPlan {
    let level = config.logs.level.to_ascii_lowercase();
    if !["debug", "info", "warn", "error"].contains(&level.as_str()) {
        errors.push(ConfigError::new(
            "service.telemetry.logs.level",
            format!("invalid level \"{}\": expected debug, info, warn or error", config.logs.level),
        ));
    }
    if !["console", "json"].contains(&config.logs.encoding.as_str()) {
        errors.push(ConfigError::new(
            "service.telemetry.logs.encoding",
            format!("invalid encoding \"{}\": expected console or json", config.logs.encoding),
        ));
    }
    let metrics_level = config.metrics.level.to_ascii_lowercase();
    if !["none", "basic", "normal", "detailed"].contains(&metrics_level.as_str()) {
        errors.push(ConfigError::new(
            "service.telemetry.metrics.level",
            format!(
                "invalid level \"{}\": expected none, basic, normal or detailed",
                config.metrics.level
            ),
        ));
    }
    if let Err(message) = config::parse_endpoint(&config.metrics.address) {
        errors.push(ConfigError::new("service.telemetry.metrics.address", message));
    }
    TelemetryPlan {
        log_level: level,
        log_encoding: config.logs.encoding.clone(),
        metrics_address: (metrics_level != "none").then(|| config.metrics.address.clone()),
    }
}

/// Reports two used components (or the metrics endpoint) that would bind the same port on
/// overlapping addresses. Port 0 asks the system for a free port and never clashes.
fn check_addresses(
    configured: &BTreeMap<(Kind, ComponentId), Box<dyn Configured>>,
    pipelines: &[PipelinePlan],
    extensions: &[ComponentId],
    telemetry: &TelemetryPlan,
    errors: &mut ConfigErrors,
) {
    let mut used: Vec<(Kind, &ComponentId)> = Vec::new();
    for pipeline in pipelines {
        for id in &pipeline.receivers {
            if !used.contains(&(Kind::Receiver, id)) {
                used.push((Kind::Receiver, id));
            }
        }
    }
    used.extend(extensions.iter().map(|id| (Kind::Extension, id)));
    let mut bound: Vec<(String, String, u16)> = Vec::new();
    if let Some(address) = &telemetry.metrics_address
        && let Ok((host, port)) = config::parse_endpoint(address)
    {
        bound.push(("service.telemetry.metrics.address".into(), host, port));
    }
    for key in used {
        let Some(component) = configured.get(&(key.0, key.1.clone())) else { continue };
        for (path, address) in component.listen_addresses() {
            let Ok((host, port)) = config::parse_endpoint(&address) else { continue };
            if port != 0
                && let Some((other, _, _)) =
                    bound.iter().find(|(_, h, p)| *p == port && hosts_overlap(h, &host))
            {
                errors.push(ConfigError::new(
                    path.clone(),
                    format!("address \"{address}\" is already used by {other}"),
                ));
            }
            bound.push((path, host, port));
        }
    }
}

fn hosts_overlap(a: &str, b: &str) -> bool {
    let normal = |host: &str| match host {
        "" | "0.0.0.0" | "::" | "[::]" => None,
        "localhost" | "127.0.0.1" => Some("127.0.0.1".to_string()),
        other => Some(other.to_ascii_lowercase()),
    };
    match (normal(a), normal(b)) {
        (None, _) | (_, None) => true,
        (Some(a), Some(b)) => a == b,
    }
}

#[cfg(test)]
mod tests;
