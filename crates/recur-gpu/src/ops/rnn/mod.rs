//! Fused LSTM, GRU and Elman RNN over a sequence (`shaders/rnn.wgsl`), one
//! layer and direction at a time, with PyTorch's weight layout.
//!
//! Forward: the input projection for all steps is one GEMM, then one fused
//! dispatch per step. Backward: two dispatches per step (gate gradients,
//! then dh_prev), then the weight and bias gradients as GEMMs and reductions
//! over all steps. Inference: one dispatch per layer per token from weights
//! laid out once ([`RnnStepWeights`], [`rnn_infer_step`]). Everything is
//! recorded; nothing waits on the GPU.

mod backward;
mod forward;
mod infer;

pub use backward::rnn_backward;
pub use forward::{rnn_forward, rnn_forward_run};
pub use infer::{rnn_infer_step, rnn_infer_step_into, RnnStepWeights, StepIo};

use super::{layout, u32_of};
use crate::bindings::rnn_params::Params;
use crate::device::Device;
use crate::error::{check_shape, Error, Result};
use crate::kernel::KernelKey;
use crate::tensor::{DType, Tensor};

/// The recurrent cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cell {
    /// `torch.nn.LSTM`: gates i, f, g, o.
    Lstm,
    /// `torch.nn.GRU`: gates r, z, n.
    Gru,
    /// `torch.nn.RNN(nonlinearity="tanh")`.
    RnnTanh,
    /// `torch.nn.RNN(nonlinearity="relu")`.
    RnnRelu,
}

impl Cell {
    /// Gates per hidden unit (rows of W_ih per unit).
    pub fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
            Cell::RnnTanh | Cell::RnnRelu => 1,
        }
    }

    /// `key` with this cell's defines.
    fn flags(self, k: KernelKey) -> KernelKey {
        match self {
            Cell::Lstm => k.flag("LSTM", true),
            Cell::Gru => k.flag("GRU", true),
            Cell::RnnTanh => k.flag("RNN", true),
            Cell::RnnRelu => k.flag("RNN", true).flag("RELU", true),
        }
    }

    /// Every cell.
    pub const ALL: [Cell; 4] = [Cell::Lstm, Cell::Gru, Cell::RnnTanh, Cell::RnnRelu];
}

/// How the forward recurrence is dispatched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RnnStrategy {
    /// On a tuning device (GPUs by default, [`crate::Device::tuning`]), the
    /// fastest of the others for the shape class, measured the first time
    /// it is seen; elsewhere [`RnnStrategy::Stepped`]: both devices measured
    /// so far run it faster than the persistent kernel (lavapipe by ~3.4× at
    /// I=128, H=256, B=32, T=128: barriers switch every fiber; an NVIDIA
    /// H200 by 1.5× at the same shape, 4.2 vs 6.5 ms forward, one workgroup
    /// per four batch rows leaving most of the GPU idle).
    #[default]
    Auto,
    /// One fused dispatch per time step, eight batch rows per invocation.
    Stepped,
    /// One fused dispatch per time step, four batch rows per invocation:
    /// twice the workgroups of [`RnnStrategy::Stepped`] (for GPUs that a
    /// small batch leaves idle), half the reuse of each W_hh load.
    SteppedNarrow,
    /// One dispatch for the whole sequence: each workgroup owns four batch
    /// rows, keeps h in workgroup memory and steps with a workgroup barrier.
    Persistent,
}

/// Largest hidden size the persistent kernel takes (its workgroup size).
pub const PERSISTENT_MAX_HIDDEN: usize = 256;

/// How one layer-direction runs: the cell, its direction, whether to keep
/// what the backward needs, and how it is dispatched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RnnRun {
    /// The cell.
    pub cell: Cell,
    /// Walk time from the end (the reverse direction of a bidirectional layer).
    pub reverse: bool,
    /// Keep what [`rnn_backward`] needs.
    pub train: bool,
    /// How the recurrence is dispatched.
    pub strategy: RnnStrategy,
    /// Run at most this many steps at a time, carrying the state between
    /// chunks (`None`: the whole sequence, or chunks of at most one storage
    /// binding when a sequence tensor would exceed it).
    pub max_steps: Option<usize>,
}

impl RnnRun {
    /// A forward-direction inference run of `cell` with the default strategy.
    pub fn new(cell: Cell) -> Self {
        Self {
            cell,
            reverse: false,
            train: false,
            strategy: RnnStrategy::Auto,
            max_steps: None,
        }
    }
}

/// One layer-direction's parameters, shaped as in PyTorch.
#[derive(Clone, Copy, Debug)]
pub struct RnnWeights<'a> {
    /// `weight_ih_l{k}`: (G·H, I).
    pub w_ih: &'a Tensor,
    /// `weight_hh_l{k}`: (G·H, H).
    pub w_hh: &'a Tensor,
    /// `bias_ih_l{k}`: (G·H), absent with `bias=False`.
    pub b_ih: Option<&'a Tensor>,
    /// `bias_hh_l{k}`: (G·H).
    pub b_hh: Option<&'a Tensor>,
}

/// What the backward needs from a training forward.
#[derive(Clone, Debug)]
pub struct RnnCache {
    cell: Cell,
    reverse: bool,
    x: Tensor,
    hseq: Tensor,
    cseq: Option<Tensor>,
    saved: Option<Tensor>,
    /// For a sequence run in time chunks: each chunk's first step and
    /// cache, in processing order (the fields above are then unused).
    chunks: Vec<(usize, RnnCache)>,
}

