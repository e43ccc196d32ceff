use crate::ops::norm::Norm;

/// Per-row (mean, rstd) of `x` viewed as rows of `cols`, in f64.
fn row_stats(kind: Norm, row: &[f64], eps: f64) -> (f64, f64) {
    let n = row.len() as f64;
    let mean = match kind {
        Norm::Layer => row.iter().sum::<f64>() / n,
        Norm::Rms => 0.0,
    };
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// LayerNorm / RMSNorm over rows of length `cols`, with optional weight and
/// bias: the outputs, and (mean, rstd) per row.
pub fn norm(
    kind: Norm,
    x: &[f64],
    cols: usize,
    gamma: Option<&[f64]>,
    beta: Option<&[f64]>,
    eps: f64,
) -> (Vec<f64>, Vec<(f64, f64)>) {
    let mut y = Vec::with_capacity(x.len());
    let mut stats = Vec::new();
    for row in x.chunks(cols) {
        let (mean, rstd) = row_stats(kind, row, eps);
        stats.push((mean, rstd));
        for (i, v) in row.iter().enumerate() {
            let mut o = (v - mean) * rstd;
            if let Some(g) = gamma {
                o *= g[i];
            }
            if let Some(b) = beta {
                o += b[i];
            }
            y.push(o);
        }
    }
    (y, stats)
}

/// Gradients of [`norm`] for upstream `dy`: (dx, dgamma, dbeta).
pub fn norm_backward(
    kind: Norm,
    x: &[f64],
    cols: usize,
    gamma: Option<&[f64]>,
    eps: f64,
    dy: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = cols as f64;
    let mut dx = Vec::with_capacity(x.len());
    let (mut dgamma, mut dbeta) = (vec![0.0; cols], vec![0.0; cols]);
    for (row, dyr) in x.chunks(cols).zip(dy.chunks(cols)) {
        let (mean, rstd) = row_stats(kind, row, eps);
        let xhat: Vec<f64> = row.iter().map(|v| (v - mean) * rstd).collect();
        let g: Vec<f64> = (0..cols)
            .map(|i| dyr[i] * gamma.map_or(1.0, |g| g[i]))
            .collect();
        let mg = match kind {
            Norm::Layer => g.iter().sum::<f64>() / n,
            Norm::Rms => 0.0,
        };
        let mgx = g.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / n;
        for i in 0..cols {
            dx.push(rstd * (g[i] - mg - xhat[i] * mgx));
            dgamma[i] += dyr[i] * xhat[i];
            dbeta[i] += dyr[i];
        }
    }
    (dx, dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The analytic gradients match central differences of Σ w ⊙ y.
    #[test]
    fn norm_backward_matches_finite_differences() {
        let cols = 5;
        let x: Vec<f64> = (0..3 * cols)
            .map(|i| ((i * 7 % 11) as f64 - 5.0) * 0.3)
            .collect();
        let gamma: Vec<f64> = (0..cols).map(|i| 0.5 + 0.2 * i as f64).collect();
        let beta: Vec<f64> = (0..cols).map(|i| 0.1 * i as f64).collect();
        let w: Vec<f64> = (0..x.len())
            .map(|i| ((i * 5 % 7) as f64 - 3.0) * 0.25)
            .collect();
        for kind in [Norm::Layer, Norm::Rms] {
            let loss = |x: &[f64], g: &[f64], b: &[f64]| -> f64 {
                let (y, _) = norm(kind, x, cols, Some(g), Some(b), 1e-5);
                y.iter().zip(&w).map(|(a, b)| a * b).sum()
            };
            let (dx, dg, db) = norm_backward(kind, &x, cols, Some(&gamma), 1e-5, &w);
            let h = 1e-6;
            let fd = |f: &dyn Fn(f64) -> f64| (f(h) - f(-h)) / (2.0 * h);
            for i in 0..x.len() {
                let num = fd(&|e| {
                    let mut xp = x.clone();
                    xp[i] += e;
                    loss(&xp, &gamma, &beta)
                });
                assert!(
                    (num - dx[i]).abs() < 1e-6,
                    "{kind:?} dx[{i}] {num} vs {}",
                    dx[i]
                );
            }
            for i in 0..cols {
                let ng = fd(&|e| {
                    let mut gp = gamma.clone();
                    gp[i] += e;
                    loss(&x, &gp, &beta)
                });
                let nb = fd(&|e| {
                    let mut bp = beta.clone();
                    bp[i] += e;
                    loss(&x, &gamma, &bp)
                });
                assert!((ng - dg[i]).abs() < 1e-6, "{kind:?} dgamma[{i}]");
                assert!((nb - db[i]).abs() < 1e-6, "{kind:?} dbeta[{i}]");
            }
        }
    }
}
