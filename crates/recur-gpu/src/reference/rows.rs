use crate::ops::reduce::Reduce;

/// Reduces `x` viewed as (outer, n, inner) over the middle axis.
pub fn reduce(x: &[f32], outer: usize, n: usize, inner: usize, op: Reduce) -> Vec<f32> {
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let vals = (0..n).map(|j| x[(o * n + j) * inner + i] as f64);
            let r = match op {
                Reduce::Sum => vals.sum(),
                Reduce::Mean => vals.sum::<f64>() / n as f64,
                Reduce::Max => vals.fold(f64::NEG_INFINITY, f64::max),
                Reduce::SumSquares => vals.map(|v| v * v).sum(),
            };
            out.push(r as f32);
        }
    }
    out
}

/// Softmax (or log-softmax) over rows of length `cols`.
pub fn softmax(x: &[f32], cols: usize, log: bool) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(cols) {
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
        let s: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
        out.extend(row.iter().map(|&v| {
            let z = v as f64 - m;
            (if log { z - s.ln() } else { z.exp() / s }) as f32
        }));
    }
    out
}

/// Cross-entropy over rows of length `cols`: (loss, d loss / d logits).
pub fn cross_entropy(
    x: &[f32],
    cols: usize,
    targets: &[u32],
    ignore: Option<u32>,
    mean: bool,
) -> (f32, Vec<f32>) {
    let p = softmax(x, cols, false);
    let lp = softmax(x, cols, true);
    let counted = |t: u32| Some(t) != ignore && (t as usize) < cols;
    let count = targets.iter().filter(|&&t| counted(t)).count();
    let scale = if mean { 1.0 / count.max(1) as f64 } else { 1.0 };
    let mut loss = 0.0f64;
    let mut grad = vec![0.0f32; x.len()];
    for (r, &t) in targets.iter().enumerate() {
        if !counted(t) {
            continue;
        }
        loss -= lp[r * cols + t as usize] as f64;
        for c in 0..cols {
            let g = p[r * cols + c] as f64 - (c == t as usize) as u8 as f64;
            grad[r * cols + c] = (g * scale) as f32;
        }
    }
    ((loss * scale) as f32, grad)
}

/// Rows of `table` (rows of width `dim`) at `ids`; out-of-range ids give zeros.
pub fn embedding(table: &[f32], dim: usize, ids: &[u32]) -> Vec<f32> {
    let vocab = table.len() / dim.max(1);
    ids.iter()
        .flat_map(|&id| {
            let id = id as usize;
            (0..dim).map(move |d| if id < vocab { table[id * dim + d] } else { 0.0 })
        })
        .collect()
}

/// Adds each row of `dout` into `grad` at its id.
pub fn embedding_backward(grad: &mut [f32], dim: usize, ids: &[u32], dout: &[f32]) {
    let vocab = grad.len() / dim.max(1);
    for (t, &id) in ids.iter().enumerate() {
        if (id as usize) < vocab {
            for d in 0..dim {
                grad[id as usize * dim + d] += dout[t * dim + d];
            }
        }
    }
}

/// (Z, R, C) -> (Z, C, R).
pub fn transpose(x: &[f32], z: usize, r: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for zi in 0..z {
        for i in 0..r {
            for j in 0..c {
                out[zi * r * c + j * r + i] = x[zi * r * c + i * c + j];
            }
        }
    }
    out
}

/// Elements `start..start+len` of the middle axis of `x` viewed as (outer, n, inner).
pub fn slice(x: &[f32], n: usize, inner: usize, start: usize, len: usize) -> Vec<f32> {
    x.chunks(n * inner)
        .flat_map(|block| block[start * inner..(start + len) * inner].iter().copied())
        .collect()
}

/// Joins parts viewed as (outer, n_i, inner) along the middle axis.
pub fn concat(parts: &[(&[f32], usize)], outer: usize, inner: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for o in 0..outer {
        for (x, n) in parts {
            out.extend_from_slice(&x[o * n * inner..(o + 1) * n * inner]);
        }
    }
    out
}

fn hash32(x: u32) -> u32 {
    let mut h = x;
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846c_a68b);
    h ^= h >> 16;
    h
}

/// The GPU's inverted-dropout mask for `n` elements: 0 with probability
/// `p`, 1/(1 − p) otherwise, from a hash of `seed` and the index.
pub fn dropout_mask(n: usize, p: f32, seed: u64) -> Vec<f32> {
    let keep = 1.0 - p;
    let s = hash32(seed as u32);
    (0..n)
        .map(|i| {
            let h = hash32(hash32((i as u32).wrapping_add(s)) ^ (seed >> 32) as u32);
            let u = (h >> 8) as f32 * (1.0 / 16_777_216.0);
            if u < keep {
                1.0 / keep
            } else {
                0.0
            }
        })
        .collect()
}
