//! The `rnn` suite: fused LSTM/GRU forward and forward+backward at the
//! issue's shapes, the unfused baseline built from recur's generic ops, and
//! batch-1 latency.

use recur_gpu::ops::elementwise::{self, BinaryOp};
use recur_gpu::ops::rnn::{self, Cell, RnnStrategy, RnnWeights};
use recur_gpu::ops::{gemm, layout, Activation};
use recur_gpu::{Device, Rng, Tensor};

use crate::record::{shape, Record};
use crate::suites::device_name;
use crate::timing::measure;

/// (I, H, B, T)
type Shape = (usize, usize, usize, usize);

struct Layer {
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
}

impl Layer {
    fn new(dev: &Device, cell: Cell, i: usize, h: usize, rng: &mut Rng) -> anyhow::Result<Self> {
        let (gh, k) = (cell.gates() * h, 1.0 / (h as f32).sqrt());
        Ok(Self {
            w_ih: Tensor::rand(dev, &[gh, i], -k, k, rng)?,
            w_hh: Tensor::rand(dev, &[gh, h], -k, k, rng)?,
            b_ih: Tensor::rand(dev, &[gh], -k, k, rng)?,
            b_hh: Tensor::rand(dev, &[gh], -k, k, rng)?,
        })
    }
    fn weights(&self) -> RnnWeights<'_> {
        RnnWeights {
            w_ih: &self.w_ih,
            w_hh: &self.w_hh,
            b_ih: Some(&self.b_ih),
            b_hh: Some(&self.b_hh),
        }
    }
}

/// Multiply-adds per token: input projection, recurrent product, twice
/// more for the backward (data and weight gradients).
fn flops(cell: Cell, (i, h, b, t): Shape, backward: bool) -> f64 {
    let gh = (cell.gates() * h) as f64;
    let fwd = 2.0 * gh * (i + h) as f64 * (b * t) as f64;
    if backward {
        3.0 * fwd
    } else {
        fwd
    }
}

#[allow(clippy::too_many_arguments)]
fn record(
    dev: &Device,
    name: &str,
    mode: &str,
    s: Shape,
    cell: Cell,
    ms: (f64, f64, f64),
    dispatches: f64,
) -> Record {
    let (i, h, b, t) = s;
    Record {
        suite: "rnn".into(),
        name: name.into(),
        mode: mode.into(),
        shape: shape(&[("i", i), ("h", h), ("b", b), ("t", t)]),
        dtype: "f32".into(),
        ms_median: ms.0,
        ms_min: ms.1,
        ms_max: ms.2,
        gflops: flops(cell, s, mode != "fwd") / ms.0 / 1e6,
        gbps: 0.0,
        device: device_name(dev),
        tokens_per_s: Some((b * t) as f64 / ms.0 * 1e3),
        dispatches_per_step: Some(dispatches / t as f64),
    }
}

fn fused(
    dev: &Device,
    runs: usize,
    cell: Cell,
    s: Shape,
    backward: bool,
    strategy: RnnStrategy,
) -> anyhow::Result<Record> {
    let (i, h, b, t) = s;
    let mut rng = Rng::new(7);
    let layer = Layer::new(dev, cell, i, h, &mut rng)?;
    let x = Tensor::rand(dev, &[t, b, i], -1.0, 1.0, &mut rng)?;
    let dout = Tensor::rand(dev, &[t, b, h], -1.0, 1.0, &mut rng)?;
    let before = dev.counters().dispatches;
    let step = || -> anyhow::Result<()> {
        let w = layer.weights();
        let out = rnn::rnn_forward_with(strategy, cell, &w, &x, None, None, false, backward)?;
        if let Some(cache) = &out.cache {
            rnn::rnn_backward(&w, cache, &dout, None, None)?;
        }
        Ok(())
    };
    step()?;
    let dispatches = (dev.counters().dispatches - before) as f64;
    dev.sync()?;
    let tm = measure(dev, runs, 1, step)?;
    let kind = match cell {
        Cell::Lstm => "lstm",
        Cell::Gru => "gru",
        Cell::RnnTanh | Cell::RnnRelu => "rnn",
    };
    let variant = match strategy {
        RnnStrategy::Persistent => "_persistent",
        RnnStrategy::Stepped => "_stepped",
        RnnStrategy::Auto => "",
    };
    let mode = if backward { "fwd+bwd" } else { "fwd" };
    Ok(record(
        dev,
        &format!("{kind}_fused{variant}"),
        mode,
        s,
        cell,
        (tm.median(), tm.min(), tm.max()),
        dispatches,
    ))
}

