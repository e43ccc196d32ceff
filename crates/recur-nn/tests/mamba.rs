//! Mamba against independent implementations, and its streaming contract:
//! - the selective scan node against a float64 transcription of mamba_ssm's
//!   `selective_scan_ref` (every gradient);
//! - a Hugging Face transformers `MambaForCausalLM` checkpoint, loaded from
//!   the file its `save_pretrained` wrote: logits and every parameter
//!   gradient (tools/make_mamba_fixtures.py); its inference cache after a
//!   prompt equals recur's state, and runs the rest of the tokens in recur;
//! - step by step equals the parallel form over 120 steps; a sequence in
//!   two calls with the state between them equals one call;
//! - finite differences of the layer's parameters and input.

mod common;

use std::path::PathBuf;

use common::{assert_matches, data, device, gradcheck, input, max_diff, Fixture};
use recur_gpu::ops::selective_scan::SelectiveScan;
use recur_nn::checkpoint::Checkpoint;
use recur_nn::functional::{self as F, SelectiveScanVars};
use recur_nn::{
    Layer, Mamba, MambaConfig, MambaLm, MambaLmConfig, MambaState, Module, Rng, Tensor, Var,
};
use safetensors::SafeTensors;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

#[test]
fn selective_scan_matches_a_pytorch_transcription_of_the_reference() {
    let Some(dev) = device() else { return };
    let bytes = std::fs::read(fixtures().join("selective_scan.safetensors")).unwrap();
    let f = Fixture {
        st: SafeTensors::deserialize(&bytes).unwrap(),
    };
    let names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias", "h0"];
    let vars: Vec<Var> = names
        .iter()
        .map(|n| Var::param(f.tensor(&dev, n).unwrap()))
        .collect();
    let x = SelectiveScanVars {
        u: &vars[0],
        delta: &vars[1],
        a: &vars[2],
        b: &vars[3],
        c: &vars[4],
        d: Some(&vars[5]),
        z: Some(&vars[6]),
        delta_bias: Some(&vars[7]),
        h0: Some(&vars[8]),
    };
    let scan = SelectiveScan {
        delta_softplus: true,
        ..SelectiveScan::default()
    };
    let (out, last) = F::selective_scan(&x, scan).unwrap();
    assert_matches("out", &out.to_vec().unwrap(), &f.get("out").unwrap().0);
    assert_matches("last", &last.to_vec().unwrap(), &f.get("last").unwrap().0);
    let w = |n| Var::new(f.tensor(&dev, n).unwrap());
    let loss = F::add(
        &F::sum_all(&F::mul(&out, &w("w_out")).unwrap()).unwrap(),
        &F::sum_all(&F::mul(&last, &w("w_last")).unwrap()).unwrap(),
    )
    .unwrap();
    loss.backward().unwrap();
    for (n, v) in names.iter().zip(&vars) {
        let got = v.grad().unwrap().to_vec().unwrap();
        assert_matches(
            &format!("grad {n}"),
            &got,
            &f.get(&format!("grad.{n}")).unwrap().0,
        );
    }
}

/// The tiny model of tools/make_mamba_fixtures.py.
fn tiny_lm_config() -> MambaLmConfig {
    let mut c = MambaLmConfig::new(19, 16, 2);
    c.mamba.d_state = 4;
    c
}

struct HfFixture {
    bytes: Vec<u8>,
}

impl HfFixture {
    fn load(dev: &recur_nn::Device) -> (MambaLm, Self) {
        let dir = fixtures().join("mamba");
        let model = tiny_lm_config().init(dev, &mut Rng::new(0)).unwrap();
        let ck = Checkpoint::load(&dir.join("model.safetensors")).unwrap();
        model.load(dev, &ck).unwrap();
        let bytes = std::fs::read(dir.join("expected.safetensors")).unwrap();
        (model, Self { bytes })
    }

    fn get(&self) -> Fixture<'_> {
        Fixture {
            st: SafeTensors::deserialize(&self.bytes).unwrap(),
        }
    }

    /// The token ids of columns `cols`, (B, cols.len()).
    fn ids(&self, dev: &recur_nn::Device, cols: std::ops::Range<usize>) -> Tensor {
        let (ids, shape) = self.get().get("input_ids").unwrap();
        let (b, l) = (shape[0], shape[1]);
        let v: Vec<u32> = (0..b)
            .flat_map(|bi| ids[bi * l + cols.start..bi * l + cols.end].to_vec())
            .map(|x| x as u32)
            .collect();
        Tensor::from_slice_u32(dev, &v, &[b, cols.len()]).unwrap()
    }
}

