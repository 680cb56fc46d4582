//! The one place that lists every component this binary offers.

use std::fmt::Write;

use pipeline::{Kind, Registry};

/// Every factory, registered explicitly.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .register(receivers::OtlpReceiverFactory)
        .register(processors::BatchProcessorFactory)
        .register(exporters::OtlpExporterFactory)
        .register(exporters::OtlpHttpExporterFactory)
        .register(exporters::ZipkinExporterFactory)
        .register(exporters::DebugExporterFactory)
        .register(exporters::LoggingExporterFactory)
        .register(extensions::HealthCheckExtensionFactory);
    registry
}

/// The `components` listing: one block per kind, one line per type with its signals.
pub fn describe(registry: &Registry) -> String {
    let mut text = String::new();
    for kind in [Kind::Receiver, Kind::Processor, Kind::Exporter, Kind::Extension] {
        let _ = writeln!(text, "{}:", kind.section());
        for factory in registry.iter().filter(|f| f.kind() == kind) {
            let signals: Vec<String> = factory
                .signals()
                .iter()
                .map(|(signal, stability)| format!("{signal}: {stability}"))
                .collect();
            let detail = if signals.is_empty() {
                format!("stability: {}", factory.stability())
            } else {
                signals.join(", ")
            };
            let _ = writeln!(text, "  {:<16} {detail}", factory.type_name());
        }
    }
    text
}
