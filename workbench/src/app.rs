//! Building and running the HTTP server; `app(state)` is the whole router so tests can
//! call it with `oneshot` or over a real socket.

use crate::api;
use crate::state::AppState;
use axum::Router;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// Every route of the server.
pub fn app(state: AppState) -> Router {
    api::router()
        .merge(crate::web::router())
        .fallback(crate::fallback::not_found)
        .method_not_allowed_fallback(crate::fallback::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.http_metrics.clone(),
            crate::http_metrics::track,
        ))
        .layer(crate::http_trace::trace_layer())
        // Outside the trace layer, so the request's span is made with its id.
        .layer(axum::middleware::from_fn(crate::http_trace::request_id))
        .with_state(state)
}

/// A bound server, not yet serving; binding port 0 picks a free port.
pub struct Application {
    listener: TcpListener,
    router: Router,
    /// A training worker run beside the server (`serve --with-worker`, `demo`).
    worker: Option<(trainer::jobs::JobQueue, trainer::jobs::WorkerState)>,
}

impl Application {
    pub async fn bind(state: AppState, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            listener,
            router: app(state),
            worker: None,
        })
    }

    /// Runs a training worker in this process too, stopped with the server.
    pub fn with_worker(
        mut self,
        queue: trainer::jobs::JobQueue,
        state: trainer::jobs::WorkerState,
    ) -> Self {
        self.worker = Some((queue, state));
        self
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until Ctrl-C or SIGTERM, finishing requests in flight (and letting the
    /// in-process worker, if any, stop its job at the next epoch and queue it again).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let worker = self.worker.map(|(queue, state)| {
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                crate::worker::requeue_lost_jobs(&state.store, &queue).await;
                if let Err(error) = trainer::jobs::run_worker(queue, state, shutdown).await {
                    tracing::error!(%error, "the in-process training worker stopped");
                }
            })
        });
        let signal = async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        };
        // The peer address feeds the login rate limiter.
        let served = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal)
        .await;
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        served
    }
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
