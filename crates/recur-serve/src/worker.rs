//! The batching worker: it owns the [`StreamPool`], opens a stream for each
//! waiting request while the pool has room, and every tick advances every
//! running request that has input in one batched step. A generation always
//! has input (its prompt, then its own last sample); a continuous stream
//! has input when its client has pushed some. A request whose client went
//! away is closed at the next tick, freeing its stream.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use recur_nn::stateful::sample_token;
use recur_nn::{Rng, StreamId, StreamPool};
use tokio::sync::mpsc as tmpsc;

use crate::engine::{Event, Input, Kind, Msg, Request, Sampling};
use crate::metrics::Metrics;

/// How a running request is fed.
enum Mode {
    /// Sampling: `next` is fed once the prompt is read.
    Generate { next: u32, left: usize },
    /// The client's tokens.
    Stream {
        input: mpsc::Receiver<Input>,
        probs: bool,
        hung_up: bool,
    },
}

/// One running request.
struct Job {
    id: StreamId,
    /// Inputs not fed yet (a generation's prompt, a stream's pushes).
    pending: VecDeque<Input>,
    mode: Mode,
    sampling: Sampling,
    rng: Rng,
    out: tmpsc::Sender<Event>,
}

/// What a job does this tick.
enum Next {
    Feed(u32),
    Idle,
    /// Close, with a last event when there is one to send.
    Close(Option<String>),
}

impl Job {
    fn new(id: StreamId, r: Request) -> Self {
        let (pending, mode) = match r.kind {
            Kind::Generate { prompt, max_tokens } => {
                let mut pending: VecDeque<Input> = prompt.into_iter().map(Input::Token).collect();
                let next = match pending.pop_back() {
                    Some(Input::Token(t)) => t,
                    _ => 0,
                };
                let mode = Mode::Generate {
                    next,
                    left: max_tokens,
                };
                (pending, mode)
            }
            Kind::Stream { input, probs } => {
                let mode = Mode::Stream {
                    input,
                    probs,
                    hung_up: false,
                };
                (VecDeque::new(), mode)
            }
        };
        Self {
            id,
            pending,
            mode,
            rng: Rng::new(r.sampling.seed),
            sampling: r.sampling,
            out: r.out,
        }
    }

    fn next(&mut self, pool: &mut StreamPool) -> Next {
        if self.out.is_closed() {
            return Next::Close(None);
        }
        match &mut self.mode {
            Mode::Generate { next, .. } => match self.pending.front() {
                Some(Input::Token(t)) => Next::Feed(*t),
                _ => Next::Feed(*next),
            },
            Mode::Stream { input, hung_up, .. } => {
                loop {
                    match input.try_recv() {
                        Ok(i) => self.pending.push_back(i),
                        Err(mpsc::TryRecvError::Empty) => break,
                        Err(mpsc::TryRecvError::Disconnected) => {
                            *hung_up = true;
                            break;
                        }
                    }
                }
                while self.pending.front() == Some(&Input::Reset) {
                    self.pending.pop_front();
                    if let Err(e) = pool.reset(self.id) {
                        return Next::Close(Some(format!("error: {e}")));
                    }
                    if self.out.try_send(Event::Reset).is_err() {
                        return Next::Close(None);
                    }
                }
                match self.pending.front() {
                    Some(Input::Token(t)) => Next::Feed(*t),
                    _ if *hung_up => Next::Close(None),
                    _ => Next::Idle,
                }
            }
        }
    }

    /// Takes one step's logits; `Err` closes the job (with a last event
    /// when there is one to send), `Ok(n)` keeps it, `n` tokens sampled.
    fn take(&mut self, logits: &[f32]) -> Result<u64, Option<String>> {
        let Sampling {
            temperature, top_k, ..
        } = self.sampling;
        let fed = self.pending.pop_front();
        if matches!(self.mode, Mode::Generate { .. }) && fed.is_some() {
            return Ok(0); // still reading the prompt
        }
        let token = sample_token(logits, temperature, top_k, &mut self.rng)
            .map_err(|e| Some(format!("error: {e}")))?;
        // The channel holds every event a request may cause (a slow client
        // never stalls the tick); a closed one means the client has left.
        match &mut self.mode {
            Mode::Generate { next, left } => {
                *next = token;
                *left -= 1;
                self.out.try_send(Event::Token(token)).map_err(|_| None)?;
                if *left == 0 {
                    return Err(Some("length".into()));
                }
            }
            Mode::Stream { probs, .. } => {
                let Some(Input::Token(input)) = fed else {
                    return Err(Some("error: a step without input".into()));
                };
                let probs = probs.then(|| softmax(logits, temperature));
                let e = Event::Step {
                    input,
                    token,
                    probs,
                };
                self.out.try_send(e).map_err(|_| None)?;
            }
        }
        Ok(1)
    }
}

