//! `meshtrace-loadgen`: the load tool and benchmark driver for meshtrace.
//!
//! - `sink` ([`sink`]): a counting OTLP trace sink (OTLP/gRPC or OTLP/HTTP) with a `GET /count`
//!   stats endpoint.
//! - `load` ([`load`]): sends realistic Envoy sidecar spans, pre-encoded once, at a paced rate
//!   (or as fast as possible) and reports what was accepted, refused or failed.
//! - `echo` ([`echo`]) and `http-load` ([`http_load`]): the sidecar benchmark's upstream app
//!   and its constant-rate HTTP/1.1 load with exact latency percentiles.
//! - `run` ([`run`]): the whole benchmark in one command: an in-process sink, a collector
//!   process between the load and the sink, and the collector's delivered spans per second,
//!   spans per CPU-second and peak RSS, measured from `/proc` ([`proc_stats`]).
//!
//! The sink and the load run in this one process, separate from the collector's, so the
//! collector's own CPU time can be measured on its own.

mod echo;
mod http_load;
mod load;
mod proc_stats;
mod run;
mod sink;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "meshtrace-loadgen",
    version,
    about = "Load generator and benchmark driver for meshtrace"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a counting OTLP trace sink until interrupted.
    Sink(sink::SinkArgs),
    /// Send sidecar spans to an OTLP endpoint and report what happened.
    Load(load::LoadArgs),
    /// Run the whole benchmark: sink, collector process, load, measurements.
    Run(run::RunArgs),
    /// Serve a fixed small HTTP/1.1 response, as the sidecar benchmark's upstream app.
    Echo(echo::EchoArgs),
    /// Send HTTP/1.1 GETs at a constant rate and report latency percentiles.
    HttpLoad(http_load::HttpLoadArgs),
}

/// The OTLP transport a sink serves or a load sends over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// OTLP/gRPC (`TraceService/Export`).
    Grpc,
    /// OTLP/HTTP (`POST /v1/traces`, protobuf).
    Http,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::Http => "http",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("loadgen")
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("meshtrace-loadgen: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Sink(args) => sink::command(args).await,
            Command::Load(args) => load::command(args).await,
            Command::Run(args) => run::command(args).await,
            Command::Echo(args) => echo::command(args).await,
            Command::HttpLoad(args) => http_load::command(args).await,
        }
    });
    // Worker tasks may still hold connections; do not wait for them.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("meshtrace-loadgen: {error:#}");
            ExitCode::FAILURE
        }
    }
}
