//! Linear attention with a decay, one engine for linear attention, RetNet,
//! Mamba-2's SSD and GLA (`shaders/linear_attention.wgsl`):
//!
//! ```text
//! S_t = diag(α_t) S_{t−1} + k_t v_tᵀ,   o_t = S_tᵀ q_t
//! ```
//!
//! per head, with q, k (B, H, T, d_k), v (B, H, T, d_v) and a state
//! (B, H, d_k, d_v). The decay is given as log α ([`Decay`]). Training runs
//! the chunked form (chunks of [`ChunkedAttention::chunk`] steps: intra-chunk
//! products in workgroup memory, states passed chunk to chunk); streaming
//! runs the recurrence itself ([`ChunkedAttention::recurrent`]).

mod backward;
mod inputs;
mod recurrent;

pub use backward::LaGrads;
pub use inputs::{Decay, DecayKind, LaInputs, LaLayout, LaOutput, Prescaled};

use super::{all_f32, device_of, u32_of};
use crate::bindings::{
    la_apply as ap, la_chunk as ch, la_core::Params, la_scores as sc, linear_attention as la,
};
use crate::device::Device;
use crate::error::{check_shape, Error, Result};
use crate::kernel::KernelKey;
use crate::tensor::{DType, Tensor};

const FLAG_START: u32 = 1;
const FLAG_GRAD: u32 = 2;

/// How the chunked form runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkedAttention {
    /// Steps per chunk (a multiple of 8 up to 64): the intra-chunk work grows
    /// with it, the number of stored chunk states (B·H·d_k·d_v each)
    /// shrinks.
    pub chunk: usize,
    /// Layout of q, k, v, the decays and the output.
    pub layout: LaLayout,
}

impl Default for ChunkedAttention {
    fn default() -> Self {
        Self {
            chunk: 64,
            layout: LaLayout::Bhtd,
        }
    }
}

/// Checked sizes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    pub batch: usize,
    pub heads: usize,
    pub len: usize,
    pub dk: usize,
    pub dv: usize,
}

pub(crate) fn dims(op: &'static str, x: &LaInputs, layout: LaLayout) -> Result<Dims> {
    let mut all = vec![x.q, x.k, x.v];
    all.extend(x.decay.tensor().into_iter().chain(x.h0));
    all_f32(op, &all)?;
    let bad = |what: &str, t: &Tensor| Error::ShapeMismatch {
        op,
        expected: what.to_string(),
        got: t.shape().to_vec(),
    };
    let [b0, b1, b2, dk] = *x.q.shape() else {
        return Err(bad("q of shape (B, H, T, d_k) or (B, T, H, d_k)", x.q));
    };
    let (batch, heads, len) = match layout {
        LaLayout::Bhtd => (b0, b1, b2),
        LaLayout::Bthd => (b0, b2, b1),
    };
    let [_, _, _, dv] = *x.v.shape() else {
        return Err(bad("v of shape (B, H, T, d_v) or (B, T, H, d_v)", x.v));
    };
    if batch == 0 || heads == 0 || len == 0 || dk == 0 || dv == 0 {
        return Err(bad("non-empty B, H, T, d_k and d_v (q, then v)", x.q));
    }
    check_shape(op, x.q.shape(), x.k.shape())?;
    check_shape(op, &[b0, b1, b2, dv], x.v.shape())?;
    match x.decay {
        Decay::None => {}
        Decay::Head(g) => check_shape(op, &[heads], g.shape())?,
        Decay::Scalar(g) => check_shape(op, &[b0, b1, b2], g.shape())?,
        Decay::Vector(g) => check_shape(op, x.q.shape(), g.shape())?,
    }
    if let Some(h) = x.h0 {
        check_shape(op, &[batch, heads, dk, dv], h.shape())?;
    }
    Ok(Dims {
        batch,
        heads,
        len,
        dk,
        dv,
    })
}

