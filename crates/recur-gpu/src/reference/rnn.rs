//! CPU reference for the recurrent cells over a whole sequence, forward and
//! backward, in f64, with PyTorch's equations and gate order (DESIGN.md §3).
//! One layer, one direction; `reverse` runs time backwards (the `_reverse`
//! direction of a bidirectional layer).

// Index loops on purpose: the reference mirrors the kernels' loop structure.
#![allow(clippy::needless_range_loop)]

use crate::ops::rnn::Cell;

/// Sizes: T steps, B batch, I input, H hidden.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RnnDims {
    /// Time steps.
    pub t: usize,
    /// Batch.
    pub b: usize,
    /// Input size.
    pub i: usize,
    /// Hidden size.
    pub h: usize,
}

/// Parameters with PyTorch's shapes: w_ih (G·H, I), w_hh (G·H, H), biases (G·H).
#[derive(Clone, Debug)]
pub struct RnnParams {
    /// (G·H, I)
    pub w_ih: Vec<f64>,
    /// (G·H, H)
    pub w_hh: Vec<f64>,
    /// (G·H)
    pub b_ih: Vec<f64>,
    /// (G·H)
    pub b_hh: Vec<f64>,
}

/// Forward results: outputs (T, B, H), final h and c (B, H); `gates` keeps
/// every step's state for the backward.
#[derive(Clone, Debug)]
pub struct RnnForward {
    /// (T, B, H)
    pub out: Vec<f64>,
    /// (B, H)
    pub h_n: Vec<f64>,
    /// (B, H); zeros except for LSTM.
    pub c_n: Vec<f64>,
    /// Per step (in processing order): h_prev, c_prev, activated gates, hidden-side n pre-activation (GRU).
    steps: Vec<Step>,
}

#[derive(Clone, Debug)]
struct Step {
    t: usize,
    h_prev: Vec<f64>,
    c_prev: Vec<f64>,
    gates: Vec<f64>, // (B, G·H) activated
    hn: Vec<f64>,    // (B, H) W_hn h + b_hn (GRU)
    c: Vec<f64>,     // (B, H) new cell (LSTM)
}

