//! The recurrent form: the recurrence itself, one step after another, with
//! the state updated in place (streaming), and its backward.

use super::{dims, ChunkedAttention, LaGrads, LaInputs, FLAG_START};
use crate::bindings::linear_attention as la;
use crate::error::{check_shape, Result};
use crate::ops::{all_f32, device_of, elementwise};
use crate::tensor::{DType, Tensor};

impl ChunkedAttention {
    /// The recurrent form: runs the T steps one after another from `state`
    /// (B, H, d_k, d_v), which it updates in place, and returns the outputs.
    /// `x.h0` is ignored (the state is the start). One dispatch.
    pub fn recurrent(&self, x: &LaInputs, state: &Tensor) -> Result<Tensor> {
        let op = "linear_attention_recurrent";
        let s = dims(op, x, self.layout)?;
        let dev = device_of(op, &[x.q, x.k, x.v, state])?;
        check_shape(op, &[s.batch, s.heads, s.dk, s.dv], state.shape())?;
        let p = self.params(op, &dev, &s, &x.decay, 0)?;
        let out = dev.alloc(op, x.v.shape(), DType::F32)?;
        let g = x.decay.tensor().unwrap_or(x.q);
        let bind = la::LaRecurrent {
            lg: g.into(),
            gc: x.q.into(),
            q: x.q.into(),
            k: x.k.into(),
            v: x.v.into(),
            g: g.into(),
            state: state.into(),
            out: (&out).into(),
        };
        let groups = [s.dv.div_ceil(64) as u32, (s.batch * s.heads) as u32, 1];
        dev.launch(
            &self.key::<la::LaRecurrent>(x.decay.kind(), false),
            &p,
            &bind,
            groups,
        )?;
        Ok(out)
    }

    /// The recurrent form from `x.h0` (zeros when absent): (outputs, final
    /// state).
    pub fn recurrent_from_start(&self, x: &LaInputs) -> Result<(Tensor, Tensor)> {
        let op = "linear_attention_recurrent";
        let s = dims(op, x, self.layout)?;
        let dev = device_of(op, &[x.q])?;
        let state = match x.h0 {
            Some(h) => elementwise::scale(h, 1.0)?,
            None => Tensor::zeros(&dev, &[s.batch, s.heads, s.dk, s.dv])?,
        };
        let out = self.recurrent(x, &state)?;
        Ok((out, state))
    }
}

/// One walk of the recurrent backward: direction, rows or columns, start,
/// output.
struct Walk<'a> {
    backward: bool,
    columns: bool,
    start: Option<&'a Tensor>,
    grad: &'a Tensor,
    state: &'a Tensor,
}

impl ChunkedAttention {
    /// Gradients of the recurrent form run from `x.h0` (zeros when absent)
    /// for upstream `dout` (like v) and `d_last` (B, H, d_k, d_v); `last` is
    /// the final state the forward returned (read only for the decay's
    /// gradient with `d_last`). Walks the steps instead of the chunks: three
    /// dispatches (dq forward by key rows; dk and dS₀ in reverse by key
    /// rows; dv in reverse by value columns), four with a learnable decay.
    /// The same gradients as [`ChunkedAttention::backward`], for a form that
    /// keeps no chunk states.
    pub fn recurrent_backward(
        &self,
        x: &LaInputs,
        last: &Tensor,
        dout: &Tensor,
        d_last: Option<&Tensor>,
    ) -> Result<LaGrads> {
        let op = "linear_attention_recurrent_backward";
        let s = dims(op, x, self.layout)?;
        let mut all = vec![x.q, dout, last];
        all.extend(d_last);
        let dev = device_of(op, &all)?;
        all_f32(op, &all)?;
        check_shape(op, x.v.shape(), dout.shape())?;
        let state_shape = [s.batch, s.heads, s.dk, s.dv];
        check_shape(op, &state_shape, last.shape())?;
        if let Some(dl) = d_last {
            check_shape(op, &state_shape, dl.shape())?;
        }
        let p = self.params(op, &dev, &s, &x.decay, 0)?;
        let g = x.decay.tensor().unwrap_or(x.q);
        let kind = x.decay.kind();
        let dq = dev.alloc(op, x.q.shape(), DType::F32)?;
        let dk = dev.alloc(op, x.k.shape(), DType::F32)?;
        let dv = dev.alloc(op, x.v.shape(), DType::F32)?;
        let fwd_state = dev.alloc(op, &state_shape, DType::F32)?;
        let dh0 = dev.alloc(op, &state_shape, DType::F32)?;
        let col_state = dev.alloc(op, &state_shape, DType::F32)?;
        let bh = (s.batch * s.heads) as u32;
        let walks = [
            Walk {
                backward: false,
                columns: false,
                start: x.h0,
                grad: &dq,
                state: &fwd_state,
            },
            Walk {
                backward: true,
                columns: false,
                start: d_last,
                grad: &dk,
                state: &dh0,
            },
            Walk {
                backward: true,
                columns: true,
                start: d_last,
                grad: &dv,
                state: &col_state,
            },
        ];
        for w in walks {
            let mut pw = p;
            pw.flags = if w.start.is_some() { FLAG_START } else { 0 };
            let bind = la::LaRecGrad {
                lg: g.into(),
                gc: x.q.into(),
                q: x.q.into(),
                k: x.k.into(),
                v: x.v.into(),
                g: g.into(),
                dout: dout.into(),
                start: w.start.unwrap_or(x.q).into(),
                state: w.state.into(),
                grad: w.grad.into(),
            };
            let width = if w.columns { s.dv } else { s.dk };
            let key = self
                .key::<la::LaRecGrad>(kind, w.backward)
                .flag("COLUMNS", w.columns);
            dev.launch(&key, &pw, &bind, [width.div_ceil(64) as u32, bh, 1])?;
        }
        let ddecay = self.decay_grad(x, &p, [&dq, &dk], last, d_last)?;
        Ok(LaGrads {
            dq,
            dk,
            dv,
            ddecay,
            dh0: x.h0.map(|_| dh0),
        })
    }
}
