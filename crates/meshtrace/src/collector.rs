//! `meshtrace collector` and `meshtrace validate`.

use anyhow::{Context, anyhow};
use pipeline::Service;
use pipeline::graph::{self, Plan};

use crate::cli::ConfigArgs;
use crate::components::registry;
use crate::logging;
use crate::stop_signal::StopSignal;

/// Loads, expands, merges and validates the config, printing warnings; every error is returned
/// in one message, one per line.
fn load(args: &ConfigArgs) -> anyhow::Result<Plan> {
    let files: Vec<std::path::PathBuf> = args.configs.clone();
    let lookup = |name: &str| std::env::var(name).ok();
    let loaded = config::load(&files, &args.sets, &lookup).map_err(|errors| invalid(&errors))?;
    for warning in &loaded.warnings {
        eprintln!("meshtrace: warning: {warning}");
    }
    graph::plan(&loaded.value, &registry()).map_err(|errors| invalid(&errors))
}

fn invalid(errors: &config::ConfigErrors) -> anyhow::Error {
    let count = errors.len();
    let noun = if count == 1 { "error" } else { "errors" };
    anyhow!("invalid configuration ({count} {noun}):\n{errors}")
}

pub fn validate(args: &ConfigArgs) -> anyhow::Result<()> {
    let plan = load(args)?;
    println!(
        "configuration is valid: {} pipelines, {} extensions",
        plan.pipelines.len(),
        plan.extensions.len()
    );
    Ok(())
}

pub fn run(args: &ConfigArgs) -> anyhow::Result<()> {
    let plan = load(args)?;
    logging::init(&plan.telemetry.log_level, plan.telemetry.log_encoding == "json");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("meshtrace")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let stop = StopSignal::listen().context("cannot listen for SIGINT and SIGTERM")?;
        let mut service = Service::build(plan)?;
        service.start().await?;
        stop.received().await;
        service.shutdown(args.shutdown_timeout).await;
        Ok(())
    })
}
