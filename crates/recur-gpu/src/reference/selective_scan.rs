//! The selective scan (mamba_ssm's `selective_scan_ref`) and its backward in
//! f64, with the kernels' loop structure: per (batch, channel), time outer,
//! state index inner.

use super::sigmoid;

/// Sizes: batch, channels, length, state size, groups sharing B and C.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SsDims {
    /// B
    pub batch: usize,
    /// D
    pub dim: usize,
    /// L
    pub len: usize,
    /// N
    pub nstate: usize,
    /// G (channel d reads group d / (D / G))
    pub groups: usize,
}

/// Inputs in mamba_ssm's shapes, row-major.
#[derive(Clone, Copy, Debug)]
pub struct SsInputs<'a> {
    /// Sizes.
    pub dims: SsDims,
    /// (B, D, L)
    pub u: &'a [f64],
    /// (B, D, L), before bias and softplus.
    pub delta: &'a [f64],
    /// (D, N)
    pub a: &'a [f64],
    /// (B, G, N, L)
    pub b: &'a [f64],
    /// (B, G, N, L)
    pub c: &'a [f64],
    /// (D), the skip term.
    pub d: Option<&'a [f64]>,
    /// (B, D, L), the gate.
    pub z: Option<&'a [f64]>,
    /// (D)
    pub delta_bias: Option<&'a [f64]>,
    /// (B, D, N)
    pub h0: Option<&'a [f64]>,
    /// δ = softplus(δ + bias) (else δ + bias).
    pub softplus: bool,
}

/// Gradients of a scalar loss with respect to every input.
#[derive(Clone, Debug, Default)]
pub struct SsGrads {
    /// (B, D, L)
    pub du: Vec<f64>,
    /// (B, D, L)
    pub ddelta: Vec<f64>,
    /// (D, N)
    pub da: Vec<f64>,
    /// (B, G, N, L)
    pub db: Vec<f64>,
    /// (B, G, N, L)
    pub dc: Vec<f64>,
    /// (D)
    pub dd: Vec<f64>,
    /// (B, D, L)
    pub dz: Vec<f64>,
    /// (D)
    pub ddelta_bias: Vec<f64>,
    /// (B, D, N)
    pub dh0: Vec<f64>,
}

impl SsInputs<'_> {
    fn seq(&self, b: usize, d: usize, t: usize) -> usize {
        (b * self.dims.dim + d) * self.dims.len + t
    }

    fn bc(&self, b: usize, d: usize, n: usize, t: usize) -> usize {
        let s = self.dims;
        let g = d / (s.dim / s.groups);
        ((b * s.groups + g) * s.nstate + n) * s.len + t
    }

    /// δ and d δ / d δraw at (b, d, t).
    fn delta_at(&self, b: usize, d: usize, t: usize) -> (f64, f64) {
        let v = self.delta[self.seq(b, d, t)] + self.delta_bias.map_or(0.0, |x| x[d]);
        if self.softplus {
            let sp = v.max(0.0) + (-v.abs()).exp().ln_1p();
            (sp, sigmoid(v))
        } else {
            (v, 1.0)
        }
    }

    /// The states x_t of channel (b, d) for t = −1 (h0) .. L−1, (L+1, N).
    fn states(&self, b: usize, d: usize) -> Vec<Vec<f64>> {
        let s = self.dims;
        let mut x: Vec<f64> = match self.h0 {
            Some(h) => h[(b * s.dim + d) * s.nstate..][..s.nstate].to_vec(),
            None => vec![0.0; s.nstate],
        };
        let mut all = vec![x.clone()];
        for t in 0..s.len {
            let (dl, _) = self.delta_at(b, d, t);
            let u = self.u[self.seq(b, d, t)];
            for (n, xn) in x.iter_mut().enumerate() {
                let a = (dl * self.a[d * s.nstate + n]).exp();
                *xn = a * *xn + dl * self.b[self.bc(b, d, n, t)] * u;
            }
            all.push(x.clone());
        }
        all
    }

    /// (y + D u, gate multiplier) at (b, d, t), from the state x_t.
    fn y_at(&self, b: usize, d: usize, t: usize, x: &[f64]) -> f64 {
        let y: f64 = (0..self.dims.nstate)
            .map(|n| self.c[self.bc(b, d, n, t)] * x[n])
            .sum();
        y + self.d.map_or(0.0, |dv| dv[d]) * self.u[self.seq(b, d, t)]
    }

    fn gate(&self, b: usize, d: usize, t: usize) -> (f64, f64) {
        match self.z {
            Some(z) => {
                let zv = z[self.seq(b, d, t)];
                let s = sigmoid(zv);
                (zv * s, s * (1.0 + zv * (1.0 - s)))
            }
            None => (1.0, 0.0),
        }
    }
}

/// The outputs (B, D, L) and the final state (B, D, N).
pub fn selective_scan(x: &SsInputs) -> (Vec<f64>, Vec<f64>) {
    let s = x.dims;
    let mut out = vec![0.0; s.batch * s.dim * s.len];
    let mut last = vec![0.0; s.batch * s.dim * s.nstate];
    for b in 0..s.batch {
        for d in 0..s.dim {
            let states = x.states(b, d);
            for t in 0..s.len {
                out[x.seq(b, d, t)] = x.y_at(b, d, t, &states[t + 1]) * x.gate(b, d, t).0;
            }
            last[(b * s.dim + d) * s.nstate..][..s.nstate].copy_from_slice(&states[s.len]);
        }
    }
    (out, last)
}

