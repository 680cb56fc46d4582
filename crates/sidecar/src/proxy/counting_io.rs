//! A byte-counting wrapper around a connection, which can also record activity on a stream
//! (the client side of a tunnel, for the stream idle timeout).
//!
//! A tunnel's byte counts (the body bytes of an upgraded or `CONNECT` exchange, and a `CONNECT`
//! tunnel's TCP metrics, `istio_tcp_sent_bytes_total`, …) are wire bytes, which only the IO
//! layer sees: the client side of the tunnel is wrapped, and the closing report runs when the
//! tunnel drops it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::idle::Activity;

/// Called once when the IO is dropped, with `(sent, received)` bytes.
pub(crate) type OnClose = Box<dyn FnOnce(u64, u64) + Send>;

/// Bytes moved each way, readable while the IO is in use (a tunnel reports them every few
/// seconds while it runs). Only the IO writes them.
#[derive(Debug, Default)]
pub(crate) struct ByteCounts {
    sent: AtomicU64,
    received: AtomicU64,
}

impl ByteCounts {
    /// Bytes written to the IO.
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Bytes read from the IO.
    pub(crate) fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// Counts bytes read and written through `inner`.
pub(crate) struct CountingIo<T> {
    inner: T,
    counts: Arc<ByteCounts>,
    on_close: Option<OnClose>,
    /// Touched whenever bytes move either way.
    activity: Option<Arc<Activity>>,
}

impl<T> CountingIo<T> {
    pub(crate) fn new(inner: T, on_close: Option<OnClose>) -> CountingIo<T> {
        CountingIo { inner, counts: Arc::default(), on_close, activity: None }
    }

    /// Also records every read or write that moves bytes as activity on a stream.
    pub(crate) fn watching(mut self, activity: Arc<Activity>) -> CountingIo<T> {
        self.activity = Some(activity);
        self
    }

    fn moved(&self, bytes: usize) {
        if bytes > 0
            && let Some(activity) = &self.activity
        {
            activity.touch();
        }
    }

    /// Bytes read from `inner`.
    pub(crate) fn received(&self) -> u64 {
        self.counts.received()
    }

    /// Bytes written to `inner`.
    pub(crate) fn sent(&self) -> u64 {
        self.counts.sent()
    }

    /// The counts, to read while the IO is borrowed elsewhere.
    pub(crate) fn counts(&self) -> Arc<ByteCounts> {
        self.counts.clone()
    }

    fn count_received(&self, bytes: usize) {
        self.counts.received.fetch_add(bytes as u64, Ordering::Relaxed);
        self.moved(bytes);
    }

    fn count_sent(&self, bytes: usize) {
        self.counts.sent.fetch_add(bytes as u64, Ordering::Relaxed);
        self.moved(bytes);
    }
}

impl<T> Drop for CountingIo<T> {
    fn drop(&mut self) {
        if let Some(on_close) = self.on_close.take() {
            on_close(self.sent(), self.received());
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CountingIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.count_received(buf.filled().len() - before);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CountingIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = polled {
            self.count_sent(written);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(written)) = polled {
            self.count_sent(written);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn counts_both_ways_and_reports_on_drop() {
        let (near, mut far) = tokio::io::duplex(64);
        let report = Arc::new(Mutex::new(None));
        let sink = report.clone();
        let on_close: OnClose = Box::new(move |sent, received| {
            if let Ok(mut slot) = sink.lock() {
                *slot = Some((sent, received));
            }
        });
        let mut io = CountingIo::new(near, Some(on_close));
        io.write_all(b"hello").await.unwrap_or_else(|e| panic!("{e}"));
        far.write_all(b"abc").await.unwrap_or_else(|e| panic!("{e}"));
        let mut buf = [0u8; 3];
        io.read_exact(&mut buf).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((io.sent(), io.received()), (5, 3));
        drop(io);
        assert_eq!(*report.lock().unwrap_or_else(|e| e.into_inner()), Some((5, 3)));
    }
}
