//! The engine's inputs and forward results.

use crate::tensor::Tensor;

/// The decay α_t, as log α (≤ 0 for a decay; 0 is none).
#[derive(Clone, Copy, Debug)]
pub enum Decay<'a> {
    /// α = 1: plain linear attention.
    None,
    /// (H): one fixed log α per head (RetNet: log γ_h); no gradient.
    Head(&'a Tensor),
    /// (B, H, T) (or (B, T, H) with [`LaLayout::Bthd`]): one log α per head
    /// and step (Mamba-2: Δ_t A_h).
    Scalar(&'a Tensor),
    /// Shaped like q: one log α per key index (GLA).
    Vector(&'a Tensor),
}

/// Which decay, without its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecayKind {
    /// [`Decay::None`]
    None,
    /// [`Decay::Head`]
    Head,
    /// [`Decay::Scalar`]
    Scalar,
    /// [`Decay::Vector`]
    Vector,
}

impl DecayKind {
    /// Every kind, for tests and benches.
    pub const ALL: [DecayKind; 4] = [
        DecayKind::None,
        DecayKind::Head,
        DecayKind::Scalar,
        DecayKind::Vector,
    ];

    pub(crate) fn define(self) -> Option<&'static str> {
        match self {
            DecayKind::None => None,
            DecayKind::Head => Some("DECAY_HEAD"),
            DecayKind::Scalar => Some("DECAY_SCALAR"),
            DecayKind::Vector => Some("DECAY_VECTOR"),
        }
    }
}

impl Decay<'_> {
    /// The kind.
    pub fn kind(&self) -> DecayKind {
        match self {
            Decay::None => DecayKind::None,
            Decay::Head(_) => DecayKind::Head,
            Decay::Scalar(_) => DecayKind::Scalar,
            Decay::Vector(_) => DecayKind::Vector,
        }
    }

    pub(crate) fn tensor(&self) -> Option<&Tensor> {
        match *self {
            Decay::None => None,
            Decay::Head(t) | Decay::Scalar(t) | Decay::Vector(t) => Some(t),
        }
    }
}

/// The layout of q, k, v, the outputs and the decays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LaLayout {
    /// (B, H, T, d): heads first.
    #[default]
    Bhtd,
    /// (B, T, H, d): as a linear layer's output split into heads is
    /// (flash-linear-attention's default, Mamba-2's).
    Bthd,
}

/// The inputs.
#[derive(Clone, Copy, Debug)]
pub struct LaInputs<'a> {
    /// (B, H, T, d_k) (or (B, T, H, d_k)).
    pub q: &'a Tensor,
    /// Like q.
    pub k: &'a Tensor,
    /// (B, H, T, d_v) (or (B, T, H, d_v)).
    pub v: &'a Tensor,
    /// The decay.
    pub decay: Decay<'a>,
    /// (B, H, d_k, d_v): the state before the first step (zeros when absent).
    pub h0: Option<&'a Tensor>,
}

/// Forward results.
#[derive(Clone, Debug)]
pub struct LaOutput {
    /// Like v.
    pub out: Tensor,
    /// (B, H, d_k, d_v): the state after the last step.
    pub last_state: Tensor,
    /// (B, H, K, d_k, d_v): the state entering each of the K chunks, what
    /// the backward reads.
    pub chunk_states: Tensor,
    /// (B·H·K, C, C): each chunk's causal scores Σ_k q_tk k_sk e^{b_tk − b_sk}
    /// (lower triangle), what the backward reads.
    pub scores: Tensor,
    /// A vector decay's q and k relative to their block of 8 steps (q̂_t =
    /// q_t e^{b_t − b_first}, k̂_t = k_t e^{b_last − b_t}) and to their chunk
    /// (q̃_t = q_t e^{b_t}, k̃_t = k_t e^{b_C − b_t}).
    pub prescaled: Option<Prescaled>,
    /// (B, H, T, W): the cumulative log-decays within each chunk (W = 1 or
    /// d_k; absent for [`Decay::None`] and [`Decay::Head`]).
    pub cum_decay: Option<Tensor>,
}

/// A vector decay's operands relative to a reference step, every factor
/// ≤ 1 ([`LaOutput::prescaled`]); each like q.
#[derive(Clone, Debug)]
pub struct Prescaled {
    /// q̂: q relative to the first step of its block of 8.
    pub q_block: Tensor,
    /// k̂: k relative to the last step of its block of 8 (within the chunk).
    pub k_block: Tensor,
    /// q̃: q relative to its chunk's start.
    pub q_chunk: Tensor,
    /// k̃: k relative to its chunk's end.
    pub k_chunk: Tensor,
}