/// Gradients for upstream `dout` (B, D, L) and `dlast` (B, D, N): the
/// reverse recurrence dx_t = dy_t C_t + a_{t+1} dx_{t+1} from dx_L = dlast.
pub fn selective_scan_backward(x: &SsInputs, dout: &[f64], dlast: Option<&[f64]>) -> SsGrads {
    let s = x.dims;
    let (seq, bcn) = (
        s.batch * s.dim * s.len,
        s.batch * s.groups * s.nstate * s.len,
    );
    let mut g = SsGrads {
        du: vec![0.0; seq],
        ddelta: vec![0.0; seq],
        da: vec![0.0; s.dim * s.nstate],
        db: vec![0.0; bcn],
        dc: vec![0.0; bcn],
        dd: vec![0.0; s.dim],
        dz: vec![0.0; seq],
        ddelta_bias: vec![0.0; s.dim],
        dh0: vec![0.0; s.batch * s.dim * s.nstate],
    };
    for b in 0..s.batch {
        for d in 0..s.dim {
            let states = x.states(b, d);
            let skip = x.d.map_or(0.0, |dv| dv[d]);
            let mut dx: Vec<f64> = match dlast {
                Some(l) => l[(b * s.dim + d) * s.nstate..][..s.nstate].to_vec(),
                None => vec![0.0; s.nstate],
            };
            // a_{t+1} per n, for the step after t (1 past the end).
            let mut a_next = vec![1.0; s.nstate];
            for t in (0..s.len).rev() {
                let i = x.seq(b, d, t);
                let (dl, ddl_draw) = x.delta_at(b, d, t);
                let u = x.u[i];
                let (gate, dgate) = x.gate(b, d, t);
                let dy = dout[i] * gate;
                g.dz[i] = dout[i] * x.y_at(b, d, t, &states[t + 1]) * dgate;
                g.dd[d] += dy * u;
                let mut du = dy * skip;
                let mut ddl = 0.0;
                for n in 0..s.nstate {
                    let an = x.a[d * s.nstate + n];
                    let k = x.bc(b, d, n, t);
                    dx[n] = dy * x.c[k] + a_next[n] * dx[n];
                    g.dc[k] += dy * states[t + 1][n];
                    let a = (dl * an).exp();
                    let da = dx[n] * states[t][n];
                    ddl += da * a * an + dx[n] * x.b[k] * u;
                    du += dx[n] * dl * x.b[k];
                    g.da[d * s.nstate + n] += da * a * dl;
                    g.db[k] += dx[n] * dl * u;
                    a_next[n] = a;
                }
                g.du[i] = du;
                g.ddelta[i] = ddl * ddl_draw;
                g.ddelta_bias[d] += ddl * ddl_draw;
            }
            for n in 0..s.nstate {
                g.dh0[(b * s.dim + d) * s.nstate + n] = a_next[n] * dx[n];
            }
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                lo + (hi - lo) * ((s >> 11) as f64 / (1u64 << 53) as f64)
            })
            .collect()
    }

    /// Every gradient of Σ w ⊙ out + Σ v ⊙ last matches central differences.
    #[test]
    fn selective_scan_reference_gradients_match_finite_differences() {
        let dims = SsDims {
            batch: 2,
            dim: 4,
            len: 5,
            nstate: 3,
            groups: 2,
        };
        let (seq, bcn) = (2 * 4 * 5, 2 * 2 * 3 * 5);
        let mut vals = [
            lcg(seq, 1, -1.0, 1.0),       // u
            lcg(seq, 2, -1.5, 1.0),       // delta
            lcg(4 * 3, 3, -2.0, -0.2),    // A
            lcg(bcn, 4, -1.0, 1.0),       // B
            lcg(bcn, 5, -1.0, 1.0),       // C
            lcg(4, 6, 0.5, 1.5),          // D
            lcg(seq, 7, -2.0, 2.0),       // z
            lcg(4, 8, -0.5, 0.5),         // delta_bias
            lcg(2 * 4 * 3, 9, -1.0, 1.0), // h0
        ];
        let (w, v) = (lcg(seq, 10, -1.0, 1.0), lcg(2 * 4 * 3, 11, -1.0, 1.0));
        fn inputs(dims: SsDims, vals: &[Vec<f64>; 9], softplus: bool) -> SsInputs<'_> {
            SsInputs {
                dims,
                u: &vals[0],
                delta: &vals[1],
                a: &vals[2],
                b: &vals[3],
                c: &vals[4],
                d: Some(&vals[5]),
                z: Some(&vals[6]),
                delta_bias: Some(&vals[7]),
                h0: Some(&vals[8]),
                softplus,
            }
        }
        for softplus in [true, false] {
            let loss = |vals: &[Vec<f64>; 9]| {
                let (out, last) = selective_scan(&inputs(dims, vals, softplus));
                let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
                dot(&out, &w) + dot(&last, &v)
            };
            let x = inputs(dims, &vals, softplus);
            let g = selective_scan_backward(&x, &w, Some(&v));
            let analytic = [
                g.du,
                g.ddelta,
                g.da,
                g.db,
                g.dc,
                g.dd,
                g.dz,
                g.ddelta_bias,
                g.dh0,
            ];
            let names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias", "h0"];
            for (k, name) in names.iter().enumerate() {
                for i in 0..vals[k].len() {
                    let eps = 1e-6;
                    let orig = vals[k][i];
                    vals[k][i] = orig + eps;
                    let up = loss(&vals);
                    vals[k][i] = orig - eps;
                    let down = loss(&vals);
                    vals[k][i] = orig;
                    let num = (up - down) / (2.0 * eps);
                    let err = (num - analytic[k][i]).abs();
                    assert!(
                        err <= 1e-6 * (1.0 + num.abs()),
                        "softplus {softplus} d{name}[{i}]: analytic {} vs numeric {num}",
                        analytic[k][i]
                    );
                }
            }
        }
    }
}
