//! `recur-serve`: a `char_lm` checkpoint of any model family served over
//! HTTP to many clients at once. One worker thread owns the model's
//! [`recur_nn::StreamPool`] and advances every running request by one token
//! per batched step ([`engine`]); the HTTP side ([`http`]) validates
//! requests, queues them and streams their tokens as server-sent events;
//! `/v1/stream` holds a continuous stream over a WebSocket (`ws`): the
//! client pushes tokens and gets each step's sample or distribution.

pub mod engine;
pub mod http;
pub mod metrics;
pub mod model;
mod worker;
mod ws;

use std::future::Future;
use std::sync::atomic::Ordering;
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
    /// Store the fused step's weights (LSTM, GRU, RNN) as f16 where the
    /// adapter has SHADER_F16 (f32 otherwise).
    pub half_weights: bool,
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
            half_weights: false,
        }
    }
}

/// How long a shutdown waits for WebSocket sessions to end.
const SESSION_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `model` on `listener` until `shutdown` resolves; then running
/// requests and streams end with a `shutdown` event and the server stops
/// once their responses are closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    model: Arc<Loaded>,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let dtype = if settings.half_weights {
        model.device.half_dtype()
    } else {
        recur_gpu::DType::F32
    };
    let engine = Engine::start(model.clone(), settings.streams, settings.queue, dtype)?;
    let app_metrics = engine.metrics.clone();
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
    // Upgraded connections (WebSocket streams) outlive axum's graceful
    // shutdown: give each the moment it needs to send its `done` frame.
    let t0 = Instant::now();
    while app_metrics.sessions.load(Ordering::Relaxed) > 0 && t0.elapsed() < SESSION_GRACE {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok(())
}
