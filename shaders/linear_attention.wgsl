// Chunked linear attention with a decay (shared/la_core.wgsl has the
// recurrence, the chunked form and the decay kinds). Forward:
//   la_cumulate      b_t within each chunk from log α (scalar/vector decays)
//   la_chunk_map     per chunk, U = Σ_s (k_s ⊙ e^{b_C − b_s}) v_sᵀ
//   la_carry         per (b, h, k, v), walks the chunks: the state entering
//                    each (kept for the backward) and the final state
//   la_intra_scores  per chunk, o_t from its entering state and its steps
// Backward (BACKWARD defined): la_chunk_map gives Σ_t (q_t ⊙ e^{b_t}) do_tᵀ,
// la_carry walks the chunks in reverse from dL/dS_T (the gradient of each
// chunk's leaving state, and dS₀), la_intra_scores gives dv, la_intra_values
// gives dq (forward direction) and dk (BACKWARD), and la_dgate turns them
// into the decay's gradient:
//   dL/db_t = q_t ⊙ dq_t − k_t ⊙ dk_t (+ S_T ⊙ dS_T summed over v at t = T)
//   dL/dlog α_s = Σ_{t ≥ s} dL/db_t
// (over the whole sequence: b_t − b_s only ever appears as a difference).
// la_recurrent runs the plain recurrence, one step at a time, for streaming.

// VB value columns per la_intra_scores workgroup, KB key columns per
// la_intra_values workgroup, KT key (or value) columns and ST steps staged
// in workgroup memory at a time.
#define VB 64u
#define KB 64u
#define KT 8u
#define ST 16u
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

#ifdef LA_CHUNK_MAP
@group(0) @binding(3) var<storage, read> xs: array<f32>;         // key width: k (forward) / q
@group(0) @binding(4) var<storage, read> zs: array<f32>;         // value width: v / dout
@group(0) @binding(5) var<storage, read_write> sums: array<f32>; // (B, H, K, dk, dv)
var<workgroup> tz: array<array<f32, VB>, ST>;

