//! Fused LSTM, GRU and Elman RNN over a sequence (`shaders/rnn.wgsl`), one
//! layer and direction at a time, with PyTorch's weight layout.
//!
//! Forward: the input projection for all steps is one GEMM, then one fused
//! dispatch per step. Backward: two dispatches per step (gate gradients,
//! then dh_prev), then the weight and bias gradients as GEMMs and reductions
//! over all steps. Everything is recorded; nothing waits on the GPU.

use bytemuck::{Pod, Zeroable};

mod backward;

pub use backward::rnn_backward;

use super::gemm::Gemm;
use super::{all_f32, device_of, layout, u32_of};
use crate::device::Device;
use crate::error::{check_shape, Error, Result};
use crate::kernel::{Access, KernelKey};
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

    fn key(self, entry: &'static str) -> KernelKey {
        let shader = if entry.starts_with("rnn_step_") {
            "rnn_backward"
        } else {
            "rnn"
        };
        let k = KernelKey::new(shader, entry);
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

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    t: u32,
    src: u32,
    dst: u32,
    batch: u32,
    hidden: u32,
    gates: u32,
    _pad: [u32; 2],
}

/// How the forward recurrence is dispatched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RnnStrategy {
    /// [`RnnStrategy::Persistent`] when the hidden size fits one workgroup
    /// (H ≤ 256), else [`RnnStrategy::Stepped`].
    #[default]
    Auto,
    /// One fused dispatch per time step.
    Stepped,
    /// One dispatch for the whole sequence: each workgroup owns four batch
    /// rows, keeps h in workgroup memory and steps with a workgroup barrier.
    Persistent,
}

/// Largest hidden size the persistent kernel takes (its workgroup size).
pub const PERSISTENT_MAX_HIDDEN: usize = 256;

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
        t: t as u32,
        src: src as u32,
        dst: dst as u32,
        batch: u32_of("rnn", "batch", b)?,
        hidden: u32_of("rnn", "hidden", h)?,
        gates: g as u32,
        _pad: [0; 2],
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

fn state_seq(
    dev: &Device,
    t: usize,
    b: usize,
    h: usize,
    init: Option<&Tensor>,
    slot: usize,
) -> Result<Tensor> {
    let seq = Tensor::zeros(dev, &[t + 1, b, h])?;
    if let Some(s) = init {
        check_shape("rnn", &[b, h], s.shape())?;
        layout::write_slice(&seq, 0, slot, &s.reshape(&[1, b, h])?)?;
    }
    Ok(seq)
}

/// `t`, or a one-element placeholder for a binding the cell does not use
/// (each binding needs its own buffer: a writable binding may not alias
/// another binding of the same dispatch).
fn or_placeholder(dev: &Device, t: Option<&Tensor>) -> Result<Tensor> {
    match t {
        Some(t) => Ok(t.clone()),
        None => dev.alloc("rnn", &[1], DType::F32),
    }
}

/// Runs one layer-direction over `x` (T, B, I) from `h0`/`c0` (B, H; zeros
/// when absent). With `train`, keeps what [`rnn_backward`] needs.
pub fn rnn_forward(
    cell: Cell,
    w: &RnnWeights,
    x: &Tensor,
    h0: Option<&Tensor>,
    c0: Option<&Tensor>,
    reverse: bool,
    train: bool,
) -> Result<RnnOutput> {
    rnn_forward_with(RnnStrategy::Auto, cell, w, x, h0, c0, reverse, train)
}