/// Gradients of a scalar loss with respect to every input.
#[derive(Clone, Debug)]
pub struct RnnGrads {
    /// (T, B, I)
    pub dx: Vec<f64>,
    /// (B, H)
    pub dh0: Vec<f64>,
    /// (B, H)
    pub dc0: Vec<f64>,
    /// Parameter gradients, shaped like [`RnnParams`].
    pub params: RnnParams,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn order(d: RnnDims, reverse: bool) -> Vec<usize> {
    if reverse {
        (0..d.t).rev().collect()
    } else {
        (0..d.t).collect()
    }
}

/// Runs the sequence. `x` is (T, B, I), `h0`/`c0` are (B, H).
pub fn rnn_forward(
    cell: Cell,
    d: RnnDims,
    p: &RnnParams,
    x: &[f64],
    h0: &[f64],
    c0: &[f64],
    reverse: bool,
) -> RnnForward {
    let (g, h) = (cell.gates(), d.h);
    let gh = g * h;
    let mut out = vec![0.0; d.t * d.b * h];
    let mut hs = h0.to_vec();
    let mut cs = c0.to_vec();
    let mut steps = Vec::with_capacity(d.t);
    for t in order(d, reverse) {
        let mut gates = vec![0.0; d.b * gh];
        let mut hn = vec![0.0; d.b * h];
        let mut new_h = vec![0.0; d.b * h];
        let mut new_c = cs.clone();
        for b in 0..d.b {
            let xb = &x[(t * d.b + b) * d.i..][..d.i];
            let hb = &hs[b * h..][..h];
            let xr =
                |r: usize| p.b_ih[r] + (0..d.i).map(|k| p.w_ih[r * d.i + k] * xb[k]).sum::<f64>();
            let hr = |r: usize| p.b_hh[r] + (0..h).map(|k| p.w_hh[r * h + k] * hb[k]).sum::<f64>();
            for j in 0..h {
                let gb = &mut gates[b * gh..][..gh];
                match cell {
                    Cell::Lstm => {
                        let pre = |q: usize| xr(q * h + j) + hr(q * h + j);
                        let (i, f, gg, o) = (
                            sigmoid(pre(0)),
                            sigmoid(pre(1)),
                            pre(2).tanh(),
                            sigmoid(pre(3)),
                        );
                        let c = f * cs[b * h + j] + i * gg;
                        new_c[b * h + j] = c;
                        new_h[b * h + j] = o * c.tanh();
                        gb[j] = i;
                        gb[h + j] = f;
                        gb[2 * h + j] = gg;
                        gb[3 * h + j] = o;
                    }
                    Cell::Gru => {
                        let r = sigmoid(xr(j) + hr(j));
                        let z = sigmoid(xr(h + j) + hr(h + j));
                        let hnj = hr(2 * h + j);
                        let n = (xr(2 * h + j) + r * hnj).tanh();
                        new_h[b * h + j] = (1.0 - z) * n + z * hb[j];
                        gb[j] = r;
                        gb[h + j] = z;
                        gb[2 * h + j] = n;
                        hn[b * h + j] = hnj;
                    }
                    Cell::RnnTanh | Cell::RnnRelu => {
                        let a = xr(j) + hr(j);
                        let y = if cell == Cell::RnnTanh {
                            a.tanh()
                        } else {
                            a.max(0.0)
                        };
                        new_h[b * h + j] = y;
                        gb[j] = y;
                    }
                }
            }
        }
        out[t * d.b * h..][..d.b * h].copy_from_slice(&new_h);
        steps.push(Step {
            t,
            h_prev: std::mem::replace(&mut hs, new_h),
            c_prev: cs.clone(),
            gates,
            hn,
            c: new_c.clone(),
        });
        cs = new_c;
    }
    RnnForward {
        out,
        h_n: hs,
        c_n: cs,
        steps,
    }
}

/// Backward of [`rnn_forward`] for the upstream gradients
/// `[dout (T, B, H), dh_n (B, H), dc_n (B, H)]`.
pub fn rnn_backward(
    cell: Cell,
    d: RnnDims,
    p: &RnnParams,
    x: &[f64],
    fwd: &RnnForward,
    [dout, dh_n, dc_n]: [&[f64]; 3],
) -> RnnGrads {
    let (g, h) = (cell.gates(), d.h);
    let gh = g * h;
    let mut grads = RnnGrads {
        dx: vec![0.0; d.t * d.b * d.i],
        dh0: vec![0.0; d.b * h],
        dc0: vec![0.0; d.b * h],
        params: RnnParams {
            w_ih: vec![0.0; gh * d.i],
            w_hh: vec![0.0; gh * h],
            b_ih: vec![0.0; gh],
            b_hh: vec![0.0; gh],
        },
    };
    let mut dh = dh_n.to_vec();
    let mut dc = dc_n.to_vec();
    for s in fwd.steps.iter().rev() {
        let t = s.t;
        for (v, o) in dh.iter_mut().zip(&dout[t * d.b * h..][..d.b * h]) {
            *v += o;
        }
        // Pre-activation gradients on the input side (dx_pre) and hidden side (dh_pre).
        let mut dx_pre = vec![0.0; d.b * gh];
        let mut dh_pre = vec![0.0; d.b * gh];
        let mut dh_prev = vec![0.0; d.b * h];
        let mut dc_prev = vec![0.0; d.b * h];
        for b in 0..d.b {
            let gb = &s.gates[b * gh..][..gh];
            for j in 0..h {
                let k = b * h + j;
                match cell {
                    Cell::Lstm => {
                        let (i, f, gg, o) = (gb[j], gb[h + j], gb[2 * h + j], gb[3 * h + j]);
                        let tc = s.c[k].tanh();
                        let dcj = dc[k] + dh[k] * o * (1.0 - tc * tc);
                        let pre = [
                            dcj * gg * i * (1.0 - i),
                            dcj * s.c_prev[k] * f * (1.0 - f),
                            dcj * i * (1.0 - gg * gg),
                            dh[k] * tc * o * (1.0 - o),
                        ];
                        for q in 0..4 {
                            dx_pre[b * gh + q * h + j] = pre[q];
                            dh_pre[b * gh + q * h + j] = pre[q];
                        }
                        dc_prev[k] = dcj * f;
                    }
                    Cell::Gru => {
                        let (r, z, n) = (gb[j], gb[h + j], gb[2 * h + j]);
                        let dn = dh[k] * (1.0 - z) * (1.0 - n * n);
                        let dz = dh[k] * (s.h_prev[k] - n) * z * (1.0 - z);
                        let dr = dn * s.hn[k] * r * (1.0 - r);
                        dx_pre[b * gh + j] = dr;
                        dx_pre[b * gh + h + j] = dz;
                        dx_pre[b * gh + 2 * h + j] = dn;
                        dh_pre[b * gh + j] = dr;
                        dh_pre[b * gh + h + j] = dz;
                        dh_pre[b * gh + 2 * h + j] = dn * r;
                        dh_prev[k] += dh[k] * z;
                    }
                    Cell::RnnTanh | Cell::RnnRelu => {
                        let y = gb[j];
                        let da = if cell == Cell::RnnTanh {
                            dh[k] * (1.0 - y * y)
                        } else {
                            dh[k] * (y > 0.0) as u8 as f64
                        };
                        dx_pre[b * gh + j] = da;
                        dh_pre[b * gh + j] = da;
                    }
                }
            }
            let xb = &x[(t * d.b + b) * d.i..][..d.i];
            let hb = &s.h_prev[b * h..][..h];
            for r in 0..gh {
                let (gx, gh_) = (dx_pre[b * gh + r], dh_pre[b * gh + r]);
                grads.params.b_ih[r] += gx;
                grads.params.b_hh[r] += gh_;
                for k in 0..d.i {
                    grads.params.w_ih[r * d.i + k] += gx * xb[k];
                    grads.dx[(t * d.b + b) * d.i + k] += gx * p.w_ih[r * d.i + k];
                }
                for k in 0..h {
                    grads.params.w_hh[r * h + k] += gh_ * hb[k];
                    dh_prev[b * h + k] += gh_ * p.w_hh[r * h + k];
                }
            }
        }
        dh = dh_prev;
        if cell == Cell::Lstm {
            dc = dc_prev;
        }
    }
    grads.dh0 = dh;
    if cell == Cell::Lstm {
        grads.dc0 = dc;
    }
    grads
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }

    /// Central differences of L = Σ out·wo + Σ h_n·wh + Σ c_n·wc against
    /// the analytic backward, for every cell, direction and input.
    #[test]
    fn rnn_reference_gradients_match_finite_differences() {
        let d = RnnDims {
            t: 4,
            b: 2,
            i: 3,
            h: 5,
        };
        for cell in Cell::ALL {
            for reverse in [false, true] {
                let gh = cell.gates() * d.h;
                let mut p = RnnParams {
                    w_ih: lcg(gh * d.i, 1),
                    w_hh: lcg(gh * d.h, 2),
                    b_ih: lcg(gh, 3),
                    b_hh: lcg(gh, 4),
                };
                let mut x = lcg(d.t * d.b * d.i, 5);
                let mut h0 = lcg(d.b * d.h, 6);
                let mut c0 = lcg(d.b * d.h, 7);
                let (wo, wh, wc) = (
                    lcg(d.t * d.b * d.h, 8),
                    lcg(d.b * d.h, 9),
                    lcg(d.b * d.h, 10),
                );
                let loss = |p: &RnnParams, x: &[f64], h0: &[f64], c0: &[f64]| {
                    let f = rnn_forward(cell, d, p, x, h0, c0, reverse);
                    let dot =
                        |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(u, v)| u * v).sum::<f64>();
                    dot(&f.out, &wo)
                        + dot(&f.h_n, &wh)
                        + if cell == Cell::Lstm {
                            dot(&f.c_n, &wc)
                        } else {
                            0.0
                        }
                };
                let f = rnn_forward(cell, d, &p, &x, &h0, &c0, reverse);
                let g = rnn_backward(cell, d, &p, &x, &f, [&wo, &wh, &wc]);
                let eps = 1e-6;
                let check =
                    |name: &str, analytic: &[f64], get: &mut dyn FnMut(usize, f64) -> f64| {
                        for idx in (0..analytic.len()).step_by(3) {
                            let num = (get(idx, eps) - get(idx, -eps)) / (2.0 * eps);
                            let err = (num - analytic[idx]).abs();
                            assert!(
                                err < 1e-6 * (1.0 + num.abs()),
                                "{cell:?} reverse={reverse} {name}[{idx}]: fd {num} vs {}",
                                analytic[idx]
                            );
                        }
                    };
                macro_rules! perturb {
                    ($v:expr) => {
                        &mut |i: usize, e: f64| {
                            let old = $v[i];
                            $v[i] = old + e;
                            let l = loss(&p.clone(), &x.clone(), &h0.clone(), &c0.clone());
                            $v[i] = old;
                            l
                        }
                    };
                }
                check("w_ih", &g.params.w_ih, perturb!(p.w_ih));
                check("w_hh", &g.params.w_hh, perturb!(p.w_hh));
                check("b_ih", &g.params.b_ih, perturb!(p.b_ih));
                check("b_hh", &g.params.b_hh, perturb!(p.b_hh));
                check("x", &g.dx, perturb!(x));
                check("h0", &g.dh0, perturb!(h0));
                if cell == Cell::Lstm {
                    check("c0", &g.dc0, perturb!(c0));
                }
            }
        }
    }
}
