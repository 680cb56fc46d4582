//! Tunnels: `Upgrade` after a `101`, and outbound `CONNECT` (an app behind `HTTPS_PROXY`).

use super::*;

#[tokio::test]
async fn upgrade_tunnels_raw_bytes_after_101() {
    let app = app(|mut request: Request<Incoming>, _| async move {
        let upgraded = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            let Ok(upgraded) = upgraded.await else { return };
            echo_loop(TokioIo::new(upgraded)).await;
        });
        let mut response = Response::new(full(""));
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        response.headers_mut().insert("upgrade", HeaderValue::from_static("websocket"));
        response.headers_mut().insert("connection", HeaderValue::from_static("upgrade"));
        response
    })
    .await;
    let harness = start_default(config(Some(app), &[], "")).await;
    let mut stream = TcpStream::connect(harness.sidecar.inbound_addr().unwrap()).await.unwrap();
    let request = "GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101 switching protocols\r\n"), "{head}");
    assert!(head.contains("upgrade: websocket\r\n"), "{head}");
    stream.write_all(b"ping").await.unwrap();
    let mut echoed = [0u8; 9];
    stream.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"echo:ping");
    drop(stream);
    let record = harness.recorder.completed("/ws").await;
    assert_eq!(record.status, Some(101));
    assert_eq!(record.upstream, Some(app), "the tunnel's upstream address is reported");
    assert_eq!((record.request_bytes, record.response_bytes), (4, 9));
}

/// An upstream that answers every read with `echo:` and the bytes read.
pub(super) async fn echo_bytes() -> SocketAddr {
    raw_app(echo_loop).await
}

/// Answers every read on `io` with `echo:` and the bytes read, until the peer closes.
async fn echo_loop(mut io: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin) {
    let mut buffer = [0u8; 1024];
    while let Ok(read) = io.read(&mut buffer).await {
        if read == 0 || io.write_all(&[b"echo:", &buffer[..read]].concat()).await.is_err() {
            break;
        }
    }
}

/// Sends `CONNECT target` on a fresh connection to `address`; returns the connection and the
/// answer's head.
pub(super) async fn connect_to(address: SocketAddr, target: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    (stream, head)
}

#[tokio::test]
async fn outbound_connect_opens_a_tunnel_like_an_http_proxy() {
    let target = echo_bytes().await;
    let harness =
        start_default(config(None, &[("secure.default.svc.cluster.local:443", target)], "")).await;
    // Through the services table, and passed through to an address the table does not know.
    for (tunnels, (name, cluster)) in (1..).zip([
        ("secure.default.svc.cluster.local:443", "outbound|443||secure.default.svc.cluster.local"),
        (&*target.to_string(), "PassthroughCluster"),
    ]) {
        let (mut stream, head) = connect_to(harness.sidecar.outbound_addr(), name).await;
        let lower = head.to_ascii_lowercase();
        assert!(lower.starts_with("http/1.1 200 ok\r\n"), "{head}");
        assert!(
            !lower.contains("content-length") && !lower.contains("transfer-encoding"),
            "{head}"
        );
        stream.write_all(b"ping").await.unwrap();
        let mut echoed = [0u8; 9];
        stream.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"echo:ping");
        drop(stream);
        let record = harness.recorder.completed_where(|r| r.cluster == cluster).await;
        assert_eq!(record.direction, Some(Direction::Outbound));
        assert_eq!(record.status, Some(200));
        assert_eq!(record.upstream, Some(target));
        assert_eq!(record.flags.as_deref(), Some("-"));
        assert_eq!((record.request_bytes, record.response_bytes), (4, 9));
        // A tunnel is TCP traffic (Istio's TCP metrics): opened, then closed with the bytes
        // sent to the client and received from it, under its exchange's cluster and target.
        let tcp = || harness.recorder.tunnels.lock().unwrap().clone();
        let events = eventually(|| Some(tcp()).filter(|events| events.len() == 3 * tunnels)).await;
        let event = |event, sent, received| TunnelEvent {
            direction: Direction::Outbound,
            cluster: cluster.to_owned(),
            authority: name.to_owned(),
            event,
            sent,
            received,
        };
        assert_eq!(
            &events[events.len() - 3..],
            [event("opened", 0, 0), event("bytes", 9, 4), event("closed", 0, 0)]
        );
    }
}

#[tokio::test]
async fn an_open_tunnel_reports_its_bytes_every_interval_and_the_rest_at_its_close() {
    let target = echo_bytes().await;
    let options =
        ProxyOptions { tcp_report_interval: Duration::from_millis(50), ..ProxyOptions::default() };
    let harness = start(config(None, &[], ""), options, AdminState::new()).await;
    let (mut stream, head) = connect_to(harness.sidecar.outbound_addr(), &target.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let tcp = || harness.recorder.tunnels.lock().unwrap().clone();
    let bytes = |events: &[TunnelEvent]| -> (u64, u64) {
        let moved = events.iter().filter(|e| e.event == "bytes");
        moved.fold((0, 0), |(sent, received), e| (sent + e.sent, received + e.received))
    };
    stream.write_all(b"ping").await.unwrap();
    let mut echoed = [0u8; 9];
    stream.read_exact(&mut echoed).await.unwrap();
    // Still open, the tunnel has reported what moved.
    eventually(|| Some(()).filter(|()| bytes(&tcp()) == (9, 4))).await;
    assert!(!tcp().iter().any(|e| e.event == "closed"));
    stream.write_all(b"pong!").await.unwrap();
    let mut echoed = [0u8; 10];
    stream.read_exact(&mut echoed).await.unwrap();
    drop(stream);
    let events =
        eventually(|| Some(tcp()).filter(|events| events.iter().any(|e| e.event == "closed")))
            .await;
    // Each byte reported once, whether by a tick or by the close.
    assert_eq!(bytes(&events), (19, 9), "{events:#?}");
    assert_eq!(events.first().map(|e| e.event), Some("opened"));
    assert_eq!(events.last().map(|e| e.event), Some("closed"));
}

#[tokio::test]
async fn connect_to_a_refused_target_gets_503_uf() {
    let closed = closed_port().await;
    let harness = start_default(config(None, &[], "")).await;
    let (_stream, head) = connect_to(harness.sidecar.outbound_addr(), &closed.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    let record = harness.recorder.completed_where(|_| true).await;
    assert_eq!(record.flags.as_deref(), Some("UF,URX"));
    assert_eq!(record.status, Some(503));
}

#[tokio::test]
async fn connect_has_no_route_inbound_or_without_a_port() {
    let app = echo_bytes().await;
    let harness = start_default(config(Some(app), &[], "")).await;
    let (_stream, head) =
        connect_to(harness.sidecar.inbound_addr().unwrap(), &app.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 404 "), "inbound: {head}");
    let (_stream, head) = connect_to(harness.sidecar.outbound_addr(), "example.com").await;
    assert!(head.starts_with("HTTP/1.1 "), "{head}");
    assert!(!head.starts_with("HTTP/1.1 200 "), "a CONNECT target needs a port: {head}");
}
