//! Linear-attention layers on the chunked engine
//! ([`recur_gpu::ops::linear_attention`]): [`LinearAttention`]
//! (Katharopoulos et al. 2020), [`Retention`] (RetNet's multi-scale
//! retention, as flash-linear-attention's `MultiScaleRetention`) and
//! [`GatedLinearAttention`] (GLA, as flash-linear-attention's layer). Each
//! trains over a whole sequence in parallel and runs token by token from its
//! state ([`AttentionState`]), equal to the parallel form. Sequences are
//! batch-first (B, T, d_model); heads are split from the projections'
//! outputs as (B, T, H, d) — the engine's `Bthd` layout, no transposes.

mod gla;
mod linear;
mod retention;

pub use gla::{GatedLinearAttention, GlaConfig};
pub use linear::{LinearAttention, LinearAttentionConfig};
pub use retention::{Retention, RetentionConfig};

use recur_gpu::ops::linear_attention::{ChunkedAttention, LaLayout};
use recur_gpu::{Device, Error, Result, Rng};

use crate::autograd::Var;
use crate::functional as F;
use crate::linear::{Linear, LinearConfig};

/// A layer's state between calls: the matrix state of every head and the
/// number of steps taken (RetNet's rotary positions continue from it).
#[derive(Clone, Debug)]
pub struct AttentionState {
    /// (B, H, d_k, d_v) (d_v + 1 for [`LinearAttention`]: its last column
    /// is the normaliser z_t = Σ φ(k_s)).
    pub s: Var,
    /// Steps already taken.
    pub pos: usize,
}

/// A projection without bias, PyTorch's `nn.Linear` initialisation.
pub(crate) fn proj(device: &Device, rng: &mut Rng, i: usize, o: usize) -> Result<Linear> {
    LinearConfig {
        bias: false,
        ..LinearConfig::new(i, o)
    }
    .init(device, rng)
}

/// (B, T, H·d) → (B, T, H, d).
pub(crate) fn split_heads(x: &Var, heads: usize) -> Result<Var> {
    let [b, t, hd] = *x.shape() else {
        return Err(Error::ShapeMismatch {
            op: "split_heads",
            expected: "(B, T, H·d)".into(),
            got: x.shape().to_vec(),
        });
    };
    F::reshape(x, &[b, t, heads, hd / heads])
}

/// (B, T, H, d) → (B, T, H·d).
pub(crate) fn merge_heads(x: &Var) -> Result<Var> {
    let s = x.shape();
    F::reshape(x, &[s[0], s[1], s[2] * s[3]])
}

/// The (B, T) of an input (B, T, d_model), checked.
pub(crate) fn batch_len(op: &'static str, x: &Var, d_model: usize) -> Result<(usize, usize)> {
    match *x.shape() {
        [b, t, d] if d == d_model && b > 0 && t > 0 => Ok((b, t)),
        _ => Err(Error::ShapeMismatch {
            op,
            expected: format!("(B, T, {d_model}) with B, T > 0 (or (B, {d_model}) for step)"),
            got: x.shape().to_vec(),
        }),
    }
}

/// The state's matrix, checked against (B, H, d_k, d_v).
pub(crate) fn state_matrix<'a>(
    op: &'static str,
    state: Option<&'a AttentionState>,
    want: [usize; 4],
) -> Result<Option<&'a Var>> {
    match state {
        Some(s) if s.s.shape() != want => Err(Error::ShapeMismatch {
            op,
            expected: format!("state {want:?}"),
            got: s.s.shape().to_vec(),
        }),
        Some(s) => Ok(Some(&s.s)),
        None => Ok(None),
    }
}

/// The chunked engine in the layers' layout.
pub(crate) fn engine(chunk: usize) -> ChunkedAttention {
    ChunkedAttention {
        chunk,
        layout: LaLayout::Bthd,
    }
}

/// `RMSNorm(o) ⊙ weight ⊙ silu(g)` per head over d_v
/// (flash-linear-attention's `FusedRMSNormSwishGate`), o and g (B, T, H, d_v).
pub(crate) fn norm_swish_gate(o: &Var, g: &Var, weight: &Var, eps: f32) -> Result<Var> {
    let n = F::rms_norm(o, Some(weight), eps)?;
    F::mul(&n, &F::activation(g, recur_gpu::ops::Activation::Silu)?)
}

/// One token (B, d_model) through a layer's `forward_with_state`.
pub(crate) fn step_with(
    x: &Var,
    d_model: usize,
    op: &'static str,
    f: impl FnOnce(&Var) -> Result<(Var, AttentionState)>,
) -> Result<(Var, AttentionState)> {
    let [b, d] = *x.shape() else {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("(B, {d_model})"),
            got: x.shape().to_vec(),
        });
    };
    let (y, s) = f(&F::reshape(x, &[b, 1, d])?)?;
    Ok((F::reshape(&y, &[b, y.shape()[2]])?, s))
}