#[test]
fn a_hugging_face_mamba_checkpoint_runs_unchanged() {
    let Some(dev) = device() else { return };
    let (model, hf) = HfFixture::load(&dev);
    let f = hf.get();
    let (logits, _) = model.forward_with_state(&hf.ids(&dev, 0..11), &[]).unwrap();
    assert_matches(
        "logits",
        &logits.to_vec().unwrap(),
        &f.get("logits").unwrap().0,
    );
    let w = Var::new(f.tensor(&dev, "w").unwrap());
    F::sum_all(&F::mul(&logits, &w).unwrap())
        .unwrap()
        .backward()
        .unwrap();
    let params = model.named_parameters();
    assert_eq!(params.len(), 2 * 10 + 2, "every HF parameter has a twin");
    for (name, p) in params {
        let hf = name.replace("backbone.embedding.", "backbone.embeddings.");
        let want = f
            .get(&format!("grad.{hf}"))
            .unwrap_or_else(|| panic!("no HF gradient for {hf}"));
        assert_matches(
            &format!("grad {name}"),
            &p.grad().unwrap().to_vec().unwrap(),
            &want.0,
        );
    }
}

/// recur's state after a prompt is Hugging Face's inference cache (conv
/// (B, d_inner, d_conv), ssm (B, d_inner, N)), and HF's cache loaded into
/// recur runs the rest of the sequence as HF does: one prompt longer than
/// d_conv, one shorter (zero-padded conv state).
#[test]
fn hugging_face_inference_caches_are_recur_states() {
    let Some(dev) = device() else { return };
    let (model, hf) = HfFixture::load(&dev);
    let f = hf.get();
    for prompt in [7, 2] {
        let (_, ours) = model
            .forward_with_state(&hf.ids(&dev, 0..prompt), &[])
            .unwrap();
        let mut theirs = Vec::new();
        for (layer, s) in ours.iter().enumerate() {
            let conv = f.get(&format!("cache{prompt}.conv.{layer}")).unwrap();
            let ssm = f.get(&format!("cache{prompt}.ssm.{layer}")).unwrap();
            assert_eq!(s.conv.shape(), conv.1, "conv state shape");
            assert_eq!(s.ssm.shape(), ssm.1, "ssm state shape");
            let what = format!("prompt {prompt} layer {layer}");
            assert_matches(&format!("{what} conv"), &s.conv.to_vec().unwrap(), &conv.0);
            assert_matches(&format!("{what} ssm"), &s.ssm.to_vec().unwrap(), &ssm.0);
            theirs.push(MambaState {
                conv: Var::new(Tensor::from_slice(&dev, &conv.0, &conv.1).unwrap()),
                ssm: Var::new(Tensor::from_slice(&dev, &ssm.0, &ssm.1).unwrap()),
            });
        }
        let (rest, _) = model
            .forward_with_state(&hf.ids(&dev, prompt..11), &theirs)
            .unwrap();
        let want = f.get(&format!("cache{prompt}.next_logits")).unwrap();
        assert_eq!(rest.shape(), want.1);
        assert_matches(
            &format!("logits after a {prompt}-token HF cache"),
            &rest.to_vec().unwrap(),
            &want.0,
        );
    }
}

fn small_mamba(dev: &recur_nn::Device, seed: u64) -> Mamba {
    let mut c = MambaConfig::new(8);
    c.d_state = 5;
    c.init(dev, &mut Rng::new(seed)).unwrap()
}

#[test]
fn stepping_reproduces_the_parallel_form_over_120_steps() {
    let Some(dev) = device() else { return };
    let m = small_mamba(&dev, 3);
    let (b, t, d) = (2, 120, 8);
    let xs = data(b * t * d, 4);
    let x = Var::new(Tensor::from_slice(&dev, &xs, &[b, t, d]).unwrap());
    let (whole, last) = m.forward_with_state(&x, None).unwrap();
    let whole = whole.to_vec().unwrap();
    let mut state = None;
    let mut worst = 0.0f32;
    for s in 0..t {
        let xt = F::reshape(&F::slice(&x, 1, s, 1).unwrap(), &[b, d]).unwrap();
        let (y, next) = m.step(&xt, state.as_ref()).unwrap();
        let y = y.to_vec().unwrap();
        for bi in 0..b {
            let want = &whole[(bi * t + s) * d..][..d];
            worst = worst.max(max_diff(&y[bi * d..][..d], want));
        }
        state = Some(next);
    }
    assert!(worst <= 1e-4, "step vs parallel: max-abs {worst}");
    let s = state.unwrap();
    let d_ssm = max_diff(&s.ssm.to_vec().unwrap(), &last.ssm.to_vec().unwrap());
    let d_conv = max_diff(&s.conv.to_vec().unwrap(), &last.conv.to_vec().unwrap());
    assert!(
        d_ssm <= 1e-4 && d_conv == 0.0,
        "final states: {d_ssm}, {d_conv}"
    );
}

