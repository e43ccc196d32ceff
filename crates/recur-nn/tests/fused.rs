//! The inference form of the PyTorch-style families (`SequenceLm::fused`)
//! equals the training path's step (`SequenceLm::step`) to 1e-5 over
//! several tokens, with streams masked in and out, in one dispatch per
//! layer per token; f16 weights stay close; other families are refused.

mod common;

use recur_nn::{
    no_grad, DType, Device, Family, Module, Rng, SequenceLm, SequenceLmConfig, State, Tensor,
};

const VOCAB: usize = 11;

fn model(dev: &Device, family: Family, layers: usize) -> SequenceLm {
    let c = SequenceLmConfig {
        family,
        vocab: VOCAB,
        hidden: 19,
        layers,
        embed: 7,
        dropout: 0.0,
    };
    let m = c.init(dev, &mut Rng::new(5)).unwrap();
    m.set_training(false);
    m
}

fn worst(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
        .fold(0.0, f32::max)
}

fn tensor(s: &State, name: &str) -> Vec<f32> {
    s.get("test", name).unwrap().value().to_vec().unwrap()
}

/// Runs both paths for `steps` tokens of `b` streams; returns the worst
/// relative difference of logits and states.
fn compare(dev: &Device, m: &SequenceLm, dtype: DType, masked: bool) -> f32 {
    let _g = no_grad();
    let f = m.fused(dtype).unwrap();
    let (b, layers, h) = (5, m.config().layers, m.config().hidden);
    let mut train = m.zero_state(dev, b).unwrap();
    let mut fused = m.zero_state(dev, b).unwrap();
    let mut rng = Rng::new(9);
    let mut err = 0.0f32;
    for step in 0..6 {
        let ids: Vec<u32> = (0..b)
            .map(|_| (rng.next_u64() % VOCAB as u64) as u32)
            .collect();
        let active: Vec<bool> = (0..b).map(|r| !masked || (r + step) % 3 != 0).collect();
        let ids_t = Tensor::from_slice_u32(dev, &ids, &[b]).unwrap();
        let (want, next) = m.step(&ids_t, Some(&train)).unwrap();
        let before = dev.counters().dispatches;
        let (got, fnext) = f
            .step(&ids_t, fused, masked.then_some(&active[..]))
            .unwrap();
        let used = dev.counters().dispatches - before;
        // Gather, one per layer, (for L > 1 the top layer's copy), head.
        assert_eq!(
            used as usize,
            f.dispatches_per_step(),
            "dispatches for {layers} layers"
        );
        let (want_l, got_l) = (want.value().to_vec().unwrap(), got.to_vec().unwrap());
        // The training path stepped every stream: keep the masked rows'
        // old state to compare.
        let mut names = vec!["h"];
        if m.config().family == Family::Lstm {
            names.push("c");
        }
        let mut expected = State::at_steps(fnext.steps().to_vec());
        for name in &names {
            let (old, new) = (tensor(&train, name), tensor(&next, name));
            let mut e = new.clone();
            for l in 0..layers {
                for (r, _) in active.iter().enumerate().filter(|(_, &on)| !on) {
                    let o = (l * b + r) * h;
                    e[o..o + h].copy_from_slice(&old[o..o + h]);
                }
            }
            err = err.max(worst(&tensor(&fnext, name), &e));
            let t = Tensor::from_slice(dev, &e, &[layers, b, h]).unwrap();
            expected = expected.with(name, recur_nn::Var::new(t), 1).unwrap();
        }
        for r in (0..b).filter(|&r| active[r]) {
            let row = r * VOCAB..(r + 1) * VOCAB;
            err = err.max(worst(&got_l[row.clone()], &want_l[row]));
        }
        let want_steps: Vec<usize> = (0..b)
            .map(|r| train.steps()[r] + usize::from(active[r]))
            .collect();
        assert_eq!(fnext.steps(), &want_steps[..]);
        train = expected;
        fused = fnext;
    }
    err
}

#[test]
fn the_fused_step_equals_the_training_step() {
    let Some(dev) = common::device() else { return };
    for family in [Family::Lstm, Family::Gru, Family::Rnn] {
        for layers in [1, 3] {
            let m = model(&dev, family, layers);
            for masked in [false, true] {
                let e = compare(&dev, &m, DType::F32, masked);
                assert!(e <= 1e-5, "{family:?} x{layers} masked {masked}: {e:e}");
            }
        }
    }
}

#[test]
fn f16_weights_stay_close() {
    let Some(dev) = common::device() else { return };
    if dev.half_dtype() != DType::F16 {
        eprintln!("no f16 storage on this adapter: skipped");
        return;
    }
    for family in [Family::Lstm, Family::Gru, Family::Rnn] {
        let e = compare(&dev, &model(&dev, family, 2), DType::F16, true);
        assert!(e <= 5e-3, "{family:?}: {e:e}");
    }
}

