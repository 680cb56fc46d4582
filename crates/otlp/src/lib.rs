//! The OTLP data model shared by every part of meshtrace.
//!
//! Start with [`Batch`]: an owned unit of telemetry for one [`Signal`] that moves down a pipeline.
//! A batch stays in its protobuf wire form until a component needs to look inside, because the
//! commonest pipeline (receive → batch → export) never does, and decoding plus re-encoding would
//! cost more than everything else on that path together. [`wire`] validates and counts items by
//! walking the wire format without building objects; [`json`] is the OTLP/JSON codec;
//! [`fixtures`] builds realistic spans for tests and benchmarks.

pub mod batch;
pub mod fixtures;
pub mod json;
pub mod signal;
pub mod wire;

pub use batch::{Batch, DecodeError};
pub use signal::Signal;

/// The generated OTLP message types, re-exported so the rest of the workspace names one version.
pub use opentelemetry_proto::tonic as proto;

/// The request messages of the three OTLP export services.
pub use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};