/// A sequence in two calls, the state passed between them, is the same
/// as one call: what truncated BPTT and streaming rely on.
#[test]
fn the_state_carries_a_sequence_across_calls() {
    let Some(dev) = device() else { return };
    let lm = tiny_lm_config().init(&dev, &mut Rng::new(5)).unwrap();
    let ids: Vec<u32> = (0..2 * 23).map(|i| (i * 7 % 19) as u32).collect();
    let all = Tensor::from_slice_u32(&dev, &ids, &[2, 23]).unwrap();
    let (whole, _) = lm.forward_with_state(&all, &[]).unwrap();
    let whole = whole.to_vec().unwrap();
    for split in [1, 2, 10] {
        let part = |r: std::ops::Range<usize>| {
            let v: Vec<u32> = (0..2)
                .flat_map(|b| ids[b * 23 + r.start..b * 23 + r.end].to_vec())
                .collect();
            Tensor::from_slice_u32(&dev, &v, &[2, r.len()]).unwrap()
        };
        let (a, s) = lm.forward_with_state(&part(0..split), &[]).unwrap();
        let (b, _) = lm.forward_with_state(&part(split..23), &s).unwrap();
        let (a, b) = (a.to_vec().unwrap(), b.to_vec().unwrap());
        let v = 19;
        for bi in 0..2 {
            let got: Vec<f32> = a[bi * split * v..][..split * v]
                .iter()
                .chain(&b[bi * (23 - split) * v..][..(23 - split) * v])
                .copied()
                .collect();
            let d = max_diff(&got, &whole[bi * 23 * v..][..23 * v]);
            assert!(d <= 1e-4, "split at {split}: {d}");
        }
    }
}

#[test]
fn mamba_gradients_match_finite_differences() {
    let Some(dev) = device() else { return };
    let base = small_mamba(&dev, 6);
    let params = base.named_parameters();
    let mut inputs = vec![input(&[2, 5, 8], 7)];
    inputs.extend(
        params
            .iter()
            .map(|(_, p)| (p.to_vec().unwrap(), p.shape().to_vec())),
    );
    gradcheck(&dev, "mamba", &inputs, |v| {
        let mut m = base.clone();
        m.in_proj.weight = v[1].clone();
        m.conv_weight = v[2].clone();
        m.conv_bias = Some(v[3].clone());
        m.x_proj.weight = v[4].clone();
        m.dt_proj.weight = v[5].clone();
        m.dt_proj.bias = Some(v[6].clone());
        m.a_log = v[7].clone();
        m.d = v[8].clone();
        m.out_proj.weight = v[9].clone();
        m.forward(&v[0])
    });
}

#[test]
fn bad_mamba_input_is_a_typed_error() {
    let Some(dev) = device() else { return };
    let m = small_mamba(&dev, 1);
    let v = |s: &[usize]| Var::new(Tensor::zeros(&dev, s).unwrap());
    assert!(m.forward(&v(&[2, 3, 8])).is_ok());
    for bad in [v(&[2, 3, 7]), v(&[3, 8]), v(&[2, 0, 8])] {
        assert!(matches!(
            m.forward(&bad),
            Err(recur_nn::Error::ShapeMismatch { .. })
        ));
    }
    let mut s = m.zero_state(&dev, 2).unwrap();
    s.ssm = v(&[2, 16, 4]);
    assert!(m.forward_with_state(&v(&[2, 3, 8]), Some(&s)).is_err());
    let lm = tiny_lm_config().init(&dev, &mut Rng::new(2)).unwrap();
    let ids = Tensor::from_slice_u32(&dev, &[0, 1, 2], &[1, 3]).unwrap();
    let (_, states) = lm.forward_with_state(&ids, &[]).unwrap();
    assert!(lm.forward_with_state(&ids, &states[..1]).is_err());
}
