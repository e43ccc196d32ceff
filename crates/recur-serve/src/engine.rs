//! The engine's handle and the requests it takes. One worker thread
//! ([`crate::worker`]) owns the model's [`StreamPool`] and, every tick,
//! advances every running request that has input by one token in one
//! batched step (continuous batching: requests join and leave between
//! ticks). Requests wait in a bounded queue while the pool is full.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use recur_nn::StreamPool;
use tokio::sync::mpsc as tmpsc;

use crate::metrics::Metrics;
use crate::model::Loaded;
use crate::worker::Worker;

/// What a request streams back.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// One sampled token of a generation.
    Token(u32),
    /// One step of a continuous stream: the token fed, the token sampled
    /// from the step's output, and the output distribution when asked for.
    Step {
        /// The input token.
        input: u32,
        /// A sample from the output.
        token: u32,
        /// softmax(logits / temperature) when the stream asked for it.
        probs: Option<Vec<f32>>,
    },
    /// A stream was put back to its zero state (in input order).
    Reset,
    /// The end: `"length"` (max_tokens reached), `"shutdown"` or an error.
    Done(String),
}

/// What a continuous stream's client pushes, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A token to step on.
    Token(u32),
    /// Back to the zero state.
    Reset,
}

/// How tokens are sampled.
#[derive(Clone, Copy, Debug)]
pub struct Sampling {
    /// Softmax temperature (0: the most likely token).
    pub temperature: f32,
    /// Sample among the k most likely only.
    pub top_k: Option<usize>,
    /// The sampler's seed.
    pub seed: u64,
}

/// A request's kind.
#[derive(Debug)]
pub enum Kind {
    /// Read the prompt, then sample `max_tokens` tokens, each fed back.
    Generate {
        /// Token ids, non-empty.
        prompt: Vec<u32>,
        /// Tokens to sample.
        max_tokens: usize,
    },
    /// Step on every token the client pushes, for as long as it stays.
    Stream {
        /// The client's tokens; the stream closes when this hangs up.
        input: mpsc::Receiver<Input>,
        /// Send each step's distribution too.
        probs: bool,
    },
}

/// A validated request.
#[derive(Debug)]
pub struct Request {
    /// Generation or stream.
    pub kind: Kind,
    /// The sampler.
    pub sampling: Sampling,
    /// Where events go (room for every event the request can cause);
    /// closed when the client leaves.
    pub out: tmpsc::Sender<Event>,
}

/// Why a request was refused at once.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue of waiting requests is full.
    Busy,
    /// The worker has stopped.
    Stopped,
}

/// What the worker receives.
pub(crate) enum Msg {
    Request(Request),
    /// A stream has new input.
    Wake,
}

/// The handle the HTTP side holds.
#[derive(Clone)]
pub struct Engine {
    tx: mpsc::Sender<Msg>,
    queue: usize,
    stopping: Arc<AtomicBool>,
    pub(crate) metrics: Arc<Metrics>,
}

impl Engine {
    /// Starts the worker over `model` with `streams` streams (the fused
    /// step's weights in `weights`) and at most `queue` waiting requests.
    pub fn start(
        model: Arc<Loaded>,
        streams: usize,
        queue: usize,
        weights: recur_gpu::DType,
    ) -> anyhow::Result<Self> {
        let pool = StreamPool::with_weights(model.lm.clone(), &model.device, streams, weights)?;
        let (tx, rx) = mpsc::channel();
        let metrics = Arc::new(Metrics::default());
        let stopping = Arc::new(AtomicBool::new(false));
        let (m, s) = (metrics.clone(), stopping.clone());
        std::thread::Builder::new()
            .name("recur-serve-worker".into())
            .spawn(move || Worker::new(pool, rx, m, s).run())?;
        Ok(Self {
            tx,
            queue,
            stopping,
            metrics,
        })
    }

    /// Queues a request, or refuses it when the queue is full.
    pub fn submit(&self, r: Request) -> Result<(), Refused> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err(Refused::Stopped);
        }
        // Waiting = queued at submit, not yet given a stream.
        if self.metrics.queued.load(Ordering::Relaxed) as usize >= self.queue {
            return Err(Refused::Busy);
        }
        // Counted before the worker can see it (it counts it down).
        self.metrics.queued.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Msg::Request(r)).is_err() {
            self.metrics.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(Refused::Stopped);
        }
        Ok(())
    }

    /// Tells the worker that a stream has new input.
    pub fn wake(&self) {
        let _ = self.tx.send(Msg::Wake);
    }

    /// Ends every running and waiting request with `Done("shutdown")` and
    /// stops the worker.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.wake();
    }

    /// The counters `/metrics` shows.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}
