//! The collector config `run` writes: otlp receiver → `batch` or nothing → otlp exporter to the
//! sink, every port 0.

use std::path::PathBuf;

use anyhow::Context;

use super::{Compression, Processors};

/// The environment variable holding the sink's address in the collector config.
pub(super) const SINK_VARIABLE: &str = "MESHTRACE_BENCH_SINK";

/// The collector config `run` uses, with the sink's address left to `${env:MESHTRACE_BENCH_SINK}`.
pub fn collector_config(processors: Processors, compression: Compression) -> String {
    let compression = match compression {
        Compression::None => "none",
        Compression::Gzip => "gzip",
    };
    let (processors_section, pipeline_processors) = match processors {
        Processors::Batch => ("processors:\n  batch:\n", "      processors: [batch]\n"),
        Processors::None => ("", ""),
    };
    format!(
        "# The collector config `meshtrace-loadgen run` generates. The sink's address comes from
# {SINK_VARIABLE}, which `run` sets; every port the collector listens on is 0, and `run`
# reads the ports it bound from its log.
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
{processors_section}exporters:
  otlp:
    endpoint: ${{env:{SINK_VARIABLE}}}
    tls:
      insecure: true
    compression: {compression}
service:
  telemetry:
    logs:
      level: info
    metrics:
      address: 127.0.0.1:0
  pipelines:
    traces:
      receivers: [otlp]
{pipeline_processors}      exporters: [otlp]
"
    )
}

pub(super) fn write_config(text: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("meshtrace-bench-{}.yaml", std::process::id()));
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bench_folder_holds_the_generated_configs() {
        assert_eq!(
            collector_config(Processors::Batch, Compression::None),
            include_str!("../../../../bench/otlp-batch-otlp.yaml")
        );
        assert_eq!(
            collector_config(Processors::None, Compression::None),
            include_str!("../../../../bench/otlp-otlp.yaml")
        );
        assert!(
            collector_config(Processors::Batch, Compression::Gzip).contains("compression: gzip")
        );
    }
}
