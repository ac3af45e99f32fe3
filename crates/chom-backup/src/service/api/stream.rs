//! A `Write` whose bytes become an HTTP response body as they are written:
//! exports run on a blocking thread and stream to the client without being
//! held in memory.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

const CHUNK: usize = 256 * 1024;

type Chunk = Result<Vec<u8>, std::io::Error>;

/// The writing end (use from a blocking thread).
pub struct ChannelWriter {
    tx: mpsc::Sender<Chunk>,
    buf: Vec<u8>,
}

/// Ends a body with an error.
pub struct Failer(mpsc::Sender<Chunk>);

impl Failer {
    /// End the body with `message` as its error.
    pub async fn fail(self, message: String) {
        let _ = self.0.send(Err(std::io::Error::other(message))).await;
    }
}

/// The reading end, a stream of body chunks.
pub struct BodyStream(mpsc::Receiver<Chunk>);

impl ChannelWriter {
    /// A connected writer and body stream.
    pub fn new() -> (Self, BodyStream) {
        let (tx, rx) = mpsc::channel(8);
        (
            ChannelWriter {
                tx,
                buf: Vec::with_capacity(CHUNK),
            },
            BodyStream(rx),
        )
    }

    /// A handle to end the body with an error (the client then sees a
    /// broken transfer, not a silently truncated archive).
    pub fn failer(&self) -> Failer {
        Failer(self.tx.clone())
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = self.send();
    }
}

impl futures::Stream for BodyStream {
    type Item = Chunk;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Chunk>> {
        self.0.poll_recv(cx)
    }
}
