// The selective scan of Mamba (Gu & Dao 2023; mamba_ssm's selective_scan_ref):
//   δ_t = softplus(δraw_t + δ_bias)        (without FLAG_SOFTPLUS: δraw_t + δ_bias)
//   x_t = exp(δ_t A) ⊙ x_{t−1} + δ_t B_t u_t        x_t ∈ R^N per channel
//   y_t = C_t · x_t + D u_t,   out_t = y_t · silu(z_t)   (without FLAG_Z: y_t)
// B = batch, D = channels, L = length, N = state size, G = groups of channels
// that share B and C (channel d reads group d / (D / G)), K = time chunks of
// CH steps. Every (b, d, n) is a first-order linear recurrence in time, so
// time is cut into chunks: a chunk reduces to the affine map (∏ a, x from
// 0), a scan over the chunks gives each chunk its entering state, and each
// chunk is replayed from it; the state (B, D, N, L) is never stored, only
// the states entering each chunk (B, D, K, N).
//
// Shared by selective_scan.wgsl (forward) and selective_scan_backward.wgsl;
// the including file defines BACKWARD (or not) and its entry flags first.
#import activations

// Steps per time chunk: the replay keeps CH steps of each sequence in
// private arrays.
#define CH 16u

// (sb, sd, st): strides of (b, d, t) in u, δ, z and the outputs: (D·L, L, 1)
// for mamba_ssm's (B, D, L), (L·D, 1, D) for channel-last (B, L, D).
struct Params {
    batch: u32, dim: u32, len: u32, nstate: u32,
    groups: u32, chunks: u32, flags: u32, blocks: u32,
    sb: u32, sd: u32, st: u32, _pad0: u32,
}

const FLAG_SOFTPLUS: u32 = 1u;
const FLAG_Z: u32 = 2u;
const FLAG_H0: u32 = 4u;     // forward: start from h0; backward: dh0 wanted
const FLAG_DLAST: u32 = 8u;  // backward: the final state has a gradient

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> u: array<f32>;      // (B, D, L) or (B, L, D) input
@group(0) @binding(2) var<storage, read> delta: array<f32>;  // like u: δ before bias and softplus
@group(0) @binding(3) var<storage, read> z: array<f32>;      // like u: the gate, read with FLAG_Z
@group(0) @binding(4) var<storage, read> chan: array<f32>;   // (D, N + 2): A, then D, then δ_bias
@group(0) @binding(5) var<storage, read> bm: array<f32>;     // (B, G, N, L)
@group(0) @binding(6) var<storage, read> cm: array<f32>;     // (B, G, N, L)

fn has(flag: u32) -> bool { return (p.flags & flag) != 0u; }
fn seq(b: u32, d: u32, t: u32) -> u32 { return b * p.sb + d * p.sd + t * p.st; }
fn a_of(d: u32, n: u32) -> f32 { return chan[d * (p.nstate + 2u) + n]; }
fn skip_of(d: u32) -> f32 { return chan[d * (p.nstate + 2u) + p.nstate]; }
fn bias_of(d: u32) -> f32 { return chan[d * (p.nstate + 2u) + p.nstate + 1u]; }
fn group_of(d: u32) -> u32 { return d / (p.dim / p.groups); }
fn bc(b: u32, g: u32, n: u32, t: u32) -> u32 { return ((b * p.groups + g) * p.nstate + n) * p.len + t; }
// Chunk summaries and entering states: (B, D, K, N, 2).
fn sum_at(b: u32, d: u32, k: u32, n: u32, w: u32) -> u32 {
    return (((b * p.dim + d) * p.chunks + k) * p.nstate + n) * 2u + w;
}
fn state_at(b: u32, d: u32, n: u32) -> u32 { return (b * p.dim + d) * p.nstate + n; }

// δ from its raw value: bias, then softplus.
fn delta_of(raw: f32, d: u32) -> f32 {
    let v = raw + bias_of(d);
    if has(FLAG_SOFTPLUS) { return softplus_f(v); }
    return v;
}

// The multiplier of y in the output: silu(z), or 1.
fn gate_of(b: u32, d: u32, t: u32) -> f32 {
    if has(FLAG_Z) { let zv = z[seq(b, d, t)]; return zv * sigmoid_f(zv); }
    return 1.0;
}

// One chunk of one channel: batch b, channel d, chunk k, steps t0..t0+count.
struct Cell { b: u32, d: u32, k: u32, t0: u32, count: u32, live: bool }

fn cell_of(d: u32, k: u32, b: u32) -> Cell {
    let t0 = k * CH;
    return Cell(b, d, k, t0, min(CH, p.len - min(t0, p.len)), d < p.dim);
}

#ifdef CARRY
// The scan over chunks for one (b, d, n) per invocation: walks the chunk
// maps (m, c) (x -> m x + c) in order, replacing each m with the state
// entering its chunk; returns the state after the last. The forward walks
// time in order from h0; the backward in reverse from dL/d final state.
// Serial over the K chunks: B·D·N invocations keep a device busy, and K is
// L / CH.
struct Lane { b: u32, d: u32, n: u32, live: bool }

fn lane_of(i: u32) -> Lane {
    let n = i % p.nstate;
    let d = (i / p.nstate) % p.dim;
    let b = i / (p.nstate * p.dim);
    return Lane(b, d, n, b < p.batch);
}

fn carry(l: Lane) -> f32 {
    var x = start_of(l.b, l.d, l.n);
    for (var v = 0u; v < p.chunks; v++) {
        let k = chunk_of(v);
        let m = sums[sum_at(l.b, l.d, k, l.n, 0u)];
        let c = sums[sum_at(l.b, l.d, k, l.n, 1u)];
        sums[sum_at(l.b, l.d, k, l.n, 0u)] = x;
        x = m * x + c;
    }
    return x;
}
#endif
