//! Istio's HTTP metadata exchange: the `x-envoy-peer-metadata` header.
//!
//! Istio sidecars tell each other who they are in two headers (istio/proxy
//! `source/extensions/filters/http/peer_metadata/filter.cc`, `MXMethod` / `MXPropagationMethod`):
//! `x-envoy-peer-metadata-id` (the node id, a cache key) and `x-envoy-peer-metadata`, the
//! base64 of a serialized `google.protobuf.Struct` with the keys `NAMESPACE`, `WORKLOAD_NAME`,
//! `CLUSTER_ID` and `LABELS` (a struct holding `app`, `version`,
//! `service.istio.io/canonical-name` and `service.istio.io/canonical-revision`;
//! `extensions/common/metadata_object.cc`). The server reads the caller's identity from the
//! request, the client the server's from the response; the headers are removed before the app
//! sees them.
//!
//! This module decodes that header (the `source_*` labels on `reporter="destination"`, the
//! `destination_*` ones on `reporter="source"`) and encodes this workload's own. The protobuf
//! side is hand-written (four wire types; base64 comes from the `base64` crate) because the
//! message is tiny and fixed; the decoder never panics and gives up on anything malformed, as Istio's `ParseFromString`
//! does.

use http::HeaderName;

use super::base64::{decode as base64_decode, encode as base64_encode};
use crate::config::{CANONICAL_NAME_LABEL, CANONICAL_REVISION_LABEL};

/// The header carrying the base64 `google.protobuf.Struct`.
pub(crate) const PEER_METADATA: HeaderName = HeaderName::from_static("x-envoy-peer-metadata");
/// The header carrying the sender's node id.
pub(crate) const PEER_METADATA_ID: HeaderName = HeaderName::from_static("x-envoy-peer-metadata-id");

/// Longest header value decoded; Istio's own values are a few hundred bytes.
pub(crate) const MAX_ENCODED_LEN: usize = 8 * 1024;

const NAMESPACE: &str = "NAMESPACE";
const WORKLOAD_NAME: &str = "WORKLOAD_NAME";
const CLUSTER_ID: &str = "CLUSTER_ID";
const LABELS: &str = "LABELS";
const APP_LABEL: &str = "app";
const VERSION_LABEL: &str = "version";

/// A workload as the metadata exchange describes it; empty means absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WorkloadIdentity {
    pub(crate) workload: String,
    pub(crate) namespace: String,
    pub(crate) canonical_service: String,
    pub(crate) canonical_revision: String,
    pub(crate) app: String,
    pub(crate) version: String,
    pub(crate) cluster: String,
}

/// Decodes an `x-envoy-peer-metadata` value; `None` when it is not base64 of a `Struct`.
pub(crate) fn decode(value: &[u8]) -> Option<WorkloadIdentity> {
    if value.len() > MAX_ENCODED_LEN {
        return None;
    }
    let bytes = base64_decode(value)?;
    let mut identity = WorkloadIdentity::default();
    for entry in StructEntries::new(&bytes) {
        let (key, value) = entry?;
        match key {
            NAMESPACE => identity.namespace = string_value(value)?,
            WORKLOAD_NAME => identity.workload = string_value(value)?,
            CLUSTER_ID => identity.cluster = string_value(value)?,
            LABELS => {
                let Some(labels) = struct_value(value)? else { continue };
                for label in StructEntries::new(labels) {
                    let (key, value) = label?;
                    let slot = match key {
                        APP_LABEL => &mut identity.app,
                        VERSION_LABEL => &mut identity.version,
                        CANONICAL_NAME_LABEL => &mut identity.canonical_service,
                        CANONICAL_REVISION_LABEL => &mut identity.canonical_revision,
                        _ => continue,
                    };
                    *slot = string_value(value)?;
                }
            }
            _ => {}
        }
    }
    Some(identity)
}

/// Encodes `identity` as Istio does (`convertWorkloadMetadataToStruct`, deterministic
/// serialization: keys sorted, empty values left out), base64 with padding.
pub(crate) fn encode(identity: &WorkloadIdentity) -> String {
    let mut labels = Vec::new();
    for (key, value) in [
        (APP_LABEL, &identity.app),
        (CANONICAL_NAME_LABEL, &identity.canonical_service),
        (CANONICAL_REVISION_LABEL, &identity.canonical_revision),
        (VERSION_LABEL, &identity.version),
    ] {
        if !value.is_empty() {
            put_entry(&mut labels, key, &string_message(value));
        }
    }
    let mut message = Vec::new();
    if !identity.cluster.is_empty() {
        put_entry(&mut message, CLUSTER_ID, &string_message(&identity.cluster));
    }
    let mut labels_value = Vec::new();
    put_bytes(&mut labels_value, 5, &labels);
    put_entry(&mut message, LABELS, &labels_value);
    if !identity.namespace.is_empty() {
        put_entry(&mut message, NAMESPACE, &string_message(&identity.namespace));
    }
    if !identity.workload.is_empty() {
        put_entry(&mut message, WORKLOAD_NAME, &string_message(&identity.workload));
    }
    base64_encode(&message)
}

