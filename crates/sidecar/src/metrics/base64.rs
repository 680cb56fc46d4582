//! Base64 for the `x-envoy-peer-metadata` header: Envoy's `Base64::encode` writes the standard
//! alphabet padded, and `Base64::decodeWithoutPadding` reads it with or without padding.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const ENVOY: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encodes with padding.
pub(crate) fn encode(bytes: &[u8]) -> String {
    ENVOY.encode(bytes)
}

/// Decodes with or without padding; `None` for anything that is not base64.
pub(crate) fn decode(text: &[u8]) -> Option<Vec<u8>> {
    ENVOY.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_and_without_padding() {
        for input in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
            let encoded = encode(input);
            assert_eq!(decode(encoded.as_bytes()).as_deref(), Some(input));
            let unpadded = encoded.trim_end_matches('=');
            assert_eq!(decode(unpadded.as_bytes()).as_deref(), Some(input));
        }
        assert_eq!(encode(b"fo"), "Zm8=");
        assert_eq!(decode(b"not base64!"), None);
    }
}
