//! Mamba-2 against Hugging Face transformers' `Mamba2ForCausalLM`, and its
//! streaming contract:
//! - the checkpoint its `save_pretrained` wrote runs unchanged: logits and
//!   every parameter gradient (tools/make_mamba2_fixtures.py);
//! - its inference cache after a prompt equals recur's state, and runs the
//!   rest of the tokens in recur;
//! - step by step equals the parallel form over 120 steps;
//! - finite differences of the layer's parameters and input.

mod common;

use std::path::PathBuf;

use common::{assert_matches, data, device, gradcheck, input, max_diff, Fixture};
use recur_nn::checkpoint::Checkpoint;
use recur_nn::functional as F;
use recur_nn::{
    Layer, Mamba2, Mamba2Config, Mamba2State, MambaLm, MambaLmConfig, Module, Rng, Tensor, Var,
};
use safetensors::SafeTensors;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/mamba2")
}

/// The tiny model of tools/make_mamba2_fixtures.py.
fn tiny_config() -> MambaLmConfig<Mamba2Config> {
    let mut c = MambaLmConfig::mamba2(23, 16, 2);
    c.mamba.d_state = 8;
    c.mamba.headdim = 8;
    c.mamba.ngroups = 2;
    c.mamba.chunk = 8;
    c.tie_embeddings = false;
    c
}

struct HfFixture {
    bytes: Vec<u8>,
}

impl HfFixture {
    fn load(dev: &recur_nn::Device) -> (MambaLm<Mamba2>, Self) {
        let model = tiny_config().init(dev, &mut Rng::new(0)).unwrap();
        let ck = Checkpoint::load(&fixtures().join("model.safetensors")).unwrap();
        model.load(dev, &ck).unwrap();
        let bytes = std::fs::read(fixtures().join("expected.safetensors")).unwrap();
        (model, Self { bytes })
    }

    fn get(&self) -> Fixture<'_> {
        Fixture {
            st: SafeTensors::deserialize(&self.bytes).unwrap(),
        }
    }

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
fn a_hugging_face_mamba2_checkpoint_runs_unchanged() {
    let Some(dev) = device() else { return };
    let (model, hf) = HfFixture::load(&dev);
    let f = hf.get();
    let (logits, _) = model.forward_with_state(&hf.ids(&dev, 0..13), &[]).unwrap();
    let want = f.get("logits").unwrap();
    assert_eq!(logits.shape(), want.1);
    assert_matches("logits", &logits.to_vec().unwrap(), &want.0);
    let w = Var::new(f.tensor(&dev, "w").unwrap());
    F::sum_all(&F::mul(&logits, &w).unwrap())
        .unwrap()
        .backward()
        .unwrap();
    let params = model.named_parameters();
    assert_eq!(params.len(), 2 * 9 + 3, "every HF parameter has a twin");
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

/// recur's state after a prompt is Hugging Face's cache (conv (B, conv_dim,
/// d_conv), ssm (B, H, headdim, N)), and HF's cache loaded into recur runs
/// the rest as HF does (a prompt longer than d_conv, and a shorter one).
#[test]
fn hugging_face_mamba2_caches_are_recur_states() {
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
            theirs.push(Mamba2State {
                conv: Var::new(Tensor::from_slice(&dev, &conv.0, &conv.1).unwrap()),
                ssm: Var::new(Tensor::from_slice(&dev, &ssm.0, &ssm.1).unwrap()),
            });
        }
        let (rest, _) = model
            .forward_with_state(&hf.ids(&dev, prompt..13), &theirs)
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

fn small(dev: &recur_nn::Device, seed: u64) -> Mamba2 {
    let mut c = Mamba2Config::new(8);
    c.d_state = 5;
    c.headdim = 4;
    c.ngroups = 2;
    c.chunk = 16;
    c.init(dev, &mut Rng::new(seed)).unwrap()
}

#[test]
fn stepping_reproduces_the_parallel_form_over_120_steps() {
    let Some(dev) = device() else { return };
    let m = small(&dev, 3);
    let (b, t, d) = (2, 120, 8);
    let x = Var::new(Tensor::from_slice(&dev, &data(b * t * d, 4), &[b, t, d]).unwrap());
    let (whole, last) = m.forward_with_state(&x, None).unwrap();
    let whole = whole.to_vec().unwrap();
    let mut state = None;
    let mut worst = 0.0f32;
    for s in 0..t {
        let xt = F::reshape(&F::slice(&x, 1, s, 1).unwrap(), &[b, d]).unwrap();
        let (y, next) = m.step(&xt, state.as_ref()).unwrap();
        let y = y.to_vec().unwrap();
        for bi in 0..b {
            worst = worst.max(max_diff(&y[bi * d..][..d], &whole[(bi * t + s) * d..][..d]));
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

#[test]
fn mamba2_gradients_match_finite_differences() {
    let Some(dev) = device() else { return };
    let base = small(&dev, 6);
    let params = base.named_parameters();
    let mut inputs = vec![input(&[2, 5, 8], 7)];
    inputs.extend(
        params
            .iter()
            .map(|(_, p)| (p.to_vec().unwrap(), p.shape().to_vec())),
    );
    gradcheck(&dev, "mamba2", &inputs, |v| {
        let mut m = base.clone();
        m.dt_bias = v[1].clone();
        m.a_log = v[2].clone();
        m.d = v[3].clone();
        m.in_proj.weight = v[4].clone();
        m.conv_weight = v[5].clone();
        m.conv_bias = Some(v[6].clone());
        m.norm_weight = v[7].clone();
        m.out_proj.weight = v[8].clone();
        m.forward(&v[0])
    });
}

#[test]
fn bad_mamba2_input_is_a_typed_error() {
    let Some(dev) = device() else { return };
    let m = small(&dev, 1);
    let v = |s: &[usize]| Var::new(Tensor::zeros(&dev, s).unwrap());
    assert!(m.forward(&v(&[2, 3, 8])).is_ok());
    for bad in [v(&[2, 3, 7]), v(&[3, 8]), v(&[2, 0, 8])] {
        assert!(matches!(
            m.forward(&bad),
            Err(recur_nn::Error::ShapeMismatch { .. })
        ));
    }
    let mut s = m.zero_state(&dev, 2).unwrap();
    s.ssm = v(&[2, 4, 5, 4]);
    assert!(m.forward_with_state(&v(&[2, 3, 8]), Some(&s)).is_err());
    let mut c = Mamba2Config::new(8);
    c.headdim = 5;
    assert!(c.init(&dev, &mut Rng::new(0)).is_err());
}
