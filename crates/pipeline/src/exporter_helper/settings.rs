//! The YAML of `timeout`, `retry_on_failure` and `sending_queue`, with the collector's defaults.

use std::time::Duration;

use serde::Deserialize;

/// `retry_on_failure`, as the collector's exporterhelper reads it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub enabled: bool,
    pub initial_interval: config::Duration,
    pub randomization_factor: f64,
    pub multiplier: f64,
    pub max_interval: config::Duration,
    /// Give up after this long; zero means never.
    pub max_elapsed_time: config::Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            enabled: true,
            initial_interval: config::Duration(Duration::from_secs(5)),
            randomization_factor: 0.5,
            multiplier: 1.5,
            max_interval: config::Duration(Duration::from_secs(30)),
            max_elapsed_time: config::Duration(Duration::from_secs(300)),
        }
    }
}

/// What `sending_queue.queue_size` counts, as the collector's `sizer` key says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sizer {
    /// Batches (export requests): the collector's default.
    #[default]
    Requests,
    /// Spans, log records or metric data points.
    Items,
    /// Encoded bytes: the way to bound the queue's memory.
    Bytes,
}

impl Sizer {
    /// The size of `batch` in this sizer's unit.
    pub fn measure(self, batch: &otlp::Batch) -> u64 {
        match self {
            Sizer::Requests => 1,
            Sizer::Items => batch.items(),
            Sizer::Bytes => batch.encoded_len() as u64,
        }
    }
}

/// `sending_queue`: bounded and in memory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    pub enabled: bool,
    pub num_consumers: usize,
    /// Capacity, in the unit `sizer` says.
    pub queue_size: u64,
    pub sizer: Sizer,
    /// A storage extension for a persistent queue; accepted only to reject it clearly.
    pub storage: Option<String>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            enabled: true,
            num_consumers: 10,
            queue_size: 1000,
            sizer: Sizer::Requests,
            storage: None,
        }
    }
}

/// The exporter-level `timeout` key.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutConfig;

impl TimeoutConfig {
    /// The collector's default per-attempt timeout.
    pub const DEFAULT: Duration = Duration::from_secs(5);
}

/// Validated settings for [`super::build`].
#[derive(Debug, Clone)]
pub struct HelperSettings {
    pub timeout: Duration,
    pub retry: RetryConfig,
    pub queue: QueueConfig,
}

impl HelperSettings {
    /// Checks the three blocks together; `path` is the exporter's key path.
    pub fn new(
        path: &str,
        timeout: Option<config::Duration>,
        retry: RetryConfig,
        queue: QueueConfig,
    ) -> Result<HelperSettings, config::ConfigErrors> {
        let mut errors = config::ConfigErrors::new();
        let mut fail = |key: &str, message: String| {
            errors.push(config::ConfigError::new(format!("{path}.{key}"), message))
        };
        if retry.enabled {
            if retry.initial_interval.0.is_zero() {
                fail("retry_on_failure.initial_interval", "must be greater than zero".into());
            }
            if retry.max_interval.0 < retry.initial_interval.0 {
                fail(
                    "retry_on_failure.max_interval",
                    "must not be less than initial_interval".into(),
                );
            }
            if !(0.0..=1.0).contains(&retry.randomization_factor) {
                fail(
                    "retry_on_failure.randomization_factor",
                    format!("{} is out of range: expected 0 to 1", retry.randomization_factor),
                );
            }
            if retry.multiplier < 1.0 || !retry.multiplier.is_finite() {
                fail(
                    "retry_on_failure.multiplier",
                    format!("{} is out of range: expected 1 or more", retry.multiplier),
                );
            }
        }
        if queue.enabled {
            if queue.queue_size == 0 {
                fail("sending_queue.queue_size", "must be greater than zero".into());
            }
            if queue.num_consumers == 0 {
                fail("sending_queue.num_consumers", "must be greater than zero".into());
            }
        }
        if let Some(storage) = &queue.storage {
            fail(
                "sending_queue.storage",
                format!(
                    "persistent queues are not supported (storage \"{storage}\"); remove the key to use the in-memory queue"
                ),
            );
        }
        let timeout = timeout.map_or(TimeoutConfig::DEFAULT, |t| t.0);
        errors.into_result().map(|()| HelperSettings { timeout, retry, queue })
    }
}