/// Forward results, time-major.
#[derive(Clone, Debug)]
pub struct RnnOutput {
    /// (T, B, H)
    pub output: Tensor,
    /// (B, H)
    pub h_n: Tensor,
    /// (B, H), LSTM only.
    pub c_n: Option<Tensor>,
    /// Present when run with `train = true`.
    pub cache: Option<RnnCache>,
}

/// Gradients of one layer-direction.
#[derive(Clone, Debug)]
pub struct RnnGradients {
    /// (T, B, I)
    pub dx: Tensor,
    /// (B, H)
    pub dh0: Tensor,
    /// (B, H), LSTM only.
    pub dc0: Option<Tensor>,
    /// (G·H, I)
    pub dw_ih: Tensor,
    /// (G·H, H)
    pub dw_hh: Tensor,
    /// (G·H), when the layer has biases.
    pub db_ih: Option<Tensor>,
    /// (G·H), when the layer has biases.
    pub db_hh: Option<Tensor>,
}

/// Checked sizes (T, B, I, H).
fn dims(cell: Cell, w: &RnnWeights, x: &Tensor) -> Result<(usize, usize, usize, usize)> {
    let op = "rnn";
    let [t, b, i] = *x.shape() else {
        return Err(Error::ShapeMismatch {
            op,
            expected: "input of shape (T, B, I)".into(),
            got: x.shape().to_vec(),
        });
    };
    if t == 0 || b == 0 {
        return Err(Error::ShapeMismatch {
            op,
            expected: "a non-empty sequence and batch".into(),
            got: x.shape().to_vec(),
        });
    }
    let [gh, h] = *w.w_hh.shape() else {
        return Err(Error::ShapeMismatch {
            op,
            expected: "weight_hh of shape (G·H, H)".into(),
            got: w.w_hh.shape().to_vec(),
        });
    };
    if h == 0 || gh != cell.gates() * h {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("weight_hh of shape ({}, H) for {cell:?}", cell.gates()),
            got: w.w_hh.shape().to_vec(),
        });
    }
    check_shape(op, &[gh, i], w.w_ih.shape())?;
    for bias in [w.b_ih, w.b_hh].into_iter().flatten() {
        check_shape(op, &[gh], bias.shape())?;
    }
    Ok((t, b, i, h))
}

fn params(t: usize, src: usize, dst: usize, b: usize, h: usize, g: usize) -> Result<Params> {
    Ok(Params {
        t: u32_of("rnn", "steps", t)?,
        src: u32_of("rnn", "steps", src)?,
        dst: u32_of("rnn", "steps", dst)?,
        batch: u32_of("rnn", "batch", b)?,
        hidden: u32_of("rnn", "hidden", h)?,
        gates: g as u32,
        ..Params::default()
    })
}

/// State slots of step `t`: (read, write) in the (T+1, B, H) sequences.
fn slots(t: usize, reverse: bool) -> (usize, usize) {
    if reverse {
        (t + 1, t)
    } else {
        (t, t + 1)
    }
}

/// Zeros in `dtype`.
fn zeros(dev: &Device, shape: &[usize], dtype: DType) -> Result<Tensor> {
    let z = Tensor::zeros(dev, shape)?;
    if dtype == DType::F32 {
        Ok(z)
    } else {
        super::elementwise::cast(&z, dtype)
    }
}

/// The (T+1, B, H) state sequence in `dtype`, with `init` in `slot`.
fn state_seq(
    dev: &Device,
    [t, b, h]: [usize; 3],
    dtype: DType,
    init: Option<&Tensor>,
    slot: usize,
) -> Result<Tensor> {
    let seq = zeros(dev, &[t + 1, b, h], dtype)?;
    if let Some(s) = init {
        check_shape("rnn", &[b, h], s.shape())?;
        layout::write_slice(&seq, 0, slot, &s.reshape(&[1, b, h])?)?;
    }
    Ok(seq)
}

/// `t`, or a one-element placeholder for a binding the cell does not use
/// (each binding needs its own buffer: a writable binding may not alias
/// another binding of the same dispatch).
fn or_placeholder(dev: &Device, t: Option<&Tensor>, dtype: DType) -> Result<Tensor> {
    match t {
        Some(t) => Ok(t.clone()),
        None => dev.alloc("rnn", &[2], dtype),
    }
}

pub(crate) fn variants() -> Vec<KernelKey> {
    use crate::bindings::{rnn as f, rnn_backward as b};
    let mut v = Vec::new();
    for cell in Cell::ALL {
        for train in [false, true] {
            for f16 in [false, true] {
                let persistent = KernelKey::of::<f::RnnPersistent>().flag("F16", f16);
                v.push(cell.flags(persistent).flag("TRAIN", train));
                for (sub, narrow) in [(false, false), (true, false), (false, true), (true, true)] {
                    let step = KernelKey::of::<f::RnnStep>().flag("F16", f16);
                    let step = cell.flags(step).flag("TRAIN", train);
                    v.push(step.flag("SUBGROUPS", sub).flag("NARROW", narrow));
                }
            }
        }
        for (f16, masked) in [(false, false), (false, true), (true, false), (true, true)] {
            for (below, sub) in [(false, false), (false, true), (true, false), (true, true)] {
                let infer = KernelKey::of::<crate::bindings::rnn_infer::RnnInfer>();
                let infer = cell.flags(infer).flag("F16", f16).flag("MASKED", masked);
                v.push(infer.flag("X_FROM_OUT", below).flag("SUBGROUPS", sub));
            }
        }
        v.push(cell.flags(KernelKey::of::<b::RnnStepBackward>()));
        for sub in [false, true] {
            let dh = KernelKey::of::<b::RnnStepDh>();
            v.push(cell.flags(dh).flag("SUBGROUPS", sub));
        }
    }
    v
}
