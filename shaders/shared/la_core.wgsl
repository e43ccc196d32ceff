// The decayed linear-attention recurrence, one matrix state per head:
//   S_t = diag(α_t) S_{t−1} + k_t v_tᵀ,   o_t = S_tᵀ q_t
// B = batch, H = heads, T = length, dk/dv = key/value widths, K = chunks of
// CH steps. The decay is given as log α and is chosen by a define:
//   (none)        α = 1 (linear attention)
//   DECAY_HEAD    log α_t = lg[h], fixed per head (RetNet's log γ_h)
//   DECAY_SCALAR  log α_t per (b, h, t) (Mamba-2's Δ_t A_h)
//   DECAY_VECTOR  log α_t per (b, h, t, key index) (GLA)
// Inside chunk c, with b_t = Σ_{s ≤ t, s in c} log α_s (the cumulative
// log-decay from the chunk start, per key index) and S₀ the state entering:
//   o_t = (q_t ⊙ e^{b_t})ᵀ S₀ + Σ_{s ≤ t} (Σ_k q_tk k_sk e^{b_tk − b_sk}) v_s
//   S_C = e^{b_C} ⊙ S₀ + Σ_s (k_s ⊙ e^{b_C − b_s}) v_sᵀ
// Only differences b_t − b_s with s ≤ t (or b_C − b_s, or b_t alone) are
// exponentiated: all ≤ 0 for decays α ≤ 1, so no term overflows however
// strong the decay or long the chunk.
//
// Shared by linear_attention.wgsl and la_chunk.wgsl.

#define CH 64u

// (b, h, t) strides of the key-width tensors (q, k, a vector decay), the
// value-width tensors (v, outputs) and a scalar decay; the last index is
// contiguous. W = 1 (scalar decays) or dk (vector) columns of gc.
struct Params {
    batch: u32, heads: u32, len: u32, dk: u32,
    dv: u32, chunks: u32, flags: u32, width: u32,
    kb: u32, kh: u32, kt: u32, _p0: u32,
    vb: u32, vh: u32, vt: u32, _p1: u32,
    gb: u32, gh: u32, gt: u32, _p2: u32,
}

const FLAG_START: u32 = 1u;  // forward: from h0; backward: from dL/d final state
const FLAG_GRAD: u32 = 2u;   // the dgate pass: add the final state's term

@group(0) @binding(0) var<uniform> p: Params;
#ifdef LG_VEC4
@group(0) @binding(1) var<storage, read> lg: array<vec4<f32>>; // la_apply: a vector decay's k̃ / q̃
#else
@group(0) @binding(1) var<storage, read> lg: array<f32>;   // (H): log α per head (DECAY_HEAD)
#endif

#ifndef LA_CUMULATE
#ifdef LA_PRESCALE
@group(0) @binding(2) var<storage, read_write> gc: array<f32>;  // (B, H, T, dk): b_t, written here
#else
@group(0) @binding(2) var<storage, read> gc: array<f32>;   // (B, H, T, W): b_t (DECAY_SCALAR/VECTOR)
#endif
#endif

fn has(flag: u32) -> bool { return (p.flags & flag) != 0u; }
fn kat(b: u32, h: u32, t: u32, k: u32) -> u32 { return b * p.kb + h * p.kh + t * p.kt + k; }
fn vat(b: u32, h: u32, t: u32, v: u32) -> u32 { return b * p.vb + h * p.vh + t * p.vt + v; }
fn gat(b: u32, h: u32, t: u32) -> u32 { return b * p.gb + h * p.gh + t * p.gt; }
// The state (or chunk-map) element (k, v) of chunk c of head (b, h) = bh:
// (B, H, K, dk, dv).
fn state_at(bh: u32, c: u32, k: u32, v: u32) -> u32 {
    return ((bh * p.chunks + c) * p.dk + k) * p.dv + v;
}
// The last step of chunk c.
fn chunk_last(c: u32) -> u32 { return min(c * CH + CH, p.len) - 1u; }

#ifndef LA_CUMULATE
// b_t for key index k (ignored by the scalar decays).
fn cum(b: u32, h: u32, t: u32, k: u32) -> f32 {
    var v = 0.0;
#ifdef DECAY_HEAD
    v = f32(t % CH + 1u) * lg[h];
#endif
#ifdef DECAY_SCALAR
    v = gc[(b * p.heads + h) * p.len + t];
#endif
#ifdef DECAY_VECTOR
    v = gc[((b * p.heads + h) * p.len + t) * p.dk + k];
#endif
    return v;
}
#endif
