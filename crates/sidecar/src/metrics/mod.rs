//! Istio-standard Prometheus metrics (being written).
