//! [`Environment`]: where the sidecar reads environment variables at start-up (the variables
//! Istio's injector sets on istio-proxy, environment custom tags, `OTEL_RESOURCE_ATTRIBUTES`),
//! so tests and embedders can fix them.

use std::collections::BTreeMap;

/// Where environment variables come from: the process (what the sidecar does), or a fixed map
/// (tests, embedding).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Environment {
    /// `std::env::var`.
    #[default]
    Process,
    /// These variables and no others.
    Fixed(BTreeMap<String, String>),
}

impl Environment {
    /// The variable's value, if it is set (and valid UTF-8).
    pub fn var(&self, name: &str) -> Option<String> {
        match self {
            Environment::Process => std::env::var(name).ok(),
            Environment::Fixed(vars) => vars.get(name).cloned(),
        }
    }
}
