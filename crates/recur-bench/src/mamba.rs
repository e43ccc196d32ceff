//! The `mamba` suite: Mamba's selective scan (`selective_scan`, shape
//! {b, d, n, l}) forward and forward+backward, as GB/s against the copy
//! kernel and tokens/s; and a whole Mamba block (`mamba_block`,
//! d_model = 256) forward+backward.

use recur_gpu::ops::selective_scan::{SelectiveScan, SelectiveScanInputs};
use recur_gpu::{Device, Rng, Tensor};
use recur_nn::{functional as F, Layer, MambaConfig, Var};

use crate::record::{shape, Record};
use crate::timing::measure;

fn scan(
    dev: &Device,
    runs: usize,
    (b, d, n, l): (usize, usize, usize, usize),
    copy: f64,
) -> anyhow::Result<Vec<Record>> {
    let mut rng = Rng::new(4);
    let r = |s: &[usize], lo, hi, rng: &mut Rng| Tensor::rand(dev, s, lo, hi, rng);
    let (u, delta, z) = (
        r(&[b, d, l], -1.0, 1.0, &mut rng)?,
        r(&[b, d, l], -4.0, -1.0, &mut rng)?,
        r(&[b, d, l], -1.0, 1.0, &mut rng)?,
    );
    let a = r(&[d, n], -2.0, -0.1, &mut rng)?;
    let (bm, cm) = (
        r(&[b, n, l], -1.0, 1.0, &mut rng)?,
        r(&[b, n, l], -1.0, 1.0, &mut rng)?,
    );
    let (dv, bias) = (r(&[d], 0.5, 1.5, &mut rng)?, r(&[d], -0.5, 0.5, &mut rng)?);
    let dout = r(&[b, d, l], -1.0, 1.0, &mut rng)?;
    let x = SelectiveScanInputs {
        u: &u,
        delta: &delta,
        a: &a,
        b: &bm,
        c: &cm,
        d: Some(&dv),
        z: Some(&z),
        delta_bias: Some(&bias),
        h0: None,
    };
    let s = SelectiveScan {
        delta_softplus: true,
        ..SelectiveScan::default()
    };
    let fwd = measure(dev, runs, 1, || {
        s.forward(&x)?;
        Ok(())
    })?;
    let both = measure(dev, runs, 1, || {
        let f = s.forward(&x)?;
        s.backward(&x, &f, &dout, None)?;
        Ok(())
    })?;
    // Bytes each direction must move at least: forward reads u, δ, z, B, C
    // and writes out; backward also reads dout and writes du, dδ, dz, dB, dC.
    let (seq, bc) = ((b * d * l) as f64, (b * n * l) as f64);
    let dims = shape(&[("b", b), ("d", d), ("n", n), ("l", l)]);
    let mut out = Vec::new();
    for (mode, tm, bytes) in [
        ("fwd", &fwd, 4.0 * (4.0 * seq + 2.0 * bc)),
        ("fwd+bwd", &both, 4.0 * (11.0 * seq + 6.0 * bc)),
    ] {
        let gbps = bytes / tm.median() / 1e6;
        eprintln!(
            "selective_scan {mode} b={b} d={d} n={n} l={l}: {:.3} ms (wall {:.3}), {gbps:.2} GB/s = {:.0}% of copy",
            tm.median(),
            tm.wall_median(),
            100.0 * gbps / copy
        );
        out.push(Record {
            gbps,
            tokens_per_s: Some((b * l) as f64 / tm.median() * 1e3),
            dispatches_per_step: Some(if mode == "fwd" { 3.0 } else { 6.0 } / l as f64),
            ..Record::timed(dev, ["mamba", "selective_scan", mode], dims.clone(), tm)
        });
    }
    Ok(out)
}

fn block(dev: &Device, runs: usize, (b, l, dm): (usize, usize, usize)) -> anyhow::Result<Record> {
    let mut rng = Rng::new(9);
    let m = MambaConfig::new(dm).init(dev, &mut rng)?;
    let x = Var::new(Tensor::rand(dev, &[b, l, dm], -1.0, 1.0, &mut rng)?);
    let w = Var::new(Tensor::rand(dev, &[b, l, dm], -1.0, 1.0, &mut rng)?);
    let before = dev.counters().dispatches;
    let step = || -> anyhow::Result<()> {
        F::sum_all(&F::mul(&m.forward(&x)?, &w)?)?.backward()?;
        Ok(())
    };
    step()?;
    let dispatches = (dev.counters().dispatches - before) as f64;
    let tm = measure(dev, runs, 1, step)?;
    eprintln!(
        "mamba_block fwd+bwd b={b} l={l} d_model={dm}: {:.2} ms (wall {:.2}), {:.0} tokens/s",
        tm.median(),
        tm.wall_median(),
        (b * l) as f64 / tm.median() * 1e3
    );
    Ok(Record {
        tokens_per_s: Some((b * l) as f64 / tm.median() * 1e3),
        dispatches_per_step: Some(dispatches / l as f64),
        ..Record::timed(
            dev,
            ["mamba", "mamba_block", "fwd+bwd"],
            shape(&[("b", b), ("l", l), ("d_model", dm)]),
            &tm,
        )
    })
}

/// The suite.
pub fn mamba(dev: &Device, runs: usize, quick: bool) -> anyhow::Result<Vec<Record>> {
    let copy = crate::suites::copy_gbps(dev, runs)?;
    let mut out = scan(dev, runs, (8, 512, 16, 256), copy)?;
    if !quick {
        out.extend(scan(dev, runs, (2, 1536, 16, 2048), copy)?);
    }
    out.push(block(dev, runs, (8, 256, 256))?);
    Ok(out)
}
