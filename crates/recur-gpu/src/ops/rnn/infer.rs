//! The inference step (`shaders/rnn_infer.wgsl`): one layer of a fused
//! LSTM / GRU / Elman RNN advanced by one token in one dispatch, from
//! weights laid out once for it ([`RnnStepWeights`]). Nothing is saved for
//! a backward; the cell state is updated in place.

use super::{dims, Cell, RnnWeights};
use crate::bindings::rnn_infer as k;
use crate::error::{check_shape, Error, Result};
use crate::kernel::KernelKey;
use crate::ops::{device_of, elementwise, layout, u32_of};
use crate::tensor::{DType, Tensor};

/// One layer's weights for [`rnn_infer_step`]: W_ihᵀ (I, G·H), W_hhᵀ
/// (H, G·H) and both biases as one (2, G·H) tensor (zeros where the layer
/// has none), in f32 or f16.
#[derive(Clone, Debug)]
pub struct RnnStepWeights {
    cell: Cell,
    w_ih_t: Tensor,
    w_hh_t: Tensor,
    bias: Tensor,
    input: usize,
    hidden: usize,
}

impl RnnStepWeights {
    /// Lays out PyTorch-shaped weights (f32) for the step kernel, stored in
    /// `dtype` (F16 needs the adapter's SHADER_F16).
    pub fn new(cell: Cell, w: &RnnWeights, dtype: DType) -> Result<Self> {
        let op = "RnnStepWeights::new";
        let dev = device_of(op, &[w.w_ih, w.w_hh])?;
        if dtype == DType::U32 {
            return Err(Error::DType {
                op,
                dtype,
                expected: "F32 or F16 weights",
            });
        }
        // dims() checks every shape against (T, B, I) = (1, 1, I).
        let i = *w.w_ih.shape().last().unwrap_or(&0);
        let probe = Tensor::zeros(&dev, &[1, 1, i.max(1)])?;
        let (_, _, input, hidden) = dims(cell, w, &probe)?;
        let gh = cell.gates() * hidden;
        let zero = Tensor::zeros(&dev, &[gh])?;
        let b_ih = w.b_ih.unwrap_or(&zero).reshape(&[1, gh])?;
        let b_hh = w.b_hh.unwrap_or(&zero).reshape(&[1, gh])?;
        let store = |t: Tensor| {
            if t.dtype() == dtype {
                Ok(t)
            } else {
                elementwise::cast(&t, dtype)
            }
        };
        Ok(Self {
            cell,
            w_ih_t: store(layout::transpose(w.w_ih)?)?,
            w_hh_t: store(layout::transpose(w.w_hh)?)?,
            bias: store(layout::concat(&[&b_ih, &b_hh], 0)?)?,
            input,
            hidden,
        })
    }

    /// The cell.
    pub fn cell(&self) -> Cell {
        self.cell
    }

    /// Input features.
    pub fn input(&self) -> usize {
        self.input
    }

    /// Hidden features.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Storage dtype of the weights.
    pub fn dtype(&self) -> DType {
        self.w_hh_t.dtype()
    }
}

/// Where [`rnn_infer_step_into`] reads and writes: row-major (B, ·) blocks
/// that start `x_offset` elements into `x` and `h_offset` elements into
/// `h_in`, `h_out` and `c` (one layer of an (L, B, ·) state, stepped where
/// it lies). `x` may be `h_out` itself (the layer below's output) at a
/// range the step does not write.
#[derive(Clone, Copy, Debug)]
pub struct StepIo<'a> {
    /// Streams stepped (B).
    pub batch: usize,
    /// The input, (B, I) at `x_offset`.
    pub x: &'a Tensor,
    /// Where the input block starts.
    pub x_offset: usize,
    /// The state read, (B, H) at `h_offset`.
    pub h_in: &'a Tensor,
    /// The state written, (B, H) at `h_offset`; another buffer than `h_in`.
    pub h_out: &'a Tensor,
    /// An LSTM's cell state, (B, H) at `h_offset`, updated in place.
    pub c: Option<&'a Tensor>,
    /// Where the state blocks start.
    pub h_offset: usize,
    /// (B): rows where it is 0 keep their state (h_out = h_in, c unchanged).
    pub mask: Option<&'a Tensor>,
}

/// One step of one layer for a batch: returns h_out (B, H) from x (B, I)
/// and h_in (B, H); an LSTM's `c` (B, H) is updated in place (required for
/// an LSTM, refused otherwise). With `mask` (B), rows where it is 0 keep
/// their state: h_out = h_in and c unchanged. One dispatch.
pub fn rnn_infer_step(
    w: &RnnStepWeights,
    x: &Tensor,
    h_in: &Tensor,
    c: Option<&Tensor>,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let op = "rnn_infer_step";
    let dev = device_of(op, &[x, h_in])?;
    let [b, i] = *x.shape() else {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("x of shape (B, {})", w.input),
            got: x.shape().to_vec(),
        });
    };
    check_shape(op, &[b, w.input], &[b, i])?;
    check_shape(op, &[b, w.hidden], h_in.shape())?;
    if let Some(c) = c {
        check_shape(op, &[b, w.hidden], c.shape())?;
    }
    let h_out = dev.alloc(op, &[b, w.hidden], DType::F32)?;
    let io = StepIo {
        batch: b,
        x,
        x_offset: 0,
        h_in,
        h_out: &h_out,
        c,
        h_offset: 0,
        mask,
    };
    rnn_infer_step_into(w, &io)?;
    Ok(h_out)
}

