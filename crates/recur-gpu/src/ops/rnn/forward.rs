//! The forward recurrence (`shaders/rnn.wgsl`): the input projection for
//! all steps as one GEMM, then one fused dispatch per step (or one for the
//! whole sequence with the persistent kernel).

use super::{
    dims, or_placeholder, params, slots, state_seq, zeros, Cell, RnnCache, RnnOutput, RnnRun,
    RnnStrategy, RnnWeights, PERSISTENT_MAX_HIDDEN,
};
use crate::bindings::rnn as k;
use crate::error::{Error, Result};
use crate::kernel::KernelKey;
use crate::ops::gemm::Gemm;
use crate::ops::{device_of, layout, storage_dtype};
use crate::tensor::{DType, Tensor};

/// Runs one layer-direction over `x` (T, B, I) from `h0`/`c0` (B, H; zeros
/// when absent). With `train`, keeps what [`super::rnn_backward`] needs.
pub fn rnn_forward(
    cell: Cell,
    w: &RnnWeights,
    x: &Tensor,
    h0: Option<&Tensor>,
    c0: Option<&Tensor>,
    reverse: bool,
    train: bool,
) -> Result<RnnOutput> {
    let run = RnnRun {
        reverse,
        train,
        ..RnnRun::new(cell)
    };
    rnn_forward_run(&run, w, x, h0, c0)
}