// === protobuf wire format ===

/// A `google.protobuf.Value` message holding `string_value` (field 3).
fn string_message(text: &str) -> Vec<u8> {
    let mut value = Vec::with_capacity(text.len() + 2);
    put_bytes(&mut value, 3, text.as_bytes());
    value
}

/// One `Struct.fields` map entry (field 1): `{key = 1: string, value = 2: Value}`.
fn put_entry(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let mut entry = Vec::with_capacity(key.len() + value.len() + 4);
    put_bytes(&mut entry, 1, key.as_bytes());
    put_bytes(&mut entry, 2, value);
    put_bytes(out, 1, &entry);
}

/// A length-delimited field.
fn put_bytes(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    out.push((field << 3) | 2);
    let mut len = bytes.len();
    while len >= 0x80 {
        out.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(bytes);
}

/// Reads protobuf fields as `(field number, wire type, payload)`; payload is empty for
/// fixed-width and varint fields, which these messages only skip.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    /// `None` inside marks a malformed message.
    type Item = Option<(u64, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        Some(self.field())
    }
}

impl<'a> Fields<'a> {
    fn field(&mut self) -> Option<(u64, &'a [u8])> {
        let key = self.varint()?;
        let payload: &'a [u8] = match key & 7 {
            0 => self.varint().map(|_| &[][..])?,
            1 => self.take(8).map(|_| &[][..])?,
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                self.take(len)?
            }
            5 => self.take(4).map(|_| &[][..])?,
            _ => return None,
        };
        // Only length-delimited fields carry what is read; others are reported as field 0.
        Some((if key & 7 == 2 { key >> 3 } else { 0 }, payload))
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for (i, byte) in self.rest.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.rest = &self.rest[i + 1..];
                return Some(value);
            }
        }
        None
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if len > self.rest.len() {
            return None;
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(taken)
    }
}

/// The entries of a `Struct`: `(key, encoded Value)`; `None` inside marks a malformed one.
struct StructEntries<'a>(Fields<'a>);

impl<'a> StructEntries<'a> {
    fn new(message: &'a [u8]) -> Self {
        StructEntries(Fields { rest: message })
    }
}

impl<'a> Iterator for StructEntries<'a> {
    type Item = Option<(&'a str, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let entry = match self.0.next()? {
                Some((1, entry)) => entry,
                Some(_) => continue,
                None => return Some(None),
            };
            let (mut key, mut value) = (Some(""), &[][..]);
            for field in (Fields { rest: entry }) {
                match field {
                    Some((1, bytes)) => key = std::str::from_utf8(bytes).ok(),
                    Some((2, bytes)) => value = bytes,
                    Some(_) => {}
                    None => return Some(None),
                }
            }
            return Some(key.map(|key| (key, value)));
        }
    }
}

/// A `Value`'s `string_value` (field 3); empty for other kinds, `None` when malformed.
fn string_value(value: &[u8]) -> Option<String> {
    let mut text = String::new();
    for field in (Fields { rest: value }) {
        if let (3, bytes) = field? {
            text = std::str::from_utf8(bytes).ok()?.to_owned();
        }
    }
    Some(text)
}

