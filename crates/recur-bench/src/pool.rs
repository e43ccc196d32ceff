//! `recur-bench pool`: a stream pool's memory over a long run. Streams
//! open, close, reset, snapshot and restore at random around masked batched
//! steps (as in the `pool_memory` test, for as many steps as asked); the
//! device memory held, driver allocations and RSS are sampled ten times.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use recur_gpu::Device;
use recur_nn::{Module, Rng, SequenceLmConfig, StreamId, StreamPool};
use serde::Serialize;

/// One sample of the run.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub step: usize,
    pub seconds: f64,
    /// Device bytes held (live + pooled).
    pub device_bytes: u64,
    /// Driver allocations so far.
    pub allocations: u64,
    pub rss: u64,
    pub streams_opened: usize,
}

/// The run's figures.
#[derive(Clone, Debug, Serialize)]
pub struct PoolRecord {
    pub suite: &'static str,
    pub model: String,
    pub device: String,
    pub capacity: usize,
    pub steps: usize,
    pub steps_per_s: f64,
    pub samples: Vec<Sample>,
}

/// Runs `steps` churning steps of a pool of `capacity` streams.
pub fn pool(
    dev: &Device,
    config: SequenceLmConfig,
    capacity: usize,
    steps: usize,
) -> Result<PoolRecord> {
    let lm = config.init(dev, &mut Rng::new(1))?;
    lm.set_training(false);
    let mut pool = StreamPool::new(Arc::new(lm), dev, capacity)?;
    let mut rng = Rng::new(2);
    let mut open: Vec<StreamId> = Vec::new();
    let mut snapshot = None;
    let mut opened = 0;
    let mut samples = Vec::new();
    let every = (steps / 10).max(1);
    let t0 = Instant::now();
    for step in 0..=steps {
        if step % every == 0 {
            let m = dev.memory_stats();
            samples.push(Sample {
                step,
                seconds: t0.elapsed().as_secs_f64(),
                device_bytes: m.bytes_live + m.bytes_pooled,
                allocations: m.allocations,
                rss: crate::serve::rss(),
                streams_opened: opened,
            });
            let s = &samples[samples.len() - 1];
            eprintln!(
                "pool: step {step}: {} device bytes, {} allocations, RSS {} MB",
                s.device_bytes,
                s.allocations,
                s.rss >> 20
            );
        }
        if step == steps {
            break;
        }
        let r = rng.next_f32();
        if open.len() < capacity && r < 0.3 {
            open.push(pool.open()?);
            opened += 1;
        } else if !open.is_empty() && r > 0.9 {
            let i = (rng.next_u64() % open.len() as u64) as usize;
            pool.close(open.swap_remove(i))?;
        } else if let (Some(&id), true) = (open.first(), r > 0.88) {
            pool.reset(id)?;
        } else if let (Some(&id), true) = (open.last(), r > 0.86) {
            match snapshot.take() {
                Some(s) => pool.restore(id, &s)?,
                None => snapshot = Some(pool.snapshot(id)?),
            }
        }
        let n = if open.len() > 1 {
            open.len() - 1
        } else {
            open.len()
        };
        let vocab = config.vocab as u64;
        let inputs: Vec<_> = open
            .iter()
            .take(n)
            .map(|&id| (id, (rng.next_u64() % vocab) as u32))
            .collect();
        pool.step(&inputs)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(PoolRecord {
        suite: "pool",
        model: config.family.name().into(),
        device: crate::suites::device_name(dev),
        capacity,
        steps,
        steps_per_s: steps as f64 / secs,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use recur_nn::Family;

    #[test]
    fn a_short_pool_run_samples_flat_memory() {
        let Ok(dev) = Device::new() else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI=true but no adapter"
            );
            return;
        };
        let config = SequenceLmConfig {
            family: Family::Gru,
            vocab: 7,
            hidden: 8,
            layers: 2,
            embed: 4,
            dropout: 0.0,
        };
        let r = pool(&dev, config, 4, 600).unwrap();
        assert_eq!(r.samples.len(), 11);
        let (a, b) = (&r.samples[1], &r.samples[10]);
        assert!(b.streams_opened > 20, "{b:?}");
        assert_eq!(a.allocations, b.allocations, "{a:?} -> {b:?}");
        assert_eq!(a.device_bytes, b.device_bytes);
    }
}
