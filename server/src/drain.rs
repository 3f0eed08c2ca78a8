//! Connections that read what their client is still sending before they close, so that the
//! client reads the answer instead of a reset.
//!
//! When a socket is closed with received bytes nobody read, the kernel answers with a TCP
//! reset, and a reset that reaches the client before it has read the answer destroys the
//! answer (RFC 7230 §6.6 asks servers to close in stages for this reason). The HTTP layer
//! refuses a request head over its limit (`431`) or one it cannot parse (`400`) while the client
//! is still sending it, then drops the connection. [`DrainOnClose`] wraps each connection's
//! stream: when it is dropped, a task takes the socket over, shuts down its sending side (the
//! answer is already in the kernel's buffer, followed by a FIN), reads and discards what
//! arrives until the client closes its side, at most [`DRAIN_BYTES`] or [`DRAIN_TIME`], and
//! only then closes it.
//!
//! At most a [`DrainBudget`]'s sockets drain at once (fitted to the open-file limit with the
//! other caps: `crate::startup::ConnectionCaps`), so a flood of bad requests cannot hold many
//! descriptors; beyond it a socket is closed at once, as before.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::rt::net::TcpStream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The most bytes a closing connection reads and discards: 1 MiB.
pub const DRAIN_BYTES: usize = 1024 * 1024;

/// The longest a closing connection waits for its client to close its side: 2 s.
pub const DRAIN_TIME: Duration = Duration::from_secs(2);

/// How many closed connections of one server may drain at once, and how many do.
#[derive(Debug)]
pub struct DrainBudget {
    max: usize,
    draining: AtomicUsize,
}

impl DrainBudget {
    /// A budget of `max` connections draining at once.
    pub fn new(max: usize) -> Arc<DrainBudget> {
        Arc::new(DrainBudget {
            max,
            draining: AtomicUsize::new(0),
        })
    }

    /// How many connections are draining right now.
    pub fn n_draining(&self) -> usize {
        self.draining.load(Ordering::SeqCst)
    }

    /// A place to drain in, when one is free.
    fn take(self: &Arc<Self>) -> Option<DrainSlot> {
        let already = self.draining.fetch_add(1, Ordering::SeqCst);
        let slot = DrainSlot(self.clone());
        (already < self.max).then_some(slot)
    }
}

/// One place of a [`DrainBudget`], counted from just before it is made until it is dropped
/// (also when a stopping runtime drops the drain).
struct DrainSlot(Arc<DrainBudget>);

impl Drop for DrainSlot {
    fn drop(&mut self) {
        self.0.draining.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A connection's stream that drains before it closes (see the module docs).
#[derive(Debug)]
pub struct DrainOnClose {
    stream: Option<TcpStream>,
    budget: Arc<DrainBudget>,
}

impl DrainOnClose {
    /// Wraps an accepted connection, which drains within `budget` when it closes.
    pub fn new(stream: TcpStream, budget: Arc<DrainBudget>) -> DrainOnClose {
        DrainOnClose {
            stream: Some(stream),
            budget,
        }
    }

    /// The connection's socket.
    pub fn get_ref(&self) -> &TcpStream {
        self.stream.as_ref().expect("only taken when dropped")
    }

    fn stream(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.stream.as_mut().expect("only taken when dropped"))
    }
}

impl AsyncRead for DrainOnClose {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for DrainOnClose {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.get_ref().is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
}

impl Drop for DrainOnClose {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(slot) = self.budget.take() else {
            return;
        };
        runtime.spawn(async move {
            // Held until the drain ends, also when the runtime drops the task at a stop.
            let _slot = slot;
            let _ = tokio::time::timeout(DRAIN_TIME, drain(stream)).await;
        });
    }
}

/// Shuts down the sending side, then reads until the client closes its side, an error, or
/// [`DRAIN_BYTES`].
async fn drain(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut discard = [0u8; 16 * 1024];
    let mut left = DRAIN_BYTES;
    while left > 0 {
        match stream.read(&mut discard).await {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}
