//! Running a [`Recurrent`] layer: the forward over every layer and direction
//! (on tensors, on the tape as one node, or keeping a tape for the explicit
//! backward), and that backward.

use recur_gpu::ops::elementwise;
use recur_gpu::ops::layout;
use recur_gpu::ops::rnn::{self, Cell};
use recur_gpu::{Error, Result, Rng, Tensor};

use super::{Recurrent, RecurrentGrads, RecurrentOutput, RecurrentTape, RecurrentVars};
use crate::autograd::{self, Var};
use crate::module::Module;

impl Recurrent {
    /// Forward in the autograd graph: the whole sequence, all layers and
    /// directions, is one node whose backward is [`Recurrent::backward`].
    /// In training mode (the default; see [`Module::set_training`]) dropout
    /// applies between layers. `h0`/`c0` are (L·D, B, H); zeros when absent.
    pub fn forward_var(
        &self,
        x: &Var,
        h0: Option<&Var>,
        c0: Option<&Var>,
    ) -> Result<RecurrentVars> {
        let lstm = self.config.cell == Cell::Lstm;
        if c0.is_some() && !lstm {
            return Err(Error::InvalidArgument {
                op: "Recurrent::forward_var",
                what: "c0 is for LSTM only".into(),
            });
        }
        let params = self.parameters();
        let mut inputs: Vec<&Var> = vec![x];
        inputs.extend(h0);
        inputs.extend(c0);
        inputs.extend(params.iter());
        let record = autograd::is_grad_enabled() && inputs.iter().any(|v| v.requires_grad());
        let dropout = self.training.get() && self.config.dropout > 0.0;
        let (out, tape) = {
            let mut rng = self.dropout_rng.lock().unwrap_or_else(|e| e.into_inner());
            self.run(
                x.value(),
                h0.map(Var::value),
                c0.map(Var::value),
                record,
                dropout.then_some(&mut *rng),
            )?
        };
        let mut outputs = vec![out.output, out.h_n];
        outputs.extend(out.c_n);
        let this = self.clone();
        let (has_h0, has_c0) = (h0.is_some(), c0.is_some());
        let out_shape = outputs[0].shape().to_vec();
        let vars = autograd::record("recurrent", &inputs, outputs, move |g, _| {
            let tape = tape.as_ref().ok_or(Error::InvalidArgument {
                op: "Recurrent::forward_var",
                what: "no tape was kept".into(),
            })?;
            let d_out = match &g[0] {
                Some(d) => d.clone(),
                None => Tensor::zeros(&this.device, &out_shape)?,
            };
            let r = this.backward(
                tape,
                &d_out,
                g[1].as_ref(),
                g.get(2).and_then(Option::as_ref),
            )?;
            let mut v = vec![Some(r.dx)];
            if has_h0 {
                v.push(Some(r.dh0));
            }
            if has_c0 {
                v.push(r.dc0);
            }
            v.extend(r.params.into_iter().map(|(_, t)| Some(t)));
            Ok(v)
        });
        let mut it = vars.into_iter();
        let (output, h_n) = (it.next(), it.next());
        match (output, h_n) {
            (Some(output), Some(h_n)) => Ok(RecurrentVars {
                output,
                h_n,
                c_n: it.next(),
            }),
            _ => Err(Error::InvalidArgument {
                op: "Recurrent::forward_var",
                what: "missing outputs".into(),
            }),
        }
    }

    fn check_input(&self, x: &Tensor) -> Result<(usize, usize)> {
        let c = &self.config;
        match *x.shape() {
            [a, b, i] if i == c.input_size && a > 0 && b > 0 => {
                Ok(if c.batch_first { (b, a) } else { (a, b) })
            }
            _ => Err(Error::ShapeMismatch {
                op: "Recurrent::forward",
                expected: format!(
                    "input {} with I = {} and T, B > 0",
                    if c.batch_first {
                        "(B, T, I)"
                    } else {
                        "(T, B, I)"
                    },
                    c.input_size
                ),
                got: x.shape().to_vec(),
            }),
        }
    }

