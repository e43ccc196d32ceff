//! Parameter initialisers (host-side, from a seeded generator).

use recur_gpu::Rng;

/// A (rows, cols) matrix with orthonormal columns (rows ≥ cols) or rows
/// (rows < cols), as `torch.nn.init.orthogonal_` gives: modified Gram-Schmidt
/// on a standard normal matrix.
pub fn orthogonal(rows: usize, cols: usize, gain: f32, rng: &mut Rng) -> Vec<f32> {
    let (long, short) = (rows.max(cols), rows.min(cols));
    // `short` orthonormal vectors of length `long`.
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(short);
    while q.len() < short {
        let mut v: Vec<f64> = (0..long).map(|_| rng.normal() as f64).collect();
        for u in &q {
            let dot: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-6 {
            q.push(v.into_iter().map(|a| a / norm).collect());
        }
    }
    let mut out = vec![0.0f32; rows * cols];
    for (k, u) in q.iter().enumerate() {
        for (l, &val) in u.iter().enumerate() {
            let (r, c) = if rows >= cols { (l, k) } else { (k, l) };
            out[r * cols + c] = gain * val as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_columns_are_orthonormal() {
        let mut rng = Rng::new(5);
        for (rows, cols) in [(12, 3), (3, 12), (7, 7)] {
            let m = orthogonal(rows, cols, 1.0, &mut rng);
            let (n, along_rows) = if rows >= cols {
                (cols, true)
            } else {
                (rows, false)
            };
            for a in 0..n {
                for b in 0..n {
                    let dot: f32 = if along_rows {
                        (0..rows).map(|r| m[r * cols + a] * m[r * cols + b]).sum()
                    } else {
                        (0..cols).map(|c| m[a * cols + c] * m[b * cols + c]).sum()
                    };
                    let want = if a == b { 1.0 } else { 0.0 };
                    assert!(
                        (dot - want).abs() < 1e-5,
                        "({rows},{cols}) [{a},{b}] = {dot}"
                    );
                }
            }
        }
    }
}
