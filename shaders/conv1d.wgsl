// Causal depthwise 1-D convolution over time (Mamba's short convolution,
// PyTorch's Conv1d(groups=D, padding=W−1) keeping the first L outputs), on
// channels-last sequences. B = batch, L = length, D = channels, W = width.
//   y[b, t, d] = bias[d] + Σ_k w[d, k] · x̂[b, t − (W−1) + k, d]
// where x̂ is x after the W−1 inputs of `state` (zeros when absent):
// x̂[b, s, d] = state[b, W−1+s, d] for s < 0.
// `conv1d_causal`: y, one invocation per (b, t, d).
// `conv1d_causal_backward`: dx and dstate, one invocation per (b, s, d)
//   for s in −(W−1)..L: Σ_k w[d, k] · dy[b, s + W−1−k, d] over valid steps.
// `conv1d_causal_wgrad`: partial dw and dbias per (b, chunk of CH steps, d),
//   summed over the chunks on the host.

struct Params {
    batch: u32, len: u32, dim: u32, width: u32,
    has_state: u32, has_bias: u32, chunks: u32, _pad0: u32,
}

const CH: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;      // (D, W)
@group(0) @binding(2) var<storage, read> state: array<f32>;  // (B, W−1, D), read with has_state

fn widx(d: u32, k: u32) -> u32 { return d * p.width + k; }
fn sidx(b: u32, j: u32, d: u32) -> u32 { return (b * (p.width - 1u) + j) * p.dim + d; }
fn xidx(b: u32, t: u32, d: u32) -> u32 { return (b * p.len + t) * p.dim + d; }

#ifndef CONV1D_CAUSAL_BACKWARD
// x̂[b, s, d] for s = t − (W−1) + k, passed as s + W − 1 ≥ 0 (x is declared
// by the entry points that read it).
fn input(b: u32, s1: u32, d: u32) -> f32 {
    let off = p.width - 1u;
    if s1 >= off { return x[xidx(b, s1 - off, d)]; }
    if p.has_state != 0u { return state[sidx(b, s1, d)]; }
    return 0.0;
}
#endif

#ifdef CONV1D_CAUSAL
@group(0) @binding(3) var<storage, read> x: array<f32>;        // (B, L, D)
@group(0) @binding(4) var<storage, read> bias: array<f32>;     // (D), read with has_bias
@group(0) @binding(5) var<storage, read_write> y: array<f32>;  // (B, L, D)

@compute @workgroup_size(256)
fn conv1d_causal(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = p.batch * p.len * p.dim;
    for (var i = gid.x; i < n; i += nwg.x * 256u) {
        let d = i % p.dim;
        let t = (i / p.dim) % p.len;
        let b = i / (p.dim * p.len);
        var acc = 0.0;
        if p.has_bias != 0u { acc = bias[d]; }
        for (var k = 0u; k < p.width; k++) { acc += w[widx(d, k)] * input(b, t + k, d); }
        y[i] = acc;
    }
}
#endif

#ifdef CONV1D_CAUSAL_BACKWARD
@group(0) @binding(3) var<storage, read> dy: array<f32>;            // (B, L, D)
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;      // (B, L, D)
@group(0) @binding(5) var<storage, read_write> dstate: array<f32>;  // (B, W−1, D), written with has_state

@compute @workgroup_size(256)
fn conv1d_causal_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let off = p.width - 1u;
    let span = p.len + off;
    let n = p.batch * span * p.dim;
    for (var i = gid.x; i < n; i += nwg.x * 256u) {
        let d = i % p.dim;
        let s1 = (i / p.dim) % span;  // s + W − 1
        let b = i / (p.dim * span);
        // x̂ at s feeds y at t = s + W − 1 − k for every k with 0 ≤ t < L.
        var acc = 0.0;
        for (var k = 0u; k < p.width; k++) {
            let t1 = s1 + off - k;  // t + W − 1
            if t1 >= off && t1 - off < p.len { acc += w[widx(d, k)] * dy[xidx(b, t1 - off, d)]; }
        }
        if s1 >= off {
            dx[xidx(b, s1 - off, d)] = acc;
        } else if p.has_state != 0u {
            dstate[sidx(b, s1, d)] = acc;
        }
    }
}
#endif

#ifdef CONV1D_CAUSAL_WGRAD
@group(0) @binding(3) var<storage, read> x: array<f32>;              // (B, L, D)
@group(0) @binding(4) var<storage, read> dy: array<f32>;             // (B, L, D)
@group(0) @binding(5) var<storage, read_write> part: array<f32>;     // (B·K, D, W + 1): dw, then dbias


@compute @workgroup_size(64)
fn conv1d_causal_wgrad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let d = gid.x;
    let c = wid.y;
    let b = wid.z;
    if d >= p.dim { return; }
    let t0 = c * CH;
    let t1 = min(t0 + CH, p.len);
    let o = ((b * p.chunks + c) * p.dim + d) * (p.width + 1u);
    for (var k = 0u; k < p.width; k++) {
        var acc = 0.0;
        for (var t = t0; t < t1; t++) { acc += dy[xidx(b, t, d)] * input(b, t + k, d); }
        part[o + k] = acc;
    }
    var db = 0.0;
    for (var t = t0; t < t1; t++) { db += dy[xidx(b, t, d)]; }
    part[o + p.width] = db;
}
#endif
