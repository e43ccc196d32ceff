// The chunk maps and a vector decay's prescaled operands
// (shared/la_chunk_core.wgsl):
//   la_map     U = Σ_s (k_s ⊙ e^{b_C − b_s}) v_sᵀ (d_k × d_v); BACKWARD:
//              Σ_t (q_t ⊙ e^{b_t}) do_tᵀ, the chunk's share of dS₀.
//   la_prescale  a vector decay's b_t (la_cumulate's work), q̂ and k̂,
//              relative to their 8-step block, and q̃ and k̃, relative to
//              their chunk.

#import la_chunk_core

#ifdef LA_MAP
// With VEC4 (d_k and d_v multiples of 4) the operands are read as vec4s: a
// row of eight is two 16-byte loads.
#ifdef VEC4
alias E = vec4<f32>;
#else
alias E = f32;
#endif
@group(0) @binding(3) var<storage, read> xs: array<E>;           // key width: k / q (BACKWARD)
@group(0) @binding(4) var<storage, read> zs: array<E>;           // value width: v / dout
@group(0) @binding(5) var<storage, read_write> sums: array<f32>; // (B, H, K, d_k, d_v)

fn xs1(i: u32) -> f32 {
#ifdef VEC4
    return xs[i / 4u][i % 4u];
#else
    return xs[i];
#endif
}
fn zs1(i: u32) -> f32 {
#ifdef VEC4
    return zs[i / 4u][i % 4u];
#else
    return zs[i];
#endif
}
fn x_at(ch: Chunk, t: u32, k: u32) -> f32 {
    if t < p.len && k < p.dk { return xs1(kat(ch.b, ch.h, t, k)); }
    return 0.0;
}
fn z_at(ch: Chunk, t: u32, v: u32) -> f32 {
    if t < p.len && v < p.dv { return zs1(vat(ch.b, ch.h, t, v)); }
    return 0.0;
}
fn x_keys(ch: Chunk, t: u32, k: u32) -> V8 {
#ifdef VEC4
    if t < p.len && k + 8u <= p.dk {
        let i = kat(ch.b, ch.h, t, k) / 4u;
        return V8(xs[i], xs[i + 1u]);
    }
#endif
    return V8(vec4<f32>(x_at(ch, t, k), x_at(ch, t, k + 1u), x_at(ch, t, k + 2u), x_at(ch, t, k + 3u)),
              vec4<f32>(x_at(ch, t, k + 4u), x_at(ch, t, k + 5u), x_at(ch, t, k + 6u), x_at(ch, t, k + 7u)));
}
fn z_values(ch: Chunk, t: u32, v: u32) -> V8 {
#ifdef VEC4
    if t < p.len && v + 8u <= p.dv {
        let i = vat(ch.b, ch.h, t, v) / 4u;
        return V8(zs[i], zs[i + 1u]);
    }
#endif
    return V8(vec4<f32>(z_at(ch, t, v), z_at(ch, t, v + 1u), z_at(ch, t, v + 2u), z_at(ch, t, v + 3u)),
              vec4<f32>(z_at(ch, t, v + 4u), z_at(ch, t, v + 5u), z_at(ch, t, v + 6u), z_at(ch, t, v + 7u)));
}

// The weight of step t in the map of keys k0..: e^{b_C − b_t}, or e^{b_t}
// for BACKWARD; 1 without a decay and for a vector decay, whose xs is q̃ /
// k̃ (la_prescale), already weighted.
fn map_weight(ch: Chunk, t: u32, k0: u32, blast: V8) -> V8 {
    var w = v8_splat(1.0);
#ifdef DECAY_HEAD
    w = map_exp(ch, t, k0, blast);
#endif
#ifdef DECAY_SCALAR
    w = map_exp(ch, t, k0, blast);
#endif
    return w;
}

fn map_exp(ch: Chunk, t: u32, k0: u32, blast: V8) -> V8 {
    let bt = cum_keys(ch.b, ch.h, t, k0);
#ifdef BACKWARD
    return v8_exp(bt);
#else
    return v8_exp(v8_sub(blast, bt));
#endif
}

// One invocation per 8x8 block (keys k0.., values v0..) of the map. With
// SUBGROUPS and every lane on the same key block (a whole number of value
// blocks per 8 lanes), lane l loads the keys of step t + l and each step
// takes them by shuffle.
@compute @workgroup_size(8)
fn la_map(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>
#ifdef SUBGROUPS
, @builtin(subgroup_invocation_id) sid: u32
#endif
) {
    let vblocks = (p.dv + 7u) / 8u;
    if gid.x >= ((p.dk + 7u) / 8u) * vblocks { return; }
    let k0 = (gid.x / vblocks) * 8u;
    let v0 = (gid.x % vblocks) * 8u;
    let ch = chunk_of(wid.y, wid.z);
    let blast = cum_keys(ch.b, ch.h, ch.last, k0);
    var acc = Blk();
    var t = ch.t0;
#ifdef SUBGROUPS
    if vblocks % 8u == 0u {
        for (; t + 8u <= ch.last + 1u; t += 8u) {
            let mine = x_keys(ch, t + min(sid, 7u), k0);
            for (var kk = 0u; kk < 8u; kk++) {
                let x = V8(subgroupShuffle(mine.lo, kk), subgroupShuffle(mine.hi, kk));
                acc = upd(acc, v8_mul(x, map_weight(ch, t + kk, k0, blast)), z_values(ch, t + kk, v0));
            }
        }
    }
#endif
    for (; t <= ch.last; t++) {
        acc = upd(acc, v8_mul(x_keys(ch, t, k0), map_weight(ch, t, k0, blast)), z_values(ch, t, v0));
    }
    for (var i = 0u; i < 8u; i++) {
        let row = blk_row(acc, i);
        let k = k0 + i;
        for (var j = 0u; j < 8u; j++) {
            let v = v0 + j;
            if k < p.dk && v < p.dv {
                sums[state_at(ch.bh, ch.c, k, v)] = v8_get(row, j);
            }
        }
    }
}
#endif


