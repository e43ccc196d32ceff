//! The selective scan's backward: three dispatches, then the sums of the
//! per-block dB/dC and per-(batch, chunk) parameter partials.

use super::{
    channel_params, dims, lane_groups, Dims, SelectiveScan, SelectiveScanGrads,
    SelectiveScanInputs, SelectiveScanOutput, FLAG_DLAST, FLAG_H0, FLAG_Z,
};
use crate::bindings::selective_scan_backward as bw;
use crate::error::{check_shape, Result};
use crate::ops::{all_f32, device_of, layout, reduce};
use crate::tensor::{DType, Tensor};

impl SelectiveScan {
    /// Gradients of [`SelectiveScan::forward`] (run with the same inputs and
    /// settings) for upstream `dout` (B, D, L) and `d_last` (B, D, N).
    /// Three dispatches, then sums of the per-chunk and per-block partials.
    pub fn backward(
        &self,
        x: &SelectiveScanInputs,
        fwd: &SelectiveScanOutput,
        dout: &Tensor,
        d_last: Option<&Tensor>,
    ) -> Result<SelectiveScanGrads> {
        let op = "selective_scan_backward";
        let s = dims(op, x, self.layout)?;
        let mut all = vec![x.u, dout, &fwd.chunk_states];
        all.extend(d_last);
        let dev = device_of(op, &all)?;
        all_f32(op, &all)?;
        check_shape(op, x.u.shape(), dout.shape())?;
        if let Some(dl) = d_last {
            check_shape(op, &[s.batch, s.dim, s.nstate], dl.shape())?;
        }
        let flags = if x.z.is_some() { FLAG_Z } else { 0 }
            | if x.h0.is_some() { FLAG_H0 } else { 0 }
            | if d_last.is_some() { FLAG_DLAST } else { 0 };
        let p = self.params(op, &dev, &s, flags)?;
        let k = p.chunks as usize;
        check_shape(
            op,
            &[s.batch, s.dim, k, s.nstate, 2],
            fwd.chunk_states.shape(),
        )?;
        let chan = channel_params(&dev, x, &s)?;
        let bsums = dev.alloc(op, fwd.chunk_states.shape(), DType::F32)?;
        let dseq = dev.alloc(op, &[3, s.batch, s.dim, s.len], DType::F32)?;
        let nb = p.blocks as usize;
        let dbc = dev.alloc(op, &[2, s.batch, s.groups, nb, s.nstate, s.len], DType::F32)?;
        let dchan = dev.alloc(op, &[s.batch * k, s.dim, s.nstate + 2], DType::F32)?;
        let dh0 = match x.h0 {
            Some(_) => dev.alloc(op, &[s.batch, s.dim, s.nstate], DType::F32)?,
            None => dev.alloc(op, &[1], DType::F32)?,
        };
        macro_rules! bind {
            ($t:ident) => {
                bw::$t {
                    u: x.u.into(),
                    delta: x.delta.into(),
                    z: x.z.unwrap_or(x.u).into(),
                    chan: (&chan).into(),
                    bm: x.b.into(),
                    cm: x.c.into(),
                    dlast: d_last.unwrap_or(x.u).into(),
                    states: (&fwd.chunk_states).into(),
                    dout: dout.into(),
                    sums: (&bsums).into(),
                    dseq: (&dseq).into(),
                    dbc: (&dbc).into(),
                    dchan: (&dchan).into(),
                    dh0: (&dh0).into(),
                }
            };
        }
        let cells = [s.dim.div_ceil(64) as u32, p.chunks, p.batch];
        let lanes = lane_groups(&dev, &s)?;
        let blocks = [p.groups * p.blocks, p.chunks, p.batch];
        let k1 = self.key::<bw::SelectiveScanReduceBackward>();
        dev.launch(&k1, &p, &bind!(SelectiveScanReduceBackward), cells)?;
        let k2 = self.key::<bw::SelectiveScanCarryBackward>();
        dev.launch(&k2, &p, &bind!(SelectiveScanCarryBackward), lanes)?;
        let (wg, subgroup) = self.wg(&dev);
        let k3 = self
            .key::<bw::SelectiveScanApplyBackward>()
            .define("WG", format!("{wg}u"))
            .flag("SUBGROUP", subgroup);
        dev.launch(&k3, &p, &bind!(SelectiveScanApplyBackward), blocks)?;
        gather(x, &s, [&dseq, &dbc, &dchan], dh0)
    }
}

/// The gradients from the backward's outputs: the three sequence planes,
/// and sums over the per-block dB/dC and per-(batch, chunk) parameter partials.
fn gather(
    x: &SelectiveScanInputs,
    s: &Dims,
    [dseq, dbc, dchan]: [&Tensor; 3],
    dh0: Tensor,
) -> Result<SelectiveScanGrads> {
    let plane = |i: usize| -> Result<Tensor> { layout::slice(dseq, 0, i, 1)?.reshape(x.u.shape()) };
    let nb = dbc.shape()[3];
    let bg = s.batch * s.groups;
    let bc = reduce::sum(&dbc.reshape(&[2 * bg, nb, s.nstate * s.len])?, 1)?;
    let db = layout::slice(&bc, 0, 0, bg)?.reshape(x.b.shape())?;
    let dc = layout::slice(&bc, 0, bg, bg)?.reshape(x.c.shape())?;
    let rows = dchan.shape()[0];
    let w = s.nstate + 2;
    let pc = reduce::sum(&dchan.reshape(&[rows, s.dim * w])?, 0)?.reshape(&[s.dim, w])?;
    let col = |j: usize| -> Result<Tensor> { layout::slice(&pc, 1, j, 1)?.reshape(&[s.dim]) };
    Ok(SelectiveScanGrads {
        du: plane(0)?,
        ddelta: plane(1)?,
        da: layout::slice(&pc, 1, 0, s.nstate)?,
        db,
        dc,
        dd: x.d.map(|_| col(s.nstate)).transpose()?,
        dz: x.z.map(|_| plane(2)).transpose()?,
        ddelta_bias: x.delta_bias.map(|_| col(s.nstate + 1)).transpose()?,
        dh0: x.h0.map(|_| dh0),
    })
}
