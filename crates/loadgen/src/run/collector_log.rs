//! Reading the collector's log: the lines that announce its ports and readiness, and the tail
//! (last lines, warnings, errors) kept for the report.

use std::collections::VecDeque;
use std::net::SocketAddr;

/// What the collector's log told about its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// A receiver bound an address: `listening receiver=otlp protocol="grpc" endpoint=...`.
    Listening { protocol: String, address: SocketAddr },
    /// The collector's own metrics endpoint: `metrics listening endpoint=...`.
    Metrics(SocketAddr),
    /// `everything is ready`.
    Ready,
}

/// Reads one line of the collector's console (or JSON) log.
pub fn parse_log_line(line: &str) -> Option<LogEvent> {
    let line = strip_ansi(line);
    if line.contains("everything is ready") {
        return Some(LogEvent::Ready);
    }
    if !line.contains("listening") {
        return None;
    }
    let address = field(&line, "endpoint")?.parse().ok()?;
    if field(&line, "receiver").is_some() {
        let protocol = field(&line, "protocol")?.to_ascii_lowercase();
        return Some(LogEvent::Listening { protocol, address });
    }
    line.contains("metrics listening").then_some(LogEvent::Metrics(address))
}

/// The value of `key=value` or `key="value"` (console) or `"key":"value"` (JSON) in `line`.
fn field(line: &str, key: &str) -> Option<String> {
    let console = format!("{key}=");
    let json = format!("\"{key}\":");
    let mut search = 0;
    while let Some(found) = line.get(search..)?.find(&console) {
        let start = search + found;
        let boundary = line[..start]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c == '{' || c == ',');
        if boundary {
            return Some(value_at(&line[start + console.len()..]));
        }
        search = start + console.len();
    }
    let start = line.find(&json)? + json.len();
    Some(value_at(line[start..].trim_start()))
}

/// A value at the start of `rest`: quoted up to the closing quote, or bare up to a space or
/// a JSON delimiter.
fn value_at(rest: &str) -> String {
    if let Some(quoted) = rest.strip_prefix('"') {
        quoted.split('"').next().unwrap_or_default().to_string()
    } else {
        rest.split(|c: char| c.is_whitespace() || c == ',' || c == '}')
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

/// Removes terminal colour sequences (`ESC [ ... letter`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The collector's last log lines and its warnings and errors.
#[derive(Debug, Default)]
pub(super) struct LogTail {
    pub(super) last: VecDeque<String>,
    pub(super) warnings: u64,
    pub(super) errors: u64,
    pub(super) first_problems: Vec<String>,
}

const LOG_TAIL_LINES: usize = 30;

impl LogTail {
    pub(super) fn push(&mut self, line: &str) {
        let plain = strip_ansi(line);
        let level = plain.split_whitespace().nth(1).unwrap_or("");
        let is_warning = level == "WARN" || plain.contains("\"level\":\"WARN\"");
        let is_error = level == "ERROR" || plain.contains("\"level\":\"ERROR\"");
        if is_warning {
            self.warnings += 1;
        }
        if is_error {
            self.errors += 1;
        }
        if (is_warning || is_error) && self.first_problems.len() < 3 {
            self.first_problems.push(plain.clone());
        }
        if self.last.len() == LOG_TAIL_LINES {
            self.last.pop_front();
        }
        self.last.push_back(plain);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_lines_give_the_receiver_ports() {
        let line = "2025-01-02T03:04:05.678901Z  INFO listening receiver=otlp protocol=\"grpc\" endpoint=127.0.0.1:41234";
        assert_eq!(
            parse_log_line(line),
            Some(LogEvent::Listening {
                protocol: "grpc".into(),
                address: "127.0.0.1:41234".parse().unwrap()
            })
        );
        let coloured = "\u{1b}[2m2025\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m \u{1b}[3mreceiver\u{1b}[0m\u{1b}[2m=\u{1b}[0motlp/in \u{1b}[3mprotocol\u{1b}[0m\u{1b}[2m=\u{1b}[0m\"http\" \u{1b}[3mendpoint\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:4318 listening";
        assert_eq!(
            parse_log_line(coloured),
            Some(LogEvent::Listening {
                protocol: "http".into(),
                address: "127.0.0.1:4318".parse().unwrap()
            })
        );
        let json = r#"{"timestamp":"...","level":"INFO","fields":{"message":"listening","receiver":"otlp","protocol":"grpc","endpoint":"127.0.0.1:9"}}"#;
        assert_eq!(
            parse_log_line(json),
            Some(LogEvent::Listening {
                protocol: "grpc".into(),
                address: "127.0.0.1:9".parse().unwrap()
            })
        );
    }

    #[test]
    fn other_lines_are_recognised_or_ignored() {
        let metrics = "2025-01-02T03:04:05Z  INFO metrics listening endpoint=127.0.0.1:8888";
        assert_eq!(
            parse_log_line(metrics),
            Some(LogEvent::Metrics("127.0.0.1:8888".parse().unwrap()))
        );
        assert_eq!(
            parse_log_line("2025 INFO everything is ready components=3"),
            Some(LogEvent::Ready)
        );
        assert_eq!(parse_log_line("2025 INFO health check listening extension=health_check"), None);
        assert_eq!(
            parse_log_line("2025 INFO listening receiver=otlp protocol=grpc endpoint=nowhere"),
            None
        );
        // `myendpoint=` is not `endpoint=`.
        assert_eq!(field("a myendpoint=1 endpoint=2", "endpoint").as_deref(), Some("2"));
    }

    #[test]
    fn log_tail_counts_warnings_and_errors() {
        let mut tail = LogTail::default();
        tail.push("2025-01-02T03:04:05Z  WARN dropping data that could not be exported");
        tail.push("2025-01-02T03:04:05Z ERROR grpc server failed");
        tail.push("2025-01-02T03:04:05Z  INFO listening ... WARN in the text");
        assert_eq!((tail.warnings, tail.errors, tail.first_problems.len()), (1, 1, 2));
        for n in 0..100 {
            tail.push(&format!("line {n}"));
        }
        assert_eq!(tail.last.len(), LOG_TAIL_LINES);
    }
}