/// softmax(logits / t), with t = 1 for temperature 0.
fn softmax(logits: &[f32], temperature: f32) -> Vec<f32> {
    let t = if temperature > 0.0 { temperature } else { 1.0 };
    let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|&l| ((l - top) / t).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|x| x / sum).collect()
}

pub(crate) struct Worker {
    pool: StreamPool,
    rx: mpsc::Receiver<Msg>,
    waiting: VecDeque<Request>,
    jobs: Vec<Job>,
    metrics: Arc<Metrics>,
    stopping: Arc<AtomicBool>,
}

impl Worker {
    pub(crate) fn new(
        pool: StreamPool,
        rx: mpsc::Receiver<Msg>,
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

    pub(crate) fn run(mut self) {
        loop {
            if self.stopping.load(Ordering::Relaxed) {
                return self.stop();
            }
            while let Ok(m) = self.rx.try_recv() {
                self.receive(m);
            }
            self.admit();
            let stepped = self.tick();
            self.publish();
            if !stepped {
                // Nothing to step: wait for a request or a stream's input
                // (waking now and then to see a shutdown).
                match self.rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(m) => self.receive(m),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return self.stop(),
                }
            }
        }
    }

    fn receive(&mut self, m: Msg) {
        if let Msg::Request(r) = m {
            self.waiting.push_back(r);
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
            match self.pool.open() {
                Ok(id) => self.jobs.push(Job::new(id, r)),
                Err(e) => {
                    let _ = r.out.try_send(Event::Done(format!("error: {e}")));
                }
            }
        }
    }

    fn publish(&self) {
        let m = &self.metrics;
        m.active.store(self.jobs.len() as u64, Ordering::Relaxed);
    }

    fn close(&mut self, job: Job, last: Option<String>) {
        if let Some(reason) = last {
            let _ = job.out.try_send(Event::Done(reason));
        }
        let _ = self.pool.close(job.id);
    }

    /// One batched step of every running request that has input; false
    /// when none had.
    fn tick(&mut self) -> bool {
        let start = Instant::now();
        let mut feeding = Vec::with_capacity(self.jobs.len());
        let mut idle = Vec::new();
        for mut j in std::mem::take(&mut self.jobs) {
            match j.next(&mut self.pool) {
                Next::Feed(t) => feeding.push((j, t)),
                Next::Idle => idle.push(j),
                Next::Close(last) => self.close(j, last),
            }
        }
        self.jobs = idle;
        if feeding.is_empty() {
            return false;
        }
        let inputs: Vec<(StreamId, u32)> = feeding.iter().map(|(j, t)| (j.id, *t)).collect();
        let logits = match self.pool.step(&inputs) {
            Ok(l) => l,
            Err(e) => {
                for (j, _) in feeding {
                    self.close(j, Some(format!("error: {e}")));
                }
                return true;
            }
        };
        let mut sampled = 0;
        for ((mut j, _), l) in feeding.into_iter().zip(logits) {
            match j.take(&l) {
                Ok(n) => {
                    sampled += n;
                    self.jobs.push(j);
                }
                Err(last) => self.close(j, last),
            }
        }
        let m = &self.metrics;
        m.tokens.fetch_add(sampled, Ordering::Relaxed);
        m.steps.fetch_add(1, Ordering::Relaxed);
        m.observe_step(start.elapsed());
        true
    }

    fn stop(&mut self) {
        for j in std::mem::take(&mut self.jobs) {
            self.close(j, Some("shutdown".into()));
        }
        while let Ok(m) = self.rx.try_recv() {
            self.receive(m);
        }
        for r in self.waiting.drain(..) {
            let _ = r.out.try_send(Event::Done("shutdown".into()));
        }
        self.metrics.active.store(0, Ordering::Relaxed);
        self.metrics.queued.store(0, Ordering::Relaxed);
    }
}
