// Chunked linear attention with a decay: the passes along time
// (shared/la_core.wgsl has the recurrence, the chunked form and the decay
// kinds; la_chunk.wgsl the per-chunk products).
//   la_cumulate  b_t within each chunk from log α (scalar decays; a vector
//                decay's are la_prescale's)
//   la_carry     per (b, h, k, v), walks the chunk maps of la_map: the state
//                entering each chunk (kept for the backward) and the final
//                state; BACKWARD walks them in reverse from dL/dS_T: the
//                gradient of each chunk's leaving state, and dS₀
//   la_dgate     the decay's gradient from dq and dk:
//   dL/db_t = q_t ⊙ dq_t − k_t ⊙ dk_t (+ S_T ⊙ dS_T summed over v at t = T)
//   dL/dlog α_s = Σ_{t ≥ s} dL/db_t
// (over the whole sequence: b_t − b_s only ever appears as a difference).
// la_recurrent runs the plain recurrence, one step at a time, for streaming;
// la_rec_grad its backward, as walks over the steps (no chunk states).

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
// d_v a multiple of 4 (VEC4): four values per invocation, 16-byte accesses.
#ifdef VEC4
alias E = vec4<f32>;
const PER: u32 = 4u;
#else
alias E = f32;
const PER: u32 = 1u;
#endif
@group(0) @binding(3) var<storage, read> start: array<E>;      // (B, H, dk, dv): h0 / dL/dS_T (FLAG_START)
@group(0) @binding(4) var<storage, read_write> sums: array<E>; // chunk maps in; entering states (forward) or leaving-state gradients out
@group(0) @binding(5) var<storage, read_write> fin: array<E>;  // (B, H, dk, dv): S_T / dS₀

// One invocation per PER (key, value) elements of head (b, h) = gid.y.
@compute @workgroup_size(64)
fn la_carry(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x * PER;
    if i >= p.dk * p.dv { return; }
    let k = i / p.dv;
    let v = i % p.dv;
    let bh = gid.y;
    let b = bh / p.heads;
    let h = bh % p.heads;
    var x = E(0.0);
    if has(FLAG_START) { x = start[(bh * p.dk * p.dv + i) / PER]; }
    for (var j = 0u; j < p.chunks; j++) {
#ifdef BACKWARD
        let c = p.chunks - 1u - j;
#else
        let c = j;
#endif
        let m = sums[state_at(bh, c, k, v) / PER];
        sums[state_at(bh, c, k, v) / PER] = x;
        x = exp(cum(b, h, chunk_last(c), k)) * x + m;
    }
    fin[(bh * p.dk * p.dv + i) / PER] = x;
}
#endif

#ifdef LA_DGATE
#ifdef VEC4
// A vector decay with d_k a multiple of 4: four keys per invocation, one
// 16-byte load or store per tensor and step.
@group(0) @binding(3) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> dq: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> dk: array<vec4<f32>>;
#else
@group(0) @binding(3) var<storage, read> q: array<f32>;         // key width
@group(0) @binding(4) var<storage, read> k: array<f32>;         // key width
@group(0) @binding(5) var<storage, read> dq: array<f32>;        // key width
@group(0) @binding(6) var<storage, read> dk: array<f32>;        // key width
#endif
@group(0) @binding(7) var<storage, read> last: array<f32>;      // (B, H, dk, dv): S_T
@group(0) @binding(8) var<storage, read> dlast: array<f32>;     // (B, H, dk, dv): dL/dS_T, read with FLAG_GRAD
#ifdef VEC4
@group(0) @binding(9) var<storage, read_write> dg: array<vec4<f32>>;
#else
@group(0) @binding(9) var<storage, read_write> dg: array<f32>;  // like log α
#endif

#ifdef VEC4
// One invocation per (b, h, keys 4w..4w+4).
@compute @workgroup_size(64)
fn la_dgate(@builtin(global_invocation_id) gid: vec3<u32>) {
    let w = gid.x;
    if 4u * w >= p.width { return; }
    let bh = gid.y;
    let b = bh / p.heads;
    let h = bh % p.heads;
    var acc = vec4<f32>(0.0);
    if has(FLAG_GRAD) {
        for (var j = 0u; j < 4u; j++) {
            var s = 0.0;
            for (var v = 0u; v < p.dv; v++) {
                let i = (bh * p.dk + 4u * w + j) * p.dv + v;
                s += last[i] * dlast[i];
            }
            acc[j] = s;
        }
    }
    for (var n = 0u; n < p.len; n++) {
        let i = kat(b, h, p.len - 1u - n, 4u * w) / 4u;
        acc += q[i] * dq[i] - k[i] * dk[i];
        dg[i] = acc;
    }
}
#else
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
#endif

