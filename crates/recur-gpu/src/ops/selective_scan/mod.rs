//! Mamba's selective scan (Gu & Dao 2023) with mamba_ssm's semantics and
//! shapes (`shaders/selective_scan.wgsl`, `shaders/selective_scan_backward.wgsl`):
//!
//! ```text
//! δ = softplus(δ + δ_bias);  x_t = exp(δ_t A) ⊙ x_{t−1} + δ_t B_t u_t
//! y_t = C_t · x_t + D ⊙ u_t; out = y ⊙ silu(z)
//! ```
//!
//! Time is cut into chunks of [`SelectiveScan::chunk`] steps across
//! workgroups (reduce, carry, apply: three dispatches each way); the state
//! (B, D, N, L) is never stored, only the state entering each chunk, from
//! which the backward replays each chunk.

mod backward;

use super::{all_f32, device_of, layout, u32_of};
use crate::bindings::{
    selective_core::Params, selective_scan as fw, selective_scan_backward as bw,
};
use crate::device::Device;
use crate::error::{check_shape, Error, Result};
use crate::kernel::KernelKey;
use crate::tensor::{DType, Tensor};

const FLAG_SOFTPLUS: u32 = 1;
const FLAG_Z: u32 = 2;
const FLAG_H0: u32 = 4;
const FLAG_DLAST: u32 = 8;

/// The layout of u, δ, z and the output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SsLayout {
    /// (B, D, L), mamba_ssm's.
    #[default]
    Bdl,
    /// (B, L, D): channels last, as a linear layer's output is.
    Bld,
}

/// The scan's inputs, in mamba_ssm's shapes (u, δ, z as the layout says).
#[derive(Clone, Copy, Debug)]
pub struct SelectiveScanInputs<'a> {
    /// (B, D, L) (or (B, L, D))
    pub u: &'a Tensor,
    /// Like `u`: δ before `delta_bias` and softplus.
    pub delta: &'a Tensor,
    /// (D, N), real (Mamba: −exp(A_log)).
    pub a: &'a Tensor,
    /// (B, N, L), or (B, G, N, L) with G dividing D (channel d reads group
    /// d / (D / G)).
    pub b: &'a Tensor,
    /// Shaped like `b`.
    pub c: &'a Tensor,
    /// (D): the skip term D ⊙ u.
    pub d: Option<&'a Tensor>,
    /// Like `u`: the gate, out = y ⊙ silu(z).
    pub z: Option<&'a Tensor>,
    /// (D), added to δ before the softplus.
    pub delta_bias: Option<&'a Tensor>,
    /// (B, D, N): the state before the first step (zeros when absent).
    pub h0: Option<&'a Tensor>,
}

/// How the scan runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelectiveScan {
    /// δ = softplus(δ + δ_bias) (mamba_ssm's `delta_softplus`); else δ + δ_bias.
    pub delta_softplus: bool,
    /// Steps per time chunk (1..=32): the replay keeps this many steps of
    /// each sequence in registers; more chunks mean more parallel work and
    /// more saved states (B·D·N per chunk).
    pub chunk: usize,
    /// Layout of u, δ, z and the output.
    pub layout: SsLayout,
    /// Channels per workgroup of the backward's last pass (`None`: chosen
    /// by the adapter; the adapter's fixed subgroup size sums with subgroup
    /// operations, 8 or 64 with workgroup memory).
    pub backward_channels: Option<usize>,
}

impl Default for SelectiveScan {
    fn default() -> Self {
        Self {
            delta_softplus: false,
            chunk: 16,
            layout: SsLayout::Bdl,
            backward_channels: None,
        }
    }
}

/// Forward results.
#[derive(Clone, Debug)]
pub struct SelectiveScanOutput {
    /// Like `u`.
    pub out: Tensor,
    /// (B, D, N): the state after the last step.
    pub last_state: Tensor,
    /// (B, D, K, N, 2): slot 0 holds the state entering each of the K
    /// chunks, what [`SelectiveScan::backward`] replays from.
    pub chunk_states: Tensor,
}

/// Gradients of every input (those that were given).
#[derive(Clone, Debug)]
pub struct SelectiveScanGrads {
    /// Like `u`.
    pub du: Tensor,
    /// Like `u`, with respect to δ before bias and softplus.
    pub ddelta: Tensor,
    /// (D, N)
    pub da: Tensor,
    /// Shaped like `b`.
    pub db: Tensor,
    /// Shaped like `c`.
    pub dc: Tensor,
    /// (D)
    pub dd: Option<Tensor>,
    /// Like `u`.
    pub dz: Option<Tensor>,
    /// (D)
    pub ddelta_bias: Option<Tensor>,
    /// (B, D, N)
    pub dh0: Option<Tensor>,
}