impl ChunkedAttention {
    pub(crate) fn params(
        &self,
        op: &'static str,
        dev: &Device,
        s: &Dims,
        decay: &Decay,
        flags: u32,
    ) -> Result<Params> {
        if !(8..=64).contains(&self.chunk) || !self.chunk.is_multiple_of(8) {
            return Err(Error::InvalidArgument {
                op,
                what: format!("chunk must be 8, 16, .., 64, got {}", self.chunk),
            });
        }
        let lim = dev.info().limits.max_compute_workgroups_per_dimension as usize;
        let chunks = s.len.div_ceil(self.chunk);
        let bh = s.batch * s.heads;
        u32_of(op, "chunk states", bh * chunks * s.dk * s.dv)?;
        u32_of(op, "chunk scores", bh * chunks * self.chunk * self.chunk)?;
        for (what, n) in [
            ("chunks", chunks),
            ("batch · heads", bh),
            ("d_k · d_v / 64", (s.dk * s.dv).div_ceil(64)),
            (
                "8x8 blocks per chunk / 8",
                (s.dk.div_ceil(8) * s.dv.div_ceil(8)).div_ceil(8),
            ),
        ] {
            if n > lim {
                return Err(Error::InvalidArgument {
                    op,
                    what: format!("{what} = {n} exceed {lim} workgroups per dimension"),
                });
            }
        }
        let (h, t) = (s.heads, s.len);
        let strides = |d: usize| match self.layout {
            LaLayout::Bhtd => (h * t * d, t * d, d),
            LaLayout::Bthd => (t * h * d, d, h * d),
        };
        let (kb, kh, kt) = strides(s.dk);
        let (vb, vh, vt) = strides(s.dv);
        let (gb, gh, gt) = strides(1);
        let u = |what: &str, n: usize| u32_of(op, what, n);
        Ok(Params {
            batch: u("batch", s.batch)?,
            heads: u("heads", s.heads)?,
            len: u("length", s.len)?,
            dk: u("d_k", s.dk)?,
            dv: u("d_v", s.dv)?,
            chunks: chunks as u32,
            flags,
            width: if matches!(decay, Decay::Vector(_)) {
                s.dk as u32
            } else {
                1
            },
            kb: u("q batch stride", kb)?,
            kh: kh as u32,
            kt: kt as u32,
            _p0: 0,
            vb: u("v batch stride", vb)?,
            vh: vh as u32,
            vt: vt as u32,
            _p1: 0,
            gb: u("decay batch stride", gb)?,
            gh: gh as u32,
            gt: gt as u32,
            _p2: 0,
        })
    }

    /// Workgroups of eight invocations for `n` blocks per chunk and head.
    pub(crate) fn blocks(&self, p: &Params, n: usize) -> [u32; 3] {
        [n.div_ceil(8) as u32, p.chunks, p.batch * p.heads]
    }

    /// `la_scores`' workgroups: with subgroups and 64-step chunks four for
    /// the 28 blocks below the diagonal (two row blocks each) and one for
    /// the diagonal; otherwise one lane per block of the square.
    pub(crate) fn score_blocks(&self, p: &Params, subgroups: bool) -> [u32; 3] {
        match (subgroups, self.chunk) {
            (true, 64) => [5, p.chunks, p.batch * p.heads],
            _ => self.blocks(p, (self.chunk / 8).pow(2)),
        }
    }

    pub(crate) fn key<'a, B: crate::bindings::Bindings<'a>>(
        &self,
        decay: DecayKind,
        backward: bool,
    ) -> KernelKey {
        let k = KernelKey::of::<B>()
            .define("CH", format!("{}u", self.chunk))
            .flag("BACKWARD", backward);
        match decay.define() {
            Some(d) => k.flag(d, true),
            None => k,
        }
    }

    /// `la_carry`'s kernel and workgroups: four values per invocation
    /// where d_v is a multiple of 4.
    pub(crate) fn carry_launch(
        &self,
        kind: DecayKind,
        backward: bool,
        s: &Dims,
    ) -> (KernelKey, [u32; 3]) {
        let vec4 = s.dv.is_multiple_of(4);
        let per = if vec4 { 4 } else { 1 };
        let groups = (s.dk * s.dv).div_ceil(64 * per) as u32;
        let key = self.key::<la::LaCarry>(kind, backward).flag("VEC4", vec4);
        (key, [groups, (s.batch * s.heads) as u32, 1])
    }

    /// The chunk-local cumulative log-decays (scalar and vector decays).
    pub(crate) fn cumulate(&self, x: &LaInputs, p: &Params) -> Result<Option<Tensor>> {
        let op = "linear_attention";
        let g = match x.decay {
            Decay::Scalar(g) | Decay::Vector(g) => g,
            Decay::None | Decay::Head(_) => return Ok(None),
        };
        let dev = g.device(op)?;
        let (bh, t, w) = (
            (p.batch * p.heads) as usize,
            p.len as usize,
            p.width as usize,
        );
        let gc = dev.alloc(op, &[bh, t, w], DType::F32)?;
        let bind = la::LaCumulate {
            lg: g.into(),
            gc: (&gc).into(),
            g: g.into(),
        };
        let groups = [((p.chunks as usize * w).div_ceil(64)) as u32, bh as u32, 1];
        let key = self.key::<la::LaCumulate>(x.decay.kind(), false);
        dev.launch(&key, p, &bind, groups)?;
        Ok(Some(gc))
    }

