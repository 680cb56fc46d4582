//! The `health_check` extension, configured and answering as the collector's (legacy) one.
//!
//! `GET` (or `HEAD`) on `path` answers 200 while the collector is ready and, when
//! `check_collector_pipeline` is enabled, exporters failed at most `exporter_failure_threshold`
//! times within `interval`; otherwise 503. The body is the collector's JSON
//! (`{"status":"Server available","upSince":"...","uptime":"..."}`) unless `response_body` gives
//! the two strings to answer with. Other paths answer 404.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use config::{ConfigError, ConfigErrors, Value};
use futures_util::future::BoxFuture;
use otlp::Signal;
use pipeline::health::{HealthReporter, Status};
use pipeline::http_server::{self, Server};
use pipeline::{
    BuildContext, BuildError, Built, ComponentId, Configured, Factory, Kind, Lifecycle, Stability,
};
use serde::Deserialize;

/// The collector's default endpoint: loopback only, so nothing is exposed by accident.
pub const DEFAULT_ENDPOINT: &str = "localhost:13133";

/// `extensions.health_check`, with the collector's defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    /// `host:port` to listen on; [`DEFAULT_ENDPOINT`] when neither this nor `port` is set.
    pub endpoint: Option<String>,
    /// The collector's older key: listen on every interface on this port.
    pub port: Option<u16>,
    pub path: String,
    /// Strings to answer with instead of the JSON status.
    pub response_body: Option<ResponseBodyConfig>,
    pub check_collector_pipeline: CheckCollectorPipelineConfig,
    /// Accepted only to be rejected clearly: a present key, even empty, is an error.
    #[serde(deserialize_with = "config::some_if_present")]
    pub tls: Option<Value>,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            endpoint: None,
            port: None,
            path: "/".into(),
            response_body: None,
            check_collector_pipeline: CheckCollectorPipelineConfig::default(),
            tls: None,
        }
    }
}

/// `response_body`: an unset string answers an empty body, as in the collector.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseBodyConfig {
    pub healthy: String,
    pub unhealthy: String,
}

/// `check_collector_pipeline`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckCollectorPipelineConfig {
    pub enabled: bool,
    pub interval: config::Duration,
    /// Unhealthy once more than this many exporter failures happened within `interval`.
    pub exporter_failure_threshold: usize,
}

impl Default for CheckCollectorPipelineConfig {
    fn default() -> Self {
        CheckCollectorPipelineConfig {
            enabled: false,
            interval: config::Duration(Duration::from_secs(5 * 60)),
            exporter_failure_threshold: 5,
        }
    }
}

impl HealthCheckConfig {
    /// Every problem with the config, each with its key path under `path`.
    pub fn validate(&self, path: &str) -> ConfigErrors {
        let mut errors = ConfigErrors::new();
        if self.port.is_some() && self.endpoint.is_some() {
            errors.push(ConfigError::new(
                format!("{path}.port"),
                "cannot be used together with endpoint: set only endpoint \
                 (port N means endpoint 0.0.0.0:N)",
            ));
        }
        if let Some(endpoint) = &self.endpoint
            && let Err(message) = config::parse_endpoint(endpoint)
        {
            errors.push(ConfigError::new(format!("{path}.endpoint"), message));
        }
        if !self.path.starts_with('/') {
            errors.push(ConfigError::new(
                format!("{path}.path"),
                format!("invalid path \"{}\": must start with /", self.path),
            ));
        }
        if self.tls.is_some() {
            errors.push(ConfigError::new(
                format!("{path}.tls"),
                "not supported: the health check is served over plain HTTP; remove the key",
            ));
        }
        errors
    }
}

/// Makes `health_check` extensions.
#[derive(Debug, Clone, Copy, Default)]
pub struct HealthCheckExtensionFactory;

