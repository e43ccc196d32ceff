//! Timing: GPU timestamp queries when the adapter has them, wall clock
//! around a full sync otherwise; median of several runs after a warm-up.

use std::time::Instant;

use recur_gpu::Device;

/// Per-call times in milliseconds.
pub struct Timing {
    /// Sorted samples: GPU time where the adapter has timestamps and the
    /// call went out in one submission, else wall clock.
    pub samples: Vec<f64>,
    /// Sorted wall-clock samples (recording, submission, GPU work and the
    /// wait), what a user waits for.
    pub wall: Vec<f64>,
}

fn median_of(s: &[f64]) -> f64 {
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

impl Timing {
    /// Median sample.
    pub fn median(&self) -> f64 {
        median_of(&self.samples)
    }
    /// Median wall-clock sample.
    pub fn wall_median(&self) -> f64 {
        median_of(&self.wall)
    }
    /// Fastest sample.
    pub fn min(&self) -> f64 {
        self.samples[0]
    }
    /// Slowest sample.
    pub fn max(&self) -> f64 {
        self.samples[self.samples.len() - 1]
    }
}

/// Runs `record` (which records `calls` calls of the kernel) once to warm
/// up, then `runs` times, each in its own submission; returns per-call times.
pub fn measure(
    dev: &Device,
    runs: usize,
    calls: usize,
    mut record: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Timing> {
    record()?;
    dev.sync()?;
    let mut samples = Vec::with_capacity(runs);
    let mut walls = Vec::with_capacity(runs);
    for _ in 0..runs.max(5) {
        let before = dev.counters().submissions;
        let start = Instant::now();
        record()?;
        let gpu = dev.sync_timed()?;
        let wall = start.elapsed();
        // GPU timestamps bracket the final submission only: when a long
        // recording went out in several, time the whole call on the wall.
        let single = dev.counters().submissions - before <= 1;
        let t = gpu.filter(|_| single).unwrap_or(wall);
        samples.push(t.as_secs_f64() * 1e3 / calls as f64);
        walls.push(wall.as_secs_f64() * 1e3 / calls as f64);
    }
    samples.sort_by(f64::total_cmp);
    walls.sort_by(f64::total_cmp);
    Ok(Timing {
        samples,
        wall: walls,
    })
}