    /// A vector decay's cumulative log-decays and q̂, k̂, q̃ and k̃
    /// (`la_prescale`, one dispatch): q and k relative to their block of 8
    /// steps and to their chunk.
    fn prescale(&self, x: &LaInputs, p: &Params, g: &Tensor) -> Result<(Tensor, Prescaled)> {
        let op = "linear_attention";
        let dev = x.q.device(op)?;
        let (bh, t) = ((p.batch * p.heads) as usize, p.len as usize);
        let gc = dev.alloc(op, &[bh, t, p.dk as usize], DType::F32)?;
        let alloc = || dev.alloc(op, x.q.shape(), DType::F32);
        let s = Prescaled {
            q_block: alloc()?,
            k_block: alloc()?,
            q_chunk: alloc()?,
            k_chunk: alloc()?,
        };
        let bind = ch::LaPrescale {
            lg: g.into(),
            gc: (&gc).into(),
            g: g.into(),
            q: x.q.into(),
            k: x.k.into(),
            qh: (&s.q_block).into(),
            kh: (&s.k_block).into(),
            qc: (&s.q_chunk).into(),
            kc: (&s.k_chunk).into(),
        };
        // d_k a multiple of 4: four keys per invocation.
        let vec4 = p.dk.is_multiple_of(4);
        let per = if vec4 { 4 } else { 1 };
        let groups = [p.dk.div_ceil(64 * per), p.chunks, p.batch * p.heads];
        let key = self
            .key::<ch::LaPrescale>(DecayKind::Vector, false)
            .flag("VEC4", vec4);
        dev.launch(&key, p, &bind, groups)?;
        Ok((gc, s))
    }

    /// The chunked forward: four dispatches, five with a scalar or vector
    /// decay (the cumulative log-decays; for a vector decay also q̂, k̂, q̃,
    /// k̃); nothing waits on the GPU.
    pub fn forward(&self, x: &LaInputs) -> Result<LaOutput> {
        let op = "linear_attention";
        let s = dims(op, x, self.layout)?;
        let dev = device_of(op, &[x.q, x.k, x.v])?;
        let flags = if x.h0.is_some() { FLAG_START } else { 0 };
        let p = self.params(op, &dev, &s, &x.decay, flags)?;
        let (gc, prescaled) = match x.decay {
            Decay::Vector(g) => {
                let (gc, pre) = self.prescale(x, &p, g)?;
                (Some(gc), Some(pre))
            }
            _ => (self.cumulate(x, &p)?, None),
        };
        let lg = match x.decay {
            Decay::Head(g) => g,
            _ => x.q,
        };
        let gcb = gc.as_ref().unwrap_or(x.q);
        let bh = s.batch * s.heads;
        let k = p.chunks as usize;
        let states = dev.alloc(op, &[s.batch, s.heads, k, s.dk, s.dv], DType::F32)?;
        let last = dev.alloc(op, &[s.batch, s.heads, s.dk, s.dv], DType::F32)?;
        let scores = dev.alloc(op, &[bh * k, self.chunk, self.chunk], DType::F32)?;
        let out = dev.alloc(op, x.v.shape(), DType::F32)?;
        let kind = x.decay.kind();
        let ops = Operands::of(x, prescaled.as_ref());
        let map = ch::LaMap {
            lg: lg.into(),
            gc: gcb.into(),
            xs: ops.k_chunk.into(),
            zs: x.v.into(),
            sums: (&states).into(),
        };
        let sub = dev.info().subgroups_of_at_least(8);
        let key = self
            .key::<ch::LaMap>(kind, false)
            .flag("SUBGROUPS", sub)
            .flag("VEC4", s.dk.is_multiple_of(4) && s.dv.is_multiple_of(4));
        dev.launch(
            &key,
            &p,
            &map,
            self.blocks(&p, s.dk.div_ceil(8) * s.dv.div_ceil(8)),
        )?;
        let carry = la::LaCarry {
            lg: lg.into(),
            gc: gcb.into(),
            start: x.h0.unwrap_or(x.q).into(),
            sums: (&states).into(),
            fin: (&last).into(),
        };
        let (key, carry_groups) = self.carry_launch(kind, false, &s);
        dev.launch(&key, &p, &carry, carry_groups)?;
        let nb = self.chunk / 8;
        // A vector decay's q̃ goes where lg would be (la_scores reads no
        // per-head decay then).
        let bind = sc::LaScores {
            lg: if prescaled.is_some() { ops.q_chunk } else { lg }.into(),
            gc: gcb.into(),
            xs: x.q.into(),
            ys: x.k.into(),
            att: (&scores).into(),
            xh: ops.q_block.into(),
            yh: ops.k_block.into(),
            yc: ops.k_chunk.into(),
        };
        let key = self
            .key::<sc::LaScores>(kind, false)
            .flag("SUBGROUPS", sub)
            .flag("VEC4", s.dk.is_multiple_of(4));
        dev.launch(&key, &p, &bind, self.score_blocks(&p, sub))?;
        let bind = ap::LaApply {
            lg: lg.into(),
            gc: gcb.into(),
            att: (&scores).into(),
            xs: ops.q_chunk.into(),
            zs: x.v.into(),
            st: (&states).into(),
            out: (&out).into(),
            zh: x.v.into(),
        };
        let key = self
            .key::<ap::LaApply>(kind, false)
            .flag("SUBGROUPS", sub)
            .flag("VEC4", s.dk.is_multiple_of(4) && s.dv.is_multiple_of(4));
        dev.launch(&key, &p, &bind, self.blocks(&p, nb * s.dv.div_ceil(8)))?;
        Ok(LaOutput {
            out,
            last_state: last,
            chunk_states: states,
            scores,
            prescaled,
            cum_decay: gc,
        })
    }
}

