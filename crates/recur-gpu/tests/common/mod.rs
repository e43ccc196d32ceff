//! Shared helpers for the GPU tests.
#![allow(dead_code)]

use std::sync::OnceLock;

use recur_gpu::{Device, Rng, Tensor};

/// One device per test binary. Without an adapter the tests are skipped
/// locally, but under CI (`CI=true`) a missing adapter fails the run.
pub fn device() -> Option<Device> {
    static DEV: OnceLock<Option<Device>> = OnceLock::new();
    DEV.get_or_init(|| match Device::new() {
        Ok(d) => {
            eprintln!("{}", d.info());
            Some(d)
        }
        Err(e) => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!ci, "CI=true but no GPU adapter: {e}");
            eprintln!("skipping GPU test: {e}");
            None
        }
    })
    .clone()
}

/// Deterministic uniform data in [-1, 1).
pub fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.uniform(-1.0, 1.0)).collect()
}

pub fn upload(dev: &Device, x: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(dev, x, shape).expect("upload")
}

/// Asserts `got` is within `atol + rtol·|want|` of `want` everywhere, naming
/// the first index that differs.
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= atol + rtol * w.abs() || (g.is_nan() && w.is_nan()) || g == w;
        assert!(ok, "{what}: index {i}: gpu {g} vs cpu {w}");
    }
}