    fn check_state(&self, what: &'static str, s: &Tensor, b: usize) -> Result<()> {
        let want = [self.layers.len(), b, self.config.hidden_size];
        if s.shape() != want {
            return Err(Error::ShapeMismatch {
                op: what,
                expected: format!("{want:?} (L·D, B, H)"),
                got: s.shape().to_vec(),
            });
        }
        Ok(())
    }

    /// Inference forward on tensors (no tape). `h0`/`c0` are (L·D, B, H);
    /// zeros when absent. (`Layer::forward` takes a `Var` and records the
    /// sequence as one autograd node, as [`Recurrent::forward_var`] does.)
    pub fn forward_tensors(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
    ) -> Result<RecurrentOutput> {
        self.run(x, h0, c0, false, None).map(|(o, _)| o)
    }

    /// Training forward: applies dropout between layers (drawing masks from
    /// `rng`) and keeps what [`Recurrent::backward`] needs.
    pub fn forward_train(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        rng: &mut Rng,
    ) -> Result<(RecurrentOutput, RecurrentTape)> {
        let (o, tape) = self.run(x, h0, c0, true, Some(rng))?;
        let tape = tape.ok_or(Error::InvalidArgument {
            op: "Recurrent::forward_train",
            what: "no tape was kept".into(),
        })?;
        Ok((o, tape))
    }

    fn run(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        train: bool,
        mut rng: Option<&mut Rng>,
    ) -> Result<(RecurrentOutput, Option<RecurrentTape>)> {
        let c = self.config;
        let (t, b) = self.check_input(x)?;
        let lstm = c.cell == Cell::Lstm;
        for (name, s) in [("Recurrent::forward h0", h0), ("Recurrent::forward c0", c0)] {
            if let Some(s) = s {
                self.check_state(name, s, b)?;
            }
        }
        let state = |s: Option<&Tensor>, idx: usize| -> Result<Option<Tensor>> {
            s.map(|s| layout::slice(s, 0, idx, 1)?.reshape(&[b, c.hidden_size]))
                .transpose()
        };
        let mut input = if c.batch_first {
            layout::swap01(x)?
        } else {
            x.clone()
        };
        let (mut h_n, mut c_n, mut caches, mut masks) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for l in 0..c.num_layers {
            let mut outs = Vec::new();
            for d in 0..c.directions() {
                let idx = l * c.directions() + d;
                let h0i = state(h0, idx)?;
                let c0i = if lstm { state(c0, idx)? } else { None };
                let r = rnn::rnn_forward(
                    c.cell,
                    &self.layers[idx].weights(),
                    &input,
                    h0i.as_ref(),
                    c0i.as_ref(),
                    d == 1,
                    train,
                )?;
                outs.push(r.output);
                h_n.push(r.h_n.reshape(&[1, b, c.hidden_size])?);
                if let Some(cn) = r.c_n {
                    c_n.push(cn.reshape(&[1, b, c.hidden_size])?);
                }
                caches.extend(r.cache);
            }
            input = if outs.len() == 1 {
                outs.remove(0)
            } else {
                layout::concat(&[&outs[0], &outs[1]], 2)?
            };
            let last = l + 1 == c.num_layers;
            let mask = match rng.as_deref_mut() {
                Some(rng) if c.dropout > 0.0 && !last => {
                    let m = crate::functional::dropout_mask(
                        &self.device,
                        input.shape(),
                        c.dropout,
                        rng,
                    )?;
                    input = elementwise::mul(&input, &m)?;
                    Some(m)
                }
                _ => None,
            };
            if train && !last {
                masks.push(mask);
            }
        }
        let _ = t;
        let output = if c.batch_first {
            layout::swap01(&input)?
        } else {
            input
        };
        let cat = |v: &[Tensor]| -> Result<Tensor> {
            let refs: Vec<&Tensor> = v.iter().collect();
            layout::concat(&refs, 0)
        };
        let out = RecurrentOutput {
            output,
            h_n: cat(&h_n)?,
            c_n: if lstm { Some(cat(&c_n)?) } else { None },
        };
        let tape = train.then_some(RecurrentTape {
            caches,
            masks,
            batch: b,
        });
        Ok((out, tape))
    }