// Workgroup (key block · value blocks + value block, chunk, b·H + h); one
// invocation per key index.
@compute @workgroup_size(64)
fn la_chunk_map(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let vblocks = (p.dv + VB - 1u) / VB;
    let k = (wid.x / vblocks) * 64u + lid;
    let v0 = (wid.x % vblocks) * VB;
    let c = wid.y;
    let bh = wid.z;
    let b = bh / p.heads;
    let h = bh % p.heads;
    let t0 = c * CH;
    let last = chunk_last(c);
    let count = last + 1u - t0;
    var acc: array<f32, VB>;
    var blast = 0.0;
    if k < p.dk { blast = cum(b, h, last, k); }
    for (var s0 = 0u; s0 < count; s0 += ST) {
        for (var e = lid; e < ST * VB; e += 64u) {
            let ss = e / VB;
            let v = v0 + e % VB;
            var z = 0.0;
            if s0 + ss < count && v < p.dv { z = zs[vat(b, h, t0 + s0 + ss, v)]; }
            tz[ss][e % VB] = z;
        }
        workgroupBarrier();
        if k < p.dk {
            for (var ss = 0u; ss < min(ST, count - s0); ss++) {
                let t = t0 + s0 + ss;
#ifdef BACKWARD
                let x = xs[kat(b, h, t, k)] * exp(cum(b, h, t, k));
#else
                let x = xs[kat(b, h, t, k)] * exp(blast - cum(b, h, t, k));
#endif
                for (var vv = 0u; vv < VB; vv++) { acc[vv] += x * tz[ss][vv]; }
            }
        }
        workgroupBarrier();
    }
    if k < p.dk {
        for (var vv = 0u; vv < min(VB, p.dv - v0); vv++) { sums[state_at(bh, c, k, v0 + vv)] = acc[vv]; }
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

#ifdef LA_INTRA_SCORES
@group(0) @binding(3) var<storage, read> xs: array<f32>;          // key width, rows: q (forward) / k
@group(0) @binding(4) var<storage, read> ys: array<f32>;          // key width, paired steps: k / q
@group(0) @binding(5) var<storage, read> zs: array<f32>;          // value width, paired steps: v / dout
@group(0) @binding(6) var<storage, read> sums: array<f32>;        // (B, H, K, dk, dv): entering states / leaving-state gradients
@group(0) @binding(7) var<storage, read_write> out: array<f32>;   // value width: o / dv
var<workgroup> ty: array<array<f32, KT>, CH>;
var<workgroup> tg: array<array<f32, KT>, CH>;
var<workgroup> tm: array<array<f32, VB>, KT>;
var<workgroup> tz: array<array<f32, VB>, ST>;

// Workgroup (value block, chunk, b·H + h); one invocation per step r of the
// chunk: out_r = Σ_k x_rk w_rk M[k] + Σ_{s paired} (Σ_k x_rk y_sk e_rsk) z_s,
// with the edge weights w and pair weights e of la_core.
@compute @workgroup_size(CH)
fn la_intra_scores(@builtin(local_invocation_index) r: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let v0 = wid.x * VB;
    let c = wid.y;
    let bh = wid.z;
    let b = bh / p.heads;
    let h = bh % p.heads;
    let t0 = c * CH;
    let last = chunk_last(c);
    let count = last + 1u - t0;
    let live = r < count;
    let tr = t0 + min(r, count - 1u);
    var sc: array<f32, CH>;
    var acc: array<f32, VB>;
    for (var k0 = 0u; k0 < p.dk; k0 += KT) {
        for (var e = r; e < CH * KT; e += CH) {
            let s = e / KT;
            let k = k0 + e % KT;
            var y = 0.0;
            var gs = 0.0;
            if s < count && k < p.dk { y = ys[kat(b, h, t0 + s, k)]; gs = cum(b, h, t0 + s, k); }
            ty[s][e % KT] = y;
            tg[s][e % KT] = gs;
        }
        for (var e = r; e < KT * VB; e += CH) {
            let k = k0 + e / VB;
            let v = v0 + e % VB;
            var m = 0.0;
            if k < p.dk && v < p.dv { m = sums[state_at(bh, c, k, v)]; }
            tm[e / VB][e % VB] = m;
        }
        workgroupBarrier();
        if live {
            for (var kk = 0u; kk < min(KT, p.dk - k0); kk++) {
                let k = k0 + kk;
                let x = xs[kat(b, h, tr, k)];
                let br = cum(b, h, tr, k);
                let xe = x * edge_weight(br, cum(b, h, last, k));
                for (var vv = 0u; vv < VB; vv++) { acc[vv] += xe * tm[kk][vv]; }
                for (var s = 0u; s < count; s++) {
                    if pairs(r, s) {
#ifdef DECAY_VECTOR
                        sc[s] += x * ty[s][kk] * pair_weight(br, tg[s][kk]);
#else
                        sc[s] += x * ty[s][kk];
#endif
                    }
                }
            }
        }
        workgroupBarrier();
    }
#ifndef DECAY_VECTOR
    let br = cum(b, h, tr, 0u);
    for (var s = 0u; s < count; s++) { sc[s] *= pair_weight(br, cum(b, h, t0 + s, 0u)); }
#endif
    for (var s0 = 0u; s0 < count; s0 += ST) {
        for (var e = r; e < ST * VB; e += CH) {
            let s = s0 + e / VB;
            let v = v0 + e % VB;
            var z = 0.0;
            if s < count && v < p.dv { z = zs[vat(b, h, t0 + s, v)]; }
            tz[e / VB][e % VB] = z;
        }
        workgroupBarrier();
        if live {
            for (var ss = 0u; ss < min(ST, count - s0); ss++) {
                let w = select(0.0, sc[s0 + ss], pairs(r, s0 + ss));
                for (var vv = 0u; vv < VB; vv++) { acc[vv] += w * tz[ss][vv]; }
            }
        }
        workgroupBarrier();
    }
    if live {
        for (var vv = 0u; vv < min(VB, p.dv - v0); vv++) { out[vat(b, h, tr, v0 + vv)] = acc[vv]; }
    }
}
#endif

#ifdef LA_INTRA_VALUES
@group(0) @binding(3) var<storage, read> xs: array<f32>;          // value width, rows: dout (dq) / v (dk, BACKWARD)
@group(0) @binding(4) var<storage, read> ys: array<f32>;          // value width, paired steps: v / dout
@group(0) @binding(5) var<storage, read> zs: array<f32>;          // key width, paired steps: k / q
@group(0) @binding(6) var<storage, read> sums: array<f32>;        // (B, H, K, dk, dv): entering states / leaving-state gradients
@group(0) @binding(7) var<storage, read_write> out: array<f32>;   // key width: dq / dk
var<workgroup> ty: array<array<f32, KT>, CH>;
var<workgroup> tm: array<array<f32, KT>, KB>;
var<workgroup> tz: array<array<f32, KB>, ST>;
var<workgroup> tg: array<array<f32, KB>, ST>;

// Workgroup (key block, chunk, b·H + h); one invocation per step r:
// out_rk = w_rk Σ_v M[k, v] x_rv + Σ_{s paired} (x_r · y_s) e_rsk z_sk.
@compute @workgroup_size(CH)
fn la_intra_values(@builtin(local_invocation_index) r: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let k0 = wid.x * KB;
    let c = wid.y;
    let bh = wid.z;
    let b = bh / p.heads;
    let h = bh % p.heads;
    let t0 = c * CH;
    let last = chunk_last(c);
    let count = last + 1u - t0;
    let live = r < count;
    let tr = t0 + min(r, count - 1u);
    let kn = min(KB, p.dk - k0);
    var sc: array<f32, CH>;
    var acc: array<f32, KB>;
    for (var v0 = 0u; v0 < p.dv; v0 += KT) {
        for (var e = r; e < CH * KT; e += CH) {
            let s = e / KT;
            let v = v0 + e % KT;
            var y = 0.0;
            if s < count && v < p.dv { y = ys[vat(b, h, t0 + s, v)]; }
            ty[s][e % KT] = y;
        }
        for (var e = r; e < KB * KT; e += CH) {
            let kk = e / KT;
            let v = v0 + e % KT;
            var m = 0.0;
            if kk < kn && v < p.dv { m = sums[state_at(bh, c, k0 + kk, v)]; }
            tm[kk][e % KT] = m;
        }
        workgroupBarrier();
        if live {
            for (var vv = 0u; vv < min(KT, p.dv - v0); vv++) {
                let x = xs[vat(b, h, tr, v0 + vv)];
                for (var s = 0u; s < count; s++) {
                    if pairs(r, s) { sc[s] += x * ty[s][vv]; }
                }
                for (var kk = 0u; kk < KB; kk++) { acc[kk] += x * tm[kk][vv]; }
            }
        }
        workgroupBarrier();
    }
    var br: array<f32, KB>;
    for (var kk = 0u; kk < kn; kk++) {
        br[kk] = cum(b, h, tr, k0 + kk);
        acc[kk] *= edge_weight(br[kk], cum(b, h, last, k0 + kk));
    }
#ifndef DECAY_VECTOR
    for (var s = 0u; s < count; s++) { sc[s] *= pair_weight(br[0], cum(b, h, t0 + s, 0u)); }
#endif
    for (var s0 = 0u; s0 < count; s0 += ST) {
        for (var e = r; e < ST * KB; e += CH) {
            let s = s0 + e / KB;
            let kk = e % KB;
            var z = 0.0;
            var gs = 0.0;
            if s < count && kk < kn { z = zs[kat(b, h, t0 + s, k0 + kk)]; gs = cum(b, h, t0 + s, k0 + kk); }
            tz[e / KB][kk] = z;
            tg[e / KB][kk] = gs;
        }
        workgroupBarrier();
        if live {
            for (var ss = 0u; ss < min(ST, count - s0); ss++) {
                let w = select(0.0, sc[s0 + ss], pairs(r, s0 + ss));
#ifdef DECAY_VECTOR
                if w != 0.0 {
                    for (var kk = 0u; kk < kn; kk++) { acc[kk] += w * tz[ss][kk] * pair_weight(br[kk], tg[ss][kk]); }
                }
#else
                for (var kk = 0u; kk < KB; kk++) { acc[kk] += w * tz[ss][kk]; }
#endif
            }
        }
        workgroupBarrier();
    }
    if live {
        for (var kk = 0u; kk < kn; kk++) { out[kat(b, h, tr, k0 + kk)] = acc[kk]; }
    }
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
