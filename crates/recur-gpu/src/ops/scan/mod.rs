//! First-order linear recurrences `h_t = a_t ⊙ h_{t−1} + b_t` and their
//! log-space form, forward and backward (`shaders/scan.wgsl`,
//! `shaders/scan_tp.wgsl`): the core of minGRU/minLSTM and, later, Mamba and
//! linear attention. Tensors are f32, or f16 storage (f32 math) where the
//! adapter has SHADER_F16.

mod launch;

use super::{device_of, elementwise, layout, storage_dtype};
use crate::error::{check_shape, Error, Result};
use crate::kernel::KernelKey;
use crate::tensor::{DType, Tensor};

/// Which recurrence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanKind {
    /// `h_t = a_t h_{t−1} + b_t` on a, b, h.
    Linear,
    /// The same on logarithms (Heinsen 2023): inputs log a, log b (b > 0),
    /// state log h; `log h_t = logaddexp(log a_t + log h_{t−1}, log b_t)`.
    Log,
}

/// How the kernels split the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ScanStrategy {
    /// Serial on CPU adapters, where it streams whole cache lines and wins
    /// at every measured shape; on GPUs, serial when batch × channels alone
    /// fills the device (≥ 2¹⁷ lanes of 4 channels), time-parallel otherwise.
    #[default]
    Auto,
    /// One invocation per (batch, channel) walks the whole sequence: one
    /// dispatch, 12 bytes moved per element (f32 forward).
    Serial,
    /// A workgroup per (batch, 8 channels) scans chunks of time in parallel
    /// and carries them serially: one dispatch.
    Chunked,
    /// Time is cut into chunks across workgroups: reduce, scan the chunk
    /// summaries, rescan each chunk from its carry-in (three dispatches,
    /// ~20 bytes per element), for GPUs with few (batch, channel) pairs.
    TimeParallel,
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

/// A scan: the recurrence, its layout and how the kernels run it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scan {
    /// Which recurrence.
    pub kind: ScanKind,
    /// Layout of a, b and the outputs.
    pub layout: ScanLayout,
    /// Kernel strategy.
    pub strategy: ScanStrategy,
    /// Let the chunked kernel use subgroup shuffles where the adapter has
    /// them (on by default; off to test the workgroup-memory path).
    pub subgroups: bool,
    /// Steps per time chunk of [`ScanStrategy::TimeParallel`] (`None`: chosen
    /// from the shape so that ~2¹⁸ invocations run at once).
    pub chunk: Option<usize>,
}

impl Scan {
    /// A batch-first scan of `kind` with the default strategy.
    pub fn new(kind: ScanKind) -> Self {
        Self {
            kind,
            layout: ScanLayout::BatchFirst,
            strategy: ScanStrategy::Auto,
            subgroups: true,
            chunk: None,
        }
    }
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

/// Checked sizes and strides (in elements) of a scan's tensors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    pub(crate) batch: usize,
    pub(crate) steps: usize,
    pub(crate) dim: usize,
    pub(crate) time_axis: usize,
    pub(crate) sb: usize,
    pub(crate) st: usize,
    pub(crate) dtype: DType,
}

fn dims(op: &'static str, a: &Tensor, b: &Tensor, layout: ScanLayout) -> Result<Dims> {
    let dtype = storage_dtype(op, &[a, b])?;
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
        dtype,
    })
}

fn check_state(op: &'static str, s: Option<&Tensor>, d: &Dims) -> Result<()> {
    if let Some(s) = s {
        s.expect_dtype(op, d.dtype)?;
        check_shape(op, &[d.batch, d.dim], s.shape())?;
    }
    Ok(())
}

/// Runs the recurrence over time for `a`, `b` (log a, log b for
/// [`ScanKind::Log`]) in `layout`, from `h0` (B, D) (zeros, or log 0 = −∞,
/// when absent): [`Scan::forward`] with the given strategy.
pub fn scan(
    kind: ScanKind,
    a: &Tensor,
    b: &Tensor,
    h0: Option<&Tensor>,
    layout: ScanLayout,
    strategy: ScanStrategy,
) -> Result<ScanOutput> {
    let s = Scan {
        layout,
        strategy,
        ..Scan::new(kind)
    };
    s.forward(a, b, h0)
}

