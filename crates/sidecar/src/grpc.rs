//! gRPC over HTTP as Envoy's `Grpc::Common` and `Grpc::Utility` see it, shared by the proxy's
//! local replies and both observers.

use http::HeaderMap;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};

use crate::received::{Known, Received};

/// The status header (or trailer) of a gRPC response.
pub(crate) const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// The message header (or trailer) of a gRPC response.
pub(crate) const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// Envoy's `Grpc::Common::hasGrpcContentType`: exactly `application/grpc`, or it followed by
/// `+format` (`application/grpc+proto`, …). Not gRPC-Web, and not with parameters, which gRPC's
/// HTTP/2 protocol does not define. The proxy's local replies, Istio's metrics and the tracer's
/// `grpc.*` tags all decide with this, as Envoy's do.
pub(crate) fn is_grpc(content_type: &HeaderValue) -> bool {
    match content_type.as_bytes().strip_prefix(b"application/grpc") {
        Some(rest) => matches!(rest.first(), None | Some(b'+')),
        None => false,
    }
}

/// Envoy's `isGrpcRequestHeaders`: the request's `content-type` is gRPC's. `received` is what
/// `headers` holds, so a request without `content-type` costs no lookup.
pub(crate) fn is_grpc_request(headers: &HeaderMap, received: Received) -> bool {
    received.has(Known::ContentType) && headers.get(CONTENT_TYPE).is_some_and(is_grpc)
}

/// gRPC's status for an HTTP status (Envoy `Grpc::Utility::httpToGrpcStatus`), for gRPC
/// responses that carry no `grpc-status`.
pub(crate) fn http_to_grpc_status(status: u16) -> u16 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}
