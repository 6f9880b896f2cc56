//! The one tokio runtime and stop signal of a command, built here and passed down.

use anyhow::Context;

/// A multi-threaded runtime for the commands that talk to the network.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Turns true on the first SIGINT or SIGTERM; a second one exits at once (safe: every request
/// in flight carries its idempotency key, and its state was committed before it was sent).
pub fn stop_signal() -> tokio::sync::watch::Receiver<bool> {
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        eprintln!(
            "payrun: stopping: finishing the requests in flight (signal again to exit at once)"
        );
        let _ = stop.send(true);
        wait_for_signal().await;
        std::process::exit(130);
    });
    stopping
}

pub(super) async fn wait_for_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match terminate.as_mut() {
                Some(terminate) => { terminate.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}
