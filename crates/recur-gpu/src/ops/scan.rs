//! First-order linear recurrences `h_t = a_t ⊙ h_{t−1} + b_t` and their
//! log-space form, forward and backward (`shaders/scan.wgsl`): the core of
//! minGRU/minLSTM and, later, Mamba and linear attention.

use bytemuck::{Pod, Zeroable};

use super::{all_f32, device_of, elementwise, layout, u32_of};
use crate::error::{check_shape, Error, Result};
use crate::kernel::{Access, KernelKey};
use crate::pool::GpuBuffer;
use crate::record::groups_for;
use crate::tensor::{DType, Tensor};
use std::sync::Arc;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    batch: u32,
    steps: u32,
    dim: u32,
    sb: u32,
    st: u32,
    has_h0: u32,
    seg: u32,
    /// First batch item of this dispatch (indexes h0 and the final state).
    b0: u32,
}

/// Which recurrence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanKind {
    /// `h_t = a_t h_{t−1} + b_t` on a, b, h.
    Linear,
    /// The same on logarithms (Heinsen 2023): inputs log a, log b (b > 0),
    /// state log h; `log h_t = logaddexp(log a_t + log h_{t−1}, log b_t)`.
    Log,
}

/// How the kernel walks time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ScanStrategy {
    /// Serial on CPU adapters or when batch × channels fills the device,
    /// chunked otherwise.
    #[default]
    Auto,
    /// One invocation per (batch, channel) walks the whole sequence.
    Serial,
    /// A workgroup per (batch, 8 channels) scans chunks of time in parallel.
    Chunked,
}

/// Memory layout of the (batch, time, channel) tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ScanLayout {
    /// (B, T, D)
    #[default]
    BatchFirst,
    /// (T, B, D)
    TimeMajor,
}

/// Forward results.
#[derive(Clone, Debug)]
pub struct ScanOutput {
    /// Every h_t (log h_t for [`ScanKind::Log`]), shaped like the inputs.
    pub h: Tensor,
    /// The final state (B, D).
    pub last: Tensor,
}

/// Backward results.
#[derive(Clone, Debug)]
pub struct ScanGrads {
    /// dL/da (dL/d log a).
    pub da: Tensor,
    /// dL/db (dL/d log b).
    pub db: Tensor,
    /// dL/dh0 (dL/d log h0), when the forward had an initial state.
    pub dh0: Option<Tensor>,
}

#[derive(Clone, Copy)]
struct Dims {
    batch: usize,
    steps: usize,
    dim: usize,
    time_axis: usize,
    sb: usize,
    st: usize,
}

fn dims(op: &'static str, a: &Tensor, b: &Tensor, layout: ScanLayout) -> Result<Dims> {
    all_f32(op, &[a, b])?;
    check_shape(op, a.shape(), b.shape())?;
    let [x, y, dim] = *a.shape() else {
        return Err(Error::ShapeMismatch {
            op,
            expected: "(B, T, D) or (T, B, D)".into(),
            got: a.shape().to_vec(),
        });
    };
    let (batch, steps, time_axis, sb, st) = match layout {
        ScanLayout::BatchFirst => (x, y, 1, y * dim, dim),
        ScanLayout::TimeMajor => (y, x, 0, dim, y * dim),
    };
    if steps == 0 || batch == 0 || dim == 0 {
        return Err(Error::ShapeMismatch {
            op,
            expected: "a non-empty sequence, batch and channel count".into(),
            got: a.shape().to_vec(),
        });
    }
    Ok(Dims {
        batch,
        steps,
        dim,
        time_axis,
        sb,
        st,
    })
}

impl Dims {
    /// Channels are processed as vec4s when they come in fours (then every
    /// offset is a multiple of 4 too).
    fn vec4(&self) -> bool {
        self.dim.is_multiple_of(4)
    }

    /// Channel count and strides in the kernel's units (vec4 or f32).
    fn lanes(&self) -> usize {
        if self.vec4() {
            4
        } else {
            1
        }
    }
}

fn params(op: &'static str, d: &Dims, has_h0: bool) -> Result<Params> {
    let l = d.lanes();
    Ok(Params {
        batch: u32_of(op, "batch", d.batch)?,
        steps: u32_of(op, "steps", d.steps)?,
        dim: u32_of(op, "channels", d.dim / l)?,
        sb: u32_of(op, "batch stride", d.sb / l)?,
        st: u32_of(op, "time stride", d.st / l)?,
        has_h0: has_h0 as u32,
        seg: d.steps.div_ceil(8).clamp(1, 64) as u32,
        b0: 0,
    })
}

fn pick(dev: &crate::Device, strategy: ScanStrategy, d: &Dims) -> ScanStrategy {
    match strategy {
        ScanStrategy::Auto => {
            if dev.info().device_type == wgpu::DeviceType::Cpu || d.batch * d.dim >= 8192 {
                ScanStrategy::Serial
            } else {
                ScanStrategy::Chunked
            }
        }
        s => s,
    }
}

