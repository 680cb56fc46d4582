"""An app run with `HTTPS_PROXY` pointing at the sidecar's outbound listener reaches an HTTPS
destination: its client sends `CONNECT host:port`, the sidecar opens a TCP tunnel to it (as
Istio passes an app's TLS traffic through), and TLS runs end to end inside the tunnel. The
clients are real: curl, and Python's requests (urllib3). The tunnel is observed as one CLIENT
span for the CONNECT, exported to the OTLP sink, and as TCP traffic in Istio's TCP metrics, which
Istio reports for what its sidecar proxies as plain TCP (and never for HTTP connections)."""

import re
import ssl
import subprocess
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.trace.v1 import trace_pb2

from e2e_util import eventually, http_session, traced_to

SIDECAR_CONFIG = """\
kind: Sidecar
metadata: {name: egress-v1, namespace: default, labels: {app: egress}}
spec:
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
"""

BODY = b"hello over tls"


@pytest.fixture
def https_server(tmp_path):
    """An HTTPS server on 127.0.0.1 with a self-signed certificate for `localhost`."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server hook name
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], cert
    server.shutdown()
    server.server_close()


def connect_spans(sink):
    return [
        span
        for _, _, span in sink.spans()
        if span.kind == trace_pb2.Span.SPAN_KIND_CLIENT
        and any(a.key == "http.method" and a.value.string_value == "CONNECT" for a in span.attributes)
    ]


def curl_through(sidecar, url, cert):
    """GET `url` with curl through the sidecar's outbound listener as an HTTPS proxy; returns
    the body, after checking that curl succeeded."""
    proxy = f"http://{sidecar.outbound_endpoint}"
    curl = subprocess.run(
        # conftest sets no_proxy for 127.0.0.1 and localhost; this call must use the proxy.
        ["curl", "-sS", "--max-time", "10", "--noproxy", "", "--cacert", str(cert), "--proxy", proxy, url],
        capture_output=True,
        check=False,
    )
    assert curl.returncode == 0, curl.stderr.decode()
    return curl.stdout


def test_https_through_the_outbound_listener_is_tunnelled(pool, https_server):
    port, cert = https_server
    sink = pool.sink()
    sidecar = pool.sidecar(SIDECAR_CONFIG + traced_to(sink.port))
    proxy = f"http://{sidecar.outbound_endpoint}"
    url = f"https://localhost:{port}/hello"
    assert curl_through(sidecar, url, cert) == BODY

    # Without the environment's no_proxy, which would bypass the sidecar.
    with http_session() as session:
        response = session.get(url, proxies={"https": proxy}, verify=str(cert), timeout=10)
    assert response.status_code == 200
    assert response.content == BODY

    spans = eventually(lambda: found if len(found := connect_spans(sink)) >= 2 else None)
    for span in spans:
        attributes = {a.key: a.value.string_value for a in span.attributes}
        assert attributes["upstream_cluster"] == "PassthroughCluster"
        assert attributes["http.status_code"] == "200"
        assert attributes["response_flags"] == "-"
        assert int(attributes["response_size"]) > 0, "the TLS bytes from the server"


def tcp_samples(sidecar):
    """`(metric, labels text, value)` for every `istio_tcp_*` sample on the admin page."""
    with urllib.request.urlopen(f"http://{sidecar.admin_endpoint}/stats/prometheus", timeout=10) as reply:
        page = reply.read().decode()
    pattern = re.compile(r"^(istio_tcp_[a-z_]+)\{(.*)\} (\d+)$")
    return [(m[1], m[2], int(m[3])) for line in page.splitlines() if (m := pattern.match(line))]


def test_a_tunnel_is_tcp_traffic_in_istios_metrics(pool, https_server):
    port, cert = https_server
    sidecar = pool.sidecar(SIDECAR_CONFIG)
    curl_through(sidecar, f"https://localhost:{port}/hello", cert)

    def closed():
        samples = {metric: (labels, value) for metric, labels, value in tcp_samples(sidecar)}
        return samples if "istio_tcp_connections_closed_total" in samples else None

    samples = eventually(closed)
    labels, opened = samples["istio_tcp_connections_opened_total"]
    assert opened == 1
    assert samples["istio_tcp_connections_closed_total"][1] == 1
    assert 'reporter="source"' in labels and 'request_protocol="tcp"' in labels
    assert 'destination_service_name="PassthroughCluster"' in labels
    # TLS both ways: the client's hello and request out, the certificate and answer back.
    assert samples["istio_tcp_received_bytes_total"][1] > 100
    assert samples["istio_tcp_sent_bytes_total"][1] > len(BODY)
