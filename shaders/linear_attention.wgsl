// Chunked linear attention with a decay: the passes along time
// (shared/la_core.wgsl has the recurrence, the chunked form and the decay
// kinds; la_chunk.wgsl the per-chunk products).
//   la_cumulate  b_t within each chunk from log α (scalar/vector decays)
//   la_carry     per (b, h, k, v), walks the chunk maps of la_map: the state
//                entering each chunk (kept for the backward) and the final
//                state; BACKWARD walks them in reverse from dL/dS_T: the
//                gradient of each chunk's leaving state, and dS₀
//   la_dgate     the decay's gradient from dq and dk:
//   dL/db_t = q_t ⊙ dq_t − k_t ⊙ dk_t (+ S_T ⊙ dS_T summed over v at t = T)
//   dL/dlog α_s = Σ_{t ≥ s} dL/db_t
// (over the whole sequence: b_t − b_s only ever appears as a difference).
// la_recurrent runs the plain recurrence, one step at a time, for streaming.

#import la_core

#ifdef LA_CUMULATE
@group(0) @binding(2) var<storage, read_write> gc: array<f32>;  // (B, H, T, W)
@group(0) @binding(3) var<storage, read> g: array<f32>;         // log α, as the decay kind says

// One invocation per (b, h, chunk, column w).
@compute @workgroup_size(64)
fn la_cumulate(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let w = i % p.width;
    let c = i / p.width;
    if c >= p.chunks { return; }
    let bh = gid.y;
    let b = bh / p.heads;
    let h = bh % p.heads;
    var acc = 0.0;
    for (var t = c * CH; t <= chunk_last(c); t++) {
        var x: f32;
        if p.width == 1u { x = g[gat(b, h, t)]; } else { x = g[kat(b, h, t, w)]; }
        acc += x;
        gc[(bh * p.len + t) * p.width + w] = acc;
    }
}
#endif

#ifdef LA_CARRY
@group(0) @binding(3) var<storage, read> start: array<f32>;      // (B, H, dk, dv): h0 / dL/dS_T (FLAG_START)
@group(0) @binding(4) var<storage, read_write> sums: array<f32>; // chunk maps in; entering states (forward) or leaving-state gradients out
@group(0) @binding(5) var<storage, read_write> fin: array<f32>;  // (B, H, dk, dv): S_T / dS₀

// One invocation per (key, value) element of head (b, h) = gid.y.
@compute @workgroup_size(64)
fn la_carry(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= p.dk * p.dv { return; }
    let k = i / p.dv;
    let v = i % p.dv;
    let bh = gid.y;
    let b = bh / p.heads;
    let h = bh % p.heads;
    var x = 0.0;
    if has(FLAG_START) { x = start[bh * p.dk * p.dv + i]; }
    for (var j = 0u; j < p.chunks; j++) {
#ifdef BACKWARD
        let c = p.chunks - 1u - j;
#else
        let c = j;
#endif
        let m = sums[state_at(bh, c, k, v)];
        sums[state_at(bh, c, k, v)] = x;
        x = exp(cum(b, h, chunk_last(c), k)) * x + m;
    }
    fin[bh * p.dk * p.dv + i] = x;
}
#endif

#ifdef LA_DGATE
@group(0) @binding(3) var<storage, read> q: array<f32>;         // key width
@group(0) @binding(4) var<storage, read> k: array<f32>;         // key width
@group(0) @binding(5) var<storage, read> dq: array<f32>;        // key width
@group(0) @binding(6) var<storage, read> dk: array<f32>;        // key width
@group(0) @binding(7) var<storage, read> last: array<f32>;      // (B, H, dk, dv): S_T
@group(0) @binding(8) var<storage, read> dlast: array<f32>;     // (B, H, dk, dv): dL/dS_T, read with FLAG_GRAD
@group(0) @binding(9) var<storage, read_write> dg: array<f32>;  // like log α

// One invocation per (b, h, column w): W = 1 sums over every key index.
@compute @workgroup_size(64)
fn la_dgate(@builtin(global_invocation_id) gid: vec3<u32>) {
    let w = gid.x;
    if w >= p.width { return; }
    let bh = gid.y;
    let b = bh / p.heads;
    let h = bh % p.heads;
    var k0 = w;
    var k1 = w + 1u;
    if p.width == 1u { k0 = 0u; k1 = p.dk; }
    var acc = 0.0;
    if has(FLAG_GRAD) {
        for (var kk = k0; kk < k1; kk++) {
            for (var v = 0u; v < p.dv; v++) {
                let i = (bh * p.dk + kk) * p.dv + v;
                acc += last[i] * dlast[i];
            }
        }
    }
    for (var j = 0u; j < p.len; j++) {
        let t = p.len - 1u - j;
        for (var kk = k0; kk < k1; kk++) {
            let i = kat(b, h, t, kk);
            acc += q[i] * dq[i] - k[i] * dk[i];
        }
        if p.width == 1u { dg[gat(b, h, t)] = acc; } else { dg[kat(b, h, t, w)] = acc; }
    }
}
#endif

#ifdef LA_RECURRENT
@group(0) @binding(3) var<storage, read> q: array<f32>;            // key width
@group(0) @binding(4) var<storage, read> k: array<f32>;            // key width
@group(0) @binding(5) var<storage, read> v: array<f32>;            // value width
@group(0) @binding(6) var<storage, read> g: array<f32>;            // log α (DECAY_SCALAR/VECTOR)
@group(0) @binding(7) var<storage, read_write> state: array<f32>;  // (B, H, dk, dv), updated in place
@group(0) @binding(8) var<storage, read_write> out: array<f32>;    // value width

fn log_decay(b: u32, h: u32, t: u32, kk: u32) -> f32 {
    var x = 0.0;
#ifdef DECAY_HEAD
    x = lg[h];
#endif
#ifdef DECAY_SCALAR
    x = g[gat(b, h, t)];
#endif
#ifdef DECAY_VECTOR
    x = g[kat(b, h, t, kk)];
#endif
    return x;
}

// One invocation per (value column, b·H + h), walking the steps in order.
@compute @workgroup_size(64)
fn la_recurrent(@builtin(global_invocation_id) gid: vec3<u32>) {
    let vi = gid.x;
    if vi >= p.dv { return; }
    let bh = gid.y;
    let b = bh / p.heads;
    let h = bh % p.heads;
    for (var t = 0u; t < p.len; t++) {
        let vt = v[vat(b, h, t, vi)];
        var o = 0.0;
        for (var kk = 0u; kk < p.dk; kk++) {
            let i = (bh * p.dk + kk) * p.dv + vi;
            let s = exp(log_decay(b, h, t, kk)) * state[i] + k[kat(b, h, t, kk)] * vt;
            state[i] = s;
            o += q[kat(b, h, t, kk)] * s;
        }
        out[vat(b, h, t, vi)] = o;
    }
}
#endif