fn key(
    kind: ScanKind,
    strategy: ScanStrategy,
    backward: bool,
    subgroup: bool,
    vec4: bool,
) -> KernelKey {
    let entry = match strategy {
        ScanStrategy::Chunked => "scan_chunked",
        _ => "scan_serial",
    };
    KernelKey::new("scan", entry)
        .flag("LOG", kind == ScanKind::Log)
        .flag("BACKWARD", backward)
        .flag("SUBGROUP", subgroup && strategy == ScanStrategy::Chunked)
        .flag("VEC4", vec4)
}

fn groups(dev: &crate::Device, strategy: ScanStrategy, d: &Dims) -> Result<[u32; 3]> {
    let lim = dev.info().limits.max_compute_workgroups_per_dimension;
    let dim = d.dim / d.lanes();
    Ok(match strategy {
        ScanStrategy::Chunked => {
            let x = dim.div_ceil(8);
            if x > lim as usize || d.batch > lim as usize {
                return Err(Error::InvalidArgument {
                    op: "scan",
                    what: format!(
                        "{} channel blocks × batch {} exceed {lim} workgroups per dimension",
                        x, d.batch
                    ),
                });
            }
            [x as u32, d.batch as u32, 1]
        }
        _ => [groups_for(d.batch * dim, 64, lim), 1, 1],
    })
}

/// One scan dispatch: which kernel, and the bindings after a, b and h0.
struct Launch {
    kind: ScanKind,
    strategy: ScanStrategy,
    backward: bool,
    subgroups: bool,
}

impl Launch {
    /// Binds `a`, `b`, `h0` (bound as `a`, never read, when absent) and
    /// `rest` (tensor, written, shaped like `a` rather than (B, D)) in
    /// order and records the kernel. Sequences larger than one storage
    /// binding are split into groups of whole batch items (batch-first),
    /// each bound at its offset; the (B, D) states are indexed from `b0`.
    fn dispatch(
        &self,
        op: &'static str,
        dev: &crate::Device,
        d: &Dims,
        [a, b]: [&Tensor; 2],
        h0: Option<&Tensor>,
        rest: &[(&Tensor, bool, bool)],
    ) -> Result<()> {
        let strategy = pick(dev, self.strategy, d);
        let mut p = params(op, d, h0.is_some())?;
        let h0b = h0.unwrap_or(a);
        let sub = self.subgroups && dev.info().subgroups_of_at_least(8);
        let key = key(self.kind, strategy, self.backward, sub, d.vec4());
        let limits = &dev.info().limits;
        let item = 4 * (d.sb as u64); // bytes of one batch item (batch-first)
        let per = if a.bytes() <= limits.max_storage_buffer_binding_size {
            d.batch
        } else if d.time_axis == 1
            && item <= limits.max_storage_buffer_binding_size
            && item.is_multiple_of(limits.min_storage_buffer_offset_alignment as u64)
        {
            (limits.max_storage_buffer_binding_size / item) as usize
        } else {
            return Err(Error::TooLarge {
                op,
                shape: a.shape().to_vec(),
                bytes: a.bytes(),
                limit_name: "max_storage_buffer_binding_size (splits need batch-first \
                             items of at most one binding, at aligned offsets)",
                limit: limits.max_storage_buffer_binding_size,
            });
        };
        let mut b0 = 0;
        while b0 < d.batch {
            let nb = per.min(d.batch - b0);
            let (off, len) = if per == d.batch {
                (0, a.bytes())
            } else {
                (b0 as u64 * item, nb as u64 * item)
            };
            let mut bindings = vec![
                range(a, false, off, len),
                range(b, false, off, len),
                range(h0b, false, 0, h0b.bytes()),
            ];
            bindings.extend(rest.iter().map(|&(t, w, per_step)| {
                if per_step {
                    range(t, w, off, len)
                } else {
                    range(t, w, 0, t.bytes())
                }
            }));
            p.batch = u32_of(op, "batch", nb)?;
            p.b0 = u32_of(op, "batch offset", b0)?;
            let part = Dims { batch: nb, ..*d };
            dev.dispatch_ranges(
                &key,
                bytemuck::bytes_of(&p),
                &bindings,
                groups(dev, strategy, &part)?,
            )?;
            b0 += nb;
        }
        Ok(())
    }
}

/// A binding of `len` bytes (at most the tensor's) of `t` from `off`.
fn range(t: &Tensor, write: bool, off: u64, len: u64) -> (&Arc<GpuBuffer>, u64, u64, Access) {
    let access = if write {
        Access::ReadWrite
    } else {
        Access::Read
    };
    (t.storage(), off, len.min(t.bytes()), access)
}

fn check_state(op: &'static str, s: Option<&Tensor>, d: &Dims) -> Result<()> {
    if let Some(s) = s {
        all_f32(op, &[s])?;
        check_shape(op, &[d.batch, d.dim], s.shape())?;
    }
    Ok(())
}

/// Runs the recurrence over time for `a`, `b` (log a, log b for
/// [`ScanKind::Log`]) in `layout`, from `h0` (B, D) (zeros, or log 0 = −∞,
/// when absent). One dispatch.
pub fn scan(
    kind: ScanKind,
    a: &Tensor,
    b: &Tensor,
    h0: Option<&Tensor>,
    layout: ScanLayout,
    strategy: ScanStrategy,
) -> Result<ScanOutput> {
    scan_with(kind, a, b, h0, layout, strategy, true)
}

