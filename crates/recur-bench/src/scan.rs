//! The `scan` suite: the first-order recurrence core (linear and log-space,
//! forward and backward, serial and chunked) at B=2, D=256 over long T, as
//! GB/s and as a fraction of the adapter's measured copy bandwidth; and
//! minGRU (parallel scan) against recur's fused GRU, forward+backward.

use recur_gpu::ops::peak;
use recur_gpu::ops::rnn::{Cell, RnnStrategy};
use recur_gpu::ops::scan::{self, ScanKind, ScanLayout, ScanStrategy};
use recur_gpu::{Device, Rng, Tensor};
use recur_nn::{functional as F, MinRnnConfig, Var};

use crate::record::{shape, Record};
use crate::suites::device_name;
use crate::timing::measure;

fn copy_gbps(dev: &Device, runs: usize) -> anyhow::Result<f64> {
    let (src, dst) = peak::scratch(dev, 16 << 20)?;
    let mut bytes = 0.0;
    let t = measure(dev, runs, 1, || {
        bytes = peak::copy_peak(dev, &src, &dst)?;
        Ok(())
    })?;
    Ok(bytes / t.median() / 1e6)
}

fn core(
    dev: &Device,
    runs: usize,
    kind: ScanKind,
    strategy: ScanStrategy,
    (b, d, t): (usize, usize, usize),
    copy: f64,
) -> anyhow::Result<Vec<Record>> {
    let mut rng = Rng::new(3);
    let n = b * t * d;
    let (lo, hi) = match kind {
        ScanKind::Linear => (0.5, 1.0),
        ScanKind::Log => (-0.7, 0.0),
    };
    let a = Tensor::rand(dev, &[b, t, d], lo, hi, &mut rng)?;
    let x = Tensor::rand(dev, &[b, t, d], -1.0, 1.0, &mut rng)?;
    let g = Tensor::rand(dev, &[b, t, d], -1.0, 1.0, &mut rng)?;
    let h = scan::scan(kind, &a, &x, None, ScanLayout::BatchFirst, strategy)?.h;
    let fwd = measure(dev, runs, 1, || {
        scan::scan(kind, &a, &x, None, ScanLayout::BatchFirst, strategy)?;
        Ok(())
    })?;
    let bwd = measure(dev, runs, 1, || {
        scan::scan_backward(
            kind,
            &a,
            &x,
            None,
            &h,
            Some(&g),
            None,
            ScanLayout::BatchFirst,
            strategy,
        )?;
        Ok(())
    })?;
    let name = format!(
        "scan_{}{}",
        if kind == ScanKind::Log {
            "log"
        } else {
            "linear"
        },
        if strategy == ScanStrategy::Chunked {
            "_chunked"
        } else {
            ""
        }
    );
    let mk = |mode: &str, ms: (f64, f64, f64), bytes: f64| {
        let gbps = bytes / ms.0 / 1e6;
        eprintln!(
            "{name} {mode} b={b} d={d} t={t}: {gbps:.2} GB/s = {:.0}% of copy ({copy:.2} GB/s)",
            100.0 * gbps / copy
        );
        Record {
            suite: "scan".into(),
            name: name.clone(),
            mode: mode.into(),
            shape: shape(&[("b", b), ("d", d), ("t", t)]),
            dtype: "f32".into(),
            ms_median: ms.0,
            ms_min: ms.1,
            ms_max: ms.2,
            gflops: 0.0,
            gbps,
            device: device_name(dev),
            tokens_per_s: Some((b * t) as f64 / ms.0 * 1e3),
            dispatches_per_step: Some(1.0 / t as f64),
        }
    };
    Ok(vec![
        // Reads a and b, writes h.
        mk("fwd", (fwd.median(), fwd.min(), fwd.max()), 12.0 * n as f64),
        // Reads a, b, h, g; writes ∂a, ∂b.
        mk("bwd", (bwd.median(), bwd.min(), bwd.max()), 24.0 * n as f64),
    ])
}

fn mingru(dev: &Device, runs: usize, (i, h, b, t): crate::rnn::Shape) -> anyhow::Result<Record> {
    let mut rng = Rng::new(5);
    let m = MinRnnConfig::min_gru(i, h).init(dev, &mut rng)?;
    let x = Var::new(Tensor::rand(dev, &[b, t, i], -1.0, 1.0, &mut rng)?);
    let w = Var::new(Tensor::rand(dev, &[b, t, h], -1.0, 1.0, &mut rng)?);
    let before = dev.counters().dispatches;
    let step = || -> anyhow::Result<()> {
        let (out, _) = m.forward(&x, None)?;
        F::sum_all(&F::mul(&out, &w)?)?.backward()?;
        Ok(())
    };
    step()?;
    let dispatches = (dev.counters().dispatches - before) as f64;
    let tm = measure(dev, runs, 1, step)?;
    // Multiply-adds per token: 2 projections forward, 3× with the backward.
    let flops = 3.0 * 2.0 * 2.0 * (h * i) as f64 * (b * t) as f64;
    Ok(Record {
        suite: "scan".into(),
        name: "mingru".into(),
        mode: "fwd+bwd".into(),
        shape: shape(&[("i", i), ("h", h), ("b", b), ("t", t)]),
        dtype: "f32".into(),
        ms_median: tm.median(),
        ms_min: tm.min(),
        ms_max: tm.max(),
        gflops: flops / tm.median() / 1e6,
        gbps: 0.0,
        device: device_name(dev),
        tokens_per_s: Some((b * t) as f64 / tm.median() * 1e3),
        dispatches_per_step: Some(dispatches / t as f64),
    })
}

/// The suite.
pub fn scan(dev: &Device, runs: usize, quick: bool) -> anyhow::Result<Vec<Record>> {
    let copy = copy_gbps(dev, runs)?;
    let mut out = Vec::new();
    let lengths: &[usize] = if quick {
        &[4096]
    } else {
        &[4096, 16384, 65536]
    };
    for &t in lengths {
        for kind in [ScanKind::Linear, ScanKind::Log] {
            for strategy in [ScanStrategy::Serial, ScanStrategy::Chunked] {
                match core(dev, runs, kind, strategy, (2, 256, t), copy) {
                    Ok(r) => out.extend(r),
                    Err(e) => eprintln!("scan {kind:?} {strategy:?} t={t}: skipped: {e}"),
                }
            }
        }
    }
    let lengths: &[usize] = if quick { &[128] } else { &[128, 512, 2048] };
    for &t in lengths {
        let s = (256, 256, 64, t);
        let m = mingru(dev, runs, s);
        let g = crate::rnn::fused(dev, runs, Cell::Gru, s, true, RnnStrategy::Auto);
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
