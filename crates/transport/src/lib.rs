//! What OTLP receivers and exporters share on the wire: gzip with size limits ([`gzip`]), TLS
//! settings as the collector writes them ([`tls`]), and the OTLP error status with its retry hint
//! ([`status`]).

pub mod grpc_codec;
pub mod gzip;
pub mod status;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod tls;
