//! The chunked form's backward: the reverse chunk maps and carry give the
//! gradient of every chunk's leaving state; the scores of dout against v
//! give dq and dk, the forward's scores dv; the decay's gradient follows
//! from dq and dk.

use super::{dims, ChunkedAttention, Decay, LaInputs, LaOutput, Operands, FLAG_GRAD, FLAG_START};
use crate::bindings::{la_apply as ap, la_chunk as ch, la_scores as sc, linear_attention as la};
use crate::error::{check_shape, Result};
use crate::ops::{all_f32, device_of};
use crate::tensor::{DType, Tensor};

/// Gradients of every input (those that were given).
#[derive(Clone, Debug)]
pub struct LaGrads {
    /// Like q.
    pub dq: Tensor,
    /// Like k.
    pub dk: Tensor,
    /// Like v.
    pub dv: Tensor,
    /// Like the decay's log α ([`Decay::Scalar`] and [`Decay::Vector`];
    /// a [`Decay::Head`] decay is fixed).
    pub ddecay: Option<Tensor>,
    /// (B, H, d_k, d_v)
    pub dh0: Option<Tensor>,
}

/// One `la_apply` pass of the backward: direction, which scores, operands
/// and output.
struct Apply<'a> {
    columns: bool,
    /// Bound where lg would be: a vector decay's chunk-relative z (GRADQK).
    lg: &'a Tensor,
    grad_qk: bool,
    att: &'a Tensor,
    xs: &'a Tensor,
    zs: &'a Tensor,
    zh: &'a Tensor,
    st: &'a Tensor,
    out: &'a Tensor,
    width: usize,
}

impl ChunkedAttention {
    /// Gradients of [`ChunkedAttention::forward`] (run with the same inputs
    /// and settings) for upstream `dout` (like v) and `d_last` (B, H, d_k,
    /// d_v). Six dispatches, seven with a learnable decay.
    pub fn backward(
        &self,
        x: &LaInputs,
        fwd: &LaOutput,
        dout: &Tensor,
        d_last: Option<&Tensor>,
    ) -> Result<LaGrads> {
        let op = "linear_attention_backward";
        let s = dims(op, x, self.layout)?;
        let mut all = vec![x.q, dout, &fwd.chunk_states, &fwd.last_state, &fwd.scores];
        all.extend(d_last);
        let dev = device_of(op, &all)?;
        all_f32(op, &all)?;
        check_shape(op, x.v.shape(), dout.shape())?;
        let state_shape = [s.batch, s.heads, s.dk, s.dv];
        check_shape(op, &state_shape, fwd.last_state.shape())?;
        if let Some(dl) = d_last {
            check_shape(op, &state_shape, dl.shape())?;
        }
        let flags = if d_last.is_some() { FLAG_START } else { 0 };
        let p = self.params(op, &dev, &s, &x.decay, flags)?;
        let k = p.chunks as usize;
        let bh = s.batch * s.heads;
        check_shape(
            op,
            &[s.batch, s.heads, k, s.dk, s.dv],
            fwd.chunk_states.shape(),
        )?;
        check_shape(op, &[bh * k, self.chunk, self.chunk], fwd.scores.shape())?;
        let kind = x.decay.kind();
        let gcb = fwd.cum_decay.as_ref().unwrap_or(x.q);
        let lg = match x.decay {
            Decay::Head(g) => g,
            _ => x.q,
        };
        let dstates = dev.alloc(op, fwd.chunk_states.shape(), DType::F32)?;
        let dh0 = dev.alloc(op, &state_shape, DType::F32)?;
        let ops = Operands::of(x, fwd.prescaled.as_ref());
        let prescaled = fwd.prescaled.is_some();
        let map = ch::LaMap {
            lg: lg.into(),
            gc: gcb.into(),
            xs: ops.q_chunk.into(),
            zs: dout.into(),
            sums: (&dstates).into(),
        };
        let groups = self.blocks(&p, s.dk.div_ceil(8) * s.dv.div_ceil(8));
        let sub = dev.info().subgroups_of_at_least(8);
        let key = self
            .key::<ch::LaMap>(kind, true)
            .flag("SUBGROUPS", sub)
            .flag("VEC4", s.dk.is_multiple_of(4) && s.dv.is_multiple_of(4));
        dev.launch(&key, &p, &map, groups)?;
        let carry = la::LaCarry {
            lg: lg.into(),
            gc: gcb.into(),
            start: d_last.unwrap_or(x.q).into(),
            sums: (&dstates).into(),
            fin: (&dh0).into(),
        };
        let (key, carry_groups) = self.carry_launch(kind, true, &s);
        dev.launch(&key, &p, &carry, carry_groups)?;
        let nb = self.chunk / 8;
        let dscores = dev.alloc(op, fwd.scores.shape(), DType::F32)?;
        let bind = sc::LaScores {
            lg: lg.into(),
            gc: gcb.into(),
            xs: dout.into(),
            ys: x.v.into(),
            att: (&dscores).into(),
            xh: dout.into(),
            yh: x.v.into(),
            yc: x.v.into(),
        };
        let key = self
            .key::<sc::LaScores>(kind, true)
            .flag("SUBGROUPS", sub)
            .flag("VEC4", s.dv.is_multiple_of(4));
        dev.launch(&key, &p, &bind, self.score_blocks(&p, sub))?;
        let dq = dev.alloc(op, x.q.shape(), DType::F32)?;
        let dk = dev.alloc(op, x.k.shape(), DType::F32)?;
        let dv = dev.alloc(op, x.v.shape(), DType::F32)?;
        let passes = [
            Apply {
                columns: true,
                lg,
                grad_qk: false,
                att: &fwd.scores,
                xs: ops.k_chunk,
                zs: dout,
                zh: dout,
                st: &dstates,
                out: &dv,
                width: s.dv,
            },
            Apply {
                columns: false,
                lg: if prescaled { ops.k_chunk } else { lg },
                grad_qk: true,
                att: &dscores,
                xs: dout,
                zs: x.k,
                zh: ops.k_block,
                st: &fwd.chunk_states,
                out: &dq,
                width: s.dk,
            },
            Apply {
                columns: true,
                lg: if prescaled { ops.q_chunk } else { lg },
                grad_qk: true,
                att: &dscores,
                xs: x.v,
                zs: x.q,
                zh: ops.q_block,
                st: &dstates,
                out: &dk,
                width: s.dk,
            },
        ];
        for Apply {
            columns: backward,
            lg,
            grad_qk: grad,
            att,
            xs,
            zs,
            zh,
            st,
            out,
            width: w,
        } in passes
        {
            let bind = ap::LaApply {
                lg: lg.into(),
                gc: gcb.into(),
                att: att.into(),
                xs: xs.into(),
                zs: zs.into(),
                st: st.into(),
                out: out.into(),
                zh: zh.into(),
            };
            let key = self
                .key::<ap::LaApply>(kind, backward)
                .flag("GRADQK", grad)
                .flag("SUBGROUPS", sub)
                .flag("VEC4", s.dk.is_multiple_of(4) && s.dv.is_multiple_of(4));
            dev.launch(&key, &p, &bind, self.blocks(&p, nb * w.div_ceil(8)))?;
        }
        let ddecay = self.decay_grad(x, &p, [&dq, &dk], &fwd.last_state, d_last)?;
        Ok(LaGrads {
            dq,
            dk,
            dv,
            ddecay,
            dh0: x.h0.map(|_| dh0),
        })
    }
}

