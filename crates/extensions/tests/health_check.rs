//! The `health_check` extension over real sockets.

// Helpers outside `#[test]` functions panic on set-up failures too: that is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use config::Value;
use extensions::HealthCheckExtensionFactory;
use extensions::health_check::HealthCheckExtension;
use pipeline::health::{HealthReporter, Status};
use pipeline::telemetry::Telemetry;
use pipeline::{BuildContext, ComponentId, Factory, Kind, Lifecycle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PATH: &str = "extensions.health_check";

fn yaml(text: &str) -> Value {
    config::parse_yaml(text, "test.yaml").unwrap()
}

fn context(health: &HealthReporter) -> BuildContext {
    BuildContext {
        id: ComponentId::new("health_check"),
        kind: Kind::Extension,
        signal: None,
        next: None,
        outputs: Vec::new(),
        telemetry: Arc::new(Telemetry::new()),
        health: health.clone(),
    }
}

/// Configures the extension from `text`, starts it, and returns it with its address.
async fn start(text: &str, health: &HealthReporter) -> (HealthCheckExtension, SocketAddr) {
    let configured = HealthCheckExtensionFactory.configure_typed(&yaml(text), PATH).unwrap();
    let mut extension = configured.extension(&context(health));
    extension.start().await.unwrap();
    let addr = extension.local_addr().expect("started");
    (extension, addr)
}

fn shutdown_deadline() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

/// Sends one HTTP/1.1 request and returns the status and body.
async fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    let status = text.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_string();
    (status, body)
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    request(addr, "GET", path).await
}

#[tokio::test]
async fn unavailable_until_ready_then_available() {
    let health = HealthReporter::new();
    let (mut extension, addr) = start("endpoint: 127.0.0.1:0", &health).await;

    let (status, body) = get(addr, "/").await;
    assert_eq!(status, 503);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "Server not available");
    assert_eq!(json["upSince"], "0001-01-01T00:00:00Z");

    health.set_status(Status::Ready);
    let (status, body) = get(addr, "/").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "Server available");
    let up_since = json["upSince"].as_str().unwrap();
    assert!(
        up_since.len() >= 20 && up_since.ends_with('Z') && up_since.as_bytes()[10] == b'T',
        "{up_since}"
    );
    assert!(json["uptime"].as_str().unwrap().ends_with('s'), "{body}");

    health.set_status(Status::ShuttingDown);
    assert_eq!(get(addr, "/").await.0, 503);
    extension.shutdown(shutdown_deadline()).await;
}

#[tokio::test]
async fn exporter_failures_above_the_threshold_make_it_unavailable_for_the_interval() {
    let health = HealthReporter::new();
    let text = "endpoint: 127.0.0.1:0
check_collector_pipeline: {enabled: true, interval: 300ms, exporter_failure_threshold: 2}";
    let (mut extension, addr) = start(text, &health).await;
    health.set_status(Status::Ready);
    health.exporter_failed();
    health.exporter_failed();
    assert_eq!(get(addr, "/").await.0, 200, "the threshold itself is still healthy");
    health.exporter_failed();
    let (status, body) = get(addr, "/").await;
    assert_eq!(status, 503);
    assert!(body.contains("Server not available"), "{body}");

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(get(addr, "/").await.0, 200, "failures older than the interval no longer count");
    extension.shutdown(shutdown_deadline()).await;
}

#[tokio::test]
async fn failures_are_ignored_without_check_collector_pipeline() {
    let health = HealthReporter::new();
    let (mut extension, addr) = start("endpoint: 127.0.0.1:0", &health).await;
    health.set_status(Status::Ready);
    for _ in 0..10 {
        health.exporter_failed();
    }
    assert_eq!(get(addr, "/").await.0, 200);
    extension.shutdown(shutdown_deadline()).await;
}

#[tokio::test]
async fn a_custom_path_and_body_answer_there_only() {
    let health = HealthReporter::new();
    let text = "endpoint: 127.0.0.1:0
path: /health/status
response_body: {healthy: I'm OK, unhealthy: I'm not}";
    let (mut extension, addr) = start(text, &health).await;
    assert_eq!(get(addr, "/health/status").await, (503, "I'm not".to_string()));
    health.set_status(Status::Ready);
    assert_eq!(get(addr, "/health/status").await, (200, "I'm OK".to_string()));
    assert_eq!(get(addr, "/health/status?verbose").await, (200, "I'm OK".to_string()));
    assert_eq!(get(addr, "/").await.0, 404);
    assert_eq!(get(addr, "/health/status/more").await.0, 404);
    assert_eq!(get(addr, "/health").await.0, 404);
    assert_eq!(request(addr, "HEAD", "/health/status").await, (200, String::new()));
    assert_eq!(request(addr, "POST", "/health/status").await.0, 405);
    extension.shutdown(shutdown_deadline()).await;
}

