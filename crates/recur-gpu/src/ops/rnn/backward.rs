//! Backward of the fused recurrent layers (`shaders/rnn_backward.wgsl`): two
//! dispatches per step, then the weight and bias gradients as GEMMs and
//! reductions over all steps.

use super::{dims, or_placeholder, params, slots, Cell, RnnCache, RnnGradients, RnnWeights};
use crate::bindings::rnn_backward as k;
use crate::error::{check_shape, Result};
use crate::kernel::KernelKey;
use crate::ops::gemm::{self, Gemm};
use crate::ops::{all_f32, device_of, elementwise, layout, reduce};
use crate::tensor::{DType, Tensor};

/// Backward of [`super::rnn_forward`]: gradients for upstream `dout` (T, B, H) and
/// optional `dh_n`, `dc_n` (B, H).
pub fn rnn_backward(
    w: &RnnWeights,
    cache: &RnnCache,
    dout: &Tensor,
    dh_n: Option<&Tensor>,
    dc_n: Option<&Tensor>,
) -> Result<RnnGradients> {
    if !cache.chunks.is_empty() {
        return chunked_backward(w, cache, dout, dh_n, dc_n);
    }
    let cell = cache.cell;
    let x = &cache.x;
    let mut operands = vec![w.w_ih, w.w_hh, dout];
    operands.extend(dh_n.into_iter().chain(dc_n));
    let dev = device_of("rnn_backward", &operands)?;
    all_f32("rnn_backward", &operands)?;
    let (t, b, i, h) = dims(cell, w, x)?;
    let g = cell.gates();
    check_shape("rnn_backward", &[t, b, h], dout.shape())?;
    let carry = |init: Option<&Tensor>| -> Result<Tensor> {
        match init {
            Some(s) => {
                check_shape("rnn_backward", &[b, h], s.shape())?;
                layout::slice(&s.reshape(&[1, b, h])?, 0, 0, 1)
            }
            None => Tensor::zeros(&dev, &[1, b, h]),
        }
    };
    let mut dh = [carry(dh_n)?, Tensor::zeros(&dev, &[1, b, h])?];
    let mut dc = [carry(dc_n)?, Tensor::zeros(&dev, &[1, b, h])?];
    let dgx = dev.alloc("rnn_backward", &[t, b, g * h], DType::F32)?;
    let dgh = if cell == Cell::Gru {
        Some(dev.alloc("rnn_backward", &[t, b, g * h], DType::F32)?)
    } else {
        None
    };
    let cs = &or_placeholder(&dev, cache.cseq.as_ref(), DType::F32)?;
    let sv = &or_placeholder(&dev, cache.saved.as_ref(), DType::F32)?;
    let dgh_bind = &or_placeholder(&dev, dgh.as_ref(), DType::F32)?;
    let dg_h = dgh.as_ref().unwrap_or(&dgx);
    let pointwise = cell.flags(KernelKey::of::<k::RnnStepBackward>());
    let dh_key = cell
        .flags(KernelKey::of::<k::RnnStepDh>())
        .flag("SUBGROUPS", dev.info().subgroups_of_at_least(8));
    let pw_groups = [h.div_ceil(64) as u32, b as u32, 1];
    let dh_groups = [h.div_ceil(64) as u32, b.div_ceil(8) as u32, 1];
    for s in 0..t {
        // Reverse of the forward's processing order.
        let step = if cache.reverse { s } else { t - 1 - s };
        let (src, dst) = slots(step, cache.reverse);
        let p = params(step, src, dst, b, h, g)?;
        let [cur_h, next_h] = &dh;
        let [cur_c, next_c] = &dc;
        let pw = k::RnnStepBackward {
            dout: dout.into(),
            hseq: (&cache.hseq).into(),
            cseq: cs.into(),
            saved: sv.into(),
            dh_in: cur_h.into(),
            dc_in: cur_c.into(),
            dgx: (&dgx).into(),
            dgh: dgh_bind.into(),
            dh_out: next_h.into(),
            dc_out: next_c.into(),
        };
        dev.launch(&pointwise, &p, &pw, pw_groups)?;
        let dh_step = k::RnnStepDh {
            dg: dg_h.into(),
            w_hh: w.w_hh.into(),
            dh_out: next_h.into(),
        };
        dev.launch(&dh_key, &p, &dh_step, dh_groups)?;
        dh.swap(0, 1);
        dc.swap(0, 1);
    }
    let rows = t * b;
    let dgx2 = dgx.reshape(&[rows, g * h])?;
    let dgh2 = dg_h.reshape(&[rows, g * h])?;
    let tn = Gemm {
        trans_a: true,
        ..Gemm::default()
    };
    let dw_ih = tn.run(&dgx2, &x.reshape(&[rows, i])?, None)?;
    let prev_start = if cache.reverse { 1 } else { 0 };
    let hprev = layout::slice(&cache.hseq, 0, prev_start, t)?.reshape(&[rows, h])?;
    let dw_hh = tn.run(&dgh2, &hprev, None)?;
    let (db_ih, db_hh) = if w.b_ih.is_some() || w.b_hh.is_some() {
        (
            w.b_ih.map(|_| reduce::sum(&dgx2, 0)).transpose()?,
            w.b_hh.map(|_| reduce::sum(&dgh2, 0)).transpose()?,
        )
    } else {
        (None, None)
    };
    let dx = gemm::matmul(&dgx2, w.w_ih)?.reshape(&[t, b, i])?;
    let [dh0, _] = dh;
    let [dc0, _] = dc;
    Ok(RnnGradients {
        dx,
        dh0: dh0.reshape(&[b, h])?,
        dc0: (cell == Cell::Lstm)
            .then(|| dc0.reshape(&[b, h]))
            .transpose()?,
        dw_ih,
        dw_hh,
        db_ih,
        db_hh,
    })
}