/// [`rnn_infer_step`] into a given `h_out`, at offsets (see [`StepIo`]).
pub fn rnn_infer_step_into(w: &RnnStepWeights, io: &StepIo) -> Result<()> {
    let op = "rnn_infer_step";
    let StepIo {
        batch: b,
        x,
        x_offset,
        h_in,
        h_out,
        c,
        h_offset,
        mask,
    } = *io;
    let mut operands = vec![x, h_in, h_out, &w.w_hh_t];
    operands.extend(c.into_iter().chain(mask));
    let dev = device_of(op, &operands)?;
    for t in [x, h_in, h_out].into_iter().chain(c).chain(mask) {
        if t.dtype() != DType::F32 {
            return Err(Error::DType {
                op,
                dtype: t.dtype(),
                expected: "F32 inputs, states and mask",
            });
        }
    }
    if b == 0 {
        return Err(Error::ShapeMismatch {
            op,
            expected: "a non-empty batch".into(),
            got: x.shape().to_vec(),
        });
    }
    let (bi, bh) = (b * w.input, b * w.hidden);
    let short = |t: &Tensor, start: usize, len: usize, what: &str| {
        if start.checked_add(len).is_none_or(|end| end > t.numel()) {
            return Err(Error::InvalidArgument {
                op,
                what: format!(
                    "{what} {:?} holds no {len} elements from element {start} (batch {b}, input {}, hidden {})",
                    t.shape(),
                    w.input,
                    w.hidden
                ),
            });
        }
        Ok(())
    };
    short(x, x_offset, bi, "x")?;
    short(h_in, h_offset, bh, "h_in")?;
    short(h_out, h_offset, bh, "h_out")?;
    if h_in.shares_storage(h_out) {
        return Err(Error::InvalidArgument {
            op,
            what: "h_in and h_out must be different buffers".into(),
        });
    }
    // x may be the layer below's output in h_out (read from there), never a
    // range the step writes.
    let x_from_out = x.shares_storage(h_out);
    let overlaps = x_offset < h_offset + bh && h_offset < x_offset + bi;
    if (x_from_out && overlaps) || c.is_some_and(|c| x.shares_storage(c)) {
        return Err(Error::InvalidArgument {
            op,
            what: format!("x at {x_offset} overlaps the state the step writes (at {h_offset})"),
        });
    }
    match (w.cell == Cell::Lstm, c) {
        (true, Some(c)) => short(c, h_offset, bh, "c")?,
        (false, None) => {}
        (true, None) | (false, Some(_)) => {
            return Err(Error::InvalidArgument {
                op,
                what: format!(
                    "a cell state is given exactly for an LSTM, not {:?}",
                    w.cell
                ),
            })
        }
    }
    if let Some(m) = mask {
        check_shape(op, &[b], m.shape())?;
    }
    // Unused bindings still need buffers of their own.
    let placeholder = |t: Option<&Tensor>| match t {
        Some(t) => Ok(t.clone()),
        None => dev.alloc(op, &[1], DType::F32),
    };
    let (c_b, mask_b) = (placeholder(c)?, placeholder(mask)?);
    let x_b = placeholder((!x_from_out).then_some(x))?;
    let key = w
        .cell
        .flags(KernelKey::of::<k::RnnInfer>())
        .flag("F16", w.dtype() == DType::F16)
        .flag("MASKED", mask.is_some())
        .flag("X_FROM_OUT", x_from_out)
        .flag("SUBGROUPS", dev.info().subgroups_of_at_least(8));
    let p = k::Params {
        batch: u32_of(op, "batch", b)?,
        input: u32_of(op, "input", w.input)?,
        hidden: u32_of(op, "hidden", w.hidden)?,
        gates: w.cell.gates() as u32,
        x_off: u32_of(op, "x offset", x_offset)?,
        h_off: u32_of(op, "h offset", h_offset)?,
        ..k::Params::default()
    };
    let units = if w.cell.gates() == 1 {
        w.hidden.div_ceil(4)
    } else {
        w.hidden
    };
    let groups = [
        u32_of(op, "workgroups", units.div_ceil(64))?,
        u32_of(op, "workgroups", b.div_ceil(8))?,
        1,
    ];
    let bindings = k::RnnInfer {
        x: (&x_b).into(),
        w_ih_t: (&w.w_ih_t).into(),
        w_hh_t: (&w.w_hh_t).into(),
        bias: (&w.bias).into(),
        h_in: h_in.into(),
        h_out: h_out.into(),
        c: (&c_b).into(),
        mask: (&mask_b).into(),
    };
    dev.launch(&key, &p, &bindings, groups)
}