impl ChunkedAttention {
    /// The decay's gradient (`la_dgate`) from dq and dk, plus the final
    /// state's term with `d_last`: a tensor like log α for a learnable
    /// decay ([`Decay::Scalar`], [`Decay::Vector`]), none otherwise. Shared
    /// by the chunked and the recurrent backward.
    pub(crate) fn decay_grad(
        &self,
        x: &LaInputs,
        p: &crate::bindings::la_core::Params,
        [dq, dk]: [&Tensor; 2],
        last: &Tensor,
        d_last: Option<&Tensor>,
    ) -> Result<Option<Tensor>> {
        let g = match x.decay {
            Decay::Scalar(g) | Decay::Vector(g) => g,
            Decay::None | Decay::Head(_) => return Ok(None),
        };
        let dev = g.device("linear_attention_backward")?;
        let dg = dev.alloc("linear_attention_backward", g.shape(), DType::F32)?;
        let mut pg = *p;
        pg.flags = if d_last.is_some() { FLAG_GRAD } else { 0 };
        // la_dgate reads neither lg nor gc: bound to placeholders.
        let bind = la::LaDgate {
            lg: x.q.into(),
            gc: x.q.into(),
            q: x.q.into(),
            k: x.k.into(),
            dq: dq.into(),
            dk: dk.into(),
            last: last.into(),
            dlast: d_last.unwrap_or(x.q).into(),
            dg: (&dg).into(),
        };
        // A vector decay over a multiple of 4 keys: four per invocation.
        let vec4 = p.width > 1 && p.width.is_multiple_of(4);
        let per = if vec4 { 4 } else { 1 };
        let groups = [
            (p.width as usize).div_ceil(64 * per) as u32,
            p.batch * p.heads,
            1,
        ];
        let key = self
            .key::<la::LaDgate>(x.decay.kind(), false)
            .flag("VEC4", vec4);
        dev.launch(&key, &pg, &bind, groups)?;
        Ok(Some(dg))
    }
}
