//! First-order linear recurrences on the host, sequence by sequence, in f64.
//! Every slice holds one channel's sequence (length T); callers gather.

/// `(a1, b1) ∘ (a2, b2)`: the map `h -> a2 (a1 h + b1) + b2`.
pub fn combine_linear(x: (f64, f64), y: (f64, f64)) -> (f64, f64) {
    (x.0 * y.0, y.0 * x.1 + y.1)
}

/// `logaddexp(x, y)` without overflow.
pub fn logaddexp(x: f64, y: f64) -> f64 {
    let m = x.max(y);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((x - m).exp() + (y - m).exp()).ln()
}

/// The log-space combine: `h -> logaddexp(a2 + logaddexp(a1 + h, b1), b2)`.
pub fn combine_log(x: (f64, f64), y: (f64, f64)) -> (f64, f64) {
    (x.0 + y.0, logaddexp(y.0 + x.1, y.1))
}

/// `h_t = a_t h_{t−1} + b_t` from `h0`.
pub fn linear_scan(a: &[f64], b: &[f64], h0: f64) -> Vec<f64> {
    let mut h = h0;
    a.iter()
        .zip(b)
        .map(|(&a, &b)| {
            h = a * h + b;
            h
        })
        .collect()
}

/// `log h_t = logaddexp(la_t + log h_{t−1}, lb_t)` from `lh0` (−∞: h0 = 0).
pub fn log_scan(la: &[f64], lb: &[f64], lh0: f64) -> Vec<f64> {
    let mut h = lh0;
    la.iter()
        .zip(lb)
        .map(|(&a, &b)| {
            h = logaddexp(a + h, b);
            h
        })
        .collect()
}

/// Gradients of [`linear_scan`] for upstream `g` (dL/dh_t) and `d_last`
/// (dL/dh_{T−1} through the final state): (da, db, dh0).
pub fn linear_scan_backward(
    a: &[f64],
    h: &[f64],
    h0: f64,
    g: &[f64],
    d_last: f64,
) -> (Vec<f64>, Vec<f64>, f64) {
    let n = a.len();
    let (mut da, mut db) = (vec![0.0; n], vec![0.0; n]);
    let mut delta = d_last;
    for t in (0..n).rev() {
        let next = if t + 1 < n { a[t + 1] } else { 1.0 };
        delta = g[t] + next * delta;
        db[t] = delta;
        da[t] = delta * if t == 0 { h0 } else { h[t - 1] };
    }
    let dh0 = if n > 0 { a[0] * db[0] } else { d_last };
    (da, db, dh0)
}

