//! Golden tests against PyTorch for the layers and the autograd tape
//! (fixtures from tools/make_layer_fixtures.py): outputs, losses and every
//! gradient, with parameters loaded by their PyTorch state_dict names.

mod common;

use std::path::PathBuf;

use recur_nn::checkpoint::Checkpoint;
use recur_nn::{
    functional as F, prefixed, Device, Embedding, Layer, LayerNorm, Linear, LinearConfig,
    LossReduction, Module, RecurrentConfig, RmsNorm, Rng, Sequential, Tensor, Var,
};
use safetensors::SafeTensors;

use common::{assert_matches, device, Fixture};

fn load() -> (Vec<u8>, Checkpoint) {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/layers.safetensors");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let ck = Checkpoint::from_bytes(&bytes).unwrap();
    (bytes, ck)
}

/// `y = layer(x)`, `L = Σ y ⊙ w_y`: checks y, dL/dx and every parameter's
/// gradient against the fixture group `prefix`.
fn check_weighted(dev: &Device, f: &Fixture, prefix: &str, layer: &dyn Layer) {
    let x = Var::param(f.tensor(dev, &format!("{prefix}.x")).unwrap());
    let y = layer.forward(&x).unwrap();
    let (want_y, shape) = f.get(&format!("{prefix}.y")).unwrap();
    assert_eq!(y.shape(), &shape[..], "{prefix}: output shape");
    assert_matches(&format!("{prefix} y"), &y.to_vec().unwrap(), &want_y);
    let w = Var::new(f.tensor(dev, &format!("{prefix}.w_y")).unwrap());
    layer.zero_grad();
    F::sum_all(&F::mul(&y, &w).unwrap())
        .unwrap()
        .backward()
        .unwrap();
    assert_matches(
        &format!("{prefix} grad.x"),
        &x.grad().unwrap().to_vec().unwrap(),
        &f.get(&format!("{prefix}.grad.x")).unwrap().0,
    );
    for (name, p) in layer.named_parameters() {
        assert_matches(
            &format!("{prefix} grad.{name}"),
            &p.grad().unwrap().to_vec().unwrap(),
            &f.get(&format!("{prefix}.grad.{name}")).unwrap().0,
        );
    }
}

fn ids(f: &Fixture, dev: &Device, name: &str) -> Tensor {
    let (v, shape) = f.get(name).unwrap();
    let ids: Vec<u32> = v.iter().map(|&x| x as u32).collect();
    Tensor::from_slice_u32(dev, &ids, &shape).unwrap()
}

#[test]
fn layers_match_pytorch() {
    let Some(dev) = device() else { return };
    let (bytes, ck) = load();
    let f = Fixture {
        st: SafeTensors::deserialize(&bytes).unwrap(),
    };
    let mut rng = Rng::new(1);

    let linear = LinearConfig::new(7, 5).init(&dev, &mut rng).unwrap();
    linear.load_parameters(&dev, &ck, "linear.").unwrap();
    check_weighted(&dev, &f, "linear", &linear);

    let ln = LayerNorm::new(&dev, 13).unwrap();
    ln.load_parameters(&dev, &ck, "layer_norm.").unwrap();
    check_weighted(&dev, &f, "layer_norm", &ln);

    let rms = RmsNorm::new(&dev, 13, 1e-6).unwrap();
    rms.load_parameters(&dev, &ck, "rms_norm.").unwrap();
    check_weighted(&dev, &f, "rms_norm", &rms);

    let seq = Sequential::new()
        .push(LinearConfig::new(5, 8).init(&dev, &mut rng).unwrap())
        .push(LayerNorm::new(&dev, 8).unwrap())
        .push(LinearConfig::new(8, 3).init(&dev, &mut rng).unwrap())
        .push(RmsNorm::new(&dev, 3, 1e-6).unwrap());
    let names: Vec<String> = seq.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias", "3.weight"]
    );
    seq.load_parameters(&dev, &ck, "seq.").unwrap();
    check_weighted(&dev, &f, "seq", &seq);

    let emb = Embedding::new(&dev, 11, 6, &mut rng).unwrap();
    emb.load_parameters(&dev, &ck, "embedding.").unwrap();
    let y = emb.forward(&ids(&f, &dev, "embedding.ids")).unwrap();
    assert_matches(
        "embedding y",
        &y.to_vec().unwrap(),
        &f.get("embedding.y").unwrap().0,
    );
    let w = Var::new(f.tensor(&dev, "embedding.w_y").unwrap());
    F::sum_all(&F::mul(&y, &w).unwrap())
        .unwrap()
        .backward()
        .unwrap();
    assert_matches(
        "embedding grad.weight",
        &emb.weight.grad().unwrap().to_vec().unwrap(),
        &f.get("embedding.grad.weight").unwrap().0,
    );

    let pred = Var::param(f.tensor(&dev, "mse.pred").unwrap());
    let target = Var::param(f.tensor(&dev, "mse.target").unwrap());
    let loss = F::mse_loss(&pred, &target, LossReduction::Mean).unwrap();
    assert_matches(
        "mse loss",
        &loss.to_vec().unwrap(),
        &f.get("mse.loss").unwrap().0,
    );
    loss.backward().unwrap();
    for (name, v) in [("pred", &pred), ("target", &target)] {
        assert_matches(
            &format!("mse grad.{name}"),
            &v.grad().unwrap().to_vec().unwrap(),
            &f.get(&format!("mse.grad.{name}")).unwrap().0,
        );
    }
}

