//! The few protobuf framing steps the tracer writes by hand (spans, and the export request
//! around them), on prost's encoding primitives. proto3 leaves empty strings and bytes out.

use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

/// Fields of the OTLP messages the tracer writes (`opentelemetry/proto/trace/v1/trace.proto`,
/// `collector/trace/v1/trace_service.proto`, `common/v1/common.proto`).
pub(crate) mod field {
    pub(crate) const EXPORT_RESOURCE_SPANS: u32 = 1;
    pub(crate) const RESOURCE_SPANS_SCOPE_SPANS: u32 = 2;
    pub(crate) const SCOPE_SPANS_SPANS: u32 = 2;
    pub(crate) const TRACE_ID: u32 = 1;
    pub(crate) const SPAN_ID: u32 = 2;
    pub(crate) const TRACE_STATE: u32 = 3;
    pub(crate) const PARENT_SPAN_ID: u32 = 4;
    pub(crate) const FLAGS: u32 = 16;
    pub(crate) const NAME: u32 = 5;
    pub(crate) const KIND: u32 = 6;
    pub(crate) const START_TIME: u32 = 7;
    pub(crate) const END_TIME: u32 = 8;
    pub(crate) const ATTRIBUTES: u32 = 9;
    pub(crate) const STATUS: u32 = 15;
    pub(crate) const STATUS_CODE: u32 = 3;
    pub(crate) const KEY_VALUE_KEY: u32 = 1;
    pub(crate) const KEY_VALUE_VALUE: u32 = 2;
    pub(crate) const ANY_VALUE_STRING: u32 = 1;
}

/// A length-delimited field's size, from its content's.
pub(crate) fn length_delimited_len(tag: u32, length: usize) -> usize {
    key_len(tag) + encoded_len_varint(length as u64) + length
}

/// Writes a length-delimited field's key and length; its `length` bytes must follow.
pub(crate) fn put_length_delimited(tag: u32, length: usize, out: &mut Vec<u8>) {
    // The common case, a field number under 16 and a length under 128 (every tag of a span),
    // is two bytes; prost's general encoders would go through `BufMut` a byte at a time.
    if tag < 16 && length < 128 {
        let key = (tag << 3) | WireType::LengthDelimited as u32;
        // Two pushes rather than `extend_from_slice`: in the size-optimised sidecar build that
        // is a call and a `memcpy` call per field, and a span has about a hundred of these.
        out.push(key as u8);
        out.push(length as u8);
        return;
    }
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(length as u64, out);
}

/// A proto3 `string` field's size: nothing when empty.
pub(crate) fn string_len(tag: u32, value: &str) -> usize {
    bytes_len(tag, value.as_bytes())
}

/// A proto3 `bytes` field's size: nothing when empty.
pub(crate) fn bytes_len(tag: u32, value: &[u8]) -> usize {
    if value.is_empty() { 0 } else { length_delimited_len(tag, value.len()) }
}

/// Writes a proto3 `string` field (nothing when empty).
pub(crate) fn put_string(tag: u32, value: &str, out: &mut Vec<u8>) {
    put_bytes(tag, value.as_bytes(), out);
}

/// Writes a proto3 `bytes` field (nothing when empty).
pub(crate) fn put_bytes(tag: u32, value: &[u8], out: &mut Vec<u8>) {
    if !value.is_empty() {
        put_length_delimited(tag, value.len(), out);
        out.extend_from_slice(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_form_is_what_prost_writes() {
        for tag in [1, 2, 9, 15, 16, 100] {
            for length in [0, 1, 127, 128, 300, 70_000] {
                let mut ours = Vec::new();
                put_length_delimited(tag, length, &mut ours);
                let mut theirs = Vec::new();
                encode_key(tag, WireType::LengthDelimited, &mut theirs);
                encode_varint(length as u64, &mut theirs);
                assert_eq!(ours, theirs, "tag {tag}, length {length}");
                assert_eq!(ours.len() + length, length_delimited_len(tag, length));
            }
        }
    }
}