/// A `Value`'s `struct_value` (field 5), if it is one; `None` when malformed.
fn struct_value(value: &[u8]) -> Option<Option<&[u8]>> {
    let mut found = None;
    for field in (Fields { rest: value }) {
        if let (5, bytes) = field? {
            found = Some(bytes);
        }
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn productpage() -> WorkloadIdentity {
        WorkloadIdentity {
            workload: "productpage-v1".into(),
            namespace: "default".into(),
            canonical_service: "productpage".into(),
            canonical_revision: "v1".into(),
            app: "productpage".into(),
            version: "v1".into(),
            cluster: "Kubernetes".into(),
        }
    }

    #[test]
    fn round_trips() {
        let identity = productpage();
        assert_eq!(decode(encode(&identity).as_bytes()), Some(identity));
        let sparse = WorkloadIdentity { workload: "w".into(), ..WorkloadIdentity::default() };
        assert_eq!(decode(encode(&sparse).as_bytes()), Some(sparse));
    }

    /// A header captured from Istio 1.5's `details-v1` sidecar (bookinfo): protoc's encoding,
    /// with keys this module ignores (`INSTANCE_IPS`, `MESH_ID`, `OWNER`, other labels, …).
    const ISTIO_DETAILS_V1: &str = concat!(
        "Ch4KDElOU1RBTkNFX0lQUxIOGgwxNzIuMTYuMC4yMDYK1QEKBkxBQkVMUxLKASrHAQoQCgNhcHASCRoHZGV0",
        "YWlscwohChFwb2QtdGVtcGxhdGUtaGFzaBIMGgo3NWQ5NGM0OGY1CiQKGXNlY3VyaXR5LmlzdGlvLmlvL3Rs",
        "c01vZGUSBxoFaXN0aW8KLAofc2VydmljZS5pc3Rpby5pby9jYW5vbmljYWwtbmFtZRIJGgdkZXRhaWxzCisK",
        "I3NlcnZpY2UuaXN0aW8uaW8vY2Fub25pY2FsLXJldmlzaW9uEgQaAnYxCg8KB3ZlcnNpb24SBBoCdjEKGgoH",
        "TUVTSF9JRBIPGg1jbHVzdGVyLmxvY2FsCiUKBE5BTUUSHRobZGV0YWlscy12MS03NWQ5NGM0OGY1LTdibHht",
        "ChYKCU5BTUVTUEFDRRIJGgdkZWZhdWx0Ck4KBU9XTkVSEkUaQ2t1YmVybmV0ZXM6Ly9hcGlzL2FwcHMvdjEv",
        "bmFtZXNwYWNlcy9kZWZhdWx0L2RlcGxveW1lbnRzL2RldGFpbHMtdjEKJQoPU0VSVklDRV9BQ0NPVU5UEhIa",
        "EGJvb2tpbmZvLWRldGFpbHMKHQoNV09SS0xPQURfTkFNRRIMGgpkZXRhaWxzLXYx",
    );

    #[test]
    fn decodes_a_header_istio_sent() {
        let identity = decode(ISTIO_DETAILS_V1.as_bytes()).unwrap();
        let expected = WorkloadIdentity {
            workload: "details-v1".into(),
            namespace: "default".into(),
            canonical_service: "details".into(),
            canonical_revision: "v1".into(),
            app: "details".into(),
            version: "v1".into(),
            cluster: String::new(),
        };
        assert_eq!(identity, expected);
    }

    #[test]
    fn skips_values_of_other_kinds() {
        // {"EXTRA": 1.5 (number_value, fixed64), "LABELS": {"app": "a", "x": true (bool_value,
        // varint)}, "NAMESPACE": "bar"}.
        let mut message = Vec::new();
        let mut number = vec![0x11];
        number.extend_from_slice(&1.5f64.to_le_bytes());
        put_entry(&mut message, "EXTRA", &number);
        let mut labels = Vec::new();
        put_entry(&mut labels, "app", &string_message("a"));
        put_entry(&mut labels, "x", &[0x20, 0x01]);
        let mut labels_value = Vec::new();
        put_bytes(&mut labels_value, 5, &labels);
        put_entry(&mut message, "LABELS", &labels_value);
        put_entry(&mut message, "NAMESPACE", &string_message("bar"));
        let identity = decode(base64_encode(&message).as_bytes()).unwrap();
        assert_eq!(identity.namespace, "bar");
        assert_eq!(identity.app, "a");
        assert_eq!(identity.workload, "");
    }

    #[test]
    fn refuses_malformed_input_without_panicking() {
        let good = encode(&productpage());
        let bytes = base64_decode(good.as_bytes()).unwrap();
        // Every truncation of the message is either refused or decodes to something.
        for len in 0..bytes.len() {
            let _ = decode(base64_encode(&bytes[..len]).as_bytes());
        }
        // Every single-byte corruption too.
        for i in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut corrupt = bytes.clone();
                corrupt[i] ^= flip;
                let _ = decode(base64_encode(&corrupt).as_bytes());
            }
        }
        assert_eq!(decode(b"not base64!"), None);
        assert_eq!(decode(base64_encode(&[0x0a, 0x05, 0x0a]).as_bytes()), None);
        assert_eq!(decode(base64_encode(&[0xff; 11]).as_bytes()), None);
        assert_eq!(decode(&vec![b'A'; MAX_ENCODED_LEN + 4]), None);
    }
}
