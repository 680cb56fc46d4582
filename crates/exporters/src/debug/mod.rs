//! The `debug` exporter, and `logging`, its deprecated former name: prints what reaches it.
//!
//! Printing is its whole job, so it decodes every batch and logs at info. It has no queue and
//! no network: `consume` returns once the batch is printed. The text is made by [`format`].
//!
//! `sampling_initial` and `sampling_thereafter` work as the collector's logger sampling does:
//! within each second the first `sampling_initial` batches are printed, then every
//! `sampling_thereafter`th (none when it is zero). Batches not printed still count as sent.

pub mod format;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use config::{ConfigError, ConfigErrors, Value};
use futures_util::future::BoxFuture;
use otlp::{Batch, Signal};
use pipeline::component::NoLifecycle;
use pipeline::telemetry::ExporterMetrics;
use pipeline::{
    BuildContext, BuildError, Built, Configured, ConsumeError, Consumer, Factory, Kind, Stability,
};
use serde::Deserialize;

pub use format::Verbosity;

/// The sampling window, as the collector's logger uses.
const SAMPLING_TICK: Duration = Duration::from_secs(1);

/// The `debug` exporter's YAML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DebugConfig {
    /// `basic` (default), `normal` or `detailed`.
    pub verbosity: String,
    pub sampling_initial: u64,
    pub sampling_thereafter: u64,
    /// Print through the collector's log (true, the default) or straight to standard output,
    /// unsampled.
    pub use_internal_logger: bool,
}

impl Default for DebugConfig {
    fn default() -> Self {
        DebugConfig {
            verbosity: "basic".to_string(),
            sampling_initial: 2,
            sampling_thereafter: 1,
            use_internal_logger: true,
        }
    }
}

/// The deprecated `logging` exporter's YAML.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// `debug`, `info`, `warn` or `error`; without `verbosity` it picks one: debug → detailed,
    /// info → normal, warn and error → basic.
    pub loglevel: Option<String>,
    /// Default `normal`, as the logging exporter had.
    pub verbosity: Option<String>,
    pub sampling_initial: Option<u64>,
    pub sampling_thereafter: Option<u64>,
}

/// Makes `debug` exporters.
#[derive(Debug, Clone, Copy, Default)]
pub struct DebugExporterFactory;

/// Makes `logging` exporters: the debug exporter under its deprecated name and keys, kept so
/// that older configs still run.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoggingExporterFactory;

impl Factory for DebugExporterFactory {
    fn kind(&self) -> Kind {
        Kind::Exporter
    }

    fn type_name(&self) -> &'static str {
        "debug"
    }

    fn signals(&self) -> &'static [(Signal, Stability)] {
        &[
            (Signal::Traces, Stability::Development),
            (Signal::Logs, Stability::Development),
            (Signal::Metrics, Stability::Development),
        ]
    }

    fn configure(&self, raw: &Value, path: &str) -> Result<Box<dyn Configured>, ConfigErrors> {
        Ok(Box::new(crate::common::configure(raw, path, DebugConfigured::from_debug)?))
    }
}

impl Factory for LoggingExporterFactory {
    fn kind(&self) -> Kind {
        Kind::Exporter
    }

    fn type_name(&self) -> &'static str {
        "logging"
    }

    fn signals(&self) -> &'static [(Signal, Stability)] {
        &[
            (Signal::Traces, Stability::Deprecated),
            (Signal::Logs, Stability::Deprecated),
            (Signal::Metrics, Stability::Deprecated),
        ]
    }

    fn configure(&self, raw: &Value, path: &str) -> Result<Box<dyn Configured>, ConfigErrors> {
        Ok(Box::new(crate::common::configure(raw, path, DebugConfigured::from_logging)?))
    }
}

/// A validated `debug` or `logging` exporter.
pub struct DebugConfigured {
    verbosity: Verbosity,
    sampling_initial: u64,
    sampling_thereafter: u64,
    to_stdout: bool,
    /// Set for `logging`: its deprecation is announced at the first build.
    deprecated: bool,
    warned: AtomicBool,
}

fn verbosity(text: &str, path: &str, errors: &mut ConfigErrors) -> Verbosity {
    Verbosity::parse(text).unwrap_or_else(|| {
        errors.push(ConfigError::new(
            format!("{path}.verbosity"),
            format!("unsupported verbosity \"{text}\": expected basic, normal or detailed"),
        ));
        Verbosity::Basic
    })
}

impl DebugConfigured {
    pub fn from_debug(config: &DebugConfig, path: &str) -> Result<DebugConfigured, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let verbosity = verbosity(&config.verbosity, path, &mut errors);
        errors.into_result()?;
        Ok(DebugConfigured {
            verbosity,
            sampling_initial: config.sampling_initial,
            sampling_thereafter: config.sampling_thereafter,
            to_stdout: !config.use_internal_logger,
            deprecated: false,
            warned: AtomicBool::new(false),
        })
    }

    pub fn from_logging(
        config: &LoggingConfig,
        path: &str,
    ) -> Result<DebugConfigured, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let from_level = match config.loglevel.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None => None,
            Some("debug") => Some(Verbosity::Detailed),
            Some("info") => Some(Verbosity::Normal),
            Some("warn" | "error") => Some(Verbosity::Basic),
            Some(_) => {
                errors.push(ConfigError::new(
                    format!("{path}.loglevel"),
                    format!(
                        "unsupported loglevel \"{}\": expected debug, info, warn or error",
                        config.loglevel.as_deref().unwrap_or_default()
                    ),
                ));
                None
            }
        };
        let chosen = config.verbosity.as_deref().map(|text| verbosity(text, path, &mut errors));
        if config.loglevel.is_some() && config.verbosity.is_some() {
            errors.push(ConfigError::new(
                format!("{path}.loglevel"),
                "loglevel and verbosity are incompatible: use only verbosity",
            ));
        }
        errors.into_result()?;
        let defaults = DebugConfig::default();
        Ok(DebugConfigured {
            verbosity: chosen.or(from_level).unwrap_or(Verbosity::Normal),
            sampling_initial: config.sampling_initial.unwrap_or(defaults.sampling_initial),
            sampling_thereafter: config.sampling_thereafter.unwrap_or(defaults.sampling_thereafter),
            to_stdout: false,
            deprecated: true,
            warned: AtomicBool::new(false),
        })
    }

    pub fn verbosity(&self) -> Verbosity {
        self.verbosity
    }
}

