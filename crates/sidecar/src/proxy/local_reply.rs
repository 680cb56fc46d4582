//! Responses the sidecar makes itself when it cannot forward, worded as Envoy words them.
//!
//! The app (or its caller) sees the same status, body and flags as behind istio-proxy, so
//! dashboards, alerts and retry logic written for Istio keep working:
//!
//! | failure | status | flags | body |
//! |---|---|---|---|
//! | upstream refused / unreachable | 503 | `UF` (inbound), `UF,URX` (outbound, after Istio's 2 connect retries) | `upstream connect error or disconnect/reset before headers. reset reason: connection failure` |
//! | upstream closed or reset before its response head | 503 | `UC` | `… reset reason: connection termination` |
//! | no response head within the upstream timeout | 504 | `UT` | `upstream request timeout` |
//! | outbound request naming no destination | 404 | `NR` | (empty) |
//!
//! A gRPC request (`content-type: application/grpc…`) gets what Envoy's `sendLocalReply` sends
//! a gRPC client instead: a trailers-only `200` with `grpc-status` mapped from the HTTP status
//! (`httpToGrpcStatus`: 503/504 → 14 UNAVAILABLE, 404 → 12 UNIMPLEMENTED) and the text in
//! `grpc-message`.
//!
//! Observers see these responses like any other, and may add headers to them as to any other
//! (Envoy's local replies go through the same encoder filters): [`Exchange::response`] then
//! completion when the body has been written.

use std::net::SocketAddr;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode, Version};

use super::connect::ConnectError;
use super::exchange::{Exchange, ResponseBody, ResponseFlags};
use crate::grpc::{self, GRPC_MESSAGE, GRPC_STATUS};
use crate::received::Received;

/// Why the sidecar answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Connecting failed; `retried` when Envoy would have retried and given up (`URX`).
    Unreachable { retried: bool },
    /// The upstream connection closed or reset before a response head.
    ConnectionTermination,
    /// No response head within the upstream timeout.
    Timeout,
    /// Nothing moved on the stream for the stream idle timeout before a response head.
    StreamIdle,
    /// Nothing to route to.
    NoRoute,
    /// The request could not be forwarded as received (an unusable URI).
    BadRequest,
}

impl From<&ConnectError> for Failure {
    /// A failed connect: `UF`, with `URX` when the connector retried.
    fn from(error: &ConnectError) -> Failure {
        Failure::Unreachable { retried: error.attempts > 1 }
    }
}

impl Failure {
    fn status(self) -> StatusCode {
        match self {
            Failure::Unreachable { .. } | Failure::ConnectionTermination => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Failure::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::StreamIdle => StatusCode::REQUEST_TIMEOUT,
            Failure::NoRoute => StatusCode::NOT_FOUND,
            Failure::BadRequest => StatusCode::BAD_REQUEST,
        }
    }

    fn flags(self) -> ResponseFlags {
        match self {
            Failure::Unreachable { retried: false } => ResponseFlags::UPSTREAM_CONNECTION_FAILURE,
            Failure::Unreachable { retried: true } => {
                ResponseFlags::UPSTREAM_CONNECTION_FAILURE.with(ResponseFlags::RETRY_LIMIT_EXCEEDED)
            }
            Failure::ConnectionTermination => ResponseFlags::UPSTREAM_CONNECTION_TERMINATION,
            Failure::Timeout => ResponseFlags::UPSTREAM_TIMEOUT,
            Failure::StreamIdle => ResponseFlags::STREAM_IDLE_TIMEOUT,
            Failure::NoRoute => ResponseFlags::NO_ROUTE,
            Failure::BadRequest => ResponseFlags::default(),
        }
    }

    fn body(self) -> &'static str {
        match self {
            Failure::Unreachable { retried: false } => {
                "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
            }
            Failure::Unreachable { retried: true } => {
                "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: connection failure"
            }
            Failure::ConnectionTermination => {
                "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
            }
            Failure::Timeout => "upstream request timeout",
            Failure::StreamIdle => "stream timeout",
            Failure::NoRoute => "",
            Failure::BadRequest => "bad request",
        }
    }
}

/// gRPC's status for an HTTP status (Envoy `Grpc::Utility::httpToGrpcStatus`).
fn grpc_status(status: StatusCode) -> u16 {
    grpc::http_to_grpc_status(status.as_u16())
}

/// The sidecar's answer for `failure`, observed through `exchange`.
pub(crate) fn respond(
    failure: Failure,
    mut exchange: Exchange,
    grpc: bool,
    version: Version,
    upstream: Option<SocketAddr>,
) -> Response<ResponseBody> {
    exchange.flag(failure.flags());
    let text = failure.body();
    let mut response = Response::new(());
    *response.version_mut() = version;
    let headers = response.headers_mut();
    let body = if grpc {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(GRPC_STATUS, HeaderValue::from(grpc_status(failure.status())));
        if let Ok(message) = HeaderValue::from_str(text)
            && !text.is_empty()
        {
            headers.insert(GRPC_MESSAGE, message);
        }
        ""
    } else {
        if !text.is_empty() {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        }
        text
    };
    if !grpc {
        *response.status_mut() = failure.status();
    }
    let status = response.status();
    let received = Received::scan(response.headers());
    exchange.response(status, version, response.headers_mut(), received, upstream);
    response.map(|()| ResponseBody::local(body, Some(exchange)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_statuses_follow_envoy() {
        assert_eq!(grpc_status(StatusCode::SERVICE_UNAVAILABLE), 14);
        assert_eq!(grpc_status(StatusCode::GATEWAY_TIMEOUT), 14);
        assert_eq!(grpc_status(StatusCode::NOT_FOUND), 12);
        assert_eq!(grpc_status(StatusCode::IM_A_TEAPOT), 2);
    }

    #[test]
    fn failures_map_to_envoy_flags() {
        let flags = |failure: Failure| failure.flags().to_string();
        assert_eq!(flags(Failure::Unreachable { retried: false }), "UF");
        assert_eq!(flags(Failure::Unreachable { retried: true }), "UF,URX");
        assert_eq!(flags(Failure::ConnectionTermination), "UC");
        assert_eq!(flags(Failure::Timeout), "UT");
        assert_eq!(flags(Failure::NoRoute), "NR");
    }
}
