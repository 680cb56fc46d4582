//! The collector's own logs: structured `tracing` events on stderr.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber. `RUST_LOG`, when set, wins over the config's level so an operator can
/// turn up one module without editing the config.
pub fn init(level: &str, json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false);
    // A second init (only possible in tests) keeps the first subscriber.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
