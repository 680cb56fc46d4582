//! Unit tests of `from_value`'s rules; collector-shaped end-to-end cases
//! live in `tests/golden.rs`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{ConfigErrors, Duration, Value, from_value, parse_yaml, some_if_present};

fn yaml(text: &str) -> Value {
    parse_yaml(text, "test").unwrap()
}

fn errors<T: serde::de::DeserializeOwned + std::fmt::Debug>(text: &str, path: &str) -> String {
    from_value::<T>(&yaml(text), path).unwrap_err().to_string()
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Grpc {
    endpoint: String,
    max_recv_msg_size_mib: u64,
    port: u16,
    timeout: Duration,
    headers: BTreeMap<String, String>,
    tags: Vec<String>,
    read_buffer: Option<u32>,
}

impl Default for Grpc {
    fn default() -> Self {
        Grpc {
            endpoint: "0.0.0.0:4317".into(),
            max_recv_msg_size_mib: 4,
            port: 4317,
            timeout: Duration(std::time::Duration::from_millis(200)),
            headers: BTreeMap::new(),
            tags: vec!["default".into()],
            read_buffer: Some(512),
        }
    }
}

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Protocols {
    #[serde(deserialize_with = "some_if_present")]
    grpc: Option<Grpc>,
    #[serde(deserialize_with = "some_if_present")]
    http: Option<Grpc>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Required {
    name: String,
    count: u32,
}

#[test]
fn type_error_names_full_path() {
    assert_eq!(
        errors::<Grpc>("max_recv_msg_size_mib: x", "receivers.otlp.protocols.grpc"),
        "receivers.otlp.protocols.grpc.max_recv_msg_size_mib: \
         invalid type: string \"x\", expected u64"
    );
    assert_eq!(
        errors::<Grpc>("port: 99999", "g"),
        "g.port: invalid value: integer 99999, expected u16"
    );
    assert_eq!(
        errors::<Grpc>("tags: [a, [b]]", ""),
        "tags[1]: invalid type: sequence, expected a string"
    );
    assert_eq!(
        errors::<Grpc>("max_recv_msg_size_mib: 1.5", "g"),
        "g.max_recv_msg_size_mib: invalid type: float 1.5, expected u64"
    );
    assert_eq!(errors::<Grpc>("[1]", "g"), "g: invalid type: sequence, expected a map");
}

#[test]
fn all_unknown_keys_and_every_type_error_at_once() {
    let text = "bogus: 1\nport: x\nendpoint: [1]\nalso_bogus: 2\ntimeout: soon\n";
    assert_eq!(
        errors::<Grpc>(text, "r"),
        [
            "r.bogus: unknown key \"bogus\"; valid keys: endpoint, max_recv_msg_size_mib, \
             port, timeout, headers, tags, read_buffer",
            "r.also_bogus: unknown key \"also_bogus\"; valid keys: endpoint, \
             max_recv_msg_size_mib, port, timeout, headers, tags, read_buffer",
            "r.port: invalid type: string \"x\", expected u16",
            "r.endpoint: invalid type: sequence, expected a string",
            "r.timeout: invalid duration \"soon\": expected a number with a unit such as \
             200ms, 5s or 1m",
        ]
        .join("\n")
    );
}

#[test]
fn nested_unknown_keys_are_all_found() {
    let text = "grpc: {x: 1, port: nope}\nhttp: {y: 2}\nz: 3\n";
    let all = errors::<Protocols>(text, "p");
    for want in [
        "p.grpc.x: unknown key",
        "p.grpc.port: invalid type",
        "p.http.y: unknown",
        "p.z: unknown key \"z\"; valid keys: grpc, http",
    ] {
        assert!(all.contains(want), "{want} not in:\n{all}");
    }
    assert_eq!(all.lines().count(), 4, "{all}");
}

#[test]
fn null_means_defaults() {
    let got: Protocols = from_value(&yaml("grpc:\n"), "").unwrap();
    assert_eq!(got.grpc, Some(Grpc::default()));
    assert_eq!(got.http, None);
    let got: Grpc = from_value(&Value::Null, "").unwrap();
    assert_eq!(got, Grpc::default());
    // Null scalar, sequence and option fields keep the struct's defaults.
    let got: Grpc = from_value(&yaml("port:\ntimeout: ~\ntags:\nread_buffer:\n"), "").unwrap();
    assert_eq!(got.port, 4317);
    assert_eq!(got.timeout, Grpc::default().timeout);
    assert_eq!(got.tags, Vec::<String>::new());
    assert_eq!(got.read_buffer, None);
}

#[test]
fn null_for_required_field_is_an_error() {
    assert_eq!(
        errors::<Required>("name: a\ncount:\n", "c"),
        "c.count: invalid type: null, expected u32"
    );
    assert_eq!(errors::<Required>("name: a\n", "c"), "c.count: missing required key");
    assert_eq!(
        errors::<BTreeMap<String, String>>("a: ~\n", "h"),
        "h.a: invalid type: null, expected a string"
    );
}

#[test]
fn scalars_become_strings_but_not_the_reverse() {
    let got: Grpc = from_value(&yaml("headers: {a: 1, b: true, c: 1.5, d: x}"), "").unwrap();
    let want: Vec<_> = [("a", "1"), ("b", "true"), ("c", "1.5"), ("d", "x")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(got.headers.into_iter().collect::<Vec<_>>(), want);
    assert_eq!(
        errors::<Grpc>("port: '4317'", ""),
        "port: invalid type: string \"4317\", expected u16"
    );
    let float: f64 = from_value(&Value::Int(3), "").unwrap();
    assert_eq!(float, 3.0);
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Verbosity {
    Basic,
    Detailed,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Auth {
    None,
    Bearer(String),
    Basic { user: String },
}

#[test]
fn enums() {
    let got: Verbosity = from_value(&yaml("detailed"), "").unwrap();
    assert_eq!(got, Verbosity::Detailed);
    assert_eq!(
        from_value::<Verbosity>(&yaml("loud"), "exporters.debug.verbosity")
            .unwrap_err()
            .to_string(),
        "exporters.debug.verbosity: invalid value \"loud\", expected one of basic, detailed"
    );
    let got: Vec<Auth> = from_value(&yaml("[none, {bearer: t}, {basic: {user: u}}]"), "").unwrap();
    assert_eq!(got, [Auth::None, Auth::Bearer("t".into()), Auth::Basic { user: "u".into() }]);
    assert_eq!(
        errors::<Vec<Auth>>("[{basic: {user: u, pass: p}}]", "a"),
        "a[0].basic.pass: unknown key \"pass\"; valid keys: user"
    );
}

#[derive(Debug, PartialEq, Deserialize)]
struct Mib(u64);

#[test]
fn any_newtype_tuple_map_and_value() {
    let value = yaml("a: [1, 2.5, true, ~, x]\nb: {c: d}\n");
    let json: serde_json::Value = from_value(&value, "").unwrap();
    assert_eq!(json, serde_json::json!({"a": [1, 2.5, true, null, "x"], "b": {"c": "d"}}));
    let back: Value = from_value(&value, "").unwrap();
    assert_eq!(back, value);
    let mib: Mib = from_value(&Value::Int(4), "").unwrap();
    assert_eq!(mib, Mib(4));
    let pair: (String, u8) = from_value(&yaml("[a, 1]"), "").unwrap();
    assert_eq!(pair, ("a".into(), 1));
    assert_eq!(
        errors::<BTreeMap<String, u8>>("a: 1\nb: x\n", "m"),
        "m.b: invalid type: string \"x\", expected u8"
    );
}

#[test]
fn errors_are_a_list() {
    let err: ConfigErrors = from_value::<Required>(&yaml("count: x"), "").unwrap_err();
    assert_eq!(err.len(), 2, "{err}");
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Counter {
    count: u32,
}

#[test]
fn many_null_fields_do_not_exhaust_retries() {
    let text = "[".to_owned() + &"{count: ~}, ".repeat(200) + "]";
    let got: Vec<Counter> = from_value(&yaml(&text), "").unwrap();
    assert_eq!(got.len(), 200);
    let text = "[".to_owned() + &"{count: x}, ".repeat(200) + "]";
    let err = from_value::<Vec<Counter>>(&yaml(&text), "c").unwrap_err();
    assert_eq!(err.len(), 64);
    assert_eq!(
        err.iter().next().map(ToString::to_string).as_deref(),
        Some("c[0].count: invalid type: string \"x\", expected u32")
    );
}