#ifdef LA_RECURRENT
#define LA_STEPWISE
#endif
#ifdef LA_REC_GRAD
#define LA_STEPWISE
#endif

#ifdef LA_STEPWISE
@group(0) @binding(3) var<storage, read> q: array<f32>;            // key width
@group(0) @binding(4) var<storage, read> k: array<f32>;            // key width
@group(0) @binding(5) var<storage, read> v: array<f32>;            // value width
@group(0) @binding(6) var<storage, read> g: array<f32>;            // log α (DECAY_SCALAR/VECTOR)

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
#endif

#ifdef LA_RECURRENT
@group(0) @binding(7) var<storage, read_write> state: array<f32>;  // (B, H, dk, dv), updated in place
@group(0) @binding(8) var<storage, read_write> out: array<f32>;    // value width

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

#ifdef LA_REC_GRAD
@group(0) @binding(7) var<storage, read> dout: array<f32>;          // value width
@group(0) @binding(8) var<storage, read> start: array<f32>;         // (B, H, dk, dv): h0 / dL/dS_T (FLAG_START)
@group(0) @binding(9) var<storage, read_write> state: array<f32>;   // (B, H, dk, dv): the walk's S_t or dL/dS_t
@group(0) @binding(10) var<storage, read_write> grad: array<f32>;   // dq, dk (key width) or dv (COLUMNS)

// The recurrent form's backward as three walks over the steps, each
// invocation owning one row (key index) or column (COLUMNS, value index) of
// its head's state so that its sum needs no other invocation:
//   forward, rows:              S_t = α_t ⊙ S_{t−1} + k_t v_tᵀ,  dq_t = S_t do_t
//   BACKWARD, rows:             D_t = q_t do_tᵀ + α_{t+1} ⊙ D_{t+1},  dk_t = D_t v_t
//   BACKWARD + COLUMNS:         the same D_t,  dv_t = D_tᵀ k_t
// with S from h0 and D from dL/dS_T (or zeros). After a reverse walk the
// state holds α_1 ⊙ D_1 = dL/dS₀. The decay's gradient follows from dq and
// dk (la_dgate).
@compute @workgroup_size(64)
fn la_rec_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let bh = gid.y;
    let b = bh / p.heads;
    let h = bh % p.heads;
#ifdef COLUMNS
    if i >= p.dv { return; }
    let n = p.dk;
#else
    if i >= p.dk { return; }
    let n = p.dv;
#endif
    for (var j = 0u; j < n; j++) {
#ifdef COLUMNS
        let e = (bh * p.dk + j) * p.dv + i;
#else
        let e = (bh * p.dk + i) * p.dv + j;
#endif
        var x = 0.0;
        if has(FLAG_START) { x = start[e]; }
        state[e] = x;
    }
    for (var s = 0u; s < p.len; s++) {
#ifdef BACKWARD
        let t = p.len - 1u - s;
#else
        let t = s;
#endif
        var acc = 0.0;
#ifdef COLUMNS
        let dt = dout[vat(b, h, t, i)];
        for (var kk = 0u; kk < p.dk; kk++) {
            let e = (bh * p.dk + kk) * p.dv + i;
            let d = state[e] + q[kat(b, h, t, kk)] * dt;
            acc += d * k[kat(b, h, t, kk)];
            state[e] = exp(log_decay(b, h, t, kk)) * d;
        }
        grad[vat(b, h, t, i)] = acc;
#else
        let a = exp(log_decay(b, h, t, i));
        let row = (bh * p.dk + i) * p.dv;
#ifdef BACKWARD
        let qt = q[kat(b, h, t, i)];
        for (var vi = 0u; vi < p.dv; vi++) {
            let d = state[row + vi] + qt * dout[vat(b, h, t, vi)];
            acc += d * v[vat(b, h, t, vi)];
            state[row + vi] = a * d;
        }
#else
        let kt = k[kat(b, h, t, i)];
        for (var vi = 0u; vi < p.dv; vi++) {
            let x = a * state[row + vi] + kt * v[vat(b, h, t, vi)];
            state[row + vi] = x;
            acc += x * dout[vat(b, h, t, vi)];
        }
#endif
        grad[kat(b, h, t, i)] = acc;
#endif
    }
}
#endif
