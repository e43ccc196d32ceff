//! `GET /v1/stream`: a continuous stream over a WebSocket (the online
//! keyword-spotting / sensor pattern). The query sets the sampler
//! (`temperature`, `top_k`, `seed`), `output=sample|probs` and optionally
//! `model`. The client pushes JSON text frames, `{"text": "abc"}`,
//! `{"ids": [0, 1]}` or `{"reset": true}` (reset first when combined with
//! tokens); the server answers each input token, in order, with
//! `{"event": "step", "step", "input", "text", "id"[, "probs"]}`, each
//! reset with `{"event": "reset"}`, a bad frame with
//! `{"event": "error", "error"}` (the stream stays open) and the end with
//! `{"event": "done", "reason"}`. At most `max_prompt` pushed tokens may
//! wait for their answer. Closing the socket closes the stream.

use std::sync::atomic::Ordering;
use std::sync::mpsc as smpsc;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::engine::{Event, Input, Kind, Request, Sampling};
use crate::http::{check, one, refuse, submit, App};

/// What each step sends back.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Output {
    /// A sampled token.
    #[default]
    Sample,
    /// The sampled token and the distribution.
    Probs,
}

/// The query of `GET /v1/stream`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamQuery {
    #[serde(default = "one")]
    temperature: f32,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    output: Output,
    #[serde(default)]
    model: Option<String>,
}

/// A client frame.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Push {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    ids: Option<Vec<u32>>,
    #[serde(default)]
    reset: bool,
}

pub(crate) async fn stream(
    State(app): State<App>,
    query: Result<Query<StreamQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return refuse(&app, StatusCode::BAD_REQUEST, format!("bad query: {e}")),
    };
    if let Err((status, what)) = check(&app, q.model.as_deref(), q.temperature, q.top_k) {
        return refuse(&app, status, what);
    }
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(e) => return refuse(&app, e.status(), format!("not a WebSocket request: {e}")),
    };
    let (input, rx) = smpsc::channel();
    // Every answer fits: at most max_prompt tokens are in flight.
    let (tx, events) = mpsc::channel(app.limits.max_prompt + 2);
    let req = Request {
        kind: Kind::Stream {
            input: rx,
            probs: q.output == Output::Probs,
        },
        sampling: Sampling {
            temperature: q.temperature,
            top_k: q.top_k,
            seed: q.seed,
        },
        out: tx,
    };
    if let Err((status, what)) = submit(&app, req) {
        return refuse(&app, status, what);
    }
    upgrade.on_upgrade(move |socket| session(socket, app, input, events))
}

/// Relays a client's frames to its stream and the stream's events back.
async fn session(
    mut socket: WebSocket,
    app: App,
    input: smpsc::Sender<Input>,
    mut events: mpsc::Receiver<Event>,
) {
    let metrics = app.engine.metrics.clone();
    metrics.sessions.fetch_add(1, Ordering::Relaxed);
    let mut s = Session {
        app,
        input,
        in_flight: 0,
        steps: 0,
    };
    loop {
        let reply = tokio::select! {
            frame = socket.recv() => match frame {
                Some(Ok(Message::Text(t))) => s.push(t.as_str()),
                Some(Ok(Message::Binary(_))) => Some(s.error("send JSON text frames")),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            e = events.recv() => match e {
                Some(e) => {
                    let done = matches!(e, Event::Done(_));
                    if socket.send(Message::Text(s.render(e).into())).await.is_err() {
                        break;
                    }
                    if done {
                        let _ = socket.send(Message::Close(Some(CloseFrame {
                            code: close_code::NORMAL,
                            reason: "done".into(),
                        }))).await;
                        break;
                    }
                    None
                }
                None => break,
            },
        };
        if let Some(r) = reply {
            if socket.send(Message::Text(r.into())).await.is_err() {
                break;
            }
        }
    }
    // Dropping `input` closes the stream at the worker's next tick.
    metrics.sessions.fetch_sub(1, Ordering::Relaxed);
}

struct Session {
    app: App,
    input: smpsc::Sender<Input>,
    /// Tokens pushed and not answered yet.
    in_flight: usize,
    /// Steps since the last reset.
    steps: u64,
}

impl Session {
    fn error(&self, what: &str) -> String {
        json!({ "event": "error", "error": what }).to_string()
    }

    /// Queues a frame's inputs; an error frame to send back otherwise.
    fn push(&mut self, frame: &str) -> Option<String> {
        let p: Push = match serde_json::from_str(frame) {
            Ok(p) => p,
            Err(e) => return Some(self.error(&format!("malformed frame: {e}"))),
        };
        let vocab = self.app.model.vocab.len();
        let mut tokens = match (&p.text, &p.ids) {
            (Some(_), Some(_)) => return Some(self.error("send text or ids, not both")),
            (Some(t), None) => match self.app.model.encode(t) {
                Ok(ids) => ids,
                Err(c) => return Some(self.error(&format!("{c:?} is not in the vocabulary"))),
            },
            (None, Some(ids)) => ids.clone(),
            (None, None) if p.reset => Vec::new(),
            (None, None) => return Some(self.error("nothing to push: text, ids or reset")),
        };
        if let Some(bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Some(self.error(&format!("token {bad} of a vocabulary of {vocab}")));
        }
        let limit = self.app.limits.max_prompt;
        if self.in_flight + tokens.len() > limit {
            let what = format!(
                "{} tokens would be waiting for their step: at most {limit}",
                self.in_flight + tokens.len()
            );
            return Some(self.error(&what));
        }
        let reset = p.reset.then_some(Input::Reset);
        self.in_flight += tokens.len();
        for i in reset.into_iter().chain(tokens.drain(..).map(Input::Token)) {
            if self.input.send(i).is_err() {
                return Some(self.error("the stream has closed"));
            }
        }
        self.app.engine.wake();
        None
    }

    fn render(&mut self, e: Event) -> String {
        let vocab = &self.app.model.vocab;
        let text = |t: u32| vocab[t as usize].to_string();
        match e {
            Event::Step {
                input,
                token,
                probs,
            } => {
                self.in_flight = self.in_flight.saturating_sub(1);
                self.steps += 1;
                let mut v = json!({
                    "event": "step",
                    "step": self.steps,
                    "input": text(input),
                    "text": text(token),
                    "id": token,
                });
                if let Some(p) = probs {
                    v["probs"] = json!(p);
                }
                v.to_string()
            }
            Event::Reset => {
                self.steps = 0;
                json!({ "event": "reset" }).to_string()
            }
            Event::Token(t) => json!({ "event": "token", "text": text(t), "id": t }).to_string(),
            Event::Done(reason) => json!({ "event": "done", "reason": reason }).to_string(),
        }
    }
}
