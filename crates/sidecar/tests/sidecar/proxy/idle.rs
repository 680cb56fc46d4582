//! Envoy's stream idle timeout: `408` with `SI` before the response head, a reset after; a
//! stream that moves in either direction is not cut.

use super::*;

/// The sidecar with Envoy's stream idle timeout shortened to `limit`.
async fn with_stream_idle_limit(app: SocketAddr, limit: Duration) -> Harness {
    let options = ProxyOptions { stream_idle_timeout: Some(limit), ..ProxyOptions::default() };
    start(config(Some(app), &[], ""), options, AdminState::new()).await
}

/// An app that reads the whole request body before answering with its length.
async fn body_reader() -> SocketAddr {
    app(|request: Request<Incoming>, _| async move {
        let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        Response::new(full(format!("{} bytes", body.len())))
    })
    .await
}

#[tokio::test]
async fn a_client_that_stops_sending_its_body_gets_408_si() {
    let harness = with_stream_idle_limit(body_reader().await, Duration::from_millis(300)).await;
    let mut stream = TcpStream::connect(harness.sidecar.inbound_addr().unwrap()).await.unwrap();
    let request = "POST /stalled HTTP/1.1\r\nHost: app\r\nContent-Length: 10\r\n\r\nabc";
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 408 "), "{head}");
    let record = harness.recorder.completed("/stalled").await;
    assert_eq!((record.status, record.flags.as_deref()), (Some(408), Some("SI")));
    assert_eq!(record.request_bytes, 3);
}

#[tokio::test]
async fn a_slow_but_steady_upload_outlasts_the_idle_limit() {
    let harness = with_stream_idle_limit(body_reader().await, Duration::from_millis(600)).await;
    let mut stream = TcpStream::connect(harness.sidecar.inbound_addr().unwrap()).await.unwrap();
    let head = "POST /steady HTTP/1.1\r\nHost: app\r\nContent-Length: 8\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    // Eight bytes 150 ms apart: the upload takes twice the limit but is never idle for it.
    for byte in b"steadily" {
        tokio::time::sleep(Duration::from_millis(150)).await;
        stream.write_all(&[*byte]).await.unwrap();
    }
    let answer = read_head(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let record = harness.recorder.completed("/steady").await;
    assert_eq!((record.request_bytes, record.flags.as_deref()), (8, Some("-")));
}

#[tokio::test]
async fn an_upstream_that_never_answers_gets_408_si_without_a_route_timeout() {
    let app = app(|_request, _| std::future::pending::<Response<AppBody>>()).await;
    let harness = with_stream_idle_limit(app, Duration::from_millis(300)).await;
    let (head, body) =
        send(&mut h1(harness.sidecar.inbound_addr().unwrap()).await, get("/silent", "app")).await;
    assert_eq!(head.status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(body, "stream timeout");
    let record = harness.recorder.completed("/silent").await;
    assert_eq!(record.flags.as_deref(), Some("SI"));
}

#[tokio::test]
async fn an_upstream_that_stalls_mid_body_is_reset_with_si() {
    let stalling = raw_app(|mut stream| async move {
        let mut buffer = [0u8; 1024];
        let _ = stream.read(&mut buffer).await;
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial";
        let _ = stream.write_all(head.as_bytes()).await;
        // Hold the connection, sending nothing more.
        let _ = stream.read(&mut buffer).await;
    })
    .await;
    let harness = with_stream_idle_limit(stalling, Duration::from_millis(300)).await;
    let mut client = h1(harness.sidecar.inbound_addr().unwrap()).await;
    let response = client.send_request(get("/stall", "app")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = tokio::time::timeout(DEADLINE, response.into_body().collect()).await.unwrap();
    assert!(body.is_err(), "the body ends in a reset, not silently short");
    let record = harness.recorder.completed("/stall").await;
    assert_eq!((record.status, record.flags.as_deref()), (Some(200), Some("SI")));
    assert_eq!(record.response_bytes, 7);
}

#[tokio::test]
async fn a_stream_quiet_one_way_while_the_other_way_talks_is_not_cut() {
    // The upstream answers at once and streams a chunk every 150 ms, for twice the limit,
    // while the client keeps its request body open and sends nothing more.
    let streaming = raw_app(|mut stream| async move {
        let mut buffer = [0u8; 1024];
        let _ = stream.read(&mut buffer).await;
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            if stream.write_all(b"1\r\nx\r\n").await.is_err() {
                return;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
        let _ = stream.read(&mut buffer).await;
    })
    .await;
    let harness = with_stream_idle_limit(streaming, Duration::from_millis(600)).await;
    let mut stream = TcpStream::connect(harness.sidecar.inbound_addr().unwrap()).await.unwrap();
    let request = "POST /duplex HTTP/1.1\r\nHost: app\r\nContent-Length: 10\r\n\r\nab";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    while !received.ends_with(b"0\r\n\r\n") {
        let read = tokio::time::timeout(DEADLINE, stream.read(&mut buffer)).await.unwrap().unwrap();
        assert!(read > 0, "reset after {:?}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buffer[..read]);
    }
    let record = harness.recorder.completed("/duplex").await;
    assert_eq!((record.response_bytes, record.flags.as_deref()), (8, Some("-")));
}

#[tokio::test]
async fn a_tunnel_is_closed_when_nothing_moves_either_way() {
    use super::tunnels::{connect_to, echo_bytes};

    let target = echo_bytes().await;
    let harness = with_stream_idle_limit(target, Duration::from_millis(500)).await;
    let (mut stream, head) = connect_to(harness.sidecar.outbound_addr(), &target.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    // Traffic every 150 ms for twice the limit keeps the tunnel open.
    let mut echoed = [0u8; 6];
    for _ in 0..7 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        stream.write_all(b"x").await.unwrap();
        stream.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"echo:x");
    }
    // Then silence: the sidecar closes the tunnel.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the idle tunnel stayed open");
    let record = harness.recorder.completed_where(|_| true).await;
    assert_eq!((record.status, record.flags.as_deref()), (Some(200), Some("SI")));
    assert_eq!((record.request_bytes, record.response_bytes), (7, 42));
}
