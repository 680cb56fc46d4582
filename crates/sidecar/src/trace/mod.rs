//! Spans the way istio-proxy makes them (being written).
