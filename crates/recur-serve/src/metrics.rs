//! Counters and the step-latency histogram, in Prometheus' text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the step-latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0,
];

/// What the worker counts.
#[derive(Default)]
pub struct Metrics {
    /// Tokens sampled.
    pub tokens: AtomicU64,
    /// Batched steps taken.
    pub steps: AtomicU64,
    /// Running requests (open streams).
    pub active: AtomicU64,
    /// Requests waiting for a stream.
    pub queued: AtomicU64,
    /// Open WebSocket sessions.
    pub sessions: AtomicU64,
    /// Requests refused (queue full, bad input).
    pub refused: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    /// Sum of step latencies, microseconds.
    step_micros: AtomicU64,
}

impl Metrics {
    /// Records one step's latency.
    pub fn observe_step(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| s <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.step_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, uptime: Duration) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = String::new();
        let tokens = g(&self.tokens);
        let rate = tokens as f64 / uptime.as_secs_f64().max(1e-9);
        let _ = writeln!(s, "# HELP recur_tokens_total Tokens sampled.\n# TYPE recur_tokens_total counter\nrecur_tokens_total {tokens}");
        let _ = writeln!(s, "# HELP recur_tokens_per_second Tokens sampled per second since start.\n# TYPE recur_tokens_per_second gauge\nrecur_tokens_per_second {rate:.3}");
        let _ = writeln!(s, "# HELP recur_active_streams Requests being generated.\n# TYPE recur_active_streams gauge\nrecur_active_streams {}", g(&self.active));
        let _ = writeln!(s, "# HELP recur_queue_depth Requests waiting for a stream.\n# TYPE recur_queue_depth gauge\nrecur_queue_depth {}", g(&self.queued));
        let _ = writeln!(s, "# HELP recur_websocket_sessions Open WebSocket streams.\n# TYPE recur_websocket_sessions gauge\nrecur_websocket_sessions {}", g(&self.sessions));
        let _ = writeln!(s, "# HELP recur_refused_total Requests refused.\n# TYPE recur_refused_total counter\nrecur_refused_total {}", g(&self.refused));
        let _ = writeln!(s, "# HELP recur_step_seconds Latency of one batched step.\n# TYPE recur_step_seconds histogram");
        let mut cum = 0;
        for (b, c) in BUCKETS.iter().zip(&self.buckets) {
            cum += g(c);
            let _ = writeln!(s, "recur_step_seconds_bucket{{le=\"{b}\"}} {cum}");
        }
        let steps = g(&self.steps);
        let _ = writeln!(s, "recur_step_seconds_bucket{{le=\"+Inf\"}} {steps}");
        let _ = writeln!(
            s,
            "recur_step_seconds_sum {}",
            g(&self.step_micros) as f64 / 1e6
        );
        let _ = writeln!(s, "recur_step_seconds_count {steps}");
        s
    }
}
