//! The component model: ids, factories, configured components and what a build hands back.
//!
//! A component goes through three steps, as in the OpenTelemetry Collector:
//! 1. its [`Factory`] (one per type, such as `otlp` or `batch`) parses and validates the YAML
//!    under its id into typed settings, returned as a [`Configured`];
//! 2. [`Configured::build`] creates an instance for one signal, wired to the next consumer;
//! 3. the service starts and shuts down every instance through [`Lifecycle`].
//!
//! `meshtrace validate` runs step 1 for every component, so it reports every config error
//! without binding a port.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use config::{ConfigErrors, Value};
use futures_util::future::BoxFuture;
use otlp::Signal;

use crate::consumer::Consumer;
use crate::health::HealthReporter;
use crate::telemetry::Telemetry;

/// The four sections of a collector config that hold components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Receiver,
    Processor,
    Exporter,
    Extension,
}

impl Kind {
    /// The top-level config section for this kind (`receivers`, ...).
    pub fn section(self) -> &'static str {
        match self {
            Kind::Receiver => "receivers",
            Kind::Processor => "processors",
            Kind::Exporter => "exporters",
            Kind::Extension => "extensions",
        }
    }

    /// The singular name used in messages and metric labels (`receiver`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Receiver => "receiver",
            Kind::Processor => "processor",
            Kind::Exporter => "exporter",
            Kind::Extension => "extension",
        }
    }
}

/// How settled a component is, with the collector's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stability {
    Development,
    Alpha,
    Beta,
    Stable,
    Deprecated,
}

impl fmt::Display for Stability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stability::Development => "development",
            Stability::Alpha => "alpha",
            Stability::Beta => "beta",
            Stability::Stable => "stable",
            Stability::Deprecated => "deprecated",
        })
    }
}

/// A component id as written in the config: `type` or `type/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentId {
    type_name: String,
    name: Option<String>,
}

impl ComponentId {
    /// Parses `type` or `type/name`; the type must be non-empty lower_snake_case-ish and the name
    /// non-empty, as the collector requires.
    pub fn parse(text: &str) -> Result<ComponentId, String> {
        let (type_name, name) = match text.split_once('/') {
            Some((type_name, name)) => (type_name, Some(name)),
            None => (text, None),
        };
        let type_ok = !type_name.is_empty()
            && type_name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && type_name.starts_with(|c: char| c.is_ascii_alphabetic());
        if !type_ok {
            return Err(format!(
                "invalid component id \"{text}\": the type must start with a letter and hold only letters, digits and underscores"
            ));
        }
        if name.is_some_and(|name| name.is_empty() || name.contains(char::is_whitespace)) {
            return Err(format!(
                "invalid component id \"{text}\": the name after \"/\" must be non-empty without spaces"
            ));
        }
        Ok(ComponentId { type_name: type_name.to_string(), name: name.map(str::to_string) })
    }

    /// An id with no name part.
    pub fn new(type_name: &str) -> ComponentId {
        ComponentId { type_name: type_name.to_string(), name: None }
    }

    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}/{}", self.type_name, name),
            None => f.write_str(&self.type_name),
        }
    }
}

/// Makes components of one type.
pub trait Factory: Send + Sync {
    fn kind(&self) -> Kind;

    /// The type as written in YAML, exactly as `otelcol` spells it.
    fn type_name(&self) -> &'static str;

    /// The signals the component handles, each with its stability. Extensions list none.
    fn signals(&self) -> &'static [(Signal, Stability)];

    /// The stability of an extension (signal-less components).
    fn stability(&self) -> Stability {
        self.signals().first().map_or(Stability::Alpha, |(_, stability)| *stability)
    }

    /// Parses and validates `raw` (the YAML under the component's id; `Null` when written with
    /// nothing after it, which means "all defaults"). `path` prefixes every error.
    fn configure(&self, raw: &Value, path: &str) -> Result<Box<dyn Configured>, ConfigErrors>;
}

