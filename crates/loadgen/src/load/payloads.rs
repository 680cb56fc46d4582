//! The request bodies: realistic sidecar spans, encoded once before the clock starts.
//!
//! Requests are built from [`otlp::fixtures::sidecar_traces_seeded`] (Envoy sidecar spans with
//! twenty string tags, about 700 bytes each once encoded) into a few distinct buffers (for gRPC:
//! whole length-prefixed frames, gzip already applied when asked) that are then sent over and
//! over.

use std::io::Write;

use anyhow::{Context, ensure};
use bytes::{BufMut, Bytes, BytesMut};
use otlp::Signal;
use prost::Message;

use crate::Protocol;

/// How many distinct request buffers are encoded up front and sent in turn.
const DISTINCT_REQUESTS: u64 = 8;

/// The request bodies, encoded once.
pub struct Payloads {
    bodies: Vec<Bytes>,
    /// Spans in each body.
    spans: u64,
    /// Uncompressed protobuf bytes over all bodies.
    message_bytes: usize,
    /// Bytes actually sent over all bodies (compressed, framed).
    wire_bytes: usize,
    protocol: Protocol,
    gzip: bool,
}

impl Payloads {
    /// Encodes [`DISTINCT_REQUESTS`] requests of `spans` sidecar spans over one to three pods,
    /// as gRPC frames or OTLP/HTTP bodies.
    pub fn build(spans: usize, protocol: Protocol, gzip: bool) -> anyhow::Result<Payloads> {
        ensure!(spans > 0, "--spans-per-request must be at least 1");
        let mut bodies = Vec::new();
        let (mut message_bytes, mut wire_bytes) = (0, 0);
        for seed in 1..=DISTINCT_REQUESTS {
            let pods = 1 + (seed % 3) as usize;
            let message = otlp::fixtures::sidecar_traces_seeded(spans, pods, seed).encode_to_vec();
            let scan =
                otlp::wire::scan(Signal::Traces, &message).context("fixture does not scan")?;
            ensure!(scan.items == spans as u64, "fixture holds {} spans, not {spans}", scan.items);
            message_bytes += message.len();
            let body = if gzip { gzip_bytes(&message)? } else { message };
            let body = match protocol {
                Protocol::Grpc => grpc_frame(gzip, &body)?,
                Protocol::Http => Bytes::from(body),
            };
            wire_bytes += body.len();
            bodies.push(body);
        }
        Ok(Payloads { bodies, spans: spans as u64, message_bytes, wire_bytes, protocol, gzip })
    }

    /// Body number `index`, cycling.
    pub(super) fn body(&self, index: usize) -> Bytes {
        self.bodies.get(index % self.bodies.len().max(1)).cloned().unwrap_or_default()
    }

    pub fn spans_per_request(&self) -> u64 {
        self.spans
    }

    /// Uncompressed protobuf bytes per span.
    pub fn bytes_per_span(&self) -> f64 {
        self.message_bytes as f64 / (self.bodies.len() as f64 * self.spans as f64).max(1.0)
    }

    pub fn describe(&self) -> String {
        let count = self.bodies.len().max(1);
        format!(
            "{count} distinct requests of {} spans over OTLP/{}, {} protobuf bytes each ({:.0} per span), {} bytes on the wire{}",
            self.spans,
            self.protocol.as_str(),
            self.message_bytes / count,
            self.bytes_per_span(),
            self.wire_bytes / count,
            if self.gzip { " (gzip)" } else { "" }
        )
    }
}

/// gzip at the default level.
pub fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data)?;
    encoder.finish()
}

fn gzip_bytes(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    gzip(data).context("gzip failed")
}

/// A gRPC length-prefixed message: compressed flag, 32-bit big-endian length, message.
fn grpc_frame(compressed: bool, message: &[u8]) -> anyhow::Result<Bytes> {
    let length = u32::try_from(message.len()).context("message too large for a gRPC frame")?;
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(u8::from(compressed));
    frame.put_u32(length);
    frame.put_slice(message);
    Ok(frame.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_framed_and_scan_back() {
        let payloads = Payloads::build(100, Protocol::Grpc, false).unwrap();
        assert_eq!(payloads.bodies.len(), DISTINCT_REQUESTS as usize);
        let frame = payloads.body(3);
        assert_eq!(frame[0], 0);
        let length = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
        assert_eq!(length + 5, frame.len());
        assert_eq!(otlp::wire::scan(Signal::Traces, &frame[5..]).unwrap().items, 100);
        assert!(
            (600.0..=850.0).contains(&payloads.bytes_per_span()),
            "{}",
            payloads.bytes_per_span()
        );

        let http = Payloads::build(10, Protocol::Http, true).unwrap();
        let body = http.body(0);
        let mut message = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut message)
            .unwrap();
        assert_eq!(otlp::wire::scan(Signal::Traces, &message).unwrap().items, 10);
        assert_ne!(http.body(0), http.body(1), "distinct requests");
    }
}