#[test]
fn other_families_and_bad_input_are_typed_errors() {
    let Some(dev) = common::device() else { return };
    let e = model(&dev, Family::MinGru, 1)
        .fused(DType::F32)
        .err()
        .unwrap();
    assert!(e.to_string().contains("fused"), "{e}");
    let m = model(&dev, Family::Gru, 2);
    let f = m.fused(DType::F32).unwrap();
    let s = m.zero_state(&dev, 3).unwrap();
    let ids = |n: usize| Tensor::from_slice_u32(&dev, &vec![1; n], &[n]).unwrap();
    assert!(
        f.step(&ids(4), s.clone(), None).is_err(),
        "ids for 4 streams, state of 3"
    );
    assert!(
        f.step(&ids(3), s.clone(), Some(&[true, false])).is_err(),
        "2 flags for 3"
    );
    let other = model(&dev, Family::Gru, 1).zero_state(&dev, 3).unwrap();
    let e = f.step(&ids(3), other, None).unwrap_err();
    assert!(e.to_string().contains("FusedLm::step"), "{e}");
    let bi = recur_nn::RecurrentConfig {
        bidirectional: true,
        ..recur_nn::RecurrentConfig::gru(3, 4)
    }
    .init(&dev, &mut Rng::new(1))
    .unwrap();
    assert!(bi.step_weights(DType::F32).is_err());
}

#[test]
fn stepping_the_first_rows_equals_stepping_all() {
    let Some(dev) = common::device() else { return };
    let _g = no_grad();
    for (family, layers) in [(Family::Lstm, 2), (Family::Gru, 1)] {
        let m = model(&dev, family, layers);
        let f = m.fused(DType::F32).unwrap();
        let (cap, rows) = (7, 3);
        let ids: Vec<u32> = (0..cap as u32).map(|i| i % VOCAB as u32).collect();
        let all = Tensor::from_slice_u32(&dev, &ids, &[cap]).unwrap();
        let first = Tensor::from_slice_u32(&dev, &ids[..rows], &[rows]).unwrap();
        let (mut sa, mut sf) = (
            m.zero_state(&dev, cap).unwrap(),
            m.zero_state(&dev, cap).unwrap(),
        );
        for _ in 0..3 {
            let (la, na) = f.step(&all, sa, None).unwrap();
            let (lf, nf) = f.step_first(&first, sf, None, rows).unwrap();
            let (la, lf) = (la.to_vec().unwrap(), lf.to_vec().unwrap());
            assert_eq!(lf.len(), rows * VOCAB);
            assert!(worst(&lf, &la[..rows * VOCAB]) <= 1e-6, "{family:?} logits");
            let h = m.config().hidden;
            let (ha, hf) = (tensor(&na, "h"), tensor(&nf, "h"));
            for l in 0..layers {
                let r = l * cap * h..(l * cap + rows) * h;
                assert!(worst(&hf[r.clone()], &ha[r]) <= 1e-6, "{family:?} h");
            }
            assert_eq!(&nf.steps()[..rows], &na.steps()[..rows]);
            assert!(
                nf.steps()[rows..].iter().all(|&s| s == 0),
                "later rows not stepped"
            );
            (sa, sf) = (na, nf);
        }
        assert!(f.step_first(&first, sf, None, cap + 1).is_err());
    }
}

#[test]
fn a_pool_with_f16_weights_stays_close_to_f32() {
    let Some(dev) = common::device() else { return };
    if dev.half_dtype() != DType::F16 {
        eprintln!("no f16 storage on this adapter: skipped");
        return;
    }
    let m = std::sync::Arc::new(model(&dev, Family::Lstm, 2));
    let mut full = recur_nn::StreamPool::new(m.clone(), &dev, 3).unwrap();
    let mut half = recur_nn::StreamPool::with_weights(m, &dev, 3, DType::F16).unwrap();
    let (a, b) = (full.open().unwrap(), half.open().unwrap());
    for t in 0..8u32 {
        let x = full.step(&[(a, t % VOCAB as u32)]).unwrap();
        let y = half.step(&[(b, t % VOCAB as u32)]).unwrap();
        assert!(worst(&y[0], &x[0]) <= 5e-3, "token {t}");
    }
}

/// `generate` steps LSTM/GRU/RNN models through the fused form: it samples
/// what a loop over the training path's `step` samples, token for token.
#[test]
fn generate_through_the_fused_step_samples_what_the_training_step_samples() {
    let Some(dev) = common::device() else { return };
    for family in [Family::Lstm, Family::Gru, Family::Rnn] {
        let m = model(&dev, family, 2);
        let prompt = [3u32, 1, 4];
        let got = m
            .generate(&dev, &prompt, 40, (0.9, None), &mut Rng::new(17))
            .unwrap();
        let _g = no_grad();
        let mut rng = Rng::new(17);
        let mut state: Option<State> = None;
        let mut logits = None;
        for &t in &prompt {
            let ids = Tensor::from_slice_u32(&dev, &[t], &[1]).unwrap();
            let (l, s) = m.step(&ids, state.as_ref()).unwrap();
            (logits, state) = (Some(l), Some(s));
        }
        let mut want = Vec::new();
        for _ in 0..40 {
            let l = logits.take().unwrap().to_vec().unwrap();
            let t = recur_nn::stateful::sample_token(&l, 0.9, None, &mut rng).unwrap();
            want.push(t);
            let ids = Tensor::from_slice_u32(&dev, &[t], &[1]).unwrap();
            let (l, s) = m.step(&ids, state.as_ref()).unwrap();
            (logits, state) = (Some(l), Some(s));
        }
        assert_eq!(got, want, "{family:?}");
    }
}