/// A component whose settings are parsed and valid, ready to be built.
pub trait Configured: Send + Sync {
    /// Addresses the component will listen on, each with the key path that set it, so that two
    /// components binding one port are reported before anything starts.
    fn listen_addresses(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Creates an instance. Receivers are built once and get a consumer per signal; processors
    /// are built once per pipeline; exporters once per signal; extensions once.
    fn build(&self, context: BuildContext) -> Result<Built, BuildError>;
}

/// What an instance needs from the service to be built.
#[derive(Clone)]
pub struct BuildContext {
    pub id: ComponentId,
    pub kind: Kind,
    /// The pipeline's signal (processors, exporters); `None` for receivers and extensions.
    pub signal: Option<Signal>,
    /// Processors: the next consumer in their pipeline.
    pub next: Option<Arc<dyn Consumer>>,
    /// Receivers: one consumer per signal the config routes them to.
    pub outputs: Vec<(Signal, Arc<dyn Consumer>)>,
    pub telemetry: Arc<Telemetry>,
    pub health: HealthReporter,
}

impl BuildContext {
    /// The consumer a receiver should send `signal` to, if any pipeline wants it.
    pub fn output(&self, signal: Signal) -> Option<Arc<dyn Consumer>> {
        self.outputs.iter().find(|(s, _)| *s == signal).map(|(_, consumer)| consumer.clone())
    }

    /// The processor's next consumer, or an error naming the component if the service forgot it.
    pub fn require_next(&self) -> Result<Arc<dyn Consumer>, BuildError> {
        self.next.clone().ok_or_else(|| BuildError::new(&self.id, "built without a next consumer"))
    }

    /// The pipeline signal, or an error naming the component.
    pub fn require_signal(&self) -> Result<Signal, BuildError> {
        self.signal.ok_or_else(|| BuildError::new(&self.id, "built without a signal"))
    }
}

/// A built instance.
pub struct Built {
    /// Where telemetry enters the instance (processors and exporters).
    pub consumer: Option<Arc<dyn Consumer>>,
    pub lifecycle: Box<dyn Lifecycle>,
}

/// Start and stop. `shutdown` is called once after a successful or failed `start`, must finish
/// by `deadline` and may be called again harmlessly.
pub trait Lifecycle: Send {
    /// Binds listeners and starts background tasks. Errors stop the collector at start-up.
    fn start(&mut self) -> BoxFuture<'_, Result<(), BuildError>>;

    /// Stops taking new work, drains what was accepted until `deadline`, then stops.
    fn shutdown(&mut self, deadline: Instant) -> BoxFuture<'_, ()>;
}

/// A lifecycle with nothing to start or stop.
pub struct NoLifecycle;

impl Lifecycle for NoLifecycle {
    fn start(&mut self) -> BoxFuture<'_, Result<(), BuildError>> {
        Box::pin(async { Ok(()) })
    }

    fn shutdown(&mut self, _deadline: Instant) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// A component could not be built or started.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind} \"{id}\": {message}")]
pub struct BuildError {
    pub kind: String,
    pub id: String,
    pub message: String,
}

impl BuildError {
    pub fn new(id: &ComponentId, message: impl Into<String>) -> BuildError {
        BuildError { kind: "component".to_string(), id: id.to_string(), message: message.into() }
    }

    /// The same error, naming the component's kind.
    pub fn of(mut self, kind: Kind) -> BuildError {
        self.kind = kind.as_str().to_string();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_type_and_name() {
        let id = ComponentId::parse("otlp/backend").unwrap();
        assert_eq!(id.type_name(), "otlp");
        assert_eq!(id.name(), Some("backend"));
        assert_eq!(id.to_string(), "otlp/backend");
        assert_eq!(ComponentId::parse("batch").unwrap().name(), None);
    }

    #[test]
    fn bad_ids_are_rejected_with_the_reason() {
        assert!(ComponentId::parse("").is_err());
        assert!(ComponentId::parse("otlp/").unwrap_err().contains("non-empty"));
        assert!(ComponentId::parse("1otlp").is_err());
        assert!(ComponentId::parse("ot lp").is_err());
    }
}
