//! char_lm's residual blocks around the sequence mixers on the chunked
//! linear-attention engine: x + mixer(RMSNorm(x)) with Mamba-2, linear
//! attention, RetNet's retention or GLA (heads of width 64).

use anyhow::Result;
use recur::gpu::Device;
use recur::nn::functional as F;
use recur::nn::{
    prefixed, AttentionState, GatedLinearAttention, GlaConfig, Layer, LinearAttention,
    LinearAttentionConfig, Mamba2, Mamba2Config, Mamba2State, Module, Retention, RetentionConfig,
    RmsNorm, Rng, Tensor, Var,
};

/// One of the mixers.
pub enum Mixer {
    Mamba2(Mamba2),
    Linear(LinearAttention),
    Retention(Retention),
    Gla(GatedLinearAttention),
}

/// x + mixer(RMSNorm(x)).
pub struct MixerBlock {
    pub norm: RmsNorm,
    pub mixer: Mixer,
}

impl MixerBlock {
    /// A block of `width` for `--model` `name` (mamba2, linear, retnet, gla).
    pub fn new(dev: &Device, name: &str, width: usize, rng: &mut Rng) -> Result<Self> {
        let heads = (width / 64).max(1);
        let mixer = match name {
            "mamba2" => Mixer::Mamba2(Mamba2Config::new(width).init(dev, rng)?),
            "linear" => Mixer::Linear(LinearAttentionConfig::new(width, heads).init(dev, rng)?),
            "retnet" => Mixer::Retention(RetentionConfig::new(width, heads).init(dev, rng)?),
            _ => Mixer::Gla(GlaConfig::new(width, heads).init(dev, rng)?),
        };
        Ok(Self {
            norm: RmsNorm::new(dev, width, 1e-5)?,
            mixer,
        })
    }

    /// Tensors of the carried state: Mamba-2's conv and ssm states; an
    /// attention layer's matrix state and its position (a one-element
    /// tensor, read back once per window by RetNet's rotary embedding only;
    /// the other layers never read it).
    pub fn state_shapes(&self, batch: usize) -> Vec<Vec<usize>> {
        match &self.mixer {
            Mixer::Mamba2(m) => {
                let c = m.config();
                vec![
                    vec![batch, c.conv_dim(), c.d_conv],
                    vec![batch, c.heads(), c.headdim, c.d_state],
                ]
            }
            Mixer::Linear(l) => {
                let c = l.config();
                let d = c.d_model / c.heads;
                vec![vec![batch, c.heads, d, d + 1], vec![1]]
            }
            Mixer::Retention(l) => {
                let c = l.config();
                let dk = c.d_model / c.heads;
                vec![vec![batch, c.heads, dk, c.expand_v * dk], vec![1]]
            }
            Mixer::Gla(l) => {
                let c = l.config();
                let dk = c.d_model / c.key_divisor / c.heads;
                vec![vec![batch, c.heads, dk, c.d_model / c.heads], vec![1]]
            }
        }
    }

    /// The block over batch-first `x` from its two state tensors (absent:
    /// zeros), and the next two.
    pub fn forward(&self, x: &Var, state: Option<(&Var, &Var)>) -> Result<(Var, [Var; 2])> {
        let h = self.norm.forward(x)?;
        let (y, next) = match &self.mixer {
            Mixer::Mamba2(m) => {
                let s = state.map(|(conv, ssm)| Mamba2State {
                    conv: conv.clone(),
                    ssm: ssm.clone(),
                });
                let (y, n) = m.forward_with_state(&h, s.as_ref())?;
                (y, [n.conv, n.ssm])
            }
            attention => {
                let s = match state {
                    Some((s, pos)) => Some(AttentionState {
                        s: s.clone(),
                        // Only RetNet's rotary embedding reads the position:
                        // the other layers skip the readback (a GPU sync).
                        pos: match attention {
                            Mixer::Retention(_) => pos.value().item()? as usize,
                            _ => 0,
                        },
                    }),
                    None => None,
                };
                let (y, n) = match attention {
                    Mixer::Linear(l) => l.forward_with_state(&h, s.as_ref())?,
                    Mixer::Retention(l) => l.forward_with_state(&h, s.as_ref())?,
                    Mixer::Gla(l) => l.forward_with_state(&h, s.as_ref())?,
                    Mixer::Mamba2(_) => unreachable!("handled above"),
                };
                let dev = x.value().device("char_lm")?;
                let pos = Var::new(Tensor::full(&dev, &[1], n.pos as f32)?);
                (y, [n.s, pos])
            }
        };
        Ok((F::add(x, &y)?, next))
    }
}

impl Module for MixerBlock {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut v = prefixed("norm", &self.norm);
        v.extend(match &self.mixer {
            Mixer::Mamba2(m) => prefixed("mixer", m),
            Mixer::Linear(m) => prefixed("mixer", m),
            Mixer::Retention(m) => prefixed("mixer", m),
            Mixer::Gla(m) => prefixed("mixer", m),
        });
        v
    }
}