/// embedding → 2-layer LSTM (batch_first) → LayerNorm → Linear →
/// cross-entropy with an ignored target, all through the tape.
struct Model {
    embedding: Embedding,
    rnn: recur_nn::Recurrent,
    norm: LayerNorm,
    out: Linear,
}

impl Module for Model {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut p = prefixed("embedding", &self.embedding);
        p.extend(prefixed("rnn", &self.rnn));
        p.extend(prefixed("norm", &self.norm));
        p.extend(prefixed("out", &self.out));
        p
    }
}

#[test]
fn a_composed_model_matches_pytorch_loss_and_every_gradient() {
    let Some(dev) = device() else { return };
    let (bytes, ck) = load();
    let f = Fixture {
        st: SafeTensors::deserialize(&bytes).unwrap(),
    };
    let mut rng = Rng::new(2);
    let model = Model {
        embedding: Embedding::new(&dev, 11, 6, &mut rng).unwrap(),
        rnn: RecurrentConfig {
            num_layers: 2,
            batch_first: true,
            ..RecurrentConfig::lstm(6, 9)
        }
        .init(&dev, &mut rng)
        .unwrap(),
        norm: LayerNorm::new(&dev, 9).unwrap(),
        out: LinearConfig::new(9, 11).init(&dev, &mut rng).unwrap(),
    };
    model.load_parameters(&dev, &ck, "model.").unwrap();
    let x = model
        .embedding
        .forward(&ids(&f, &dev, "model.ids"))
        .unwrap(); // (3, 5, 6)
    let h = model.rnn.forward_var(&x, None, None).unwrap().output;
    let logits = model.out.forward(&model.norm.forward(&h).unwrap()).unwrap();
    assert_matches(
        "model logits",
        &logits.to_vec().unwrap(),
        &f.get("model.logits").unwrap().0,
    );
    let targets = ids(&f, &dev, "model.targets").reshape(&[15]).unwrap();
    let loss = F::cross_entropy(
        &F::reshape(&logits, &[15, 11]).unwrap(),
        &targets,
        Some(0),
        LossReduction::Mean,
    )
    .unwrap();
    assert_matches(
        "model loss",
        &loss.to_vec().unwrap(),
        &f.get("model.loss").unwrap().0,
    );
    loss.backward().unwrap();
    for (name, p) in model.named_parameters() {
        assert_matches(
            &format!("model grad.{name}"),
            &p.grad().unwrap().to_vec().unwrap(),
            &f.get(&format!("model.grad.{name}")).unwrap().0,
        );
    }
}
