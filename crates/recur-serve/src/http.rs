//! The HTTP API: `POST /v1/generate` (tokens as server-sent events),
//! `GET /v1/stream` (a WebSocket, [`crate::ws`]), `GET /health`,
//! `GET /metrics`. Every refusal is a JSON body
//! `{"error": ...}` with a 4xx status; nothing a client sends can stop the
//! server.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use crate::engine::{Engine, Event, Kind, Refused, Request, Sampling};
use crate::model::Loaded;

/// Request limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Characters in a prompt.
    pub max_prompt: usize,
    /// Tokens one request may ask for.
    pub max_tokens: usize,
}

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    /// The model.
    pub model: Arc<Loaded>,
    /// The batching worker.
    pub engine: Engine,
    /// The limits.
    pub limits: Limits,
    /// When the server started.
    pub started: Instant,
}

/// The router over `app`.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/generate", post(generate))
        .route("/v1/stream", get(crate::ws::stream))
        .with_state(app)
}

pub(crate) fn error(status: StatusCode, what: impl Into<String>) -> Response {
    (status, Json(json!({ "error": what.into() }))).into_response()
}

async fn health(State(app): State<App>) -> Response {
    let m = app.engine.metrics();
    Json(json!({
        "status": "ok",
        "model": app.model.name(),
        "vocab_size": app.model.vocab.len(),
        "active_streams": m.active.load(Ordering::Relaxed),
        "queue_depth": m.queued.load(Ordering::Relaxed),
    }))
    .into_response()
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.engine.metrics().render(app.started.elapsed()),
    )
        .into_response()
}

/// The body of `POST /v1/generate`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Generate {
    prompt: String,
    max_tokens: usize,
    #[serde(default = "one")]
    temperature: f32,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    seed: u64,
    /// If given, must name the served model's family.
    #[serde(default)]
    model: Option<String>,
}

pub(crate) fn one() -> f32 {
    1.0
}

/// Counts a refusal and answers it.
pub(crate) fn refuse(app: &App, status: StatusCode, what: String) -> Response {
    app.engine.metrics().refused.fetch_add(1, Ordering::Relaxed);
    error(status, what)
}

/// A refusal's status and message.
pub(crate) type Refusal = (StatusCode, String);

/// Checks the fields a generation and a stream share.
pub(crate) fn check(
    app: &App,
    model: Option<&str>,
    temperature: f32,
    top_k: Option<usize>,
) -> Result<(), Refusal> {
    if let Some(m) = model {
        if m != app.model.name() {
            let what = format!(
                "unknown model {m:?}: this server runs {:?}",
                app.model.name()
            );
            return Err((StatusCode::NOT_FOUND, what));
        }
    }
    if !(temperature.is_finite() && (0.0..=100.0).contains(&temperature)) {
        let what = format!("temperature {temperature}: 0 to 100 allowed");
        return Err((StatusCode::BAD_REQUEST, what));
    }
    if top_k == Some(0) {
        let what = "top_k must be at least 1".to_string();
        return Err((StatusCode::BAD_REQUEST, what));
    }
    Ok(())
}

/// Queues `req`, or the refusal to answer with.
pub(crate) fn submit(app: &App, req: Request) -> Result<(), Refusal> {
    match app.engine.submit(req) {
        Ok(()) => Ok(()),
        Err(Refused::Busy) => Err((
            StatusCode::TOO_MANY_REQUESTS,
            "all streams are busy and the queue is full".into(),
        )),
        Err(Refused::Stopped) => Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down".into(),
        )),
    }
}

async fn generate(State(app): State<App>, body: Bytes) -> Response {
    let g: Generate = match serde_json::from_slice(&body) {
        Ok(g) => g,
        Err(e) => {
            let what = format!("malformed request: {e}");
            return refuse(&app, StatusCode::BAD_REQUEST, what);
        }
    };
    if let Err((status, what)) = check(&app, g.model.as_deref(), g.temperature, g.top_k) {
        return refuse(&app, status, what);
    }
    let n = g.prompt.chars().count();
    if n == 0 || n > app.limits.max_prompt {
        let what = format!(
            "the prompt has {n} characters: 1 to {} allowed",
            app.limits.max_prompt
        );
        return refuse(&app, StatusCode::PAYLOAD_TOO_LARGE, what);
    }
    if g.max_tokens == 0 || g.max_tokens > app.limits.max_tokens {
        let what = format!(
            "max_tokens {}: 1 to {} allowed",
            g.max_tokens, app.limits.max_tokens
        );
        return refuse(&app, StatusCode::BAD_REQUEST, what);
    }
    let prompt = match app.model.encode(&g.prompt) {
        Ok(p) => p,
        Err(c) => {
            let what = format!("{c:?} is not in the vocabulary");
            return refuse(&app, StatusCode::BAD_REQUEST, what);
        }
    };
    let (tx, rx) = mpsc::channel(g.max_tokens + 2);
    let req = Request {
        kind: Kind::Generate {
            prompt,
            max_tokens: g.max_tokens,
        },
        sampling: Sampling {
            temperature: g.temperature,
            top_k: g.top_k,
            seed: g.seed,
        },
        out: tx,
    };
    if let Err((status, what)) = submit(&app, req) {
        return refuse(&app, status, what);
    }
    let vocab = app.model.vocab.clone();
    let events = ReceiverStream::new(rx).map(move |e| {
        Ok::<_, Infallible>(match e {
            Event::Token(t) => Sse::default()
                .event("token")
                .data(json!({ "text": vocab[t as usize].to_string(), "id": t }).to_string()),
            Event::Done(reason) => Sse::default()
                .event("done")
                .data(json!({ "reason": reason }).to_string()),
            // A generation gets neither.
            Event::Step { .. } | Event::Reset => Sse::default().comment(""),
        })
    });
    axum::response::Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
