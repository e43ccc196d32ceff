//! The `rnn` suite: fused LSTM/GRU forward and forward+backward at the
//! issue's shapes, the unfused baseline built from recur's generic ops, and
//! batch-1 latency.

use recur_gpu::ops::elementwise::{self, BinaryOp};
use recur_gpu::ops::rnn::{self, Cell, RnnRun, RnnStrategy, RnnWeights};
use recur_gpu::ops::{gemm, layout, Activation};
use recur_gpu::{DType, Device, Rng, Tensor};

use crate::record::{shape, Record};
use crate::timing::{measure, Timing};

/// (I, H, B, T)
pub(crate) type Shape = (usize, usize, usize, usize);

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

/// A record of one recurrent configuration timed by `tm`.
fn record(
    dev: &Device,
    [name, mode]: [&str; 2],
    (cell, s): (Cell, Shape),
    tm: &Timing,
    dispatches: f64,
) -> Record {
    let (i, h, b, t) = s;
    let dims = shape(&[("i", i), ("h", h), ("b", b), ("t", t)]);
    Record {
        gflops: flops(cell, s, mode != "fwd") / tm.median() / 1e6,
        tokens_per_s: Some((b * t) as f64 / tm.median() * 1e3),
        dispatches_per_step: Some(dispatches / t as f64),
        ..Record::timed(dev, ["rnn", name, mode], dims, tm)
    }
}

/// One fused-recurrence configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fused {
    pub(crate) cell: Cell,
    pub(crate) shape: Shape,
    /// Forward and backward (else the inference forward).
    pub(crate) backward: bool,
    pub(crate) strategy: RnnStrategy,
    /// Storage dtype of the weights and sequences (f16: forward only).
    pub(crate) dtype: DType,
}

impl Fused {
    pub(crate) fn new(cell: Cell, shape: Shape, backward: bool) -> Self {
        Self {
            cell,
            shape,
            backward,
            strategy: RnnStrategy::Auto,
            dtype: DType::F32,
        }
    }
}

pub(crate) fn fused(dev: &Device, runs: usize, f: Fused) -> anyhow::Result<Record> {
    let Fused {
        cell,
        shape: s,
        backward,
        strategy,
        dtype,
    } = f;
    let (i, h, b, t) = s;
    let mut rng = Rng::new(7);
    let mut layer = Layer::new(dev, cell, i, h, &mut rng)?;
    let x = elementwise::cast(&Tensor::rand(dev, &[t, b, i], -1.0, 1.0, &mut rng)?, dtype)?;
    if dtype != DType::F32 {
        for w in [
            &mut layer.w_ih,
            &mut layer.w_hh,
            &mut layer.b_ih,
            &mut layer.b_hh,
        ] {
            *w = elementwise::cast(w, dtype)?;
        }
    }
    let dout = Tensor::rand(dev, &[t, b, h], -1.0, 1.0, &mut rng)?;
    let before = dev.counters().dispatches;
    let step = || -> anyhow::Result<()> {
        let w = layer.weights();
        let run = RnnRun {
            train: backward,
            strategy,
            ..RnnRun::new(cell)
        };
        let out = rnn::rnn_forward_run(&run, &w, &x, None, None)?;
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
        RnnStrategy::SteppedNarrow => "_narrow",
        RnnStrategy::Auto => "",
    };
    let mode = if backward { "fwd+bwd" } else { "fwd" };
    let name = format!("{kind}_fused{variant}");
    Ok(Record {
        dtype: crate::suites::dtype_name(dtype).into(),
        ..record(dev, [&name, mode], (cell, s), &tm, dispatches)
    })
}