/// [`rnn_forward`] with an explicit dispatch strategy.
#[allow(clippy::too_many_arguments)]
pub fn rnn_forward_with(
    strategy: RnnStrategy,
    cell: Cell,
    w: &RnnWeights,
    x: &Tensor,
    h0: Option<&Tensor>,
    c0: Option<&Tensor>,
    reverse: bool,
    train: bool,
) -> Result<RnnOutput> {
    let mut operands = vec![w.w_ih, w.w_hh, x];
    operands.extend(w.b_ih.into_iter().chain(w.b_hh).chain(h0).chain(c0));
    let dev = device_of("rnn", &operands)?;
    all_f32("rnn", &operands)?;
    let (t, b, i, h) = dims(cell, w, x)?;
    let g = cell.gates();
    // Floats per step of the largest sequence tensors: the input projection
    // (and the backward's gate gradients), the saved activations when
    // training, the input; the states have one step more.
    let saved_width = if train && matches!(cell, Cell::Lstm | Cell::Gru) {
        4 * h
    } else {
        0
    };
    let per_step = 4 * b * (g * h).max(saved_width).max(i);
    let limit = dev.info().limits.max_storage_buffer_binding_size as usize;
    if t > 1 && (t * per_step > limit || (t + 1) * 4 * b * h > limit) {
        let steps = (limit / per_step)
            .min(limit / (4 * b * h))
            .saturating_sub(1);
        return rnn_forward_chunked(steps.max(1), strategy, cell, w, x, h0, c0, reverse, train);
    }
    // x W_ihᵀ as an NN product with a transposed copy of W_ih: one small
    // transpose per forward, and the NN kernel is the faster one on CPU
    // adapters (2.5x on lavapipe at 1024³).
    let w_ih_t = layout::transpose(w.w_ih)?;
    let xproj = Gemm::default().run(&x.reshape(&[t * b, i])?, &w_ih_t, w.b_ih)?;
    let w_hh_t = layout::transpose(w.w_hh)?;
    let b_hh = match w.b_hh {
        Some(bias) => bias.clone(),
        None => Tensor::zeros(&dev, &[g * h])?,
    };
    let first = if reverse { t } else { 0 };
    let hseq = state_seq(&dev, t, b, h, h0, first)?;
    let lstm = cell == Cell::Lstm;
    let cseq = if lstm {
        Some(state_seq(&dev, t, b, h, c0, first)?)
    } else {
        None
    };
    let saved = if train && matches!(cell, Cell::Lstm | Cell::Gru) {
        Some(dev.alloc("rnn", &[t, b, 4 * h], DType::F32)?)
    } else {
        None
    };
    let cseq_or_dummy = or_placeholder(&dev, cseq.as_ref())?;
    let saved_or_dummy = or_placeholder(&dev, saved.as_ref())?;
    let (cs, sv) = (&cseq_or_dummy, &saved_or_dummy);
    let bindings = [
        (xproj.storage(), xproj.bytes(), Access::Read),
        (w_hh_t.storage(), w_hh_t.bytes(), Access::Read),
        (b_hh.storage(), b_hh.bytes(), Access::Read),
        (hseq.storage(), hseq.bytes(), Access::ReadWrite),
        (cs.storage(), cs.bytes(), Access::ReadWrite),
        (sv.storage(), sv.bytes(), Access::ReadWrite),
    ];
    let persistent = match strategy {
        RnnStrategy::Auto => {
            h <= PERSISTENT_MAX_HIDDEN && dev.info().device_type != wgpu::DeviceType::Cpu
        }
        RnnStrategy::Stepped => false,
        RnnStrategy::Persistent if h > PERSISTENT_MAX_HIDDEN => {
            return Err(Error::InvalidArgument {
                op: "rnn",
                what: format!("the persistent kernel takes H <= {PERSISTENT_MAX_HIDDEN}, got {h}"),
            })
        }
        RnnStrategy::Persistent => true,
    };
    if persistent {
        let key = cell
            .key("rnn_persistent")
            .flag("FORWARD", true)
            .flag("TRAIN", saved.is_some());
        let p = params(t, reverse as usize, 0, b, h, g)?;
        dev.dispatch(
            &key,
            bytemuck::bytes_of(&p),
            &bindings,
            [b.div_ceil(4) as u32, 1, 1],
        )?;
    } else {
        let key = cell
            .key("rnn_step")
            .flag("FORWARD", true)
            .flag("TRAIN", saved.is_some())
            .flag("SUBGROUPS", dev.info().subgroups_of_at_least(8));
        let units = if g == 1 { h.div_ceil(4) } else { h };
        let groups = [units.div_ceil(64) as u32, b.div_ceil(8) as u32, 1];
        for s in 0..t {
            let step = if reverse { t - 1 - s } else { s };
            let (src, dst) = slots(step, reverse);
            let p = params(step, src, dst, b, h, g)?;
            dev.dispatch(&key, bytemuck::bytes_of(&p), &bindings, groups)?;
        }
    }
    let out_start = if reverse { 0 } else { 1 };
    let last = if reverse { 0 } else { t };
    let output = layout::slice(&hseq, 0, out_start, t)?;
    let h_n = layout::slice(&hseq, 0, last, 1)?.reshape(&[b, h])?;
    let c_n = match &cseq {
        Some(c) => Some(layout::slice(c, 0, last, 1)?.reshape(&[b, h])?),
        None => None,
    };
    let cache = train.then(|| RnnCache {
        cell,
        reverse,
        x: x.clone(),
        hseq,
        cseq,
        saved,
        chunks: Vec::new(),
    });
    Ok(RnnOutput {
        output,
        h_n,
        c_n,
        cache,
    })
}

