//! The exporters: where telemetry leaves meshtrace.
//!
//! - [`otlp_grpc`]: `otlp`, OTLP over gRPC;
//! - [`otlp_http`]: `otlphttp`, OTLP over HTTP with protobuf or JSON bodies;
//! - [`debug`]: `debug` (and `logging`, its deprecated name), printing what it gets.
//!
//! The network exporters take the same keys as the OpenTelemetry Collector's, with the same
//! defaults, and run on the pipeline's exporter helper (per-attempt timeout, retries with
//! backoff, bounded sending queue). They forward batches in their protobuf wire form whenever
//! they can: a batch received over OTLP/protobuf leaves as the same bytes, never decoded.
//!
//! Both dial through one TCP + rustls connector ([`connect`]), so a `tls:` block means the
//! same thing to either.

mod common;
mod connect;
pub mod debug;
pub mod otlp_grpc;
pub mod otlp_http;

pub use common::Headers;
pub use debug::{DebugExporterFactory, LoggingExporterFactory};
pub use otlp_grpc::OtlpExporterFactory;
pub use otlp_http::OtlpHttpExporterFactory;
