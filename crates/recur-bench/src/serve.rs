//! `recur-bench serve`: a load generator against an in-process
//! `recur-serve` on loopback. For each concurrency level, that many clients
//! issue `POST /v1/generate` back to back for a bounded time and read the
//! server-sent events; the suite reports tokens/s, the time between a
//! stream's consecutive tokens (p50, p99), the time to the first token,
//! errors, and the device memory and process RSS before and after (each
//! level measured after a short unmeasured warm-up at the same load).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use recur_gpu::Device;
use recur_nn::{Module, Rng, SequenceLmConfig};
use recur_serve::http::Limits;
use recur_serve::model::Loaded;
use recur_serve::Settings;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What `recur-bench serve` runs.
pub struct Load {
    /// Concurrent clients, one level each.
    pub levels: Vec<usize>,
    /// Seconds each level issues new requests.
    pub seconds: f64,
    /// The served model.
    pub config: SequenceLmConfig,
    /// The server's pool.
    pub streams: usize,
    /// Tokens per request.
    pub max_tokens: usize,
    /// The fused step's weights in f16 (recur-serve --f16).
    pub half_weights: bool,
}

/// One level's figures.
#[derive(Clone, Debug, Serialize)]
pub struct LoadRecord {
    pub suite: &'static str,
    pub model: String,
    pub shape: serde_json::Value,
    pub device: String,
    pub clients: usize,
    pub pool_streams: usize,
    pub seconds: f64,
    pub requests: usize,
    pub tokens: usize,
    pub tokens_per_s: f64,
    /// Time between a stream's consecutive tokens.
    pub token_ms_p50: f64,
    pub token_ms_p99: f64,
    /// Request sent → first token.
    pub first_token_ms_p50: f64,
    pub errors: usize,
    /// Device bytes held (live + pooled) before and after the level.
    pub device_bytes_before: u64,
    pub device_bytes_after: u64,
    /// Driver allocations during the level.
    pub device_allocations: u64,
    /// Resident set size, bytes.
    pub rss_before: u64,
    pub rss_after: u64,
}

#[derive(Default)]
struct Tally {
    requests: usize,
    tokens: usize,
    gaps: Vec<f64>,
    first: Vec<f64>,
    errors: usize,
}

/// One request: the arrival time of each token, or why it failed.
async fn request(
    addr: std::net::SocketAddr,
    body: &str,
    max_tokens: usize,
) -> Result<(Instant, Vec<Instant>)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let sent = Instant::now();
    let head = format!(
        "POST /v1/generate HTTP/1.1\r\nHost: bench\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    let mut arrivals = Vec::with_capacity(max_tokens);
    let (mut buf, mut line) = (vec![0u8; 16 << 10], Vec::new());
    let mut status_ok = None;
    let mut done = false;
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let now = Instant::now();
        for &b in &buf[..n] {
            if b != b'\n' {
                line.push(b);
                continue;
            }
            let l = std::str::from_utf8(&line).unwrap_or("");
            if status_ok.is_none() {
                status_ok = Some(l.starts_with("HTTP/1.1 200"));
            } else if l.starts_with("event: token") {
                arrivals.push(now);
            } else if l.starts_with("data: {\"reason\"") {
                anyhow::ensure!(l.contains("\"length\""), "ended: {l}");
                done = true;
            }
            line.clear();
        }
        if done {
            break;
        }
    }
    anyhow::ensure!(status_ok == Some(true), "status: not 200");
    anyhow::ensure!(
        arrivals.len() == max_tokens,
        "{} of {max_tokens} tokens",
        arrivals.len()
    );
    Ok((sent, arrivals))
}

/// Resident set size of this process, bytes (0 where /proc is absent).
pub fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Runs every level against one server over `dev`.
pub fn serve(dev: &Device, load: &Load) -> Result<Vec<LoadRecord>> {
    let vocab: Vec<char> = (' '..='~').chain(['\n']).collect();
    let config = SequenceLmConfig {
        vocab: vocab.len(),
        ..load.config
    };
    let lm = config.init(dev, &mut Rng::new(7))?;
    lm.set_training(false);
    let model = Arc::new(Loaded {
        lm: Arc::new(lm),
        device: dev.clone(),
        vocab,
    });
    let settings = Settings {
        streams: load.streams,
        queue: 4 * load.streams.max(*load.levels.iter().max().unwrap_or(&1)),
        limits: Limits {
            max_prompt: 4096,
            max_tokens: load.max_tokens,
        },
        half_weights: load.half_weights,
    };
    let rt = tokio::runtime::Runtime::new()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(recur_serve::serve(listener, model, settings, async {
        let _ = stopped.await;
    }));
    let mut records = Vec::new();
    for &clients in &load.levels {
        // A short unmeasured run first: the pool's buffers for this load
        // are allocated there, so "before" and "after" show the steady state.
        let warm = Load {
            seconds: (load.seconds / 4.0).min(2.0),
            levels: Vec::new(),
            ..*load
        };
        rt.block_on(level(dev, addr, &warm, clients))?;
        let r = rt.block_on(level(dev, addr, load, clients))?;
        eprintln!(
            "serve: {clients} clients: {:.0} tokens/s, token p50 {:.2} ms, p99 {:.2} ms, {} errors",
            r.tokens_per_s, r.token_ms_p50, r.token_ms_p99, r.errors
        );
        records.push(r);
    }
    let _ = stop.send(());
    rt.block_on(server)
        .context("the server task")?
        .context("the server")?;
    Ok(records)
}

