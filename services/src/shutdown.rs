//! Turns SIGTERM and SIGINT into a future that resolves once, for graceful shutdown.

pub async fn on_signal() {
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(term), Ok(int)) => (term, int),
            _ => {
                tracing::error!("cannot install signal handlers; stop with SIGKILL");
                return std::future::pending().await;
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
        }
    }
}
