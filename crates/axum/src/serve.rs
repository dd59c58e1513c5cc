//! [`serve`]: `axum::serve` with the client's address, which ringfence needs for per-address
//! throttling and the device list.

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;

/// Serves `app` on `listener` with the client's address (`ConnectInfo<SocketAddr>`) on every
/// request, until the process ends or the listener fails.
pub async fn serve(listener: TcpListener, app: Router) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}