async fn level(
    dev: &Device,
    addr: std::net::SocketAddr,
    load: &Load,
    clients: usize,
) -> Result<LoadRecord> {
    let mem = |m: recur_gpu::MemoryStats| m.bytes_live + m.bytes_pooled;
    let before = dev.memory_stats();
    let rss_before = rss();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(load.seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let tally = tally.clone();
        let n = load.max_tokens;
        tasks.push(tokio::spawn(async move {
            let mut seed = c as u64 * 1_000_003;
            while Instant::now() < deadline {
                seed += 1;
                let body = format!(
                    r#"{{"prompt": "First Citizen:\n", "max_tokens": {n}, "temperature": 0.8, "seed": {seed}}}"#
                );
                let r = request(addr, &body, n).await;
                let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                t.requests += 1;
                match r {
                    Ok((sent, arrivals)) => {
                        t.tokens += arrivals.len();
                        t.first.push((arrivals[0] - sent).as_secs_f64() * 1e3);
                        for w in arrivals.windows(2) {
                            t.gaps.push((w[1] - w[0]).as_secs_f64() * 1e3);
                        }
                    }
                    Err(_) => t.errors += 1,
                }
            }
        }));
    }
    // Bounded: a level ends at most a minute after its deadline.
    let limit = Duration::from_secs_f64(load.seconds + 60.0);
    for t in tasks {
        tokio::time::timeout(limit, t)
            .await
            .context("a client outlived its bound")??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let after = dev.memory_stats();
    let mut t = std::mem::take(&mut *tally.lock().unwrap_or_else(|e| e.into_inner()));
    let c = &load.config;
    Ok(LoadRecord {
        suite: "serve",
        model: format!(
            "{}{}",
            c.family.name(),
            if load.half_weights { "/f16" } else { "" }
        ),
        shape: serde_json::json!({"hidden": c.hidden, "layers": c.layers, "embed": c.embed, "max_tokens": load.max_tokens}),
        device: crate::suites::device_name(dev),
        clients,
        pool_streams: load.streams,
        seconds: elapsed,
        requests: t.requests,
        tokens: t.tokens,
        tokens_per_s: t.tokens as f64 / elapsed,
        token_ms_p50: percentile(&mut t.gaps, 0.5),
        token_ms_p99: percentile(&mut t.gaps, 0.99),
        first_token_ms_p50: percentile(&mut t.first, 0.5),
        errors: t.errors,
        device_bytes_before: mem(before),
        device_bytes_after: mem(after),
        device_allocations: after.allocations - before.allocations,
        rss_before,
        rss_after: rss(),
    })
}

/// The table view.
pub fn print_table(records: &[LoadRecord]) {
    println!(
        "{:<6} {:>7} {:>6} {:>9} {:>10} {:>8} {:>8} {:>9} {:>6} {:>12} {:>12} {:>7}",
        "model",
        "clients",
        "pool",
        "tokens",
        "tokens/s",
        "p50 ms",
        "p99 ms",
        "first ms",
        "errors",
        "dev bytes",
        "->",
        "allocs"
    );
    for r in records {
        println!(
            "{:<6} {:>7} {:>6} {:>9} {:>10.0} {:>8.2} {:>8.2} {:>9.1} {:>6} {:>12} {:>12} {:>7}",
            r.model,
            r.clients,
            r.pool_streams,
            r.tokens,
            r.tokens_per_s,
            r.token_ms_p50,
            r.token_ms_p99,
            r.first_token_ms_p50,
            r.errors,
            r.device_bytes_before,
            r.device_bytes_after,
            r.device_allocations
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recur_nn::Family;

    /// A short load run end to end: every request completes, tokens flow,
    /// and the figures are consistent.
    #[test]
    fn a_short_load_run_completes_without_errors() {
        let Ok(dev) = Device::new() else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI=true but no adapter"
            );
            return;
        };
        let load = Load {
            levels: vec![1, 3],
            seconds: 0.4,
            config: SequenceLmConfig {
                family: Family::Gru,
                vocab: 0,
                hidden: 16,
                layers: 1,
                embed: 8,
                dropout: 0.0,
            },
            streams: 4,
            max_tokens: 5,
            half_weights: false,
        };
        let records = serve(&dev, &load).unwrap();
        assert_eq!(records.len(), 2);
        for r in &records {
            assert_eq!(r.errors, 0, "{r:?}");
            assert!(r.requests > 0 && r.tokens == r.requests * 5, "{r:?}");
            assert!(
                r.token_ms_p50 > 0.0 && r.token_ms_p99 >= r.token_ms_p50,
                "{r:?}"
            );
        }
    }
}