/// q and k as each pass reads them: themselves, or for a vector decay
/// relative to their block or chunk.
pub(crate) struct Operands<'a> {
    pub q_block: &'a Tensor,
    pub k_block: &'a Tensor,
    pub q_chunk: &'a Tensor,
    pub k_chunk: &'a Tensor,
}

impl<'a> Operands<'a> {
    pub fn of(x: &LaInputs<'a>, s: Option<&'a Prescaled>) -> Self {
        match s {
            Some(s) => Self {
                q_block: &s.q_block,
                k_block: &s.k_block,
                q_chunk: &s.q_chunk,
                k_chunk: &s.k_chunk,
            },
            None => Self {
                q_block: x.q,
                k_block: x.k,
                q_chunk: x.q,
                k_chunk: x.k,
            },
        }
    }
}

pub(crate) fn variants() -> Vec<KernelKey> {
    let mut v = Vec::new();
    let short = ChunkedAttention {
        chunk: 16,
        ..Default::default()
    };
    for c in [ChunkedAttention::default(), short] {
        for d in DecayKind::ALL {
            v.push(c.key::<la::LaCumulate>(d, false));
            v.push(c.key::<la::LaRecurrent>(d, false));
            for vec4 in [false, d == DecayKind::Vector] {
                v.push(c.key::<la::LaDgate>(d, false).flag("VEC4", vec4));
            }
            for (bw, cols) in [(false, false), (true, false), (true, true)] {
                v.push(c.key::<la::LaRecGrad>(d, bw).flag("COLUMNS", cols));
            }
            for bw in [false, true] {
                for sub in [false, true] {
                    for vec4 in [false, sub] {
                        let map = c.key::<ch::LaMap>(d, bw).flag("SUBGROUPS", sub);
                        v.push(map.flag("VEC4", vec4));
                    }
                    for vec4 in [false, sub] {
                        let scores = c.key::<sc::LaScores>(d, bw).flag("SUBGROUPS", sub);
                        v.push(scores.flag("VEC4", vec4));
                    }
                }
                for vec4 in [false, true] {
                    v.push(c.key::<la::LaCarry>(d, bw).flag("VEC4", vec4));
                }
                for vec4 in [false, true] {
                    v.push(c.key::<ch::LaPrescale>(d, bw).flag("VEC4", vec4));
                }
                for grad in [false, true] {
                    for (sub, vec4) in [(false, false), (true, false), (true, true)] {
                        let apply = c.key::<ap::LaApply>(d, bw).flag("GRADQK", grad);
                        v.push(apply.flag("SUBGROUPS", sub).flag("VEC4", vec4));
                    }
                }
            }
        }
    }
    v
}