    /// Gradients for upstream `d_output` (shaped like the output) and
    /// optional `d_h_n`, `d_c_n` (L·D, B, H).
    pub fn backward(
        &self,
        tape: &RecurrentTape,
        d_output: &Tensor,
        d_h_n: Option<&Tensor>,
        d_c_n: Option<&Tensor>,
    ) -> Result<RecurrentGrads> {
        let c = self.config;
        let (b, h, dirs) = (tape.batch, c.hidden_size, c.directions());
        let lstm = c.cell == Cell::Lstm;
        for (name, s) in [
            ("Recurrent::backward d_h_n", d_h_n),
            ("Recurrent::backward d_c_n", d_c_n),
        ] {
            if let Some(s) = s {
                self.check_state(name, s, b)?;
            }
        }
        if tape.caches.len() != self.layers.len() {
            return Err(Error::InvalidArgument {
                op: "Recurrent::backward",
                what: format!(
                    "tape has {} layer-directions, the model {}",
                    tape.caches.len(),
                    self.layers.len()
                ),
            });
        }
        let mut dout = if c.batch_first {
            layout::swap01(d_output)?
        } else {
            d_output.clone()
        };
        let state = |s: Option<&Tensor>, idx: usize| -> Result<Option<Tensor>> {
            s.map(|s| layout::slice(s, 0, idx, 1)?.reshape(&[b, h]))
                .transpose()
        };
        let n = self.layers.len();
        let mut dh0: Vec<Option<Tensor>> = vec![None; n];
        let mut dc0: Vec<Option<Tensor>> = vec![None; n];
        let mut pgrads: Vec<Option<rnn::RnnGradients>> = vec![None; n];
        for l in (0..c.num_layers).rev() {
            if l + 1 < c.num_layers {
                if let Some(m) = &tape.masks[l] {
                    dout = elementwise::mul(&dout, m)?;
                }
            }
            let mut dx: Option<Tensor> = None;
            for d in 0..dirs {
                let idx = l * dirs + d;
                let slice = if dirs == 1 {
                    dout.clone()
                } else {
                    layout::slice(&dout, 2, d * h, h)?
                };
                let g = rnn::rnn_backward(
                    &self.layers[idx].weights(),
                    &tape.caches[idx],
                    &slice,
                    state(d_h_n, idx)?.as_ref(),
                    if lstm { state(d_c_n, idx)? } else { None }.as_ref(),
                )?;
                dx = Some(match dx {
                    None => g.dx.clone(),
                    Some(acc) => elementwise::add(&acc, &g.dx)?,
                });
                dh0[idx] = Some(g.dh0.reshape(&[1, b, h])?);
                dc0[idx] = g.dc0.as_ref().map(|t| t.reshape(&[1, b, h])).transpose()?;
                pgrads[idx] = Some(g);
            }
            dout = dx.expect("at least one direction");
        }
        let dx = if c.batch_first {
            layout::swap01(&dout)?
        } else {
            dout
        };
        let cat = |v: Vec<Option<Tensor>>| -> Result<Tensor> {
            let v: Vec<Tensor> = v.into_iter().flatten().collect();
            let refs: Vec<&Tensor> = v.iter().collect();
            layout::concat(&refs, 0)
        };
        let mut params = Vec::new();
        for (idx, g) in pgrads.into_iter().enumerate() {
            let g = g.expect("every layer ran");
            let s = self.suffix(idx / dirs, idx % dirs);
            params.push((format!("weight_ih_{s}"), g.dw_ih));
            params.push((format!("weight_hh_{s}"), g.dw_hh));
            if let (Some(bi), Some(bh)) = (g.db_ih, g.db_hh) {
                params.push((format!("bias_ih_{s}"), bi));
                params.push((format!("bias_hh_{s}"), bh));
            }
        }
        Ok(RecurrentGrads {
            dx,
            dh0: cat(dh0)?,
            dc0: if lstm { Some(cat(dc0)?) } else { None },
            params,
        })
    }
}
