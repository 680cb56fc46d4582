//! Extensions: components outside the pipelines that serve the collector itself.
//!
//! - [`health_check`]: the HTTP endpoint load balancers and Kubernetes probes ask whether the
//!   collector is up, as the collector's `health_check` extension.

pub mod health_check;

pub use health_check::HealthCheckExtensionFactory;
