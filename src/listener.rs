//! Serving HTTP to a network payrun does not control (`payrun serve`, `watch --listen`,
//! `client-tokens serve`): how long a client may take and how many may be connected at once.
//!
//! `axum::serve` waits for a request's headers and body for ever, so a client that sends a few
//! bytes and then nothing holds a connection (and a file descriptor) for as long as it likes;
//! a few thousand of them and the endpoint Dwolla delivers to is gone. Here every connection
//! has a header deadline (hyper's `header_read_timeout`: the connection is closed), every body
//! a deadline of its own (408 and the connection closed), and at most `max_connections` are
//! served at once; further ones wait in the kernel's backlog until a slot frees, which the
//! deadlines guarantee within seconds.
//!
//! Owns the accept loop and the per-connection settings; knows no route.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

/// What one client may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From the connection's start (or its previous response) until the request's headers are
    /// complete; then the connection is closed without an answer.
    pub header_timeout: Duration,
    /// From the headers until the whole body is in; then 408 and the connection is closed.
    pub body_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// The largest body read, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
}

pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

impl ConnectionLimits {
    /// The documented defaults with the given body cap.
    pub fn standard(max_body_bytes: usize) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_body_bytes,
        }
    }
}

/// Serves `router` on `listener` until `stopping` turns true (or its sender goes away), then
/// stops accepting and lets every request in flight finish before returning.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
) {
    let router = router.layer(axum::middleware::from_fn_with_state(
        limits,
        body_within_deadline,
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = accept(&listener, &slots) => accepted,
            _ = stopped(&mut stopping) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Some((stream, remote, slot)) = accepted else {
            continue;
        };
        let task = serve_connection(stream, remote, router.clone(), limits, stopping.clone());
        connections.spawn(async move {
            task.await;
            drop(slot);
        });
    }
    while connections.join_next().await.is_some() {}
}

/// A free slot, then a connection; `None` when accepting failed (logged, briefly backed off).
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let slot = slots.clone().acquire_owned().await.expect("never closed");
    match listener.accept().await {
        Ok((stream, remote)) => Some((stream, remote, slot)),
        Err(err) => {
            // Out of file descriptors and the like: back off briefly, keep serving.
            tracing::warn!(%err, "accept failed");
            tokio::time::sleep(Duration::from_millis(20)).await;
            None
        }
    }
}

async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let tower = TowerToHyperService::new(router);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        hyper::service::Service::call(&tower, request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stopped(&mut stopping) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        // A header deadline missed ends here too: the client's problem, not the server's.
        tracing::debug!(%remote, %err, "connection closed");
    }
}

/// Reads the whole body within the body deadline and the size cap before any handler runs.
async fn body_within_deadline(
    State(limits): State<ConnectionLimits>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let read = axum::body::to_bytes(body, limits.max_body_bytes);
    match tokio::time::timeout(limits.body_timeout, read).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(err)) if over_the_cap(&err) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {} bytes\n", limits.max_body_bytes),
        )
            .into_response(),
        Ok(Err(_)) => (StatusCode::BAD_REQUEST, "the body could not be read\n").into_response(),
        Err(_) => {
            let remote = parts.extensions.get::<ConnectInfo<SocketAddr>>();
            tracing::warn!(
                remote = ?remote.map(|info| info.0),
                path = %parts.uri.path(),
                "request body not received within {:?}; connection closed",
                limits.body_timeout
            );
            (
                StatusCode::REQUEST_TIMEOUT,
                [(header::CONNECTION, "close")],
                "the request body did not arrive in time\n",
            )
                .into_response()
        }
    }
}

fn over_the_cap(err: &axum::Error) -> bool {
    std::error::Error::source(err)
        .is_some_and(|inner| inner.is::<http_body_util::LengthLimitError>())
}
