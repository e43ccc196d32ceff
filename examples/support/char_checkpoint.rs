//! `char_lm`'s checkpoints: parameters under PyTorch's names, AdamW's
//! moments, the carried state, the step, RNG states and the loss history,
//! so that `--resume` continues with exactly the losses of an uninterrupted
//! run.

use anyhow::{bail, Result};
use recur::gpu::Device;
use recur::nn::checkpoint::{self, Checkpoint};
use recur::nn::{Adam, Module, Rng, Tensor, Var};

use crate::model::{Backbone, Model};
use crate::plot;

/// Loss history, kept in checkpoints as "step,value" pairs.
#[derive(Default)]
pub struct History {
    pub train: Vec<(f64, f64)>,
    pub val: Vec<(f64, f64)>,
}

impl History {
    fn encode(points: &[(f64, f64)]) -> String {
        points
            .iter()
            .map(|(x, y)| format!("{x},{y}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn decode(s: &str) -> Vec<(f64, f64)> {
        s.split_whitespace()
            .filter_map(|p| {
                let (x, y) = p.split_once(',')?;
                Some((x.parse().ok()?, y.parse().ok()?))
            })
            .collect()
    }

    pub fn plot(&self, stem: &std::path::Path, title: &str) {
        // Smooth the per-step training loss over 20 steps for legibility.
        let smooth: Vec<(f64, f64)> = self
            .train
            .iter()
            .enumerate()
            .map(|(i, &(x, _))| {
                let w = &self.train[i.saturating_sub(19)..=i];
                (x, w.iter().map(|p| p.1).sum::<f64>() / w.len() as f64)
            })
            .collect();
        let series = [
            plot::Series {
                name: "train (20-step mean)",
                points: &smooth,
                color: plotters::style::RGBColor(31, 119, 180),
            },
            plot::Series {
                name: "validation",
                points: &self.val,
                color: plotters::style::RGBColor(214, 39, 40),
            },
        ];
        if let Err(e) = plot::loss_curves(stem, title, "nats / char", &series) {
            eprintln!("loss curve not written: {e:#}");
        }
    }
}

/// Everything needed to continue exactly where a run stopped.
pub struct Progress<'a> {
    pub step: u64,
    pub tokens: usize,
    pub rng: &'a Rng,
    pub state: &'a [Var],
    pub history: &'a History,
}

pub fn save_checkpoint(
    path: &std::path::Path,
    m: &Model,
    opt: &Adam,
    vocab: &[char],
    p: Progress,
) -> Result<()> {
    let params = m.named_parameters();
    let mut tensors: Vec<(String, &Tensor)> =
        params.iter().map(|(n, v)| (n.clone(), v.value())).collect();
    for (i, (mm, vv)) in opt.moments().iter().enumerate() {
        tensors.push((format!("optim.m.{i}"), mm));
        tensors.push((format!("optim.v.{i}"), vv));
    }
    for (i, s) in p.state.iter().enumerate() {
        tensors.push((format!("state.{i}"), s.value()));
    }
    let meta = std::collections::HashMap::from([
        ("step".to_string(), p.step.to_string()),
        ("tokens".to_string(), p.tokens.to_string()),
        ("rng".to_string(), p.rng.state().to_string()),
        (
            "dropout_rng".to_string(),
            match &m.rnn {
                Backbone::Classic(r) => r.dropout_rng_state(),
                Backbone::Min(..) | Backbone::Mamba(..) | Backbone::Mixers(..) => 0,
            }
            .to_string(),
        ),
        ("optim.steps".to_string(), opt.steps().to_string()),
        ("vocab".to_string(), vocab.iter().collect::<String>()),
        (
            "history.train".to_string(),
            History::encode(&p.history.train),
        ),
        ("history.val".to_string(), History::encode(&p.history.val)),
    ]);
    checkpoint::save(path, &tensors, &meta)?;
    Ok(())
}

/// What a checkpoint restores besides the parameters and moments.
pub struct Resumed {
    pub step: u64,
    pub tokens: usize,
    pub rng: Rng,
    pub state: Vec<Var>,
    pub history: History,
}

/// Loads `path` into `m` and `opt` (which must have been built for the same
/// model and vocabulary) and returns where the run stood.
pub fn resume(
    path: &std::path::Path,
    dev: &Device,
    m: &Model,
    opt: &mut Adam,
    vocab: &[char],
    [batch, hidden]: [usize; 2],
) -> Result<Resumed> {
    let ck = Checkpoint::load(path)?;
    if ck.metadata.get("vocab").map(String::as_str)
        != Some(vocab.iter().collect::<String>().as_str())
    {
        bail!("{}: trained on another vocabulary", path.display());
    }
    m.load_parameters(dev, &ck, "")?;
    let moments = opt
        .moments()
        .iter()
        .enumerate()
        .map(|(i, (mm, _))| {
            Ok((
                ck.tensor(dev, &format!("optim.m.{i}"), mm.shape())?,
                ck.tensor(dev, &format!("optim.v.{i}"), mm.shape())?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    opt.restore(moments, ck.meta("optim.steps")?)?;
    let mut state = Vec::new();
    for (i, shape) in m.state_shapes(batch, hidden).iter().enumerate() {
        let name = format!("state.{i}");
        if ck.names().any(|n| n == name) {
            state.push(Var::new(ck.tensor(dev, &name, shape)?));
        }
    }
    if let Backbone::Classic(r) = &m.rnn {
        r.set_dropout_rng_state(ck.meta("dropout_rng")?);
    }
    let get = |k: &str| {
        ck.metadata
            .get(k)
            .map(|s| History::decode(s))
            .unwrap_or_default()
    };
    Ok(Resumed {
        step: ck.meta("step")?,
        tokens: ck.meta("tokens")?,
        rng: Rng::new(ck.meta("rng")?),
        state,
        history: History {
            train: get("history.train"),
            val: get("history.val"),
        },
    })
}