/// The backward of a forward run in time chunks: the chunks in reverse
/// processing order, each from the state gradients of the one after it;
/// weight gradients summed, input gradients joined in time.
fn chunked_backward(
    w: &RnnWeights,
    cache: &RnnCache,
    dout: &Tensor,
    dh_n: Option<&Tensor>,
    dc_n: Option<&Tensor>,
) -> Result<RnnGradients> {
    let (mut dh, mut dc) = (dh_n.cloned(), dc_n.cloned());
    let mut dxs: Vec<(usize, Tensor)> = Vec::new();
    let mut total: Option<RnnGradients> = None;
    let sum = |a: Option<Tensor>, b: Option<Tensor>| -> Result<Option<Tensor>> {
        Ok(match (a, b) {
            (Some(a), Some(b)) => Some(elementwise::add(&a, &b)?),
            (a, b) => a.or(b),
        })
    };
    for (start, c) in cache.chunks.iter().rev() {
        let n = c.x.shape()[0];
        let d = layout::slice(dout, 0, *start, n)?;
        let g = rnn_backward(w, c, &d, dh.as_ref(), dc.as_ref())?;
        (dh, dc) = (Some(g.dh0.clone()), g.dc0.clone());
        dxs.push((*start, g.dx.clone()));
        total = Some(match total {
            None => g,
            Some(t) => RnnGradients {
                dw_ih: elementwise::add(&t.dw_ih, &g.dw_ih)?,
                dw_hh: elementwise::add(&t.dw_hh, &g.dw_hh)?,
                db_ih: sum(t.db_ih, g.db_ih)?,
                db_hh: sum(t.db_hh, g.db_hh)?,
                ..g
            },
        });
    }
    dxs.sort_by_key(|(s, _)| *s);
    let parts: Vec<&Tensor> = dxs.iter().map(|(_, t)| t).collect();
    let mut g = total.ok_or(crate::Error::InvalidArgument {
        op: "rnn_backward",
        what: "a chunked cache without chunks".into(),
    })?;
    g.dx = layout::concat(&parts, 0)?;
    Ok(g)
}