impl HealthCheckExtensionFactory {
    /// [`Factory::configure`] with the concrete type, so a caller can build the extension as
    /// [`HealthCheckExtension`] and ask for the address it bound.
    pub fn configure_typed(
        &self,
        raw: &Value,
        path: &str,
    ) -> Result<ConfiguredHealthCheck, ConfigErrors> {
        // A null (`health_check:` with nothing after it) reads as all defaults.
        let config: HealthCheckConfig = config::from_value(raw, path)?;
        config.validate(path).into_result()?;
        let (endpoint_path, endpoint) = match (&config.endpoint, config.port) {
            (_, Some(port)) => (format!("{path}.port"), format!("0.0.0.0:{port}")),
            (Some(endpoint), None) => (format!("{path}.endpoint"), endpoint.clone()),
            (None, None) => (format!("{path}.endpoint"), DEFAULT_ENDPOINT.to_string()),
        };
        let pipeline = &config.check_collector_pipeline;
        Ok(ConfiguredHealthCheck {
            endpoint_path,
            endpoint,
            answers: Answers {
                path: config.path,
                body: config.response_body,
                pipeline_check: pipeline
                    .enabled
                    .then_some((pipeline.interval.0, pipeline.exporter_failure_threshold)),
            },
        })
    }
}

impl Factory for HealthCheckExtensionFactory {
    fn kind(&self) -> Kind {
        Kind::Extension
    }

    fn type_name(&self) -> &'static str {
        "health_check"
    }

    fn signals(&self) -> &'static [(Signal, Stability)] {
        &[]
    }

    fn stability(&self) -> Stability {
        Stability::Beta
    }

    fn configure(&self, raw: &Value, path: &str) -> Result<Box<dyn Configured>, ConfigErrors> {
        Ok(Box::new(self.configure_typed(raw, path)?))
    }
}

/// A `health_check` extension whose settings are valid.
#[derive(Debug, Clone)]
pub struct ConfiguredHealthCheck {
    /// The key that set the endpoint (`endpoint` or `port`), for errors.
    endpoint_path: String,
    endpoint: String,
    answers: Answers,
}

impl ConfiguredHealthCheck {
    /// The `host:port` the extension will listen on.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The extension, as [`Configured::build`] makes it, with its concrete type.
    pub fn extension(&self, context: &BuildContext) -> HealthCheckExtension {
        HealthCheckExtension {
            id: context.id.clone(),
            endpoint_path: self.endpoint_path.clone(),
            endpoint: self.endpoint.clone(),
            answers: Arc::new(self.answers.clone()),
            health: context.health.clone(),
            server: None,
        }
    }
}

impl Configured for ConfiguredHealthCheck {
    fn listen_addresses(&self) -> Vec<(String, String)> {
        vec![(self.endpoint_path.clone(), self.endpoint.clone())]
    }

    fn build(&self, context: BuildContext) -> Result<Built, BuildError> {
        Ok(Built { consumer: None, lifecycle: Box::new(self.extension(&context)) })
    }
}

/// A built `health_check` extension; it listens between `start` and `shutdown`.
pub struct HealthCheckExtension {
    id: ComponentId,
    endpoint_path: String,
    endpoint: String,
    answers: Arc<Answers>,
    health: HealthReporter,
    server: Option<Server>,
}

impl HealthCheckExtension {
    /// The address actually bound (port 0 picks one), while started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(Server::local_addr)
    }
}

impl Lifecycle for HealthCheckExtension {
    fn start(&mut self) -> BoxFuture<'_, Result<(), BuildError>> {
        Box::pin(async move {
            if self.server.is_some() {
                return Ok(());
            }
            let listener = http_server::bind(&self.endpoint_path, &self.endpoint)
                .await
                .map_err(|message| BuildError::new(&self.id, message).of(Kind::Extension))?;
            let answers = self.answers.clone();
            let health = self.health.clone();
            let server = Server::start(
                listener,
                http_server::handler(move |request| {
                    let answer = answers.answer(&health, request.method(), request.uri().path());
                    async move {
                        let mut response =
                            http_server::respond(answer.status, answer.content_type, answer.body);
                        if answer.status == 405 {
                            response.headers_mut().insert(
                                http::header::ALLOW,
                                http::HeaderValue::from_static("GET, HEAD"),
                            );
                        }
                        response
                    }
                }),
            );
            let addr = server.local_addr();
            tracing::info!(extension = %self.id, endpoint = %addr, "health check listening");
            self.server = Some(server);
            Ok(())
        })
    }

    fn shutdown(&mut self, deadline: Instant) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(mut server) = self.server.take() {
                server.shutdown(deadline).await;
                tracing::info!(extension = %self.id, "health check stopped");
            }
        })
    }
}

