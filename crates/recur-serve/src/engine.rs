//! The batching worker: one thread owns the model's [`StreamPool`] and,
//! every tick, advances every running request by one token in one batched
//! step (continuous batching: requests join and leave between ticks).
//! Requests wait in a bounded queue while the pool is full; a request whose
//! client went away is closed at the next tick, freeing its stream.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use recur_nn::stateful::sample_token;
use recur_nn::{Rng, StreamId, StreamPool};
use tokio::sync::mpsc as tmpsc;

use crate::metrics::Metrics;
use crate::model::Loaded;

/// What a generation streams back.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// One sampled token.
    Token(u32),
    /// The end: `"length"` (max_tokens reached), `"shutdown"` or an error.
    Done(String),
}

/// A validated generation request.
#[derive(Debug)]
pub struct Request {
    /// Token ids, non-empty.
    pub prompt: Vec<u32>,
    /// Tokens to sample.
    pub max_tokens: usize,
    /// Softmax temperature (0: the most likely token).
    pub temperature: f32,
    /// Sample among the k most likely only.
    pub top_k: Option<usize>,
    /// The sampler's seed.
    pub seed: u64,
    /// Where the tokens go (room for max_tokens + 1 events); closed when
    /// the client leaves.
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

/// The handle the HTTP side holds.
#[derive(Clone)]
pub struct Engine {
    tx: mpsc::SyncSender<Request>,
    queue: usize,
    stopping: Arc<AtomicBool>,
    pub(crate) metrics: Arc<Metrics>,
}

impl Engine {
    /// Starts the worker over `model` with `streams` streams and at most
    /// `queue` waiting requests.
    pub fn start(model: Arc<Loaded>, streams: usize, queue: usize) -> anyhow::Result<Self> {
        let pool = StreamPool::new(model.lm.clone(), &model.device, streams)?;
        let (tx, rx) = mpsc::sync_channel(queue.max(1));
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
        let refused = match self.tx.try_send(r) {
            Ok(()) => return Ok(()),
            Err(mpsc::TrySendError::Full(_)) => Refused::Busy,
            Err(mpsc::TrySendError::Disconnected(_)) => Refused::Stopped,
        };
        self.metrics.queued.fetch_sub(1, Ordering::Relaxed);
        Err(refused)
    }

    /// Ends every running and waiting request with `Done("shutdown")` and
    /// stops the worker.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// The counters `/metrics` shows.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// One running request.
struct Job {
    id: StreamId,
    /// Prompt tokens not fed yet.
    pending: VecDeque<u32>,
    /// The token to feed when nothing is pending.
    next: u32,
    left: usize,
    rng: Rng,
    temperature: f32,
    top_k: Option<usize>,
    out: tmpsc::Sender<Event>,
}

struct Worker {
    pool: StreamPool,
    rx: mpsc::Receiver<Request>,
    waiting: VecDeque<Request>,
    jobs: Vec<Job>,
    metrics: Arc<Metrics>,
    stopping: Arc<AtomicBool>,
}

impl Worker {
    fn new(
        pool: StreamPool,
        rx: mpsc::Receiver<Request>,
        metrics: Arc<Metrics>,
        stopping: Arc<AtomicBool>,
    ) -> Self {
        Self {
            pool,
            rx,
            waiting: VecDeque::new(),
            jobs: Vec::new(),
            metrics,
            stopping,
        }
    }

    fn run(mut self) {
        loop {
            if self.stopping.load(Ordering::Relaxed) {
                self.stop();
                return;
            }
            // Idle: wait for work (waking now and then to see a shutdown).
            if self.jobs.is_empty() && self.waiting.is_empty() {
                match self.rx.recv_timeout(std::time::Duration::from_millis(50)) {
                    Ok(r) => self.waiting.push_back(r),
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
            while let Ok(r) = self.rx.try_recv() {
                self.waiting.push_back(r);
            }
            self.admit();
            self.publish();
            if !self.jobs.is_empty() {
                self.tick();
            }
        }
    }

    /// Opens a stream for each waiting request while the pool has room.
    fn admit(&mut self) {
        while self.pool.active() < self.pool.capacity() {
            let Some(r) = self.waiting.pop_front() else {
                return;
            };
            self.metrics.queued.fetch_sub(1, Ordering::Relaxed);
            if r.out.is_closed() {
                continue;
            }
            let id = match self.pool.open() {
                Ok(id) => id,
                Err(e) => {
                    let _ = r.out.try_send(Event::Done(format!("error: {e}")));
                    continue;
                }
            };
            let mut pending: VecDeque<u32> = r.prompt.into();
            let next = pending.pop_back().unwrap_or(0);
            self.jobs.push(Job {
                id,
                pending,
                next,
                left: r.max_tokens,
                rng: Rng::new(r.seed),
                temperature: r.temperature,
                top_k: r.top_k,
                out: r.out,
            });
        }
    }

    fn publish(&self) {
        let m = &self.metrics;
        m.active.store(self.jobs.len() as u64, Ordering::Relaxed);
    }

    /// One batched step of every running request.
    fn tick(&mut self) {
        let start = Instant::now();
        // Prompts are fed first, one token a tick; then the last sampled
        // token (the last prompt token for the first sample).
        let inputs: Vec<(StreamId, u32)> = self
            .jobs
            .iter()
            .map(|j| (j.id, j.pending.front().copied().unwrap_or(j.next)))
            .collect();
        let logits = match self.pool.step(&inputs) {
            Ok(l) => l,
            Err(e) => {
                for j in self.jobs.drain(..) {
                    let _ = j.out.try_send(Event::Done(format!("error: {e}")));
                    let _ = self.pool.close(j.id);
                }
                return;
            }
        };
        let mut sampled = 0u64;
        let mut keep = Vec::with_capacity(self.jobs.len());
        for (mut j, l) in self.jobs.drain(..).zip(logits) {
            if j.pending.pop_front().is_some() {
                keep.push(j); // still reading its prompt
                continue;
            }
            let done = match sample_token(&l, j.temperature, j.top_k, &mut j.rng) {
                Ok(t) => {
                    j.next = t;
                    j.left -= 1;
                    sampled += 1;
                    // The channel holds every token a request may ask for
                    // (a slow client never stalls the tick); a closed one
                    // means the client has left.
                    let sent = j.out.try_send(Event::Token(t)).is_ok();
                    if !sent {
                        None
                    } else if j.left == 0 {
                        Some("length".to_string())
                    } else {
                        keep.push(j);
                        continue;
                    }
                }
                Err(e) => Some(format!("error: {e}")),
            };
            if let Some(reason) = done {
                let _ = j.out.try_send(Event::Done(reason));
            }
            let _ = self.pool.close(j.id);
        }
        self.jobs = keep;
        let m = &self.metrics;
        m.tokens.fetch_add(sampled, Ordering::Relaxed);
        m.steps.fetch_add(1, Ordering::Relaxed);
        m.observe_step(start.elapsed());
        self.publish();
    }

    fn stop(&mut self) {
        for j in self.jobs.drain(..) {
            let _ = j.out.try_send(Event::Done("shutdown".into()));
        }
        while let Ok(r) = self.rx.try_recv() {
            self.waiting.push_back(r);
        }
        for r in self.waiting.drain(..) {
            let _ = r.out.try_send(Event::Done("shutdown".into()));
        }
        self.metrics.active.store(0, Ordering::Relaxed);
        self.metrics.queued.store(0, Ordering::Relaxed);
    }
}
