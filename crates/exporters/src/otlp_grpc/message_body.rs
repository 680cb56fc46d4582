//! The request body of an uncompressed call: one gRPC message, written from the batch's own
//! bytes.
//!
//! tonic's encoder API writes a message into a buffer tonic owns, which copies every batch once
//! more (for the sidecar, about 80 KB per export request, allocated and freed each time on the
//! export thread). A batch in wire form already is the message, so this body sends gRPC's
//! five-byte message header and then the batch's chunks as HTTP/2 data frames, sharing them.
//! Chunks under [`SHARE_AT_LEAST`] are gathered into frames of up to [`GATHER_UP_TO`] instead:
//! a batch merged from many small requests would otherwise become as many small frames, each
//! with its own frame header and flow-control bookkeeping.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};

/// Chunks this large are sent as they are.
const SHARE_AT_LEAST: usize = 8 * 1024;

/// Smaller chunks are copied into frames of at most this much (HTTP/2's default frame size).
const GATHER_UP_TO: usize = 16 * 1024;

/// gRPC's length-prefixed message: a compressed flag (0) and the length, then the message.
pub(super) struct MessageBody {
    /// Pieces still to send, in order; the message header comes first.
    pieces: std::vec::IntoIter<Bytes>,
    /// A large piece that ended a gathered frame, sent next.
    next: Option<Bytes>,
    /// Bytes not yet handed out.
    remaining: u64,
}

impl MessageBody {
    /// The message `chunks` make, concatenated. The caller has checked that their length fits
    /// gRPC's 32-bit length prefix.
    pub(super) fn new(chunks: &[Bytes]) -> MessageBody {
        let len: usize = chunks.iter().map(Bytes::len).sum();
        let mut header = BytesMut::with_capacity(5);
        header.put_u8(0);
        header.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
        let mut pieces = Vec::with_capacity(chunks.len() + 1);
        pieces.push(header.freeze());
        pieces.extend(chunks.iter().filter(|chunk| !chunk.is_empty()).cloned());
        MessageBody { pieces: pieces.into_iter(), next: None, remaining: 5 + len as u64 }
    }

    /// The next frame's bytes: a large piece alone, or small ones gathered.
    fn next_frame(&mut self) -> Option<Bytes> {
        let first = self.next.take().or_else(|| self.pieces.next())?;
        if first.len() >= SHARE_AT_LEAST {
            return Some(first);
        }
        let mut gathered = BytesMut::new();
        let mut piece = first;
        loop {
            gathered.extend_from_slice(&piece);
            match self.pieces.next() {
                Some(next) if next.len() >= SHARE_AT_LEAST => {
                    self.next = Some(next);
                    break;
                }
                Some(next) if gathered.len() + next.len() > GATHER_UP_TO => {
                    self.next = Some(next);
                    break;
                }
                Some(next) => piece = next,
                None => break,
            }
        }
        Some(gathered.freeze())
    }
}

impl Body for MessageBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let frame = this.next_frame().map(|data| {
            this.remaining -= data.len() as u64;
            Ok(Frame::data(data))
        });
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    /// Every frame the body yields, in order.
    async fn frames(body: MessageBody) -> Vec<Bytes> {
        let mut body = body;
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.unwrap().into_data() else { panic!("only data frames") };
            frames.push(data);
        }
        assert!(body.is_end_stream());
        frames
    }

    fn bytes(len: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; len])
    }

    #[tokio::test]
    async fn the_message_is_its_header_then_the_chunks_in_order() {
        let chunks = [bytes(300, 1), bytes(20_000, 2), bytes(10, 3), bytes(0, 9), bytes(9_000, 4)];
        let body = MessageBody::new(&chunks);
        assert_eq!(body.size_hint().exact(), Some(5 + 29_310));
        let frames = frames(body).await;
        let sent: Vec<u8> = frames.iter().flat_map(|frame| frame.iter().copied()).collect();
        let mut expected = vec![0, 0, 0, 0x72, 0x7e]; // flag 0, length 29,310
        for chunk in &chunks {
            expected.extend_from_slice(chunk);
        }
        assert_eq!(sent, expected);
    }

    #[tokio::test]
    async fn large_chunks_are_shared_small_ones_gathered() {
        let large = bytes(80_000, 7);
        let shared = frames(MessageBody::new(std::slice::from_ref(&large))).await;
        assert_eq!(shared.len(), 2, "the header, then the chunk");
        assert_eq!(shared[0].len(), 5);
        assert_eq!(shared[1].as_ptr(), large.as_ptr(), "the chunk itself, not a copy");

        let small: Vec<Bytes> = (0..100).map(|i| bytes(1_000, i)).collect();
        let gathered = frames(MessageBody::new(&small)).await;
        let sizes: Vec<usize> = gathered.iter().map(Bytes::len).collect();
        assert_eq!(sizes, [16_005, 16_000, 16_000, 16_000, 16_000, 16_000, 4_000]);
    }

    #[tokio::test]
    async fn an_empty_message_is_only_its_header() {
        let frames = frames(MessageBody::new(&[])).await;
        assert_eq!(frames, [Bytes::from_static(&[0, 0, 0, 0, 0])]);
    }
}