/// LSTM the way other wgpu libraries run it: per step, per gate, a matmul
/// for x and one for h, then one elementwise op at a time; with `backward`,
/// each op's backward as its own dispatches and the weight gradients
/// accumulated per step (as an op-by-op autodiff does).
fn lstm_unfused(dev: &Device, runs: usize, s: Shape, backward: bool) -> anyhow::Result<Record> {
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
    let dout = Tensor::rand(dev, &[t, b, h], -1.0, 1.0, &mut rng)?;
    let before = dev.counters().dispatches;
    let step = || -> anyhow::Result<()> {
        let mut hs = vec![Tensor::zeros(dev, &[b, h])?];
        let mut cs = vec![Tensor::zeros(dev, &[b, h])?];
        let (mut pre, mut gates, mut xs) = (Vec::new(), Vec::new(), Vec::new());
        for s in 0..t {
            let xt = layout::slice(&x, 0, s, 1)?.reshape(&[b, i])?;
            let (mut a, mut g) = (Vec::with_capacity(4), Vec::with_capacity(4));
            for q in 0..4 {
                let ax = gemm::linear(&xt, &wi[q], Some(&bi[q]))?;
                let ah = gemm::linear(&hs[s], &wh[q], Some(&bh[q]))?;
                a.push(elementwise::add(&ax, &ah)?);
                g.push(elementwise::activation(&a[q], acts[q])?);
            }
            let fc = elementwise::mul(&g[1], &cs[s])?;
            let ig = elementwise::mul(&g[0], &g[2])?;
            cs.push(elementwise::binary(&fc, &ig, BinaryOp::Add, 1.0)?);
            let tc = elementwise::activation(&cs[s + 1], Activation::Tanh)?;
            hs.push(elementwise::mul(&g[3], &tc)?);
            pre.push(a);
            gates.push(g);
            xs.push(xt);
        }
        if !backward {
            return Ok(());
        }
        let tn = gemm::Gemm {
            trans_a: true,
            beta: 1.0,
            ..gemm::Gemm::default()
        };
        let zeros = |shape: &[usize]| {
            (0..4)
                .map(|_| Tensor::zeros(dev, shape))
                .collect::<Result<Vec<_>, _>>()
        };
        let (dwi, dwh, mut db) = (zeros(&[h, i])?, zeros(&[h, h])?, zeros(&[h])?);
        let mut dh_next = Tensor::zeros(dev, &[b, h])?;
        let mut dc_next = Tensor::zeros(dev, &[b, h])?;
        for s in (0..t).rev() {
            let g = &gates[s];
            let dh = elementwise::add(&layout::slice(&dout, 0, s, 1)?.reshape(&[b, h])?, &dh_next)?;
            let tc = elementwise::activation(&cs[s + 1], Activation::Tanh)?;
            let d_o = elementwise::mul(&dh, &tc)?;
            let dho = elementwise::mul(&dh, &g[3])?;
            let dc = elementwise::add(
                &dc_next,
                &elementwise::activation_backward(&cs[s + 1], &dho, Activation::Tanh)?,
            )?;
            let dgate = [
                elementwise::mul(&dc, &g[2])?,
                elementwise::mul(&dc, &cs[s])?,
                elementwise::mul(&dc, &g[0])?,
                d_o,
            ];
            dc_next = elementwise::mul(&dc, &g[1])?;
            let mut dhp: Option<Tensor> = None;
            for q in 0..4 {
                let da = elementwise::activation_backward(&pre[s][q], &dgate[q], acts[q])?;
                tn.run_into(&da, &xs[s], None, &dwi[q])?;
                tn.run_into(&da, &hs[s], None, &dwh[q])?;
                db[q] = elementwise::add(&db[q], &recur_gpu::ops::reduce::sum(&da, 0)?)?;
                gemm::matmul(&da, &wi[q])?; // this step's dx, per gate
                let d = gemm::matmul(&da, &wh[q])?;
                dhp = Some(match dhp {
                    None => d,
                    Some(acc) => elementwise::add(&acc, &d)?,
                });
            }
            dh_next = dhp.expect("four gates");
        }
        Ok(())
    };
    step()?;
    let dispatches = (dev.counters().dispatches - before) as f64;
    dev.sync()?;
    let tm = measure(dev, runs, 1, step)?;
    let mode = if backward { "fwd+bwd" } else { "fwd" };
    Ok(record(
        dev,
        ["lstm_unfused", mode],
        (Cell::Lstm, s),
        &tm,
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
            out.push(fused(dev, runs, Fused::new(cell, a, backward))?);
        }
        // The inference forward with f16 storage, where the adapter has it.
        for dtype in crate::suites::dtypes(dev).into_iter().skip(1) {
            let f = Fused {
                dtype,
                ..Fused::new(cell, a, false)
            };
            out.push(fused(dev, runs, f)?);
        }
    }
    for strategy in [
        RnnStrategy::Stepped,
        RnnStrategy::SteppedNarrow,
        RnnStrategy::Persistent,
    ] {
        let f = Fused {
            strategy,
            ..Fused::new(Cell::Lstm, a, false)
        };
        out.push(fused(dev, runs, f)?);
    }
    for backward in [false, true] {
        out.push(lstm_unfused(dev, runs.min(5), a, backward)?);
    }
    for backward in [false, true] {
        out.push(fused(dev, runs, Fused::new(Cell::Lstm, latency, backward))?);
    }
    if !quick {
        for cell in [Cell::Lstm, Cell::Gru] {
            for backward in [false, true] {
                out.push(fused(dev, runs.min(5), Fused::new(cell, b, backward))?);
            }
        }
    }
    Ok(out)
}
