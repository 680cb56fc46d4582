//! The few protobuf framing steps the tracer writes by hand (spans, and the export request
//! around them), on prost's encoding primitives. proto3 leaves empty strings and bytes out.

use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

/// A length-delimited field's size, from its content's.
pub(crate) fn length_delimited_len(tag: u32, length: usize) -> usize {
    key_len(tag) + encoded_len_varint(length as u64) + length
}

/// Writes a length-delimited field's key and length; its `length` bytes must follow.
pub(crate) fn put_length_delimited(tag: u32, length: usize, out: &mut Vec<u8>) {
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
