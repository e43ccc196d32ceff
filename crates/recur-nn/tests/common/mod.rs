//! Shared helpers for recur-nn's tests.
#![allow(dead_code)]

use recur_nn::{functional as F, Device, Rng, Tensor, Var};
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

pub fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

/// Checks d f / d input for every input against central differences.
/// `f` maps the inputs to any tensor; it is reduced to a scalar with fixed
/// random weights, so upstream gradients are not all ones.
pub fn gradcheck(
    dev: &Device,
    what: &str,
    inputs: &[(Vec<f32>, Vec<usize>)],
    f: impl Fn(&[Var]) -> recur_nn::Result<Var>,
) {
    let vars = |data: &[Vec<f32>], grad: bool| -> Vec<Var> {
        data.iter()
            .zip(inputs)
            .map(|(d, (_, s))| {
                let t = Tensor::from_slice(dev, d, s).unwrap();
                if grad {
                    Var::param(t)
                } else {
                    Var::new(t)
                }
            })
            .collect()
    };
    let base: Vec<Vec<f32>> = inputs.iter().map(|(d, _)| d.clone()).collect();
    let probe = f(&vars(&base, false)).unwrap();
    let w =
        Var::new(Tensor::from_slice(dev, &data(probe.value().numel(), 99), probe.shape()).unwrap());
    let loss = |xs: &[Var]| -> Var { F::sum_all(&F::mul(&f(xs).unwrap(), &w).unwrap()).unwrap() };
    let params = vars(&base, true);
    loss(&params).backward().unwrap();
    let eps = 3e-3;
    for (k, p) in params.iter().enumerate() {
        let grad = p
            .grad()
            .unwrap_or_else(|| panic!("{what}: input {k} got no gradient"))
            .to_vec()
            .unwrap();
        for i in 0..base[k].len() {
            let at = |delta: f32| {
                let mut d = base.clone();
                d[k][i] += delta;
                loss(&vars(&d, false)).item().unwrap()
            };
            let num = (at(eps) - at(-eps)) / (2.0 * eps);
            assert!(
                (num - grad[i]).abs() <= 3e-3 + 2e-2 * num.abs(),
                "{what}: d/d input {k}[{i}]: numeric {num}, autograd {}",
                grad[i]
            );
        }
    }
}

pub fn input(shape: &[usize], seed: u64) -> (Vec<f32>, Vec<usize>) {
    (data(shape.iter().product(), seed), shape.to_vec())
}

/// The largest absolute difference between two equally long slices.
pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
