//! Running CPU-heavy work (decrypting, decompressing, hashing) from async
//! code on the rayon pool, one thread per core.
//!
//! Why not `spawn_blocking`: Tokio's blocking pool grows to many threads,
//! and every thread that decodes blobs keeps its per-thread buffers (see
//! `blob`); on the rayon pool those buffers exist once per core.

/// Run `f` on the rayon pool and wait for it without blocking the runtime.
pub(crate) async fn run<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.expect("a rayon task panicked")
}