impl Scan {
    /// Runs the recurrence over time for `a`, `b` (log a, log b for
    /// [`ScanKind::Log`]) from `h0` (B, D) (zeros, or log 0 = −∞, when
    /// absent). One dispatch (three time-parallel) per group of batch items
    /// that fits one storage binding.
    pub fn forward(&self, a: &Tensor, b: &Tensor, h0: Option<&Tensor>) -> Result<ScanOutput> {
        let op = "scan";
        let mut all = vec![a, b];
        all.extend(h0);
        let dev = device_of(op, &all)?;
        let d = dims(op, a, b, self.layout)?;
        check_state(op, h0, &d)?;
        let h = dev.alloc(op, a.shape(), d.dtype)?;
        let last = dev.alloc(op, &[d.batch, d.dim], d.dtype)?;
        let io = launch::Io::Forward { h: &h, last: &last };
        launch::record(self, &dev, &d, [a, b], h0, io)?;
        Ok(ScanOutput { h, last })
    }

    /// Gradients of [`Scan::forward`] for upstream `g` (shaped like the
    /// outputs; zeros when absent) and `d_last` (B, D), given the forward's
    /// inputs and its outputs `h`. One dispatch (three time-parallel), and
    /// three more to fold `d_last` into g's last step; those bind g whole,
    /// so a sequence over the binding limit takes its final state's
    /// gradient through g instead.
    pub fn backward(
        &self,
        [a, b, h]: [&Tensor; 3],
        h0: Option<&Tensor>,
        g: Option<&Tensor>,
        d_last: Option<&Tensor>,
    ) -> Result<ScanGrads> {
        let op = "scan_backward";
        let mut all = vec![a, b, h];
        all.extend(h0);
        all.extend(g);
        all.extend(d_last);
        let dev = device_of(op, &all)?;
        let d = dims(op, a, b, self.layout)?;
        check_state(op, h0, &d)?;
        check_state(op, d_last, &d)?;
        h.expect_dtype(op, d.dtype)?;
        check_shape(op, a.shape(), h.shape())?;
        if let Some(g) = g {
            g.expect_dtype(op, d.dtype)?;
            check_shape(op, a.shape(), g.shape())?;
        }
        // The final state's gradient joins g at the last step.
        let g = match (g, d_last) {
            (Some(g), None) => g.clone(),
            (g, dl) => {
                let f32_of = |t: &Tensor| elementwise::cast(t, DType::F32);
                let mut base = match g {
                    Some(g) => elementwise::scale(&f32_of(g)?, 1.0)?,
                    None => Tensor::zeros(&dev, a.shape())?,
                };
                if let Some(dl) = dl {
                    let mut shape = a.shape().to_vec();
                    shape[d.time_axis] = 1;
                    let tail = layout::slice(&base, d.time_axis, d.steps - 1, 1)?;
                    let sum = elementwise::add(&tail, &f32_of(dl)?.reshape(&shape)?)?;
                    layout::write_slice(&base, d.time_axis, d.steps - 1, &sum)?;
                }
                if d.dtype != DType::F32 {
                    base = elementwise::cast(&base, d.dtype)?;
                }
                base
            }
        };
        let da = dev.alloc(op, a.shape(), d.dtype)?;
        let db = dev.alloc(op, a.shape(), d.dtype)?;
        // Written only with an initial state; a small stand-in otherwise.
        let dh0 = match h0 {
            Some(_) => dev.alloc(op, &[d.batch, d.dim], d.dtype)?,
            None => dev.alloc(op, &[4], d.dtype)?, // one vec4
        };
        let io = launch::Io::Backward {
            h,
            g: &g,
            da: &da,
            db: &db,
            dh0: &dh0,
        };
        launch::record(self, &dev, &d, [a, b], h0, io)?;
        let dh0 = h0.map(|_| dh0);
        Ok(ScanGrads { da, db, dh0 })
    }
}

pub(crate) fn variants() -> Vec<KernelKey> {
    launch::variants()
}