/// [`scan`] with the subgroup path of the chunked kernel switched off when
/// `subgroups` is false (for tests; it is used when the adapter has it).
pub fn scan_with(
    kind: ScanKind,
    a: &Tensor,
    b: &Tensor,
    h0: Option<&Tensor>,
    layout: ScanLayout,
    strategy: ScanStrategy,
    subgroups: bool,
) -> Result<ScanOutput> {
    let op = "scan";
    let mut all = vec![a, b];
    all.extend(h0);
    let dev = device_of(op, &all)?;
    let d = dims(op, a, b, layout)?;
    check_state(op, h0, &d)?;
    let h = dev.alloc(op, a.shape(), DType::F32)?;
    let last = dev.alloc(op, &[d.batch, d.dim], DType::F32)?;
    let run = Launch {
        kind,
        strategy,
        backward: false,
        subgroups,
    };
    run.dispatch(
        op,
        &dev,
        &d,
        [a, b],
        h0,
        &[(&h, true, true), (&last, true, false)],
    )?;
    Ok(ScanOutput { h, last })
}

/// Gradients of [`scan`] for upstream `g` (shaped like the outputs; zeros
/// when absent) and `d_last` (B, D), given the forward's inputs and its
/// outputs `h`. One dispatch (three more fold `d_last` into g's last step;
/// those bind g whole, so a sequence over the binding limit takes its final
/// state's gradient through g instead).
#[allow(clippy::too_many_arguments)]
pub fn scan_backward(
    kind: ScanKind,
    a: &Tensor,
    b: &Tensor,
    h0: Option<&Tensor>,
    h: &Tensor,
    g: Option<&Tensor>,
    d_last: Option<&Tensor>,
    layout: ScanLayout,
    strategy: ScanStrategy,
) -> Result<ScanGrads> {
    scan_backward_with(kind, a, b, h0, h, g, d_last, layout, strategy, true)
}

/// [`scan_backward`] with the subgroup path optional (see [`scan_with`]).
#[allow(clippy::too_many_arguments)]
pub fn scan_backward_with(
    kind: ScanKind,
    a: &Tensor,
    b: &Tensor,
    h0: Option<&Tensor>,
    h: &Tensor,
    g: Option<&Tensor>,
    d_last: Option<&Tensor>,
    layout: ScanLayout,
    strategy: ScanStrategy,
    subgroups: bool,
) -> Result<ScanGrads> {
    let op = "scan_backward";
    let mut all = vec![a, b, h];
    all.extend(h0);
    all.extend(g);
    all.extend(d_last);
    let dev = device_of(op, &all)?;
    let d = dims(op, a, b, layout)?;
    check_state(op, h0, &d)?;
    check_state(op, d_last, &d)?;
    all_f32(op, &[h])?;
    check_shape(op, a.shape(), h.shape())?;
    if let Some(g) = g {
        all_f32(op, &[g])?;
        check_shape(op, a.shape(), g.shape())?;
    }
    // The final state's gradient joins g at the last step.
    let g = match (g, d_last) {
        (Some(g), None) => g.clone(),
        (g, dl) => {
            let base = match g {
                Some(g) => elementwise::scale(g, 1.0)?,
                None => Tensor::zeros(&dev, a.shape())?,
            };
            if let Some(dl) = dl {
                let mut shape = a.shape().to_vec();
                shape[d.time_axis] = 1;
                let tail = layout::slice(&base, d.time_axis, d.steps - 1, 1)?;
                let sum = elementwise::add(&tail, &dl.reshape(&shape)?)?;
                layout::write_slice(&base, d.time_axis, d.steps - 1, &sum)?;
            }
            base
        }
    };
    let da = dev.alloc(op, a.shape(), DType::F32)?;
    let db = dev.alloc(op, a.shape(), DType::F32)?;
    // Written only with an initial state; a small stand-in otherwise.
    let dh0 = match h0 {
        Some(_) => dev.alloc(op, &[d.batch, d.dim], DType::F32)?,
        None => dev.alloc(op, &[4], DType::F32)?, // one vec4
    };
    let run = Launch {
        kind,
        strategy,
        backward: true,
        subgroups,
    };
    run.dispatch(
        op,
        &dev,
        &d,
        [a, b],
        h0,
        &[
            (h, false, true),
            (&g, false, true),
            (&da, true, true),
            (&db, true, true),
            (&dh0, true, false),
        ],
    )?;
    let dh0 = h0.map(|_| dh0);
    Ok(ScanGrads { da, db, dh0 })
}

pub(crate) fn variants() -> Vec<KernelKey> {
    let mut v = Vec::new();
    for kind in [ScanKind::Linear, ScanKind::Log] {
        for backward in [false, true] {
            for vec4 in [false, true] {
                v.push(key(kind, ScanStrategy::Serial, backward, false, vec4));
                for sub in [false, true] {
                    v.push(key(kind, ScanStrategy::Chunked, backward, sub, vec4));
                }
            }
        }
    }
    v
}
