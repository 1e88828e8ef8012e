//! Accepting connections with limits: how many at once, how long a client may take to send
//! its headers, how many and how large they may be. axum's own `serve` sets none of these,
//! so a client sending a header a byte a second, or a thousand idle connections, held the
//! service's resources for as long as they liked.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Most connections served at once; the next waits in the kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 4_096;
/// Most connections one client network (an IPv4 address, an IPv6 /64) holds at once; one
/// more is closed at once, so no single client can take every slot.
pub const MAX_CONNECTIONS_PER_NETWORK: usize = 512;
/// Longest a client may take to send a request's headers (then the connection closes).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most header fields in one request (more: `431`).
pub const MAX_HEADERS: usize = 64;
/// Most bytes of request line and headers (more: `431`); hyper's smallest allowed buffer.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Longest the service waits for open connections to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` resolves, then lets open requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let per_network: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(held) = NetworkSlot::take(&per_network, crate::rate::network_of(peer.ip())) else {
            metrics::counter!("xiezhi_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Every request learns its peer (the rate limits key on it), as axum's
        // `into_make_service_with_connect_info` would tell it.
        let router = router.clone();
        let with_peer = tower::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            tower::ServiceExt::oneshot(router.clone(), request)
        });
        let connection = configured().serve_connection(TokioIo::new(stream), TowerToHyperService::new(with_peer));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that resets the connection is not an error of ours.
            let _ = connection.await;
            drop(held);
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace period were dropped");
    }
    Ok(())
}

/// One connection counted against its network; uncounted when dropped.
struct NetworkSlot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    network: IpAddr,
}

impl NetworkSlot {
    fn take(counts: &Arc<Mutex<HashMap<IpAddr, usize>>>, network: IpAddr) -> Option<NetworkSlot> {
        let mut held = counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(network).or_insert(0);
        if *count >= MAX_CONNECTIONS_PER_NETWORK {
            return None;
        }
        *count += 1;
        Some(NetworkSlot { counts: Arc::clone(counts), network })
    }
}

impl Drop for NetworkSlot {
    fn drop(&mut self) {
        let mut held = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.network) {
            *count -= 1;
            // The map holds only networks with a connection open: it cannot grow past
            // MAX_CONNECTIONS entries.
            if *count == 0 {
                held.remove(&self.network);
            }
        }
    }
}

fn configured() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
}