#ifdef LA_PRESCALE
#ifdef VEC4
// d_k a multiple of 4: four keys per invocation, 16-byte loads and stores.
@group(0) @binding(3) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> qh: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> kh: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> qc: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> kc: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read> g: array<vec4<f32>>;
#else
@group(0) @binding(3) var<storage, read> q: array<f32>;            // key width
@group(0) @binding(4) var<storage, read> k: array<f32>;            // key width
@group(0) @binding(5) var<storage, read_write> qh: array<f32>;     // q̂: q_t ⊙ e^{b_t − b_first}
@group(0) @binding(6) var<storage, read_write> kh: array<f32>;     // k̂: k_t ⊙ e^{b_last − b_t}
@group(0) @binding(7) var<storage, read_write> qc: array<f32>;     // q̃: q_t ⊙ e^{b_t} (relative to the chunk's start)
@group(0) @binding(8) var<storage, read_write> kc: array<f32>;     // k̃: k_t ⊙ e^{b_C − b_t} (to the chunk's end)
@group(0) @binding(9) var<storage, read> g: array<f32>;            // log α, key width
#endif

// A vector decay's cumulative log-decays b_t within each chunk (la_cumulate's
// work, written to gc), then the operands relative to their block of 8
// steps (the first step of the block for q, the last within the chunk for
// k) and to their chunk (its start for q, its end for k, which la_map and
// the state terms of la_apply use); every factor ≤ 1, two exps per element
// (the chunk-relative ones are block-relative times a factor per block).
// One invocation per (key, chunk, b·H + h) walks the chunk's steps.
#ifdef VEC4
// Keys 4w..4w+4 of one chunk: b from g in registers (gc is only written),
// each block's b_first and b_last by running sums.
@compute @workgroup_size(64)
fn la_prescale(@builtin(global_invocation_id) gid: vec3<u32>) {
    let w = gid.x;
    if 4u * w >= p.dk { return; }
    let ch = chunk_of(gid.y, gid.z);
    let z = vec4<f32>(0.0);
    var acc = z;
    for (var t = ch.t0; t <= ch.last; t++) {
        acc += g[kat(ch.b, ch.h, t, 4u * w) / 4u];
        let o = (ch.bh * p.len + t) * p.dk + 4u * w;
        gc[o] = acc.x; gc[o + 1u] = acc.y; gc[o + 2u] = acc.z; gc[o + 3u] = acc.w;
    }
    let bc = acc;
    var before = z;
    for (var first = ch.t0; first <= ch.last; first += 8u) {
        let last = min(first + 7u, ch.last);
        var bl = before;
        for (var t = first; t <= last; t++) { bl += g[kat(ch.b, ch.h, t, 4u * w) / 4u]; }
        let bf = before + g[kat(ch.b, ch.h, first, 4u * w) / 4u];
        let to_start = exp(min(bf, z));
        let to_end = exp(min(bc - bl, z));
        var bt = before;
        for (var t = first; t <= last; t++) {
            let i = kat(ch.b, ch.h, t, 4u * w) / 4u;
            bt += g[i];
            let a = q[i] * exp(min(bt - bf, z));
            let c = k[i] * exp(min(bl - bt, z));
            qh[i] = a;
            kh[i] = c;
            qc[i] = a * to_start;
            kc[i] = c * to_end;
        }
        before = bl;
    }
}
#else
@compute @workgroup_size(64)
fn la_prescale(@builtin(global_invocation_id) gid: vec3<u32>) {
    let kk = gid.x;
    if kk >= p.dk { return; }
    let ch = chunk_of(gid.y, gid.z);
    var acc = 0.0;
    for (var t = ch.t0; t <= ch.last; t++) {
        acc += g[kat(ch.b, ch.h, t, kk)];
        gc[(ch.bh * p.len + t) * p.dk + kk] = acc;
    }
    let bc = acc;
    for (var first = ch.t0; first <= ch.last; first += 8u) {
        let last = min(first + 7u, ch.last);
        let bf = cum(ch.b, ch.h, first, kk);
        let bl = cum(ch.b, ch.h, last, kk);
        let to_start = exp(min(bf, 0.0));
        let to_end = exp(min(bc - bl, 0.0));
        for (var t = first; t <= last; t++) {
            let bt = cum(ch.b, ch.h, t, kk);
            let i = kat(ch.b, ch.h, t, kk);
            let a = q[i] * exp(min(bt - bf, 0.0));
            let c = k[i] * exp(min(bl - bt, 0.0));
            qh[i] = a;
            kh[i] = c;
            qc[i] = a * to_start;
            kc[i] = c * to_end;
        }
    }
}
#endif
#endif
