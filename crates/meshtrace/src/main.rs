//! The `meshtrace` binary: command-line parsing and wiring only.
//!
//! `collector` runs an OpenTelemetry-Collector-compatible pipeline from otelcol YAML,
//! `validate` checks such a config and prints every error, `components` lists what a config
//! may use, `sidecar` runs the mesh sidecar next to one workload.

mod allocator;
mod cli;
mod collector;
mod components;
mod logging;
mod sidecar;
mod stop_signal;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Collector(args) => collector::run(&args),
        cli::Command::Validate(args) => collector::validate(&args),
        cli::Command::Components => {
            print!("{}", components::describe(&components::registry()));
            Ok(())
        }
        cli::Command::Sidecar(args) => sidecar::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("meshtrace: {error:#}");
            ExitCode::FAILURE
        }
    }
}
