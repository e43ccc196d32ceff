//! The `scan` suite: the first-order recurrence core (linear and log-space,
//! forward and backward, serial and chunked) at B=2, D=256 over long T, as
//! GB/s and as a fraction of the adapter's measured copy bandwidth; and
//! minGRU (parallel scan) against recur's fused GRU, forward+backward.

use recur_gpu::ops::elementwise;
use recur_gpu::ops::rnn::Cell;
use recur_gpu::ops::scan::{Scan, ScanKind, ScanStrategy};
use recur_gpu::{wgpu, DType, Device, Rng, Tensor};
use recur_nn::{functional as F, MinRnnConfig, Var};

use crate::record::{shape, Record};
use crate::timing::measure;

/// The scan core at (b, d, t) with `plan`'s kind and strategy, in `dtype`.
fn core(
    dev: &Device,
    runs: usize,
    plan: Scan,
    dtype: DType,
    (b, d, t): (usize, usize, usize),
    copy: f64,
) -> anyhow::Result<Vec<Record>> {
    let mut rng = Rng::new(3);
    let n = b * t * d;
    let (lo, hi) = match plan.kind {
        ScanKind::Linear => (0.5, 1.0),
        ScanKind::Log => (-0.7, 0.0),
    };
    let store = |t: Tensor| elementwise::cast(&t, dtype);
    let a = store(Tensor::rand(dev, &[b, t, d], lo, hi, &mut rng)?)?;
    let x = store(Tensor::rand(dev, &[b, t, d], -1.0, 1.0, &mut rng)?)?;
    let g = store(Tensor::rand(dev, &[b, t, d], -1.0, 1.0, &mut rng)?)?;
    let h = plan.forward(&a, &x, None)?.h;
    let fwd = measure(dev, runs, 1, || {
        plan.forward(&a, &x, None)?;
        Ok(())
    })?;
    let bwd = measure(dev, runs, 1, || {
        plan.backward([&a, &x, &h], None, Some(&g), None)?;
        Ok(())
    })?;
    let kind = match plan.kind {
        ScanKind::Log => "log",
        ScanKind::Linear => "linear",
    };
    let variant = match plan.strategy {
        ScanStrategy::Chunked => "_chunked",
        ScanStrategy::TimeParallel => "_tp",
        _ => "",
    };
    let name = format!("scan_{kind}{variant}");
    let dtype_name = crate::suites::dtype_name(dtype);
    let dispatches = if plan.strategy == ScanStrategy::TimeParallel {
        3.0
    } else {
        1.0
    };
    let elem = dtype.size() as f64;
    let mk = |mode: &str, tm: &crate::timing::Timing, bytes: f64| {
        let gbps = bytes / tm.median() / 1e6;
        eprintln!(
            "{name} {dtype_name} {mode} b={b} d={d} t={t}: {gbps:.2} GB/s = {:.0}% of copy ({copy:.2} GB/s); wall {:.3} ms",
            100.0 * gbps / copy,
            tm.wall_median()
        );
        Record {
            dtype: dtype_name.into(),
            gbps,
            tokens_per_s: Some((b * t) as f64 / tm.median() * 1e3),
            dispatches_per_step: Some(dispatches / t as f64),
            ..Record::timed(
                dev,
                ["scan", &name, mode],
                shape(&[("b", b), ("d", d), ("t", t)]),
                tm,
            )
        }
    };
    Ok(vec![
        // Reads a and b, writes h (the least any scan moves).
        mk("fwd", &fwd, 3.0 * elem * n as f64),
        // Reads a, b, h, g; writes ∂a, ∂b.
        mk("bwd", &bwd, 6.0 * elem * n as f64),
    ])
}

fn mingru(dev: &Device, runs: usize, (i, h, b, t): crate::rnn::Shape) -> anyhow::Result<Record> {
    let mut rng = Rng::new(5);
    let m = MinRnnConfig::min_gru(i, h).init(dev, &mut rng)?;
    let x = Var::new(Tensor::rand(dev, &[b, t, i], -1.0, 1.0, &mut rng)?);
    let w = Var::new(Tensor::rand(dev, &[b, t, h], -1.0, 1.0, &mut rng)?);
    let before = dev.counters().dispatches;
    let step = || -> anyhow::Result<()> {
        let (out, _) = m.forward_with_state(&x, None)?;
        F::sum_all(&F::mul(&out, &w)?)?.backward()?;
        Ok(())
    };
    step()?;
    let dispatches = (dev.counters().dispatches - before) as f64;
    let tm = measure(dev, runs, 1, step)?;
    // Multiply-adds per token: 2 projections forward, 3× with the backward.
    let flops = 3.0 * 2.0 * 2.0 * (h * i) as f64 * (b * t) as f64;
    let dims = shape(&[("i", i), ("h", h), ("b", b), ("t", t)]);
    Ok(Record {
        gflops: flops / tm.median() / 1e6,
        tokens_per_s: Some((b * t) as f64 / tm.median() * 1e3),
        dispatches_per_step: Some(dispatches / t as f64),
        ..Record::timed(dev, ["scan", "mingru", "fwd+bwd"], dims, &tm)
    })
}

/// The suite.
pub fn scan(dev: &Device, runs: usize, quick: bool) -> anyhow::Result<Vec<Record>> {
    let copy = crate::suites::copy_gbps(dev, runs)?;
    let mut out = Vec::new();
    let mut shapes: Vec<(usize, usize, usize)> = if quick {
        vec![(2, 256, 4096)]
    } else {
        vec![(2, 256, 4096), (2, 256, 16384), (2, 256, 65536)]
    };
    // The accelerated-scan benchmark's shape, where there is memory for it
    // (3 × 403 MB forward, 6 × backward).
    if !quick && dev.info().device_type != wgpu::DeviceType::Cpu {
        shapes.push((8, 1536, 65536));
    }
    let dtypes = crate::suites::dtypes(dev);
    for &dims in &shapes {
        for kind in [ScanKind::Linear, ScanKind::Log] {
            for strategy in [
                ScanStrategy::Serial,
                ScanStrategy::Chunked,
                ScanStrategy::TimeParallel,
            ] {
                for &dtype in &dtypes {
                    let plan = Scan {
                        strategy,
                        ..Scan::new(kind)
                    };
                    match core(dev, runs, plan, dtype, dims, copy) {
                        Ok(r) => out.extend(r),
                        Err(e) => eprintln!("scan {plan:?} {dtype:?} {dims:?}: skipped: {e}"),
                    }
                }
            }
        }
    }
    let lengths: &[usize] = if quick { &[128] } else { &[128, 512, 2048] };
    for &t in lengths {
        let s = (256, 256, 64, t);
        let m = mingru(dev, runs, s);
        let g = crate::rnn::fused(dev, runs, crate::rnn::Fused::new(Cell::Gru, s, true));
        match (&m, &g) {
            (Ok(m), Ok(g)) => eprintln!(
                "t={t}: mingru {:.1} ms, gru_fused {:.1} ms: mingru {:.2}x faster",
                m.ms_median,
                g.ms_median,
                g.ms_median / m.ms_median
            ),
            _ => eprintln!(
                "mingru vs gru t={t}: {:?} / {:?}",
                m.as_ref().err().map(|e| e.to_string()),
                g.as_ref().err().map(|e| e.to_string())
            ),
        }
        out.extend(m.ok());
        out.extend(g.ok().map(|mut g| {
            g.suite = "scan".into();
            g
        }));
    }
    Ok(out)
}
