//! Log records at every verbosity.

use otlp::ExportLogsServiceRequest;
use otlp::proto::logs::v1::{LogRecord, SeverityNumber};

use super::hierarchy::{self, LevelNames};
use super::lines::{Lines, attributes_inline};
use super::values::{as_string, hex, timestamp, typed_or_empty};

const NAMES: LevelNames = LevelNames {
    normal: ["ResourceLog", "ScopeLog"],
    detailed: ["ResourceLog", "ScopeLogs", "LogRecord"],
};

/// `LogsExporter {"resource logs": 1, "log records": 4}`.
pub fn logs_summary(request: &ExportLogsServiceRequest) -> String {
    let records = hierarchy::items(&request.resource_logs).count();
    format!(
        "LogsExporter {{\"resource logs\": {}, \"log records\": {records}}}",
        request.resource_logs.len()
    )
}

/// One line per log record: `body key=value ...`.
pub fn logs_normal(request: &ExportLogsServiceRequest) -> String {
    hierarchy::normal(&request.resource_logs, &NAMES, |out, record| {
        out.push_str(&record.body.as_ref().map(as_string).unwrap_or_default());
        attributes_inline(out, &record.attributes, " ");
        out.push('\n');
    })
}

/// Every field of every log record.
pub fn logs_detailed(request: &ExportLogsServiceRequest) -> String {
    hierarchy::detailed(&request.resource_logs, &NAMES, log_detailed)
}

fn log_detailed(out: &mut Lines, record: &LogRecord) {
    out.entry("ObservedTimestamp", timestamp(record.observed_time_unix_nano));
    out.entry("Timestamp", timestamp(record.time_unix_nano));
    out.entry("SeverityText", &record.severity_text);
    out.line(format!(
        "SeverityNumber: {}({})",
        severity_name(record.severity_number),
        record.severity_number
    ));
    if !record.event_name.is_empty() {
        out.entry("EventName", &record.event_name);
    }
    out.entry("Body", typed_or_empty(record.body.as_ref()));
    out.attributes("Attributes", &record.attributes);
    out.entry("Trace ID", hex(&record.trace_id));
    out.entry("Span ID", hex(&record.span_id));
    out.entry("Flags", record.flags);
}

/// `Info`, `Warn2`, ...: the collector's names for severity numbers.
fn severity_name(number: i32) -> String {
    let Ok(severity) = SeverityNumber::try_from(number) else {
        return String::new();
    };
    if severity == SeverityNumber::Unspecified {
        return "Unspecified".to_string();
    }
    // "SEVERITY_NUMBER_INFO2" → "Info2".
    let name = severity.as_str_name().trim_start_matches("SEVERITY_NUMBER_");
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_string() + &chars.as_str().to_ascii_lowercase(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use otlp::proto::common::v1::{AnyValue, any_value};
    use otlp::proto::logs::v1::{ResourceLogs, ScopeLogs};

    use super::*;
    use crate::debug::format::fixtures::{START, int, resource, scope};

    #[test]
    fn logs_print_at_every_verbosity() {
        let record = LogRecord {
            time_unix_nano: START,
            observed_time_unix_nano: START + 5,
            severity_number: SeverityNumber::Warn2 as i32,
            severity_text: "WARN".into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue("disk almost full".into())),
            }),
            attributes: vec![int("free_mb", 12)],
            trace_id: vec![0x11; 16],
            span_id: vec![0x22; 8],
            ..Default::default()
        };
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: resource(),
                scope_logs: vec![ScopeLogs {
                    scope: scope(),
                    log_records: vec![record],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        assert_eq!(
            logs_summary(&request),
            "LogsExporter {\"resource logs\": 1, \"log records\": 1}"
        );
        assert!(
            logs_normal(&request)
                .ends_with("ScopeLog #0 envoy@1.27.2\ndisk almost full free_mb=12\n")
        );
        let detailed = logs_detailed(&request);
        for line in [
            "LogRecord #0",
            "ObservedTimestamp: 2023-11-14 22:13:20.000000005 +0000 UTC",
            "SeverityText: WARN",
            "SeverityNumber: Warn2(14)",
            "Body: Str(disk almost full)",
            "     -> free_mb: Int(12)",
            "Trace ID: 11111111111111111111111111111111",
            "Span ID: 2222222222222222",
            "Flags: 0",
        ] {
            assert!(detailed.lines().any(|l| l == line), "missing {line:?} in\n{detailed}");
        }
    }
}
