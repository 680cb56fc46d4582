//! `meshtrace sidecar --config FILE`: the mesh sidecar next to one workload, until SIGINT or
//! SIGTERM.
//!
//! Wiring only: the config file becomes typed settings (`sidecar::config`), the tracing and
//! metrics observers watch the proxy's exchanges, the admin endpoint serves both observers'
//! counters, and shutdown runs in reverse order of start-up: the listeners drain first, then
//! tracing sends what it buffered.

use std::sync::Arc;
use std::time::Instant;

use ::sidecar::admin::AdminState;
use ::sidecar::observe::Observers;
use ::sidecar::proxy::{ProxyOptions, Sidecar};
use anyhow::{Context, anyhow};

use crate::allocator;
use crate::cli::SidecarArgs;
use crate::logging;
use crate::stop_signal::StopSignal;

pub fn run(args: &SidecarArgs) -> anyhow::Result<()> {
    let config = ::sidecar::config::load_file(&args.config).map_err(|errors| {
        let count = errors.len();
        let noun = if count == 1 { "error" } else { "errors" };
        anyhow!("invalid sidecar configuration ({count} {noun}):\n{errors}")
    })?;
    logging::init(&args.log_level, false);
    // Before any other thread starts.
    allocator::single_arena();
    for warning in &config.warnings {
        tracing::warn!(%warning, "sidecar configuration");
    }
    let (metrics_observer, metrics) = ::sidecar::metrics::observer(&config);
    let (trace_observer, mut trace_runtime) = ::sidecar::trace::observer(&config)?;
    let trace_stats = trace_runtime.stats();
    let admin = AdminState::with_stats(move || {
        let mut text = metrics.encode();
        trace_stats.append_to(&mut text);
        text
    });
    let observer = Arc::new(Observers(vec![trace_observer, metrics_observer]));

    let workers = match args.concurrency {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        workers => usize::from(workers),
    };
    let options = ProxyOptions { workers, ..ProxyOptions::default() };
    // The main thread's runtime runs span export, the admin listener and shutdown; the proxy
    // listeners run on the workers' own runtimes.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let stop = StopSignal::listen().context("cannot listen for SIGINT and SIGTERM")?;
        trace_runtime.start().await?;
        let running = Sidecar::start_with(&config, observer, admin, options).await?;
        stop.received().await;
        let deadline = Instant::now() + args.shutdown_timeout;
        running.shutdown(deadline).await;
        trace_runtime.shutdown(deadline).await;
        Ok(())
    })
}
