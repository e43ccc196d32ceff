//! The `attention` suite: the chunked linear-attention engine for each decay
//! kind (`linear_*`, `retnet_*`, `ssd_*`, `gla_*`; shape {b, h, t, dk, dv}),
//! chunked forward and forward+backward as GFLOP/s and as a fraction of
//! recur's own GEMM rate on the same adapter (measured in the same run), and
//! the recurrent form's forward and forward+backward (tokens/s, and the
//! chunked form's speed-up over it).
//!
//! FLOPs counted (per head and step, chunk C): forward C·(d_k + d_v) for the
//! causal intra-chunk products + 4·d_k·d_v for the chunk map and the
//! inter-chunk product; the backward three times the intra-chunk work and
//! 8·d_k·d_v. The recurrent form does 4·d_k·d_v per step forward and
//! 12·d_k·d_v backward (three walks over the state).

use recur_gpu::ops::gemm::GemmKernel;
use recur_gpu::ops::linear_attention::{ChunkedAttention, Decay, DecayKind, LaInputs};
use recur_gpu::{Device, Rng, Tensor};

use crate::record::{shape, Record};
use crate::suites::{gemm_case, GemmCase};
use crate::timing::measure;

/// The record name's prefix for a decay kind.
pub fn kind_name(kind: DecayKind) -> &'static str {
    match kind {
        DecayKind::None => "linear",
        DecayKind::Head => "retnet",
        DecayKind::Scalar => "ssd",
        DecayKind::Vector => "gla",
    }
}

fn case(
    dev: &Device,
    runs: usize,
    kind: DecayKind,
    (b, h, t, dk, dv): (usize, usize, usize, usize, usize),
    gemm_gflops: f64,
) -> anyhow::Result<Vec<Record>> {
    let mut rng = Rng::new(5);
    let r = |s: &[usize], lo, hi, rng: &mut Rng| Tensor::rand(dev, s, lo, hi, rng);
    let (q, k) = (
        r(&[b, h, t, dk], -1.0, 1.0, &mut rng)?,
        r(&[b, h, t, dk], -1.0, 1.0, &mut rng)?,
    );
    let v = r(&[b, h, t, dv], -1.0, 1.0, &mut rng)?;
    let dout = r(&[b, h, t, dv], -1.0, 1.0, &mut rng)?;
    let g = match kind {
        DecayKind::None => None,
        DecayKind::Head => {
            let lg: Vec<f32> = (0..h)
                .map(|i| (1.0 - 2f32.powi(-5 - i as i32)).ln())
                .collect();
            Some(Tensor::from_slice(dev, &lg, &[h])?)
        }
        DecayKind::Scalar => Some(r(&[b, h, t], -0.1, 0.0, &mut rng)?),
        DecayKind::Vector => Some(r(&[b, h, t, dk], -0.1, 0.0, &mut rng)?),
    };
    let decay = match (kind, g.as_ref()) {
        (DecayKind::Head, Some(g)) => Decay::Head(g),
        (DecayKind::Scalar, Some(g)) => Decay::Scalar(g),
        (DecayKind::Vector, Some(g)) => Decay::Vector(g),
        _ => Decay::None,
    };
    let x = LaInputs {
        q: &q,
        k: &k,
        v: &v,
        decay,
        h0: None,
    };
    let la = ChunkedAttention::default();
    let fwd = measure(dev, runs, 1, || {
        la.forward(&x)?;
        Ok(())
    })?;
    let both = measure(dev, runs, 1, || {
        let f = la.forward(&x)?;
        la.backward(&x, &f, &dout, None)?;
        Ok(())
    })?;
    let state = Tensor::zeros(dev, &[b, h, dk, dv])?;
    let rec = measure(dev, runs, 1, || {
        la.recurrent(&x, &state)?;
        Ok(())
    })?;
    let rec_both = measure(dev, runs, 1, || {
        let (_, last) = la.recurrent_from_start(&x)?;
        la.recurrent_backward(&x, &last, &dout, None)?;
        Ok(())
    })?;
    let c = la.chunk as f64;
    let (dkf, dvf) = (dk as f64, dv as f64);
    let rows = (b * h * t) as f64;
    let intra = c * (dkf + dvf);
    let flops_fwd = rows * (intra + 4.0 * dkf * dvf);
    let flops_both = flops_fwd + rows * (3.0 * intra + 8.0 * dkf * dvf);
    let flops_rec = rows * 4.0 * dkf * dvf;
    let flops_rec_both = flops_rec + rows * 12.0 * dkf * dvf;
    let dims = shape(&[("b", b), ("h", h), ("t", t), ("dk", dk), ("dv", dv)]);
    let name = kind_name(kind);
    let mut out = Vec::new();
    for (suffix, mode, tm, flops) in [
        ("chunked", "fwd", &fwd, flops_fwd),
        ("chunked", "fwd+bwd", &both, flops_both),
        ("recurrent", "fwd", &rec, flops_rec),
        ("recurrent", "fwd+bwd", &rec_both, flops_rec_both),
    ] {
        let gflops = flops / tm.median() / 1e6;
        let tokens = (b * t) as f64 / tm.median() * 1e3;
        eprintln!(
            "{name}_{suffix} {mode} b={b} h={h} t={t} dk={dk} dv={dv}: {:.2} ms (wall {:.2}), \
             {gflops:.2} GFLOP/s = {:.0}% of GEMM, {tokens:.0} tokens/s",
            tm.median(),
            tm.wall_median(),
            100.0 * gflops / gemm_gflops,
        );
        out.push(Record {
            gflops,
            tokens_per_s: Some(tokens),
            ..Record::timed(
                dev,
                ["attention", &format!("{name}_{suffix}"), mode],
                dims.clone(),
                tm,
            )
        });
    }
    eprintln!(
        "{name}: chunked {:.1}x the recurrent form's speed forward, {:.1}x forward+backward",
        rec.median() / fwd.median(),
        rec_both.median() / both.median(),
    );
    Ok(out)
}

/// The suite: recur's GEMM rate first (1024³, the adapter's default kernel),
/// then every decay kind at (4, 8, 2048, 64, 64) and, unless `quick`, at
/// T = 8192.
pub fn attention(dev: &Device, runs: usize, quick: bool) -> anyhow::Result<Vec<Record>> {
    let gemm = gemm_case(
        dev,
        runs,
        GemmCase::new((1024, 1024, 1024), GemmKernel::Auto),
    )?;
    eprintln!("gemm 1024³: {:.2} GFLOP/s", gemm.gflops);
    let mut out = vec![gemm.clone()];
    let mut lens = vec![2048];
    if !quick {
        lens.push(8192);
    }
    for t in lens {
        for kind in DecayKind::ALL {
            out.extend(case(dev, runs, kind, (4, 8, t, 64, 64), gemm.gflops)?);
        }
    }
    Ok(out)
}