#[tokio::test]
async fn shutdown_stops_listening_and_is_idempotent() {
    let health = HealthReporter::new();
    let (mut extension, addr) = start("endpoint: 127.0.0.1:0", &health).await;
    extension.shutdown(shutdown_deadline()).await;
    extension.shutdown(shutdown_deadline()).await;
    assert!(extension.local_addr().is_none());
    assert!(TcpStream::connect(addr).await.is_err(), "nothing listens after shutdown");
}

#[tokio::test]
async fn the_port_key_listens_on_every_interface() {
    let configured =
        HealthCheckExtensionFactory.configure_typed(&yaml("port: 13133"), PATH).unwrap();
    assert_eq!(configured.endpoint(), "0.0.0.0:13133");
    let boxed = HealthCheckExtensionFactory.configure(&yaml("port: 13133"), PATH).unwrap();
    assert_eq!(
        boxed.listen_addresses(),
        [("extensions.health_check.port".to_string(), "0.0.0.0:13133".to_string())]
    );

    let health = HealthReporter::new();
    health.set_status(Status::Ready);
    let (mut extension, addr) = start("port: 0", &health).await;
    assert!(addr.ip().is_unspecified(), "{addr}");
    let local = SocketAddr::from(([127, 0, 0, 1], addr.port()));
    assert_eq!(get(local, "/").await.0, 200);
    extension.shutdown(shutdown_deadline()).await;
}

#[tokio::test]
async fn built_through_the_factory_it_starts_and_stops() {
    let health = HealthReporter::new();
    let configured =
        HealthCheckExtensionFactory.configure(&yaml("endpoint: 127.0.0.1:0"), PATH).unwrap();
    let built = configured.build(context(&health)).unwrap();
    assert!(built.consumer.is_none());
    let mut lifecycle = built.lifecycle;
    lifecycle.start().await.unwrap();
    lifecycle.shutdown(shutdown_deadline()).await;
}

#[tokio::test]
async fn a_port_in_use_fails_start_naming_the_key() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = taken.local_addr().unwrap();
    let configured = HealthCheckExtensionFactory
        .configure_typed(&yaml(&format!("endpoint: {endpoint}")), PATH)
        .unwrap();
    let mut extension = configured.extension(&context(&HealthReporter::new()));
    let error = extension.start().await.unwrap_err().to_string();
    assert!(error.contains("extensions.health_check.endpoint: cannot listen on"), "{error}");
}

// === config ===

fn messages(text: &str) -> Vec<String> {
    match HealthCheckExtensionFactory.configure(&yaml(text), PATH) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn defaults_listen_on_localhost() {
    let configured = HealthCheckExtensionFactory.configure_typed(&Value::Null, PATH).unwrap();
    assert_eq!(configured.endpoint(), "localhost:13133");
    assert_eq!(
        configured_addresses("endpoint: 0.0.0.0:13134"),
        [("extensions.health_check.endpoint".to_string(), "0.0.0.0:13134".to_string())]
    );
    let pipeline_check =
        "check_collector_pipeline: {enabled: true, interval: 5m, exporter_failure_threshold: 5}";
    assert!(messages(pipeline_check).is_empty());
}

fn configured_addresses(text: &str) -> Vec<(String, String)> {
    HealthCheckExtensionFactory.configure(&yaml(text), PATH).unwrap().listen_addresses()
}

#[test]
fn port_and_endpoint_together_are_an_error() {
    assert_eq!(
        messages("port: 13133\nendpoint: localhost:13133\n"),
        ["extensions.health_check.port: cannot be used together with endpoint: \
             set only endpoint (port N means endpoint 0.0.0.0:N)"]
    );
}

#[test]
fn tls_and_bad_paths_are_rejected_together() {
    let found = messages("path: health\ntls:\n  cert_file: a.pem\n");
    assert_eq!(
        found,
        [
            "extensions.health_check.path: invalid path \"health\": must start with /",
            "extensions.health_check.tls: not supported: \
             the health check is served over plain HTTP; remove the key",
        ]
    );
    assert_eq!(messages("tls:\n").len(), 1, "an empty tls key is still set");
}

#[test]
fn unknown_keys_are_errors() {
    let found = messages("endpont: localhost:13133\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("endpont"), "{found:?}");
}