/// Checked sizes.
#[derive(Clone, Copy, Debug)]
struct Dims {
    batch: usize,
    dim: usize,
    len: usize,
    nstate: usize,
    groups: usize,
}

fn dims(op: &'static str, x: &SelectiveScanInputs, layout: SsLayout) -> Result<Dims> {
    let mut all = vec![x.u, x.delta, x.a, x.b, x.c];
    all.extend(x.d.into_iter().chain(x.z).chain(x.delta_bias).chain(x.h0));
    all_f32(op, &all)?;
    let bad = |what: &str, t: &Tensor| Error::ShapeMismatch {
        op,
        expected: what.to_string(),
        got: t.shape().to_vec(),
    };
    let (batch, dim, len) = match (layout, x.u.shape()) {
        (SsLayout::Bdl, &[b, d, l]) => (b, d, l),
        (SsLayout::Bld, &[b, l, d]) => (b, d, l),
        _ => return Err(bad("u of shape (B, D, L) (Bdl) or (B, L, D) (Bld)", x.u)),
    };
    let [_, nstate] = *x.a.shape() else {
        return Err(bad("A of shape (D, N)", x.a));
    };
    let groups = match *x.b.shape() {
        [_, _, _] => 1,
        [_, g, _, _] => g,
        _ => return Err(bad("B of shape (B, N, L) or (B, G, N, L)", x.b)),
    };
    if batch == 0 || dim == 0 || len == 0 || nstate == 0 || groups == 0 || dim % groups != 0 {
        return Err(bad(
            "non-empty B, D, L and N, and groups dividing D (u, then B)",
            if dim % groups.max(1) != 0 { x.b } else { x.u },
        ));
    }
    check_shape(op, x.u.shape(), x.delta.shape())?;
    check_shape(op, &[dim, nstate], x.a.shape())?;
    let bshape: Vec<usize> = if x.b.shape().len() == 3 {
        vec![batch, nstate, len]
    } else {
        vec![batch, groups, nstate, len]
    };
    check_shape(op, &bshape, x.b.shape())?;
    check_shape(op, &bshape, x.c.shape())?;
    for v in [x.d, x.delta_bias].into_iter().flatten() {
        check_shape(op, &[dim], v.shape())?;
    }
    if let Some(z) = x.z {
        check_shape(op, x.u.shape(), z.shape())?;
    }
    if let Some(h) = x.h0 {
        check_shape(op, &[batch, dim, nstate], h.shape())?;
    }
    Ok(Dims {
        batch,
        dim,
        len,
        nstate,
        groups,
    })
}

impl SelectiveScan {
    fn params(&self, op: &'static str, dev: &Device, s: &Dims, flags: u32) -> Result<Params> {
        if !(1..=32).contains(&self.chunk) {
            return Err(Error::InvalidArgument {
                op,
                what: format!("chunk must be in 1..=32, got {}", self.chunk),
            });
        }
        let lim = dev.info().limits.max_compute_workgroups_per_dimension as usize;
        let chunks = s.len.div_ceil(self.chunk);
        let blocks = (s.dim / s.groups).div_ceil(self.wg(dev).0);
        for (what, n) in [
            ("time chunks", chunks),
            ("batch", s.batch),
            ("channels", s.dim),
            ("state size", s.nstate),
            ("channel blocks", s.groups * blocks),
        ] {
            if n > lim {
                return Err(Error::InvalidArgument {
                    op,
                    what: format!("{what} = {n} exceed {lim} workgroups per dimension"),
                });
            }
        }
        let (sb, sd, st) = match self.layout {
            SsLayout::Bdl => (s.dim * s.len, s.len, 1),
            SsLayout::Bld => (s.len * s.dim, 1, s.dim),
        };
        Ok(Params {
            sb: u32_of(op, "batch stride", sb)?,
            sd: sd as u32,
            st: st as u32,
            _pad0: 0,
            batch: u32_of(op, "batch", s.batch)?,
            dim: u32_of(op, "channels", s.dim)?,
            len: u32_of(op, "length", s.len)?,
            nstate: u32_of(op, "state size", s.nstate)?,
            groups: u32_of(op, "groups", s.groups)?,
            chunks: chunks as u32,
            flags: flags
                | if self.delta_softplus {
                    FLAG_SOFTPLUS
                } else {
                    0
                },
            blocks: blocks as u32,
        })
    }

    fn key<'a, B: crate::bindings::Bindings<'a>>(&self) -> KernelKey {
        KernelKey::of::<B>().define("CH", format!("{}u", self.chunk))
    }

