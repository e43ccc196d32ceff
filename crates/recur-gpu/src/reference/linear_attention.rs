//! The decayed linear-attention recurrence and its backward in f64, as the
//! plain recurrence (what the chunked kernels must equal): per (batch,
//! head), time outer, the state (d_k, d_v) inner.
//!
//! ```text
//! S_t = diag(α_t) S_{t−1} + k_t v_tᵀ,   o_t = S_tᵀ q_t
//! ```

/// Sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaDims {
    /// B
    pub batch: usize,
    /// H
    pub heads: usize,
    /// T
    pub len: usize,
    /// d_k
    pub dk: usize,
    /// d_v
    pub dv: usize,
}

/// log α, as `recur_gpu::ops::linear_attention::Decay` takes it (heads
/// first).
#[derive(Clone, Copy, Debug)]
pub enum LaDecay<'a> {
    /// α = 1
    None,
    /// (H)
    Head(&'a [f64]),
    /// (B, H, T)
    Scalar(&'a [f64]),
    /// (B, H, T, d_k)
    Vector(&'a [f64]),
}

/// Inputs, row-major, heads first.
#[derive(Clone, Copy, Debug)]
pub struct LaRefInputs<'a> {
    /// Sizes.
    pub dims: LaDims,
    /// (B, H, T, d_k)
    pub q: &'a [f64],
    /// (B, H, T, d_k)
    pub k: &'a [f64],
    /// (B, H, T, d_v)
    pub v: &'a [f64],
    /// The decay.
    pub decay: LaDecay<'a>,
    /// (B, H, d_k, d_v)
    pub h0: Option<&'a [f64]>,
}

/// Gradients of a scalar loss.
#[derive(Clone, Debug, Default)]
pub struct LaRefGrads {
    /// (B, H, T, d_k)
    pub dq: Vec<f64>,
    /// (B, H, T, d_k)
    pub dk: Vec<f64>,
    /// (B, H, T, d_v)
    pub dv: Vec<f64>,
    /// Like the decay (scalar and vector decays).
    pub ddecay: Option<Vec<f64>>,
    /// (B, H, d_k, d_v)
    pub dh0: Vec<f64>,
}

impl LaRefInputs<'_> {
    /// log α for head (b, h) at step t and key index k.
    fn log_decay(&self, b: usize, h: usize, t: usize, k: usize) -> f64 {
        let d = self.dims;
        match self.decay {
            LaDecay::None => 0.0,
            LaDecay::Head(g) => g[h],
            LaDecay::Scalar(g) => g[(b * d.heads + h) * d.len + t],
            LaDecay::Vector(g) => g[((b * d.heads + h) * d.len + t) * d.dk + k],
        }
    }

    /// Every state S_0..S_T of head (b, h), each (d_k, d_v).
    fn states(&self, b: usize, h: usize) -> Vec<Vec<f64>> {
        let d = self.dims;
        let n = d.dk * d.dv;
        let bh = b * d.heads + h;
        let mut s = match self.h0 {
            Some(h0) => h0[bh * n..(bh + 1) * n].to_vec(),
            None => vec![0.0; n],
        };
        let mut all = vec![s.clone()];
        for t in 0..d.len {
            let row = bh * d.len + t;
            for k in 0..d.dk {
                let a = self.log_decay(b, h, t, k).exp();
                for v in 0..d.dv {
                    s[k * d.dv + v] =
                        a * s[k * d.dv + v] + self.k[row * d.dk + k] * self.v[row * d.dv + v];
                }
            }
            all.push(s.clone());
        }
        all
    }
}

/// (outputs (B, H, T, d_v), final state (B, H, d_k, d_v)).
pub fn linear_attention(x: &LaRefInputs) -> (Vec<f64>, Vec<f64>) {
    let d = x.dims;
    let mut out = vec![0.0; d.batch * d.heads * d.len * d.dv];
    let mut last = Vec::with_capacity(d.batch * d.heads * d.dk * d.dv);
    for b in 0..d.batch {
        for h in 0..d.heads {
            let states = x.states(b, h);
            let bh = b * d.heads + h;
            for t in 0..d.len {
                let row = bh * d.len + t;
                let s = &states[t + 1];
                for k in 0..d.dk {
                    let q = x.q[row * d.dk + k];
                    for v in 0..d.dv {
                        out[row * d.dv + v] += q * s[k * d.dv + v];
                    }
                }
            }
            last.extend_from_slice(&states[d.len]);
        }
    }
    (out, last)
}

/// Gradients for upstream `dout` (like the outputs) and `dlast` (like the
/// final state): the recurrence walked back with dS.
pub fn linear_attention_backward(
    x: &LaRefInputs,
    dout: &[f64],
    dlast: Option<&[f64]>,
) -> LaRefGrads {
    let d = x.dims;
    let n = d.dk * d.dv;
    let learnable = matches!(x.decay, LaDecay::Scalar(_) | LaDecay::Vector(_));
    let mut g = LaRefGrads {
        dq: vec![0.0; x.q.len()],
        dk: vec![0.0; x.k.len()],
        dv: vec![0.0; x.v.len()],
        ddecay: None,
        dh0: vec![0.0; d.batch * d.heads * n],
    };
    let mut dgate = match x.decay {
        LaDecay::Scalar(s) | LaDecay::Vector(s) if learnable => vec![0.0; s.len()],
        _ => Vec::new(),
    };
    for b in 0..d.batch {
        for h in 0..d.heads {
            let states = x.states(b, h);
            let bh = b * d.heads + h;
            let mut ds = match dlast {
                Some(dl) => dl[bh * n..(bh + 1) * n].to_vec(),
                None => vec![0.0; n],
            };
            for t in (0..d.len).rev() {
                let row = bh * d.len + t;
                let (s, prev) = (&states[t + 1], &states[t]);
                for k in 0..d.dk {
                    let q = x.q[row * d.dk + k];
                    let kk = x.k[row * d.dk + k];
                    let a = x.log_decay(b, h, t, k).exp();
                    let (mut dq, mut dk, mut da) = (0.0, 0.0, 0.0);
                    for v in 0..d.dv {
                        let i = k * d.dv + v;
                        let dov = dout[row * d.dv + v];
                        ds[i] += q * dov;
                        dq += s[i] * dov;
                        dk += ds[i] * x.v[row * d.dv + v];
                        g.dv[row * d.dv + v] += ds[i] * kk;
                        da += ds[i] * prev[i];
                        ds[i] *= a;
                    }
                    g.dq[row * d.dk + k] = dq;
                    g.dk[row * d.dk + k] = dk;
                    // d log α = α dα.
                    match x.decay {
                        LaDecay::Scalar(_) => dgate[row] += a * da,
                        LaDecay::Vector(_) => dgate[row * d.dk + k] = a * da,
                        _ => {}
                    }
                }
            }
            g.dh0[bh * n..(bh + 1) * n].copy_from_slice(&ds);
        }
    }
    if learnable {
        g.ddecay = Some(dgate);
    }
    g
}
