//! Golden tests: YAML inputs in `tests/golden/*.yaml`, expected output in
//! the matching `*.out` files. Run with `UPDATE_GOLDEN=1` to rewrite the
//! `.out` files after an intended change, then review the diff.
//!
//! The configs are loaded with [`config::load`] (variables come from
//! [`test_env`], never the real environment) and then, like a collector
//! would, each component's subtree is turned into a small collector-shaped
//! config struct (see `support/mod.rs`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail the test loudly"
)]

mod support;

use config::{ConfigErrors, Loaded, Value, from_value};
use support::{OtlpReceiverConfig, typed_collector};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");

fn test_env(name: &str) -> Option<String> {
    let value = match name {
        "HOST" => "collector",
        "PORT" => "4317",
        "ENABLED" => "true",
        "RATIO" => "0.25",
        "TOKEN" => "007",
        "EMPTY" => "",
        "OTLP_ENDPOINT" => "collector:4317",
        _ => return None,
    };
    Some(value.to_owned())
}

// ---- harness ----------------------------------------------------------------

/// What a golden file shows besides warnings and errors.
#[derive(Clone, Copy, PartialEq)]
enum Show {
    /// The loaded tree, as YAML.
    Value,
    /// Each component's typed config, as a collector would build it.
    Typed,
    Both,
}

fn load(files: &[&str], sets: &[&str]) -> Result<Loaded, ConfigErrors> {
    let paths: Vec<String> = files
        .iter()
        .map(|f| match f.strip_prefix("file:") {
            Some(rest) => format!("file:{DIR}/{rest}"),
            None => format!("{DIR}/{f}"),
        })
        .collect();
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    config::load(&paths, &sets, &test_env)
}

fn render(files: &[&str], sets: &[&str], show: Show) -> String {
    let mut text = String::new();
    let loaded = match load(files, sets) {
        Ok(loaded) => loaded,
        Err(errors) => return format!("# load errors\n{errors}\n").replace(&format!("{DIR}/"), ""),
    };
    if !loaded.warnings.is_empty() {
        text += &format!("# warnings\n{}\n", loaded.warnings.join("\n"));
    }
    if show != Show::Typed {
        let yaml = serde_saphyr::to_string(&loaded.value).unwrap();
        text += &format!("# value\n{yaml}");
    }
    if show != Show::Value {
        let (lines, errors) = typed_collector(&loaded.value);
        if !lines.is_empty() {
            text += &format!("# typed\n{}\n", lines.join("\n"));
        }
        if !errors.is_empty() {
            text += &format!("# errors\n{errors}\n");
        }
    }
    text
}

fn check(name: &str, actual: &str) {
    let path = format!("{DIR}/{name}.out");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing {path}; run with UPDATE_GOLDEN=1 and review it"));
    assert!(
        actual == expected,
        "{name}: output differs from {path}\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

fn golden(name: &str, files: &[&str], sets: &[&str], show: Show) {
    check(name, &render(files, sets, show));
}

// ---- cases ------------------------------------------------------------------

#[test]
fn otelcol_config_loads_end_to_end() {
    let loaded = load(&["otelcol_full.yaml"], &[]).unwrap();
    let value = &loaded.value;
    assert_eq!(value.get_path(&["receivers", "otlp", "protocols", "grpc"]), Some(&Value::Null));
    assert_eq!(value.get_path(&["extensions", "health_check", "port"]), Some(&Value::Int(13133)));
    assert_eq!(
        value.get_path(&["exporters", "otlp", "endpoint"]),
        Some(&Value::from("collector:4317"))
    );
    let receiver: OtlpReceiverConfig =
        from_value(value.get_path(&["receivers", "otlp"]).unwrap(), "receivers.otlp").unwrap();
    assert_eq!(receiver.protocols.grpc.unwrap().endpoint.port(), 4317);
    assert_eq!(receiver.protocols.http.unwrap().endpoint.port(), 4318);
    golden("otelcol_full", &["otelcol_full.yaml"], &[], Show::Both);
}

#[test]
fn expansion_forms() {
    golden("expansion", &["expansion.yaml"], &[], Show::Value);
}

#[test]
fn expansion_errors() {
    golden("expansion_errors", &["expansion_errors.yaml"], &[], Show::Value);
}

#[test]
fn merge_of_two_files() {
    golden("merge", &["merge_base.yaml", "file:merge_overlay.yaml"], &[], Show::Value);
}

#[test]
fn set_with_dots_and_double_colons() {
    let sets = [
        "processors.batch.timeout=2s",
        "processors::batch::send_batch_size=100",
        "exporters::otlp/primary.eu::endpoint=${env:HOST}:4317",
        "service.pipelines.traces.exporters=[otlp/primary.eu, logging]",
        "service::pipelines::metrics={receivers: [otlp], exporters: [logging]}",
        "extensions.health_check.port=${env:PORT}",
        "exporters.logging.loglevel=debug",
    ];
    golden("set", &["set_base.yaml"], &sets, Show::Both);
}

#[test]
fn set_errors() {
    let sets = [
        "processors.batch",
        "exporters::otlp/primary.eu::endpoint::host=x",
        "a..b=1",
        "processors.batch.timeout=${env:UNCLOSED",
        "processors.batch.timeout=[1",
    ];
    golden("set_errors", &["set_base.yaml"], &sets, Show::Value);
}

#[test]
fn null_means_defaults() {
    golden("null_defaults", &["null_defaults.yaml"], &[], Show::Typed);
}

#[test]
fn every_unknown_key_at_once() {
    golden("unknown_keys", &["unknown_keys.yaml"], &[], Show::Typed);
}

#[test]
fn type_errors_are_all_reported() {
    golden("type_errors", &["type_errors.yaml"], &[], Show::Typed);
}

#[test]
fn type_error_inside_a_sequence() {
    golden("seq_type_error", &["seq_type_error.yaml"], &[], Show::Typed);
}

#[test]
fn durations() {
    golden("durations", &["durations.yaml"], &[], Show::Typed);
}

#[test]
fn endpoints() {
    golden("endpoints", &["endpoints.yaml"], &[], Show::Typed);
}

#[test]
fn load_errors_name_the_file() {
    golden(
        "load_errors",
        &["parse_error.yaml", "does_not_exist.yaml", "expansion_errors.yaml"],
        &[],
        Show::Value,
    );
}