/// What the endpoint answers, decided from the collector's health at request time.
#[derive(Debug, Clone)]
struct Answers {
    path: String,
    body: Option<ResponseBodyConfig>,
    /// `(interval, exporter_failure_threshold)` when `check_collector_pipeline` is enabled.
    pipeline_check: Option<(Duration, usize)>,
}

struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Answers {
    fn answer(&self, health: &HealthReporter, method: &http::Method, path: &str) -> Answer {
        if path != self.path {
            return Answer {
                status: 404,
                content_type: "text/plain",
                body: "404 page not found\n".into(),
            };
        }
        if method != http::Method::GET && method != http::Method::HEAD {
            return Answer {
                status: 405,
                content_type: "text/plain",
                body: "method not allowed\n".into(),
            };
        }
        let healthy = health.status() == Status::Ready
            && self
                .pipeline_check
                .is_none_or(|(interval, threshold)| health.recent_failures(interval) <= threshold);
        let status = if healthy { 200 } else { 503 };
        if let Some(body) = &self.body {
            let text = if healthy { &body.healthy } else { &body.unhealthy };
            return Answer {
                status,
                content_type: "text/plain; charset=utf-8",
                body: text.clone(),
            };
        }
        let message = if healthy { "Server available" } else { "Server not available" };
        // As the collector: the zero time and an empty uptime until the collector was ready.
        let (up_since, uptime) = match health.ready_since() {
            Some(since) => {
                let uptime = SystemTime::now().duration_since(since).unwrap_or_default();
                (rfc3339(since), go_duration(uptime))
            }
            None => ("0001-01-01T00:00:00Z".to_string(), String::new()),
        };
        Answer {
            status,
            content_type: "application/json",
            body: format!(r#"{{"status":"{message}","upSince":"{up_since}","uptime":"{uptime}"}}"#),
        }
    }
}

/// `time` as RFC 3339 in UTC with the fraction trimmed, as Go prints a `time.Time` in JSON.
fn rfc3339(time: SystemTime) -> String {
    let since_epoch = time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (year, month, day) =
        pipeline::calendar::civil_from_days(i64::try_from(seconds / 86_400).unwrap_or(0));
    let of_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        fraction(since_epoch.subsec_nanos(), 9)
    )
}

/// `.ddd` for the `digits`-digit fraction `value`, trailing zeros trimmed; empty for zero.
fn fraction(value: u32, digits: usize) -> String {
    if value == 0 {
        return String::new();
    }
    let text = format!("{value:0digits$}");
    format!(".{}", text.trim_end_matches('0'))
}

/// `duration` as Go's `time.Duration.String()` prints it: `1h2m3.5s`, `45.1s`, `250ms`.
fn go_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let nanos = duration.subsec_nanos();
    if seconds == 0 {
        return match nanos {
            0 => "0s".to_string(),
            1..1_000 => format!("{nanos}ns"),
            1_000..1_000_000 => format!("{}{}µs", nanos / 1_000, fraction(nanos % 1_000, 3)),
            _ => format!("{}{}ms", nanos / 1_000_000, fraction(nanos % 1_000_000, 6)),
        };
    }
    let (hours, minutes, secs) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let secs = format!("{secs}{}s", fraction(nanos, 9));
    if hours > 0 {
        format!("{hours}h{minutes}m{secs}")
    } else if minutes > 0 {
        format!("{minutes}m{secs}")
    } else {
        secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_rfc3339_in_utc() {
        let at = |seconds: u64, nanos: u32| {
            rfc3339(SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(at(1_700_000_000, 0), "2023-11-14T22:13:20Z");
        assert_eq!(at(1_605_068_351, 684_717_400), "2020-11-11T04:19:11.6847174Z");
        assert_eq!(at(951_782_400, 1), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(at(4_107_542_399, 0), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_nanos(5)), "5ns");
        assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(go_duration(Duration::from_millis(49_013)), "49.013s");
        assert_eq!(go_duration(Duration::from_secs(3600 + 5)), "1h0m5s");
        assert_eq!(go_duration(Duration::from_secs(125)), "2m5s");
    }
}
