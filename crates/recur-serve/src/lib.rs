//! `recur-serve`: a `char_lm` checkpoint of any model family served over
//! HTTP to many clients at once. One worker thread owns the model's
//! [`recur_nn::StreamPool`] and advances every running request by one token
//! per batched step ([`engine`]); the HTTP side ([`http`]) validates
//! requests, queues them and streams their tokens as server-sent events.

pub mod engine;
pub mod http;
pub mod metrics;
pub mod model;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use engine::Engine;
use http::{App, Limits};
use model::Loaded;

/// Server settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Streams generated at once (the pool's batch).
    pub streams: usize,
    /// Requests that may wait for a stream; more are refused (429).
    pub queue: usize,
    /// Request limits.
    pub limits: Limits,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            streams: 64,
            queue: 256,
            limits: Limits {
                max_prompt: 4096,
                max_tokens: 4096,
            },
        }
    }
}

/// Serves `model` on `listener` until `shutdown` resolves; then running
/// requests end with a `shutdown` event and the server stops once their
/// responses are closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    model: Arc<Loaded>,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let engine = Engine::start(model.clone(), settings.streams, settings.queue)?;
    let app = App {
        model,
        engine: engine.clone(),
        limits: settings.limits,
        started: Instant::now(),
    };
    axum::serve(listener, http::router(app))
        .with_graceful_shutdown(async move {
            shutdown.await;
            engine.shutdown();
        })
        .await?;
    Ok(())
}