/// [`rnn_forward_with`] over time chunks of at most `max_steps` steps, the
/// state carried from chunk to chunk (in the direction's processing order):
/// the same results, with every tensor a chunk's size. `rnn_forward` does
/// this by itself when a whole-sequence tensor would exceed one storage
/// binding; [`rnn_backward`] walks the chunks back with the state gradients.
#[allow(clippy::too_many_arguments)]
pub fn rnn_forward_chunked(
    max_steps: usize,
    strategy: RnnStrategy,
    cell: Cell,
    w: &RnnWeights,
    x: &Tensor,
    h0: Option<&Tensor>,
    c0: Option<&Tensor>,
    reverse: bool,
    train: bool,
) -> Result<RnnOutput> {
    let (t, ..) = dims(cell, w, x)?;
    let len = max_steps.max(1);
    let mut starts: Vec<usize> = (0..t).step_by(len).collect();
    if reverse {
        starts.reverse();
    }
    let (mut h, mut c) = (h0.cloned(), c0.cloned());
    let mut outs: Vec<(usize, Tensor)> = Vec::new();
    let mut chunks = Vec::new();
    for &s in &starts {
        let n = len.min(t - s);
        let xs = layout::slice(x, 0, s, n)?;
        let o = rnn_forward_with(
            strategy,
            cell,
            w,
            &xs,
            h.as_ref(),
            c.as_ref(),
            reverse,
            train,
        )?;
        (h, c) = (Some(o.h_n), o.c_n);
        outs.push((s, o.output));
        if let Some(cache) = o.cache {
            chunks.push((s, cache));
        }
    }
    outs.sort_by_key(|(s, _)| *s);
    let parts: Vec<&Tensor> = outs.iter().map(|(_, o)| o).collect();
    let output = layout::concat(&parts, 0)?;
    let dev = x.device("rnn")?;
    let h_n = h.ok_or(Error::InvalidArgument {
        op: "rnn",
        what: "empty sequence".into(),
    })?;
    let cache = train.then(|| -> Result<RnnCache> {
        let empty = dev.alloc("rnn", &[1], DType::F32)?;
        Ok(RnnCache {
            cell,
            reverse,
            x: x.clone(),
            hseq: empty,
            cseq: None,
            saved: None,
            chunks,
        })
    });
    Ok(RnnOutput {
        output,
        h_n,
        c_n: c,
        cache: cache.transpose()?,
    })
}

pub(crate) fn variants() -> Vec<KernelKey> {
    let mut v = Vec::new();
    for cell in Cell::ALL {
        for entry in ["rnn_step", "rnn_persistent"] {
            v.push(cell.key(entry).flag("FORWARD", true));
            v.push(cell.key(entry).flag("FORWARD", true).flag("TRAIN", true));
        }
        v.push(cell.key("rnn_step_backward"));
        v.push(cell.key("rnn_step_dh"));
        v.push(cell.key("rnn_step_dh").flag("SUBGROUPS", true));
        for train in [false, true] {
            v.push(
                cell.key("rnn_step")
                    .flag("FORWARD", true)
                    .flag("TRAIN", train)
                    .flag("SUBGROUPS", true),
            );
        }
    }
    v
}
