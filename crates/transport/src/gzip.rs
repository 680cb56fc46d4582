//! gzip bodies, inflated with a hard limit so a small bomb cannot become a large allocation.

use std::io::Read;

use bytes::Bytes;
use flate2::Compression;
use flate2::read::{GzDecoder, GzEncoder};

/// Bodies at least this large are (de)compressed on the blocking pool, so one large request
/// cannot stall the listeners sharing the async reactor.
pub const OFF_REACTOR_THRESHOLD: usize = 64 * 1024;

/// Why a body could not be inflated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InflateError {
    #[error("decompressed body exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("invalid gzip body: {0}")]
    Corrupt(String),
}

/// Inflates `data`, failing as soon as the output would pass `limit` bytes.
pub fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    let mut output = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
    let decoder = GzDecoder::new(data);
    // Read one byte past the limit: reaching it proves the body is too large without inflating
    // the rest.
    let mut limited = decoder.take((limit as u64).saturating_add(1));
    limited.read_to_end(&mut output).map_err(|error| InflateError::Corrupt(error.to_string()))?;
    if output.len() > limit {
        return Err(InflateError::TooLarge { limit });
    }
    Ok(output)
}

/// [`decompress`], on the blocking pool for large bodies.
pub async fn decompress_off_reactor(data: Bytes, limit: usize) -> Result<Vec<u8>, InflateError> {
    if data.len() < OFF_REACTOR_THRESHOLD {
        return decompress(&data, limit);
    }
    tokio::task::spawn_blocking(move || decompress(&data, limit)).await.unwrap_or_else(|error| {
        Err(InflateError::Corrupt(format!("decompression task failed: {error}")))
    })
}

/// Deflates `data` at the default level.
pub fn compress(data: &[u8]) -> Vec<u8> {
    let mut output = Vec::with_capacity(data.len() / 4 + 64);
    // Reading from an in-memory slice through the encoder cannot fail.
    let _ = GzEncoder::new(data, Compression::fast()).read_to_end(&mut output);
    output
}

/// [`compress`], on the blocking pool for large bodies.
pub async fn compress_off_reactor(data: Bytes) -> Vec<u8> {
    if data.len() < OFF_REACTOR_THRESHOLD {
        return compress(&data);
    }
    let fallback = data.clone();
    tokio::task::spawn_blocking(move || compress(&data))
        .await
        .unwrap_or_else(|_| compress(&fallback))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let data = b"hello hello hello hello".repeat(100);
        assert_eq!(decompress(&compress(&data), 1 << 20).unwrap(), data);
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 50 << 20];
        let bomb = compress(&zeros);
        assert!(bomb.len() < 1 << 20, "the bomb is small: {}", bomb.len());
        assert_eq!(decompress(&bomb, 4 << 20), Err(InflateError::TooLarge { limit: 4 << 20 }));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(decompress(b"not gzip", 1024), Err(InflateError::Corrupt(_))));
        let mut truncated = compress(b"some data some data");
        truncated.truncate(truncated.len() - 5);
        assert!(matches!(decompress(&truncated, 1024), Err(InflateError::Corrupt(_))));
    }
}