/// Gradients of [`log_scan`] for upstream `g` (dL/d log h_t) and `d_last`:
/// (d la, d lb, d lh0), with w_t = exp(la_t + log h_{t−1} − log h_t).
pub fn log_scan_backward(
    la: &[f64],
    lb: &[f64],
    lh: &[f64],
    lh0: f64,
    g: &[f64],
    d_last: f64,
) -> (Vec<f64>, Vec<f64>, f64) {
    let n = la.len();
    let prev = |t: usize| if t == 0 { lh0 } else { lh[t - 1] };
    let w = |t: usize| (la[t] + prev(t) - lh[t]).exp();
    let (mut dla, mut dlb) = (vec![0.0; n], vec![0.0; n]);
    let mut delta = d_last;
    for t in (0..n).rev() {
        let next = if t + 1 < n { w(t + 1) } else { 1.0 };
        delta = g[t] + next * delta;
        dla[t] = delta * w(t);
        dlb[t] = delta * (lb[t] - lh[t]).exp();
    }
    let dh0 = if n > 0 { dla[0] } else { d_last };
    (dla, dlb, dh0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(n: usize, seed: u64) -> Vec<f64> {
        let mut r = crate::Rng::new(seed);
        (0..n).map(|_| r.uniform(-1.0, 1.0) as f64).collect()
    }

    type Combine = fn((f64, f64), (f64, f64)) -> (f64, f64);

    #[test]
    fn combines_are_associative() {
        let x = seq(6, 1);
        for i in 0..2 {
            let (p, q, r) = ((x[0], x[1]), (x[2], x[3]), (x[4], x[5]));
            let (c, what): (Combine, _) = if i == 0 {
                (combine_linear, "linear")
            } else {
                (combine_log, "log")
            };
            let (l, rr) = (c(c(p, q), r), c(p, c(q, r)));
            assert!(
                (l.0 - rr.0).abs() < 1e-12 && (l.1 - rr.1).abs() < 1e-12,
                "{what}: {l:?} vs {rr:?}"
            );
        }
    }

    #[test]
    fn log_scan_is_the_log_of_the_linear_scan() {
        let n = 9;
        let a: Vec<f64> = seq(n, 2).iter().map(|v| 0.5 + 0.4 * v).collect();
        let b: Vec<f64> = seq(n, 3).iter().map(|v| 1.0 + 0.5 * v).collect();
        let h = linear_scan(&a, &b, 0.7);
        let la: Vec<f64> = a.iter().map(|v| v.ln()).collect();
        let lb: Vec<f64> = b.iter().map(|v| v.ln()).collect();
        let lh = log_scan(&la, &lb, 0.7f64.ln());
        for (x, y) in h.iter().zip(&lh) {
            assert!((x.ln() - y).abs() < 1e-12);
        }
    }

    /// Both backwards match central differences of Σ w ⊙ h + v h_{T−1}.
    #[test]
    fn backwards_match_finite_differences() {
        let n = 7;
        let a: Vec<f64> = seq(n, 4).iter().map(|v| 0.5 + 0.4 * v).collect();
        let b = seq(n, 5);
        let w = seq(n, 6);
        let (h0, v) = (0.3, -0.8);
        let loss = |a: &[f64], b: &[f64], h0: f64| {
            let h = linear_scan(a, b, h0);
            h.iter().zip(&w).map(|(x, y)| x * y).sum::<f64>() + v * h[n - 1]
        };
        let h = linear_scan(&a, &b, h0);
        let (da, db, dh0) = linear_scan_backward(&a, &h, h0, &w, v);
        let e = 1e-6;
        for t in 0..n {
            let mut ap = a.clone();
            ap[t] += e;
            let mut am = a.clone();
            am[t] -= e;
            assert!(((loss(&ap, &b, h0) - loss(&am, &b, h0)) / (2.0 * e) - da[t]).abs() < 1e-7);
            let mut bp = b.clone();
            bp[t] += e;
            let mut bm = b.clone();
            bm[t] -= e;
            assert!(((loss(&a, &bp, h0) - loss(&a, &bm, h0)) / (2.0 * e) - db[t]).abs() < 1e-7);
        }
        assert!(((loss(&a, &b, h0 + e) - loss(&a, &b, h0 - e)) / (2.0 * e) - dh0).abs() < 1e-7);

        let la: Vec<f64> = a.iter().map(|x| x.ln()).collect();
        let lb: Vec<f64> = seq(n, 7);
        let lh0 = -0.4;
        let lloss = |la: &[f64], lb: &[f64], lh0: f64| {
            let h = log_scan(la, lb, lh0);
            h.iter().zip(&w).map(|(x, y)| x * y).sum::<f64>() + v * h[n - 1]
        };
        let lh = log_scan(&la, &lb, lh0);
        let (dla, dlb, dlh0) = log_scan_backward(&la, &lb, &lh, lh0, &w, v);
        for t in 0..n {
            let mut p = la.clone();
            p[t] += e;
            let mut m = la.clone();
            m[t] -= e;
            assert!(
                ((lloss(&p, &lb, lh0) - lloss(&m, &lb, lh0)) / (2.0 * e) - dla[t]).abs() < 1e-7
            );
            let mut p = lb.clone();
            p[t] += e;
            let mut m = lb.clone();
            m[t] -= e;
            assert!(
                ((lloss(&la, &p, lh0) - lloss(&la, &m, lh0)) / (2.0 * e) - dlb[t]).abs() < 1e-7
            );
        }
        assert!(
            ((lloss(&la, &lb, lh0 + e) - lloss(&la, &lb, lh0 - e)) / (2.0 * e) - dlh0).abs() < 1e-7
        );
    }
}
