//! The `google.rpc.Status` OTLP uses for errors, with a `google.rpc.RetryInfo` detail carrying
//! the retry delay, and the gRPC status codes OTLP maps to HTTP.

use std::time::Duration;

use prost::Message;

/// gRPC codes used by OTLP.
pub mod code {
    pub const OK: i32 = 0;
    pub const CANCELLED: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const NOT_FOUND: i32 = 5;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const ABORTED: i32 = 10;
    pub const OUT_OF_RANGE: i32 = 11;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const INTERNAL: i32 = 13;
    pub const UNAVAILABLE: i32 = 14;
    pub const DATA_LOSS: i32 = 15;
    pub const UNAUTHENTICATED: i32 = 16;
}

const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
pub struct Any {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoDuration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl RpcStatus {
    /// A status with an optional retry delay detail.
    pub fn new(code: i32, message: impl Into<String>, retry_after: Option<Duration>) -> RpcStatus {
        let details = retry_after
            .map(|delay| Any {
                type_url: RETRY_INFO_TYPE.to_string(),
                value: RetryInfo {
                    retry_delay: Some(ProtoDuration {
                        seconds: i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
                        nanos: i32::try_from(delay.subsec_nanos()).unwrap_or(0),
                    }),
                }
                .encode_to_vec(),
            })
            .into_iter()
            .collect();
        RpcStatus { code, message: message.into(), details }
    }

    /// The retry delay carried in the details, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        let detail = self.details.iter().find(|d| d.type_url == RETRY_INFO_TYPE)?;
        let info = RetryInfo::decode(detail.value.as_slice()).ok()?;
        let delay = info.retry_delay?;
        let seconds = u64::try_from(delay.seconds).ok()?;
        let nanos = u32::try_from(delay.nanos).ok()?;
        Some(Duration::new(seconds, nanos))
    }
}

/// Whether OTLP clients retry a gRPC code (the specification's retryable list).
pub fn grpc_code_is_retryable(code: i32) -> bool {
    matches!(
        code,
        code::CANCELLED
            | code::DEADLINE_EXCEEDED
            | code::RESOURCE_EXHAUSTED
            | code::ABORTED
            | code::OUT_OF_RANGE
            | code::UNAVAILABLE
            | code::DATA_LOSS
    )
}

/// Whether OTLP/HTTP clients retry an HTTP status (429, 502, 503, 504).
pub fn http_status_is_retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Parses a `Retry-After` header holding delay-seconds (the HTTP-date form is not used by OTLP
/// servers and is ignored).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_round_trips_through_the_encoding() {
        let status =
            RpcStatus::new(code::RESOURCE_EXHAUSTED, "full", Some(Duration::from_millis(1500)));
        let decoded = RpcStatus::decode(status.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.retry_after(), Some(Duration::from_millis(1500)));
        assert_eq!(decoded.message, "full");
        assert_eq!(RpcStatus::new(code::INTERNAL, "x", None).retry_after(), None);
    }

    #[test]
    fn retryable_codes_follow_the_specification() {
        assert!(grpc_code_is_retryable(code::UNAVAILABLE));
        assert!(!grpc_code_is_retryable(code::INVALID_ARGUMENT));
        assert!(http_status_is_retryable(429));
        assert!(!http_status_is_retryable(400));
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
    }
}
