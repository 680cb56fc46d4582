//! Receivers: where telemetry enters a pipeline.
//!
//! - [`otlp`]: OTLP over gRPC and HTTP (protobuf and JSON), as the collector's `otlp` receiver.

pub mod otlp;

pub use otlp::OtlpReceiverFactory;