    /// Channels per workgroup of the backward's last pass, and whether they
    /// are one subgroup (summed with subgroupAdd): the adapter's subgroup
    /// size when it is fixed, else 8 on CPU adapters (a one-fiber workgroup's
    /// barriers are cheap) and 64 elsewhere.
    fn wg(&self, dev: &Device) -> (usize, bool) {
        let info = dev.info();
        let (lo, hi) = info.subgroup_size;
        let fixed = info.has(wgpu::Features::SUBGROUP) && lo == hi && (8..=64).contains(&lo);
        match self.backward_channels {
            Some(w) if fixed && w == lo as usize => (w, true),
            Some(w) => (if w <= 8 { 8 } else { 64 }, false),
            None if fixed => (lo as usize, true),
            None if info.device_type == wgpu::DeviceType::Cpu => (8, false),
            None => (64, false),
        }
    }

    /// Runs the scan. Three dispatches; nothing waits on the GPU.
    pub fn forward(&self, x: &SelectiveScanInputs) -> Result<SelectiveScanOutput> {
        let op = "selective_scan";
        let s = dims(op, x, self.layout)?;
        let dev = device_of(op, &[x.u, x.delta, x.a, x.b, x.c])?;
        let flags =
            if x.z.is_some() { FLAG_Z } else { 0 } | if x.h0.is_some() { FLAG_H0 } else { 0 };
        let p = self.params(op, &dev, &s, flags)?;
        let chan = channel_params(&dev, x, &s)?;
        let out = dev.alloc(op, x.u.shape(), DType::F32)?;
        let last = dev.alloc(op, &[s.batch, s.dim, s.nstate], DType::F32)?;
        let k = p.chunks as usize;
        let sums = dev.alloc(op, &[s.batch, s.dim, k, s.nstate, 2], DType::F32)?;
        macro_rules! bind {
            ($t:ident) => {
                fw::$t {
                    u: x.u.into(),
                    delta: x.delta.into(),
                    z: x.z.unwrap_or(x.u).into(),
                    chan: (&chan).into(),
                    bm: x.b.into(),
                    cm: x.c.into(),
                    h0: x.h0.unwrap_or(x.u).into(),
                    out: (&out).into(),
                    last: (&last).into(),
                    sums: (&sums).into(),
                }
            };
        }
        let cells = [s.dim.div_ceil(64) as u32, p.chunks, p.batch];
        let lanes = lane_groups(&dev, &s)?;
        dev.launch(
            &self.key::<fw::SelectiveScanReduce>(),
            &p,
            &bind!(SelectiveScanReduce),
            cells,
        )?;
        dev.launch(
            &self.key::<fw::SelectiveScanCarry>(),
            &p,
            &bind!(SelectiveScanCarry),
            lanes,
        )?;
        dev.launch(
            &self.key::<fw::SelectiveScanApply>(),
            &p,
            &bind!(SelectiveScanApply),
            cells,
        )?;
        Ok(SelectiveScanOutput {
            out,
            last_state: last,
            chunk_states: sums,
        })
    }
}

/// Workgroups of the carry passes: one invocation per (b, d, n).
fn lane_groups(dev: &Device, s: &Dims) -> Result<[u32; 3]> {
    let lanes = s.batch * s.dim * s.nstate;
    let lim = dev.info().limits.max_compute_workgroups_per_dimension as usize;
    if lanes.div_ceil(64) > lim {
        return Err(Error::InvalidArgument {
            op: "selective_scan",
            what: format!("B·D·N = {lanes} state lanes exceed {lim} workgroups of 64"),
        });
    }
    Ok([lanes.div_ceil(64) as u32, 1, 1])
}

/// (D, N + 2): A, then D, then δ_bias (zeros for the absent ones).
fn channel_params(dev: &Device, x: &SelectiveScanInputs, s: &Dims) -> Result<Tensor> {
    let col = |v: Option<&Tensor>| -> Result<Tensor> {
        match v {
            Some(v) => v.reshape(&[s.dim, 1]),
            None => Tensor::zeros(dev, &[s.dim, 1]),
        }
    };
    layout::concat(&[x.a, &col(x.d)?, &col(x.delta_bias)?], 1)
}

pub(crate) fn variants() -> Vec<KernelKey> {
    let s = SelectiveScan::default();
    let short = SelectiveScan { chunk: 4, ..s };
    // (The layout only changes strides in the parameters.)
    let mut v = Vec::new();
    for c in [s, short] {
        v.push(c.key::<fw::SelectiveScanReduce>());
        v.push(c.key::<fw::SelectiveScanCarry>());
        v.push(c.key::<fw::SelectiveScanApply>());
        v.push(c.key::<bw::SelectiveScanReduceBackward>());
        v.push(c.key::<bw::SelectiveScanCarryBackward>());
        for wg in ["8u", "32u", "64u"] {
            for sub in [false, true] {
                let k = c.key::<bw::SelectiveScanApplyBackward>();
                v.push(k.define("WG", wg).flag("SUBGROUP", sub));
            }
        }
    }
    v
}
