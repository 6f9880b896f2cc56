//! The accept loop. It is ours rather than `axum::serve` for one reason: the drop fault must
//! close a connection *after* the handler ran and *without* writing a response. Each connection
//! gets a [`ConnKill`] in its requests' extensions; the pipeline notifies it and never finishes
//! its response future, and the connection task then drops the connection, which closes the
//! socket.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::pipeline::ConnKill;
use super::router::router;
use crate::sim::state::Shared;

pub async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let router = router(shared.clone());
    let engine = tokio::spawn(crate::sim::engine::run(shared.clone()));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        // Out of file descriptors and the like: back off briefly, keep serving.
                        tracing::warn!(%err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                connections.spawn(serve_connection(stream, router.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    engine.abort();
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    let _ = engine.await;
    Ok(())
}

async fn serve_connection(stream: TcpStream, router: axum::Router) {
    let _ = stream.set_nodelay(true);
    let kill = Arc::new(Notify::new());
    let service = TowerToHyperService::new(router);
    let conn_kill = ConnKill(kill.clone());
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(conn_kill.clone());
        hyper::service::Service::call(&service, req)
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(err) = result {
                tracing::debug!(%err, "connection ended with an error");
            }
        }
        _ = kill.notified() => {
            tracing::debug!("connection dropped by the drop fault");
        }
    }
}
