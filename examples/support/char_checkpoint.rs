//! `char_lm`'s checkpoints: parameters under PyTorch's names, AdamW's
//! moments, the carried state, the step, RNG states and the loss history,
//! so that `--resume` continues with exactly the losses of an uninterrupted
//! run.

use anyhow::{bail, Result};
use recur::gpu::Device;
use recur::nn::checkpoint::{self, Checkpoint};
use recur::nn::{Adam, Module, Rng, SequenceLm, State, StateTensor, Tensor, Var};

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
    pub state: Option<&'a State>,
    pub history: &'a History,
}

pub fn save_checkpoint(
    path: &std::path::Path,
    m: &SequenceLm,
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
    if let Some(s) = p.state {
        for StateTensor { name, value, .. } in s.tensors() {
            tensors.push((format!("state.{name}"), value.value()));
        }
    }
    let mut meta = std::collections::HashMap::from([
        ("step".to_string(), p.step.to_string()),
        ("tokens".to_string(), p.tokens.to_string()),
        ("rng".to_string(), p.rng.state().to_string()),
        (
            "dropout_rng".to_string(),
            m.recurrent()
                .map_or(0, |r| r.dropout_rng_state())
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
    if let Some(s) = p.state {
        // Steps per stream: RetNet's rotary positions continue from them.
        let steps: Vec<String> = s.steps().iter().map(usize::to_string).collect();
        meta.insert("state.steps".into(), steps.join(","));
    }
    // The model's family and sizes: `recur-serve` rebuilds it from them.
    meta.extend(m.config().metadata());
    checkpoint::save(path, &tensors, &meta)?;
    Ok(())
}

/// What a checkpoint restores besides the parameters and moments.
pub struct Resumed {
    pub step: u64,
    pub tokens: usize,
    pub rng: Rng,
    pub state: Option<State>,
    pub history: History,
}

/// Loads `path` into `m` and `opt` (which must have been built for the same
/// model and vocabulary) and returns where the run stood.
pub fn resume(
    path: &std::path::Path,
    dev: &Device,
    m: &SequenceLm,
    opt: &mut Adam,
    vocab: &[char],
    batch: usize,
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
    // The carried state, when the run had one: the model's zero state's
    // tensors under their names.
    let mut state = None;
    if ck.names().any(|n| n.starts_with("state.")) {
        let zero = m.zero_state(dev, batch)?;
        let steps = ck
            .metadata
            .get("state.steps")
            .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
            .unwrap_or_else(|| vec![0; batch]);
        if steps.len() != batch {
            bail!("{}: a state for another batch size", path.display());
        }
        let mut s = State::at_steps(steps);
        for t in zero.tensors() {
            let v = ck.tensor(dev, &format!("state.{}", t.name), t.value.shape())?;
            s = s.with(&t.name, Var::new(v), t.batch_axis)?;
        }
        state = Some(s);
    }
    if let Some(r) = m.recurrent() {
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