/// LSTM forward the way other wgpu libraries run it: per step, per gate, a
/// matmul for x and one for h, then one elementwise op at a time.
fn lstm_unfused(dev: &Device, runs: usize, s: Shape) -> anyhow::Result<Record> {
    let (i, h, b, t) = s;
    let mut rng = Rng::new(7);
    let layer = Layer::new(dev, Cell::Lstm, i, h, &mut rng)?;
    let x = Tensor::rand(dev, &[t, b, i], -1.0, 1.0, &mut rng)?;
    let gate = |w: &Tensor, q: usize| layout::slice(w, 0, q * h, h);
    let (mut wi, mut wh, mut bi, mut bh) = (vec![], vec![], vec![], vec![]);
    for q in 0..4 {
        wi.push(gate(&layer.w_ih, q)?);
        wh.push(gate(&layer.w_hh, q)?);
        bi.push(gate(&layer.b_ih, q)?);
        bh.push(gate(&layer.b_hh, q)?);
    }
    let acts = [
        Activation::Sigmoid,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Sigmoid,
    ];
    let before = dev.counters().dispatches;
    let step = || -> anyhow::Result<()> {
        let mut hs = Tensor::zeros(dev, &[b, h])?;
        let mut cs = Tensor::zeros(dev, &[b, h])?;
        for s in 0..t {
            let xt = layout::slice(&x, 0, s, 1)?.reshape(&[b, i])?;
            let mut g = Vec::with_capacity(4);
            for q in 0..4 {
                let a = gemm::linear(&xt, &wi[q], Some(&bi[q]))?;
                let r = gemm::linear(&hs, &wh[q], Some(&bh[q]))?;
                g.push(elementwise::activation(
                    &elementwise::add(&a, &r)?,
                    acts[q],
                )?);
            }
            let fc = elementwise::mul(&g[1], &cs)?;
            let ig = elementwise::mul(&g[0], &g[2])?;
            cs = elementwise::binary(&fc, &ig, BinaryOp::Add, 1.0)?;
            hs = elementwise::mul(&g[3], &elementwise::activation(&cs, Activation::Tanh)?)?;
        }
        Ok(())
    };
    step()?;
    let dispatches = (dev.counters().dispatches - before) as f64;
    dev.sync()?;
    let tm = measure(dev, runs, 1, step)?;
    Ok(record(
        dev,
        "lstm_unfused",
        "fwd",
        s,
        Cell::Lstm,
        (tm.median(), tm.min(), tm.max()),
        dispatches,
    ))
}

/// The suite. `quick` keeps shape (a) only.
pub fn rnn(dev: &Device, runs: usize, quick: bool) -> anyhow::Result<Vec<Record>> {
    let a: Shape = (128, 256, 32, 128);
    let b: Shape = (256, 512, 64, 256);
    let latency: Shape = (128, 256, 1, 128);
    let mut out = Vec::new();
    for cell in [Cell::Lstm, Cell::Gru] {
        for backward in [false, true] {
            out.push(fused(dev, runs, cell, a, backward, RnnStrategy::Auto)?);
        }
    }
    for strategy in [RnnStrategy::Stepped, RnnStrategy::Persistent] {
        out.push(fused(dev, runs, Cell::Lstm, a, false, strategy)?);
    }
    out.push(lstm_unfused(dev, runs.min(5), a)?);
    for backward in [false, true] {
        out.push(fused(
            dev,
            runs,
            Cell::Lstm,
            latency,
            backward,
            RnnStrategy::Auto,
        )?);
    }
    if !quick {
        for cell in [Cell::Lstm, Cell::Gru] {
            for backward in [false, true] {
                out.push(fused(
                    dev,
                    runs.min(5),
                    cell,
                    b,
                    backward,
                    RnnStrategy::Auto,
                )?);
            }
        }
    }
    Ok(out)
}
