//! The pipeline engine: how components are described, configured, wired and run.
//!
//! Read in this order:
//! - [`consumer`]: the call chain telemetry moves down (`Consumer::consume`), its retryable and
//!   permanent errors, and the fan-out to several consumers.
//! - [`component`]: component ids, factories, and what a built component hands back.
//! - [`registry`]: the explicit list of factories a binary offers.
//! - [`graph`]: turns a loaded config into validated, typed pipelines, collecting every error.
//! - [`service`]: builds, starts and shuts down a running collector.
//! - [`exporter_helper`]: the bounded sending queue and retry loop every network exporter uses.
//! - [`telemetry`] and [`health`]: the collector's own metrics and pipeline health.

pub mod calendar;
pub mod component;
pub mod consumer;
pub mod exporter_helper;
pub mod graph;
pub mod health;
pub mod http_server;
pub mod registry;
pub mod service;
pub mod telemetry;

pub use component::{
    BuildContext, BuildError, Built, ComponentId, Configured, Factory, Kind, Lifecycle, Stability,
};
pub use consumer::{ConsumeError, Consumer, FanOut, RefusalKind};
pub use registry::Registry;
pub use service::Service;
