//! The exporters: where telemetry leaves meshtrace.
//!
//! - [`otlp_grpc`]: `otlp`, OTLP over gRPC;
//! - [`otlp_http`]: `otlphttp`, OTLP over HTTP with protobuf or JSON bodies;
//! - [`zipkin`]: `zipkin`, traces as Zipkin v2 JSON or protobuf;
//! - [`debug`]: `debug` (and `logging`, its deprecated name), printing what it gets.
//!
//! The network exporters take the same keys as the OpenTelemetry Collector's, with the same
//! defaults, and run on the pipeline's exporter helper (per-attempt timeout, retries with
//! backoff, bounded sending queue). They forward batches in their protobuf wire form whenever
//! they can: a batch received over OTLP/protobuf leaves as the same bytes, never decoded
//! (Zipkin needs the objects, so `zipkin` decodes).
//!
//! All three dial through one TCP + rustls connector ([`connect`]), so a `tls:` block means the
//! same thing to each.

mod common;
mod connect;
pub mod debug;
mod http_post;
pub mod otlp_grpc;
pub mod otlp_http;
pub mod zipkin;

pub use common::Headers;
pub use debug::{DebugExporterFactory, LoggingExporterFactory};
pub use otlp_grpc::OtlpExporterFactory;
pub use otlp_http::OtlpHttpExporterFactory;
pub use zipkin::ZipkinExporterFactory;
