//! Kernel choice by measurement: the first time an op sees a shape class on
//! a device, it times each candidate kernel on the real operands and keeps
//! the fastest for the rest of the process (and, with `RECUR_TUNE_CACHE`,
//! on disk for the next one). Where tuning is off (CPU adapters by default,
//! or `DeviceOptions::tune`), ops fall back to their deterministic rule.

// The measuring half is native only (see `Tuner::new`).
#![cfg_attr(target_arch = "wasm32", allow(dead_code))]

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::device::Device;
use crate::error::{Error, Result};

/// Timed runs per candidate (after one untimed run that builds its
/// pipeline); the median counts.
const RUNS: usize = 3;

/// The choices made so far on one device.
#[derive(Debug)]
pub(crate) struct Tuner {
    pub(crate) enabled: bool,
    /// Lines `adapter \t class \t choice`, read at open, appended to.
    path: Option<PathBuf>,
    adapter: String,
    choices: Mutex<HashMap<String, String>>,
    measured: AtomicUsize,
}

impl Tuner {
    /// A tuner for `adapter`, with the choices a cache file holds for it.
    /// A missing, unreadable or malformed file is no error: its usable lines
    /// count, the rest are ignored (the cache only ever saves time). Never
    /// enabled on wasm32, where timing would block the browser.
    pub(crate) fn new(enabled: bool, path: Option<PathBuf>, adapter: &str) -> Self {
        let enabled = enabled && cfg!(not(target_arch = "wasm32"));
        let mut choices = HashMap::new();
        if let Some(text) = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
            for line in text.lines() {
                let mut parts = line.split('\t');
                if let (Some(a), Some(class), Some(choice), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                {
                    if a == adapter && !class.is_empty() && !choice.is_empty() {
                        choices.insert(class.to_string(), choice.to_string());
                    }
                }
            }
        }
        Self {
            enabled,
            path,
            adapter: adapter.replace(['\t', '\n'], " "),
            choices: Mutex::new(choices),
            measured: AtomicUsize::new(0),
        }
    }

    fn get(&self, class: &str) -> Option<String> {
        self.choices.lock().ok()?.get(class).cloned()
    }

    fn record(&self, class: &str, choice: &str) {
        if let Ok(mut c) = self.choices.lock() {
            c.insert(class.to_string(), choice.to_string());
        }
        if let Some(p) = &self.path {
            // Best effort: a cache that cannot be written costs a re-tune.
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
            {
                let _ = writeln!(f, "{}\t{class}\t{choice}", self.adapter);
            }
        }
    }
}

impl Device {
    /// True when ops choose kernels by measurement on this device.
    pub fn tuning(&self) -> bool {
        self.shared.tuner.enabled
    }

    /// The choices made (or loaded) so far: (shape class, kernel), sorted.
    pub fn tuned(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = match self.shared.tuner.choices.lock() {
            Ok(c) => c.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }

    /// How many shape classes this device has measured (not loaded).
    pub fn tune_measurements(&self) -> usize {
        self.shared.tuner.measured.load(Ordering::Relaxed)
    }

    /// Tuning waits for the GPU, which a browser cannot do: there it is off
    /// (see [`Tuner::new`]) and this is never reached.
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn tune<F>(
        &self,
        class: &str,
        _candidates: &[&'static str],
        _run: F,
    ) -> Result<&'static str>
    where
        F: FnMut(&'static str) -> Result<()>,
    {
        Err(Error::InvalidArgument {
            op: "tune",
            what: format!("tuning {class} would block the browser"),
        })
    }

    /// The candidate for `class`: the cached choice, or the fastest of
    /// `candidates` by wall clock, each run by `run` (which must leave the
    /// caller's tensors untouched). Candidates that fail are skipped; if all
    /// fail, the first error is returned. Waits for the GPU.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn tune<F>(
        &self,
        class: &str,
        candidates: &[&'static str],
        mut run: F,
    ) -> Result<&'static str>
    where
        F: FnMut(&'static str) -> Result<()>,
    {
        let tuner = &self.shared.tuner;
        if let Some(c) = tuner.get(class) {
            if let Some(&hit) = candidates.iter().find(|&&k| k == c) {
                return Ok(hit);
            }
        }
        self.sync()?;
        let mut best: Option<(f64, &'static str)> = None;
        let mut first_err: Option<Error> = None;
        for &cand in candidates {
            let mut time = || -> Result<f64> {
                run(cand)?;
                self.sync()?;
                let mut t = Vec::with_capacity(RUNS);
                for _ in 0..RUNS {
                    let t0 = std::time::Instant::now();
                    run(cand)?;
                    self.sync()?;
                    t.push(t0.elapsed().as_secs_f64());
                }
                t.sort_by(f64::total_cmp);
                Ok(t[RUNS / 2])
            };
            match time() {
                Ok(s) if best.is_none_or(|(b, _)| s < b) => best = Some((s, cand)),
                Ok(_) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match best {
            Some((_, cand)) => {
                tuner.measured.fetch_add(1, Ordering::Relaxed);
                tuner.record(class, cand);
                Ok(cand)
            }
            None => Err(first_err.unwrap_or(Error::InvalidArgument {
                op: "tune",
                what: format!("no candidate kernels for {class}"),
            })),
        }
    }
}

/// ⌈log₂ n⌉: sizes within a factor of two share a class.
pub(crate) fn bucket(n: usize) -> u32 {
    n.max(1).next_power_of_two().trailing_zeros()
}
