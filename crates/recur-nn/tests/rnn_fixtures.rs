//! Golden tests against PyTorch (fixtures from tools/make_rnn_fixtures.py):
//! outputs, final states and the gradients of a fixed scalar loss with
//! respect to the input, the initial state and every parameter.

mod common;
use std::path::PathBuf;

use recur_nn::{Cell, Module, RecurrentConfig, Rng};
use safetensors::SafeTensors;

use common::{assert_matches, device, Fixture};

fn fixtures() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/rnn");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    v.sort();
    v
}

fn parse(stem: &str) -> (Cell, usize, bool, bool, bool) {
    let (cell, rest) = if let Some(r) = stem.strip_prefix("lstm_") {
        (Cell::Lstm, r)
    } else if let Some(r) = stem.strip_prefix("gru_") {
        (Cell::Gru, r)
    } else if let Some(r) = stem.strip_prefix("rnn_tanh_") {
        (Cell::RnnTanh, r)
    } else if let Some(r) = stem.strip_prefix("rnn_relu_") {
        (Cell::RnnRelu, r)
    } else {
        panic!("unknown fixture {stem}")
    };
    let parts: Vec<&str> = rest.split('_').collect();
    let layers = parts[0][1..].parse().unwrap();
    (
        cell,
        layers,
        parts[1] == "bi",
        parts[2] == "bf",
        parts[3] == "state",
    )
}

#[test]
fn rnn_layers_match_pytorch_forward_and_gradients() {
    let Some(dev) = device() else { return };
    let files = fixtures();
    assert_eq!(files.len(), 72, "expected 4 cells x 18 configurations");
    for path in files {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let f = Fixture {
            st: SafeTensors::deserialize(&bytes).unwrap(),
        };
        let (cell, layers, bidir, batch_first, state) = parse(&stem);
        let config = RecurrentConfig {
            num_layers: layers,
            bidirectional: bidir,
            batch_first,
            ..RecurrentConfig::new(cell, 7, 19)
        };
        let model = config.init(&dev, &mut Rng::new(0)).unwrap();
        let names: Vec<String> = model
            .named_parameters()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        for name in &names {
            let t = f
                .tensor(&dev, &format!("param.{name}"))
                .unwrap_or_else(|| panic!("{stem}: no {name}"));
            model.set_parameter(name, &t).unwrap();
        }
        let x = f.tensor(&dev, "x").unwrap();
        let h0 = state.then(|| f.tensor(&dev, "h0").unwrap());
        let c0 = if state { f.tensor(&dev, "c0") } else { None };
        let (out, tape) = model
            .forward_train(&x, h0.as_ref(), c0.as_ref(), &mut Rng::new(1))
            .unwrap();
        assert_matches(
            &format!("{stem} out"),
            &out.output.to_vec().unwrap(),
            &f.get("out").unwrap().0,
        );
        assert_matches(
            &format!("{stem} h_n"),
            &out.h_n.to_vec().unwrap(),
            &f.get("h_n").unwrap().0,
        );
        if cell == Cell::Lstm {
            assert_matches(
                &format!("{stem} c_n"),
                &out.c_n.as_ref().unwrap().to_vec().unwrap(),
                &f.get("c_n").unwrap().0,
            );
        }
        let g = model
            .backward(
                &tape,
                &f.tensor(&dev, "w_out").unwrap(),
                f.tensor(&dev, "w_h").as_ref(),
                f.tensor(&dev, "w_c").as_ref(),
            )
            .unwrap();
        assert_matches(
            &format!("{stem} grad.x"),
            &g.dx.to_vec().unwrap(),
            &f.get("grad.x").unwrap().0,
        );
        if state {
            assert_matches(
                &format!("{stem} grad.h0"),
                &g.dh0.to_vec().unwrap(),
                &f.get("grad.h0").unwrap().0,
            );
            if cell == Cell::Lstm {
                assert_matches(
                    &format!("{stem} grad.c0"),
                    &g.dc0.as_ref().unwrap().to_vec().unwrap(),
                    &f.get("grad.c0").unwrap().0,
                );
            }
        }
        assert_eq!(g.params.len(), names.len());
        for (name, grad) in &g.params {
            let want = f.get(&format!("grad.{name}")).unwrap().0;
            assert_matches(
                &format!("{stem} grad.{name}"),
                &grad.to_vec().unwrap(),
                &want,
            );
        }
    }
}