/// [`rnn_forward`] as `run` describes (strategy, time chunks).
pub fn rnn_forward_run(
    run: &RnnRun,
    w: &RnnWeights,
    x: &Tensor,
    h0: Option<&Tensor>,
    c0: Option<&Tensor>,
) -> Result<RnnOutput> {
    let RnnRun {
        cell,
        reverse,
        train,
        strategy,
        max_steps,
    } = *run;
    let mut operands = vec![w.w_ih, w.w_hh, x];
    operands.extend(w.b_ih.into_iter().chain(w.b_hh).chain(h0).chain(c0));
    let dev = device_of("rnn", &operands)?;
    let dtype = storage_dtype("rnn", &operands)?;
    if dtype == DType::F16 && train {
        return Err(Error::DType {
            op: "rnn",
            dtype,
            expected:
                "F32 for training (f16 storage runs the inference forward; the backward is f32)",
        });
    }
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
    let fits = (limit / per_step)
        .min(limit / (4 * b * h))
        .saturating_sub(1);
    let steps = max_steps.unwrap_or(t).min(fits).max(1);
    if t > steps {
        return forward_chunked(steps, run, w, x, h0, c0);
    }
    // x W_ihᵀ as an NN product with a transposed copy of W_ih: one small
    // transpose per forward, and the NN kernel is the faster one on CPU
    // adapters (2.5x on lavapipe at 1024³).
    let w_ih_t = layout::transpose(w.w_ih)?;
    let xproj = Gemm::default().run(&x.reshape(&[t * b, i])?, &w_ih_t, w.b_ih)?;
    let w_hh_t = layout::transpose(w.w_hh)?;
    let b_hh = match w.b_hh {
        Some(bias) => bias.clone(),
        None => zeros(&dev, &[g * h], dtype)?,
    };
    let first = if reverse { t } else { 0 };
    let hseq = state_seq(&dev, [t, b, h], dtype, h0, first)?;
    let lstm = cell == Cell::Lstm;
    let cseq = if lstm {
        Some(state_seq(&dev, [t, b, h], dtype, c0, first)?)
    } else {
        None
    };
    let saved = if train && matches!(cell, Cell::Lstm | Cell::Gru) {
        Some(dev.alloc("rnn", &[t, b, 4 * h], DType::F32)?)
    } else {
        None
    };
    let cseq_or_dummy = or_placeholder(&dev, cseq.as_ref(), dtype)?;
    let saved_or_dummy = or_placeholder(&dev, saved.as_ref(), dtype)?;
    let (cs, sv) = (&cseq_or_dummy, &saved_or_dummy);
    let strategy = match strategy {
        RnnStrategy::Auto => tuned(&dev, run, w, x, h0, c0, (t, b, i, h, dtype))?,
        s => s,
    };
    let persistent = match strategy {
        RnnStrategy::Auto | RnnStrategy::Stepped | RnnStrategy::SteppedNarrow => false,
        RnnStrategy::Persistent if h > PERSISTENT_MAX_HIDDEN => {
            return Err(Error::InvalidArgument {
                op: "rnn",
                what: format!("the persistent kernel takes H <= {PERSISTENT_MAX_HIDDEN}, got {h}"),
            })
        }
        RnnStrategy::Persistent => true,
    };
    // Both kernels bind the same buffers.
    macro_rules! bindings {
        ($t:ident) => {
            k::$t {
                xproj: (&xproj).into(),
                w_hh_t: (&w_hh_t).into(),
                b_hh: (&b_hh).into(),
                hseq: (&hseq).into(),
                cseq: cs.into(),
                saved: sv.into(),
            }
        };
    }
    if persistent {
        let key = cell.flags(KernelKey::of::<k::RnnPersistent>());
        let key = key
            .flag("TRAIN", saved.is_some())
            .flag("F16", dtype == DType::F16);
        let p = params(t, reverse as usize, 0, b, h, g)?;
        let groups = [b.div_ceil(4) as u32, 1, 1];
        dev.launch(&key, &p, &bindings!(RnnPersistent), groups)?;
    } else {
        let narrow = strategy == RnnStrategy::SteppedNarrow;
        let key = cell
            .flags(KernelKey::of::<k::RnnStep>())
            .flag("TRAIN", saved.is_some())
            .flag("F16", dtype == DType::F16)
            .flag("SUBGROUPS", dev.info().subgroups_of_at_least(8))
            .flag("NARROW", narrow);
        let units = if g == 1 { h.div_ceil(4) } else { h };
        let rows = if narrow { 4 } else { 8 };
        let groups = [units.div_ceil(64) as u32, b.div_ceil(rows) as u32, 1];
        let bindings = bindings!(RnnStep);
        for s in 0..t {
            let step = if reverse { t - 1 - s } else { s };
            let (src, dst) = slots(step, reverse);
            let p = params(step, src, dst, b, h, g)?;
            dev.launch(&key, &p, &bindings, groups)?;
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

/// `Auto`'s strategy on a tuning device: the fastest forward (without
/// saving activations, into outputs of its own) for this shape class (cell,
/// direction, dtype, ⌈log₂⌉ of T, B, I, H), measured the first time the
/// class is seen; [`RnnStrategy::Stepped`] where the device does not tune.
fn tuned(
    dev: &crate::Device,
    run: &RnnRun,
    w: &RnnWeights,
    x: &Tensor,
    h0: Option<&Tensor>,
    c0: Option<&Tensor>,
    (t, b, i, h, dtype): (usize, usize, usize, usize, DType),
) -> Result<RnnStrategy> {
    if !dev.tuning() {
        return Ok(RnnStrategy::Stepped);
    }
    use crate::tune::bucket;
    let class = format!(
        "rnn {:?} {} {dtype:?} t{} b{} i{} h{}",
        run.cell,
        if run.reverse { "rev" } else { "fwd" },
        bucket(t),
        bucket(b),
        bucket(i),
        bucket(h)
    );
    let of = |name: &str| match name {
        "narrow" => RnnStrategy::SteppedNarrow,
        "persistent" => RnnStrategy::Persistent,
        _ => RnnStrategy::Stepped,
    };
    let mut candidates = vec!["stepped", "narrow"];
    if h <= PERSISTENT_MAX_HIDDEN {
        candidates.push("persistent");
    }
    let choice = dev.tune(&class, &candidates, |name| {
        let trial = RnnRun {
            strategy: of(name),
            train: false,
            ..*run
        };
        rnn_forward_run(&trial, w, x, h0, c0).map(|_| ())
    })?;
    Ok(of(choice))
}

/// The forward over time chunks of at most `len` steps, the state carried
/// from chunk to chunk (in the direction's processing order): the same
/// results, with every tensor a chunk's size. [`super::rnn_backward`] walks
/// the chunks back with the state gradients.
fn forward_chunked(
    len: usize,
    run: &RnnRun,
    w: &RnnWeights,
    x: &Tensor,
    h0: Option<&Tensor>,
    c0: Option<&Tensor>,
) -> Result<RnnOutput> {
    let RnnRun {
        cell,
        reverse,
        train,
        ..
    } = *run;
    let (t, ..) = dims(cell, w, x)?;
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
        let o = rnn_forward_run(run, w, &xs, h.as_ref(), c.as_ref())?;
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
