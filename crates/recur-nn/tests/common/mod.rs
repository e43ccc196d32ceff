//! Shared helpers for recur-nn's tests.
#![allow(dead_code)]

use recur_nn::{Device, Tensor};
use safetensors::SafeTensors;

/// A device, or `None` (the test is skipped) when no adapter exists; under
/// CI (`CI=true`) a missing adapter fails instead.
pub fn device() -> Option<Device> {
    match Device::new() {
        Ok(d) => Some(d),
        Err(e) => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI=true but no adapter: {e}"
            );
            None
        }
    }
}

/// A safetensors fixture written by a script in tools/.
pub struct Fixture<'a> {
    pub st: SafeTensors<'a>,
}

impl Fixture<'_> {
    pub fn get(&self, name: &str) -> Option<(Vec<f32>, Vec<usize>)> {
        let t = self.st.tensor(name).ok()?;
        Some((bytemuck_f32(t.data()), t.shape().to_vec()))
    }
    pub fn tensor(&self, dev: &Device, name: &str) -> Option<Tensor> {
        self.get(name)
            .map(|(v, s)| Tensor::from_slice(dev, &v, &s).unwrap())
    }
}

fn bytemuck_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// max-abs ≤ 1e-4 or relative RMS ≤ 5e-3 (DESIGN.md §5).
pub fn assert_matches(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let max_abs = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let err: f64 = got
        .iter()
        .zip(want)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum();
    let norm: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum();
    let rel_rms = (err / norm.max(1e-30)).sqrt();
    assert!(
        max_abs <= 1e-4 || rel_rms <= 5e-3,
        "{what}: max-abs {max_abs:e}, relative RMS {rel_rms:e}"
    );
}