impl Configured for DebugConfigured {
    fn build(&self, context: BuildContext) -> Result<Built, BuildError> {
        let signal = context.require_signal()?;
        if self.deprecated && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                exporter = %context.id,
                "the logging exporter is deprecated and will be removed; use the debug exporter instead"
            );
        }
        let exporter = DebugExporter {
            exporter: context.id.to_string(),
            verbosity: self.verbosity,
            sampler: (!self.to_stdout)
                .then(|| Sampler::new(self.sampling_initial, self.sampling_thereafter)),
            metrics: context.telemetry.exporter(&context.id, signal),
        };
        Ok(Built { consumer: Some(Arc::new(exporter)), lifecycle: Box::new(NoLifecycle) })
    }
}

/// One `debug` exporter instance.
pub struct DebugExporter {
    exporter: String,
    verbosity: Verbosity,
    /// `None` prints to standard output, every batch.
    sampler: Option<Sampler>,
    metrics: ExporterMetrics,
}

impl Consumer for DebugExporter {
    fn consume(&self, batch: Batch) -> BoxFuture<'_, Result<(), ConsumeError>> {
        let result = self.print(batch);
        Box::pin(async move { result })
    }
}

impl DebugExporter {
    fn print(&self, batch: Batch) -> Result<(), ConsumeError> {
        let items = batch.items();
        if self.sampler.as_ref().is_some_and(|sampler| !sampler.allow(Instant::now())) {
            self.metrics.sent.inc_by(items);
            return Ok(());
        }
        let printout = match format::render(batch, self.verbosity) {
            Ok(printout) => printout,
            Err(error) => {
                self.metrics.send_failed.inc_by(items);
                return Err(ConsumeError::Permanent {
                    message: format!("cannot decode the batch to print it: {error}"),
                    rejected: items,
                });
            }
        };
        if self.sampler.is_some() {
            tracing::info!(exporter = %self.exporter, "{}", printout.summary);
            if let Some(body) = &printout.body {
                tracing::info!(exporter = %self.exporter, "{body}");
            }
        } else {
            // Writing to standard output can only fail when it is closed; there is nobody to
            // tell then.
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{}", printout.summary);
            if let Some(body) = &printout.body {
                let _ = write!(stdout, "{body}");
            }
        }
        self.metrics.sent.inc_by(items);
        Ok(())
    }
}

/// Decides which batches are printed: the first `initial` in each second, then every
/// `thereafter`th.
struct Sampler {
    initial: u64,
    thereafter: u64,
    /// The start of the current window and the batches seen in it.
    window: Mutex<(Instant, u64)>,
}

impl Sampler {
    fn new(initial: u64, thereafter: u64) -> Sampler {
        Sampler { initial, thereafter, window: Mutex::new((Instant::now(), 0)) }
    }

    fn allow(&self, now: Instant) -> bool {
        let mut window = match self.window.lock() {
            Ok(window) => window,
            Err(poisoned) => poisoned.into_inner(),
        };
        if now.duration_since(window.0) >= SAMPLING_TICK {
            *window = (now, 0);
        }
        window.1 += 1;
        let seen = window.1;
        if seen <= self.initial {
            return true;
        }
        self.thereafter > 0 && (seen - self.initial).is_multiple_of(self.thereafter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_prints_the_first_then_every_mth_per_second() {
        let sampler = Sampler::new(2, 3);
        let start = Instant::now();
        let printed: Vec<bool> = (0..8).map(|_| sampler.allow(start)).collect();
        assert_eq!(printed, [true, true, false, false, true, false, false, true]);
        assert!(sampler.allow(start + Duration::from_secs(2)), "a new second starts over");
        let silent = Sampler::new(1, 0);
        assert!(silent.allow(start));
        assert!(!silent.allow(start));
    }

    #[test]
    fn logging_maps_loglevel_to_verbosity() {
        let config = LoggingConfig { loglevel: Some("debug".into()), ..Default::default() };
        let configured = DebugConfigured::from_logging(&config, "exporters.logging").unwrap();
        assert_eq!(configured.verbosity(), Verbosity::Detailed);
        let configured =
            DebugConfigured::from_logging(&LoggingConfig::default(), "exporters.logging").unwrap();
        assert_eq!(configured.verbosity(), Verbosity::Normal);
        let both = LoggingConfig {
            loglevel: Some("info".into()),
            verbosity: Some("basic".into()),
            ..Default::default()
        };
        let errors = DebugConfigured::from_logging(&both, "exporters.logging").err().unwrap();
        assert_eq!(
            errors.to_string(),
            "exporters.logging.loglevel: loglevel and verbosity are incompatible: use only verbosity"
        );
    }

    #[test]
    fn unknown_verbosity_is_refused() {
        let config = DebugConfig { verbosity: "none".into(), ..Default::default() };
        let errors = DebugConfigured::from_debug(&config, "exporters.debug").err().unwrap();
        assert_eq!(
            errors.to_string(),
            "exporters.debug.verbosity: unsupported verbosity \"none\": expected basic, normal or detailed"
        );
    }
}
