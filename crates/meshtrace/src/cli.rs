//! Command-line arguments, shaped like `otelcol`'s.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "meshtrace", version, about = "Distributed tracing for service meshes")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the collector with an OpenTelemetry Collector configuration.
    Collector(ConfigArgs),
    /// Check a configuration and print every error found, with its key path.
    Validate(ConfigArgs),
    /// List every component type with its stability and signals.
    Components,
    /// Run the mesh sidecar: inbound, outbound and admin listeners next to one workload.
    Sidecar(SidecarArgs),
}

#[derive(Args)]
pub struct SidecarArgs {
    /// The sidecar's config file: a `kind: Sidecar` document, optionally followed by Istio
    /// resources, a Deployment with Linkerd annotations, or Envoy tracing blocks.
    #[arg(long = "config", value_name = "FILE")]
    pub config: PathBuf,
    /// Log level (`RUST_LOG`, when set, wins).
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// How long shutdown may take to drain open requests and buffered spans after
    /// SIGINT/SIGTERM.
    #[arg(long, value_parser = parse_seconds, default_value = "10")]
    pub shutdown_timeout: Duration,
    /// Worker threads serving the proxy listeners, each on its own single-threaded runtime
    /// (Envoy's `--concurrency`; Istio's sidecar default is 2). 0 means one per core. Span
    /// export and the admin listener run on the main thread.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(0..=64))]
    pub concurrency: u16,
}

#[derive(Args)]
pub struct ConfigArgs {
    /// A configuration file (`file:` prefix optional); repeat to merge several, later ones win.
    #[arg(long = "config", required = true, value_name = "FILE")]
    pub configs: Vec<PathBuf>,
    /// Override one key, e.g. `--set processors.batch.timeout=2s` (`::` also separates keys).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// How long shutdown may take to drain queues after SIGINT/SIGTERM.
    #[arg(long, value_parser = parse_seconds, default_value = "10")]
    pub shutdown_timeout: Duration,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.trim_end_matches('s')
        .parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .ok_or_else(|| format!("invalid duration \"{text}\": expected seconds such as 10 or 2.5"))
}
