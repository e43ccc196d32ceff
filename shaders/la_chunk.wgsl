// The chunked form's products (shared/la_core.wgsl has the recurrence and
// the chunked form), each invocation one 8x8 register block
// (shared/la_block.wgsl) of one chunk of one head: workgroup (blocks / 8,
// chunk, b·H + h). CH is a multiple of 8.
//   la_map     U = Σ_s (k_s ⊙ e^{b_C − b_s}) v_sᵀ (d_k × d_v); BACKWARD:
//              Σ_t (q_t ⊙ e^{b_t}) do_tᵀ, the chunk's share of dS₀.
//   la_scores  the chunk's causal scores (CH × CH, lower triangle):
//              A_ts = Σ_k q_tk k_sk e^{b_tk − b_sk}; BACKWARD: P_ts = do_t · v_s
//              (times e^{b_t − b_s} for scalar decays; a vector decay is
//              applied where P is used).
//   la_prescale  a vector decay's b_t (la_cumulate's work), q̂ and k̂,
//              relative to their 8-step block, and q̃ and k̃, relative to
//              their chunk.
//   la_apply   out_r = Σ_s M_rs z_s + edge-weighted X_r · state, with
//              M = A, z = v, X = q: the output (rows: s ≤ r); BACKWARD
//              (columns: s ≥ r, M transposed): M = A, z = dout, X = k: dv.
//              With GRADQK: M = P, z = k, X = dout: dq; BACKWARD: M = P,
//              z = q, X = v: dk.
// A vector decay inside a product is factored around a reference step
// between the paired ones (the block's first row, or its last for
// BACKWARD), so both factors are ≤ 1; in the 8x8 diagonal block, whose
// pairs straddle any reference, e^{b_t − b_s} is a running product of the
// per-step decays instead.

#import la_core
#import la_block

fn clamp_t(t: u32) -> u32 { return min(t, p.len - 1u); }
// b at step t (clamped into the sequence) and key index k (clamped to d_k).
fn cumc(b: u32, h: u32, t: u32, k: u32) -> f32 { return cum(b, h, clamp_t(t), min(k, p.dk - 1u)); }
// b of one step at keys k..k+8.
fn cum_keys(b: u32, h: u32, t: u32, k: u32) -> V8 {
    return V8(vec4<f32>(cumc(b, h, t, k), cumc(b, h, t, k + 1u), cumc(b, h, t, k + 2u), cumc(b, h, t, k + 3u)),
              vec4<f32>(cumc(b, h, t, k + 4u), cumc(b, h, t, k + 5u), cumc(b, h, t, k + 6u), cumc(b, h, t, k + 7u)));
}
// b of steps t..t+8 at key k.
fn cum_steps(b: u32, h: u32, t: u32, k: u32) -> V8 {
    return V8(vec4<f32>(cumc(b, h, t, k), cumc(b, h, t + 1u, k), cumc(b, h, t + 2u, k), cumc(b, h, t + 3u, k)),
              vec4<f32>(cumc(b, h, t + 4u, k), cumc(b, h, t + 5u, k), cumc(b, h, t + 6u, k), cumc(b, h, t + 7u, k)));
}

#ifdef SUBGROUPS
// Lane `lane`'s v.
fn shuffled(v: V8, lane: u32) -> V8 { return V8(subgroupShuffle(v.lo, lane), subgroupShuffle(v.hi, lane)); }
#endif

// Where chunk c of head bh starts and how many steps it has.
struct Chunk { b: u32, h: u32, bh: u32, c: u32, t0: u32, count: u32, last: u32 }

fn chunk_of(c: u32, bh: u32) -> Chunk {
    let t0 = c * CH;
    let last = chunk_last(c);
    return Chunk(bh / p.heads, bh % p.heads, bh, c, t0, last + 1u - t0, last);
}

#ifdef LA_MAP
@group(0) @binding(3) var<storage, read> xs: array<f32>;         // key width: k / q (BACKWARD)
@group(0) @binding(4) var<storage, read> zs: array<f32>;         // value width: v / dout
@group(0) @binding(5) var<storage, read_write> sums: array<f32>; // (B, H, K, d_k, d_v)

fn x_at(ch: Chunk, t: u32, k: u32) -> f32 {
    if t < p.len && k < p.dk { return xs[kat(ch.b, ch.h, t, k)]; }
    return 0.0;
}
fn z_at(ch: Chunk, t: u32, v: u32) -> f32 {
    if t < p.len && v < p.dv { return zs[vat(ch.b, ch.h, t, v)]; }
    return 0.0;
}
fn x_keys(ch: Chunk, t: u32, k: u32) -> V8 {
    return V8(vec4<f32>(x_at(ch, t, k), x_at(ch, t, k + 1u), x_at(ch, t, k + 2u), x_at(ch, t, k + 3u)),
              vec4<f32>(x_at(ch, t, k + 4u), x_at(ch, t, k + 5u), x_at(ch, t, k + 6u), x_at(ch, t, k + 7u)));
}
fn z_values(ch: Chunk, t: u32, v: u32) -> V8 {
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

#ifdef LA_SCORES
// The forward scores of a vector decay weight each key (far_scores,
// diag_scores); the others are plain products, decayed afterwards.
#ifdef DECAY_VECTOR
#ifndef BACKWARD
#define VECTOR_SCORES
#endif
#endif

@group(0) @binding(3) var<storage, read> xs: array<f32>;        // rows t: q / dout (BACKWARD)
@group(0) @binding(4) var<storage, read> ys: array<f32>;        // columns s: k / v
@group(0) @binding(5) var<storage, read_write> att: array<f32>; // (B·H·K, CH, CH)
@group(0) @binding(6) var<storage, read> xh: array<f32>;        // DECAY_VECTOR forward: q̂ (la_prescale)
@group(0) @binding(7) var<storage, read> yh: array<f32>;        // DECAY_VECTOR forward: k̂
@group(0) @binding(8) var<storage, read> yc: array<f32>;        // DECAY_VECTOR forward: k̃ (q̃ is bound as lg)

// The operands' width and element at (t, i).
fn width() -> u32 {
#ifdef BACKWARD
    return p.dv;
#else
    return p.dk;
#endif
}
fn at(b: u32, h: u32, t: u32, i: u32) -> u32 {
#ifdef BACKWARD
    return vat(b, h, t, i);
#else
    return kat(b, h, t, i);
#endif
}
fn x_at(ch: Chunk, t: u32, i: u32) -> f32 {
    if t < p.len { return xs[at(ch.b, ch.h, t, i)]; }
    return 0.0;
}
fn y_at(ch: Chunk, t: u32, i: u32) -> f32 {
    if t < p.len { return ys[at(ch.b, ch.h, t, i)]; }
    return 0.0;
}
fn x_steps(ch: Chunk, t: u32, i: u32) -> V8 {
    return V8(vec4<f32>(x_at(ch, t, i), x_at(ch, t + 1u, i), x_at(ch, t + 2u, i), x_at(ch, t + 3u, i)),
              vec4<f32>(x_at(ch, t + 4u, i), x_at(ch, t + 5u, i), x_at(ch, t + 6u, i), x_at(ch, t + 7u, i)));
}
fn y_steps(ch: Chunk, t: u32, i: u32) -> V8 {
    return V8(vec4<f32>(y_at(ch, t, i), y_at(ch, t + 1u, i), y_at(ch, t + 2u, i), y_at(ch, t + 3u, i)),
              vec4<f32>(y_at(ch, t + 4u, i), y_at(ch, t + 5u, i), y_at(ch, t + 6u, i), y_at(ch, t + 7u, i)));
}
fn xh_at(ch: Chunk, t: u32, i: u32) -> f32 {
    if t < p.len { return xh[at(ch.b, ch.h, t, i)]; }
    return 0.0;
}
fn yh_at(ch: Chunk, t: u32, i: u32) -> f32 {
    if t < p.len { return yh[at(ch.b, ch.h, t, i)]; }
    return 0.0;
}
fn xh_steps(ch: Chunk, t: u32, i: u32) -> V8 {
    return V8(vec4<f32>(xh_at(ch, t, i), xh_at(ch, t + 1u, i), xh_at(ch, t + 2u, i), xh_at(ch, t + 3u, i)),
              vec4<f32>(xh_at(ch, t + 4u, i), xh_at(ch, t + 5u, i), xh_at(ch, t + 6u, i), xh_at(ch, t + 7u, i)));
}
fn yh_steps(ch: Chunk, t: u32, i: u32) -> V8 {
    return V8(vec4<f32>(yh_at(ch, t, i), yh_at(ch, t + 1u, i), yh_at(ch, t + 2u, i), yh_at(ch, t + 3u, i)),
              vec4<f32>(yh_at(ch, t + 4u, i), yh_at(ch, t + 5u, i), yh_at(ch, t + 6u, i), yh_at(ch, t + 7u, i)));
}

#ifdef VECTOR_SCORES
// A mild chunk's operands (b_C > −34 at every key, `chunk_mild`): q̃_t = q_t
// ⊙ e^{b_t} and k̃_s ⊙ e^{−b_C} = k_s ⊙ e^{−b_s}, whose products are the
// scores, every factor below e^{34}. (q̃ is bound where lg would be: a
// vector decay reads no per-head decays, and a stage may have only eight
// storage bindings.)
fn qc_at(ch: Chunk, t: u32, i: u32) -> f32 {
    if t < p.len { return lg[kat(ch.b, ch.h, t, i)]; }
    return 0.0;
}
fn kc_at(ch: Chunk, t: u32, i: u32) -> f32 {
    if t < p.len { return yc[kat(ch.b, ch.h, t, i)]; }
    return 0.0;
}
fn qc_steps(ch: Chunk, t: u32, i: u32) -> V8 {
    return V8(vec4<f32>(qc_at(ch, t, i), qc_at(ch, t + 1u, i), qc_at(ch, t + 2u, i), qc_at(ch, t + 3u, i)),
              vec4<f32>(qc_at(ch, t + 4u, i), qc_at(ch, t + 5u, i), qc_at(ch, t + 6u, i), qc_at(ch, t + 7u, i)));
}
fn kc_steps(ch: Chunk, t: u32, i: u32) -> V8 {
    return V8(vec4<f32>(kc_at(ch, t, i), kc_at(ch, t + 1u, i), kc_at(ch, t + 2u, i), kc_at(ch, t + 3u, i)),
              vec4<f32>(kc_at(ch, t + 4u, i), kc_at(ch, t + 5u, i), kc_at(ch, t + 6u, i), kc_at(ch, t + 7u, i)));
}
// e^{−b_C} at key i.
fn undecay(ch: Chunk, i: u32) -> f32 { return exp(-cumc(ch.b, ch.h, ch.last, i)); }
#ifdef SUBGROUPS
// Whether every key's b_C > −34 (each of the eight lanes checks every
// eighth key).
fn chunk_mild(ch: Chunk, lane: u32) -> bool {
    var ok = true;
    for (var k = lane; k < p.dk; k += 8u) { ok = ok && cumc(ch.b, ch.h, ch.last, k) > -34.0; }
    return subgroupAll(ok);
}
#endif
#endif

// One key of an off-diagonal block of a vector decay's scores: q̂_t k̂_s
// e^{b_r0 − b_s1}, q̂ relative to the row block's first step r0 (b there:
// `btr`), k̂ to the column block's last step s1 < r0.
fn far_scores(acc: Blk, xh: V8, btr: f32, ch: Chunk, s1: u32, ts: u32, k: u32) -> Blk {
    let w = exp(min(btr - cumc(ch.b, ch.h, s1, k), 0.0));
    return upd(acc, v8_mul(xh, v8_splat(w)), yh_steps(ch, ts, k));
}

// One key of a diagonal block: e^{b_i − b_j} (j ≤ i) as running products of
// the per-step decays α_t = e^{b_t − b_{t−1}} ≤ 1 (b of the block's steps:
// `bk`), row i = α_i ⊙ row i−1 plus a 1 at column i, written out row by row
// (constant indices): eight exps per key instead of 64.
fn diag_scores(acc0: Blk, x: V8, bk: V8, y: V8) -> Blk {
    var acc = acc0;
    let z4 = vec4<f32>(0.0);
    let before = V8(vec4<f32>(bk.lo.x, bk.lo.x, bk.lo.y, bk.lo.z), vec4<f32>(bk.lo.w, bk.hi.x, bk.hi.y, bk.hi.z));
    let a = v8_exp(v8_min0(v8_sub(bk, before)));
    var e = V8(vec4<f32>(1.0, 0.0, 0.0, 0.0), z4);
    acc.c00[0] = fma(vec4<f32>(x.lo.x), y.lo * e.lo, acc.c00[0]);
    acc.c01[0] = fma(vec4<f32>(x.lo.x), y.hi * e.hi, acc.c01[0]);
    e = V8(e.lo * a.lo.y + V8(vec4<f32>(0.0, 1.0, 0.0, 0.0), z4).lo, e.hi * a.lo.y + V8(vec4<f32>(0.0, 1.0, 0.0, 0.0), z4).hi);
    acc.c00[1] = fma(vec4<f32>(x.lo.y), y.lo * e.lo, acc.c00[1]);
    acc.c01[1] = fma(vec4<f32>(x.lo.y), y.hi * e.hi, acc.c01[1]);
    e = V8(e.lo * a.lo.z + V8(vec4<f32>(0.0, 0.0, 1.0, 0.0), z4).lo, e.hi * a.lo.z + V8(vec4<f32>(0.0, 0.0, 1.0, 0.0), z4).hi);
    acc.c00[2] = fma(vec4<f32>(x.lo.z), y.lo * e.lo, acc.c00[2]);
    acc.c01[2] = fma(vec4<f32>(x.lo.z), y.hi * e.hi, acc.c01[2]);
    e = V8(e.lo * a.lo.w + V8(vec4<f32>(0.0, 0.0, 0.0, 1.0), z4).lo, e.hi * a.lo.w + V8(vec4<f32>(0.0, 0.0, 0.0, 1.0), z4).hi);
    acc.c00[3] = fma(vec4<f32>(x.lo.w), y.lo * e.lo, acc.c00[3]);
    acc.c01[3] = fma(vec4<f32>(x.lo.w), y.hi * e.hi, acc.c01[3]);
    e = V8(e.lo * a.hi.x + V8(z4, vec4<f32>(1.0, 0.0, 0.0, 0.0)).lo, e.hi * a.hi.x + V8(z4, vec4<f32>(1.0, 0.0, 0.0, 0.0)).hi);
    acc.c10[0] = fma(vec4<f32>(x.hi.x), y.lo * e.lo, acc.c10[0]);
    acc.c11[0] = fma(vec4<f32>(x.hi.x), y.hi * e.hi, acc.c11[0]);
    e = V8(e.lo * a.hi.y + V8(z4, vec4<f32>(0.0, 1.0, 0.0, 0.0)).lo, e.hi * a.hi.y + V8(z4, vec4<f32>(0.0, 1.0, 0.0, 0.0)).hi);
    acc.c10[1] = fma(vec4<f32>(x.hi.y), y.lo * e.lo, acc.c10[1]);
    acc.c11[1] = fma(vec4<f32>(x.hi.y), y.hi * e.hi, acc.c11[1]);
    e = V8(e.lo * a.hi.z + V8(z4, vec4<f32>(0.0, 0.0, 1.0, 0.0)).lo, e.hi * a.hi.z + V8(z4, vec4<f32>(0.0, 0.0, 1.0, 0.0)).hi);
    acc.c10[2] = fma(vec4<f32>(x.hi.z), y.lo * e.lo, acc.c10[2]);
    acc.c11[2] = fma(vec4<f32>(x.hi.z), y.hi * e.hi, acc.c11[2]);
    e = V8(e.lo * a.hi.w + V8(z4, vec4<f32>(0.0, 0.0, 0.0, 1.0)).lo, e.hi * a.hi.w + V8(z4, vec4<f32>(0.0, 0.0, 0.0, 1.0)).hi);
    acc.c10[3] = fma(vec4<f32>(x.hi.w), y.lo * e.lo, acc.c10[3]);
    acc.c11[3] = fma(vec4<f32>(x.hi.w), y.hi * e.hi, acc.c11[3]);
    return acc;
}

// Σ_i x_i y_iᵀ over the operands' width: rows of steps tr.., columns ts...
fn products(ch: Chunk, tr: u32, ts: u32) -> Blk {
    var acc = Blk();
    for (var i = 0u; i < width(); i++) { acc = upd(acc, x_steps(ch, tr, i), y_steps(ch, ts, i)); }
    return acc;
}

// Block (rb, sb) of the scores before the causal mask, its operands loaded
// by the invocation itself.
fn block_scores(ch: Chunk, rb: u32, sb: u32) -> Blk {
    let tr = ch.t0 + rb * 8u;
    let ts = ch.t0 + sb * 8u;
#ifdef VECTOR_SCORES
    var acc = Blk();
    for (var k = 0u; k < p.dk; k++) {
        if sb == rb {
            acc = diag_scores(acc, x_steps(ch, tr, k), cum_steps(ch.b, ch.h, tr, k), y_steps(ch, ts, k));
        } else {
            acc = far_scores(acc, xh_steps(ch, tr, k), cumc(ch.b, ch.h, tr, k), ch, ts + 7u, ts, k);
        }
    }
    return acc;
#else
#ifdef DECAY_VECTOR
    return products(ch, tr, ts);
#else
    return decay_blk(products(ch, tr, ts), cum_steps(ch.b, ch.h, tr, 0u), cum_steps(ch.b, ch.h, ts, 0u));
#endif
#endif
}

fn store_scores(ch: Chunk, rb: u32, sb: u32, blk: Blk) {
    var acc = blk;
    if sb == rb { acc = lower_blk(acc); }
    let base = (ch.bh * p.chunks + ch.c) * CH;
    for (var i = 0u; i < 8u; i++) {
        let row = blk_row(acc, i);
        let o = (base + rb * 8u + i) * CH + sb * 8u;
        att[o] = row.lo.x; att[o + 1u] = row.lo.y; att[o + 2u] = row.lo.z; att[o + 3u] = row.lo.w;
        att[o + 4u] = row.hi.x; att[o + 5u] = row.hi.y; att[o + 6u] = row.hi.z; att[o + 7u] = row.hi.w;
    }
}

#ifdef SUBGROUPS
fn pick(f: V8, t: V8, c: bool) -> V8 { return V8(select(f.lo, t.lo, c), select(f.hi, t.hi, c)); }

// The 28 blocks below the diagonal of a 64-step chunk, seven per workgroup
// w < 4 (`scores_workgroups`): row block 7 − w on lanes 0..7−w and row
// block w on lanes 7−w..7 (lane 7 idle), so every lane's block is live and
// no lane takes the diagonal's other code path. Lane l loads both row
// blocks' operands at index i + l; each index takes them by shuffle and
// every lane picks its own row block's.
fn paired_scores(ch: Chunk, w: u32, lane: u32) {
    let upper = lane < 7u - w;
    let rb = select(w, 7u - w, upper);
    let sb = select(lane - (7u - w), lane, upper);
    let tr = array<u32, 2>(ch.t0 + w * 8u, ch.t0 + (7u - w) * 8u);
    let own = ch.t0 + rb * 8u;
    let ts = ch.t0 + sb * 8u;
    let mine = min(lane, 7u);
    var acc = Blk();
    var i = 0u;
#ifdef VECTOR_SCORES
    if chunk_mild(ch, mine) {
        // Plain products of q̃ and k̃ ⊙ e^{−b_C}; lane l takes e^{−b_C} at
        // key i + l.
        for (; i + 8u <= width(); i += 8u) {
            let x0 = qc_steps(ch, tr[0], i + mine);
            let x1 = qc_steps(ch, tr[1], i + mine);
            let f = undecay(ch, i + mine);
            for (var kk = 0u; kk < 8u; kk++) {
                let x = pick(shuffled(x0, kk), shuffled(x1, kk), upper);
                acc = upd(acc, v8_mul(x, v8_splat(subgroupShuffle(f, kk))), kc_steps(ch, ts, i + kk));
            }
        }
        for (; i < width(); i++) {
            acc = upd(acc, v8_mul(qc_steps(ch, own, i), v8_splat(undecay(ch, i))), kc_steps(ch, ts, i));
        }
    }
#endif
    for (; i + 8u <= width(); i += 8u) {
#ifdef VECTOR_SCORES
        let x0 = xh_steps(ch, tr[0], i + mine);
        let x1 = xh_steps(ch, tr[1], i + mine);
        let b0 = cumc(ch.b, ch.h, tr[0], i + mine);
        let b1 = cumc(ch.b, ch.h, tr[1], i + mine);
        for (var kk = 0u; kk < 8u; kk++) {
            let x = pick(shuffled(x0, kk), shuffled(x1, kk), upper);
            let btr = select(subgroupShuffle(b0, kk), subgroupShuffle(b1, kk), upper);
            acc = far_scores(acc, x, btr, ch, ts + 7u, ts, i + kk);
        }
#else
        let x0 = x_steps(ch, tr[0], i + mine);
        let x1 = x_steps(ch, tr[1], i + mine);
        for (var kk = 0u; kk < 8u; kk++) {
            let x = pick(shuffled(x0, kk), shuffled(x1, kk), upper);
            acc = upd(acc, x, y_steps(ch, ts, i + kk));
        }
#endif
    }
    for (; i < width(); i++) {
#ifdef VECTOR_SCORES
        acc = far_scores(acc, xh_steps(ch, own, i), cumc(ch.b, ch.h, own, i), ch, ts + 7u, ts, i);
#else
        acc = upd(acc, x_steps(ch, own, i), y_steps(ch, ts, i));
#endif
    }
#ifndef DECAY_VECTOR
    acc = decay_blk(acc, cum_steps(ch.b, ch.h, own, 0u), cum_steps(ch.b, ch.h, ts, 0u));
#endif
    if lane < 7u && rb * 8u < ch.count { store_scores(ch, rb, sb, acc); }
}
#endif

// Workgroups of eight per chunk: with SUBGROUPS and CH = 64, four for the
// blocks below the diagonal (paired_scores) and one for the eight diagonal
// blocks (lane l: block (l, l)); otherwise lane l of workgroup w takes block
// (w·8 + l) / nb, (w·8 + l) % nb of the nb × nb and computes it if it is on
// or below the diagonal.
@compute @workgroup_size(8)
fn la_scores(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>
#ifdef SUBGROUPS
, @builtin(subgroup_invocation_id) sid: u32
#endif
) {
    let ch = chunk_of(wid.y, wid.z);
    let nb = CH / 8u;
#ifdef SUBGROUPS
    if CH == 64u {
        if wid.x < 4u {
            paired_scores(ch, wid.x, sid);
        } else {
            var acc = Blk();
#ifdef VECTOR_SCORES
            if chunk_mild(ch, min(sid, 7u)) {
                let tr = ch.t0 + min(sid, 7u) * 8u;
                for (var i = 0u; i < width(); i += 8u) {
                    let f = undecay(ch, i + min(sid, 7u));
                    for (var kk = 0u; kk < min(8u, width() - i); kk++) {
                        let x = v8_mul(qc_steps(ch, tr, i + kk), v8_splat(subgroupShuffle(f, kk)));
                        acc = upd(acc, x, kc_steps(ch, tr, i + kk));
                    }
                }
                if sid < 8u && sid * 8u < ch.count { store_scores(ch, sid, sid, acc); }
                return;
            }
#endif
            if sid < 8u && sid * 8u < ch.count { store_scores(ch, sid, sid, block_scores(ch, sid, sid)); }
        }
        return;
    }
#endif
    if gid.x >= nb * nb { return; }
    let rb = gid.x / nb;
    let sb = gid.x % nb;
    if rb * 8u >= ch.count || sb > rb { return; }
    store_scores(ch, rb, sb, block_scores(ch, rb, sb));
}
#endif

#ifdef LA_APPLY
@group(0) @binding(3) var<storage, read> att: array<f32>;       // (B·H·K, CH, CH): A, or P with GRADQK
@group(0) @binding(4) var<storage, read> xs: array<f32>;        // q / k (BACKWARD); GRADQK: dout / v
@group(0) @binding(5) var<storage, read> zs: array<f32>;        // v / dout; GRADQK: k / q
@group(0) @binding(6) var<storage, read> st: array<f32>;        // (B, H, K, d_k, d_v): entering states / leaving-state gradients
@group(0) @binding(7) var<storage, read_write> out: array<f32>; // like z: o / dv; GRADQK: dq / dk
@group(0) @binding(8) var<storage, read> zh: array<f32>;        // DECAY_VECTOR GRADQK: k̂ / q̂ (la_prescale)

// Widths of z (and the output) and of X, and their elements.
fn n_width() -> u32 {
#ifdef GRADQK
    return p.dk;
#else
    return p.dv;
#endif
}
fn m_width() -> u32 {
#ifdef GRADQK
    return p.dv;
#else
    return p.dk;
#endif
}
fn z_index(ch: Chunk, t: u32, n: u32) -> u32 {
#ifdef GRADQK
    return kat(ch.b, ch.h, t, n);
#else
    return vat(ch.b, ch.h, t, n);
#endif
}
fn z_at(ch: Chunk, t: u32, n: u32) -> f32 {
    if t < p.len && n < n_width() { return zs[z_index(ch, t, n)]; }
    return 0.0;
}
fn x_at(ch: Chunk, t: u32, m: u32) -> f32 {
    if t >= p.len { return 0.0; }
#ifdef GRADQK
    return xs[vat(ch.b, ch.h, t, m)];
#else
    return xs[kat(ch.b, ch.h, t, m)];
#endif
}
// Element (m, n) of the state as X's right operand: S[k, v] = (m, n), or
// (n, m) with GRADQK.
fn y_at(ch: Chunk, m: u32, n: u32) -> f32 {
    if n >= n_width() { return 0.0; }
#ifdef GRADQK
    return st[state_at(ch.bh, ch.c, n, m)];
#else
    return st[state_at(ch.bh, ch.c, m, n)];
#endif
}
fn zh_at(ch: Chunk, t: u32, n: u32) -> f32 {
    if t < p.len && n < n_width() { return zh[z_index(ch, t, n)]; }
    return 0.0;
}
fn zh_row(ch: Chunk, t: u32, n: u32) -> V8 {
    return V8(vec4<f32>(zh_at(ch, t, n), zh_at(ch, t, n + 1u), zh_at(ch, t, n + 2u), zh_at(ch, t, n + 3u)),
              vec4<f32>(zh_at(ch, t, n + 4u), zh_at(ch, t, n + 5u), zh_at(ch, t, n + 6u), zh_at(ch, t, n + 7u)));
}
fn z_row(ch: Chunk, t: u32, n: u32) -> V8 {
    return V8(vec4<f32>(z_at(ch, t, n), z_at(ch, t, n + 1u), z_at(ch, t, n + 2u), z_at(ch, t, n + 3u)),
              vec4<f32>(z_at(ch, t, n + 4u), z_at(ch, t, n + 5u), z_at(ch, t, n + 6u), z_at(ch, t, n + 7u)));
}
// z, or with `rel` a vector decay's chunk-relative z̃ (k̃ / q̃ from
// la_prescale), which GRADQK binds where lg would be: a vector decay reads no
// per-head decays, and a stage may have only eight storage bindings.
fn zc_at(ch: Chunk, t: u32, n: u32) -> f32 {
    if t < p.len && n < n_width() { return lg[z_index(ch, t, n)]; }
    return 0.0;
}
fn z_src(ch: Chunk, t: u32, n: u32, rel: bool) -> V8 {
    if !rel { return z_row(ch, t, n); }
    return V8(vec4<f32>(zc_at(ch, t, n), zc_at(ch, t, n + 1u), zc_at(ch, t, n + 2u), zc_at(ch, t, n + 3u)),
              vec4<f32>(zc_at(ch, t, n + 4u), zc_at(ch, t, n + 5u), zc_at(ch, t, n + 6u), zc_at(ch, t, n + 7u)));
}
fn x_steps(ch: Chunk, t: u32, m: u32) -> V8 {
    return V8(vec4<f32>(x_at(ch, t, m), x_at(ch, t + 1u, m), x_at(ch, t + 2u, m), x_at(ch, t + 3u, m)),
              vec4<f32>(x_at(ch, t + 4u, m), x_at(ch, t + 5u, m), x_at(ch, t + 6u, m), x_at(ch, t + 7u, m)));
}
fn y_row(ch: Chunk, m: u32, n: u32) -> V8 {
    return V8(vec4<f32>(y_at(ch, m, n), y_at(ch, m, n + 1u), y_at(ch, m, n + 2u), y_at(ch, m, n + 3u)),
              vec4<f32>(y_at(ch, m, n + 4u), y_at(ch, m, n + 5u), y_at(ch, m, n + 6u), y_at(ch, m, n + 7u)));
}
// The scores of rows r0..r0+8 against step s of the chunk: M[r, s], or
// M[s, r] for BACKWARD.
fn m_rows(ch: Chunk, r0: u32, s: u32) -> V8 {
    let base = (ch.bh * p.chunks + ch.c) * CH;
#ifdef BACKWARD
    let o = (base + s) * CH + r0;
    return V8(vec4<f32>(att[o], att[o + 1u], att[o + 2u], att[o + 3u]),
              vec4<f32>(att[o + 4u], att[o + 5u], att[o + 6u], att[o + 7u]));
#else
    let o = (base + r0) * CH + s;
    return V8(vec4<f32>(att[o], att[o + CH], att[o + 2u * CH], att[o + 3u * CH]),
              vec4<f32>(att[o + 4u * CH], att[o + 5u * CH], att[o + 6u * CH], att[o + 7u * CH]));
#endif
}
// e^{sign · x}, clamped at 1, where sign pairs the rows with later (BACKWARD)
// or earlier steps.
fn toward(x: V8) -> V8 {
#ifdef BACKWARD
    return v8_exp(v8_min0(V8(-x.lo, -x.hi)));
#else
    return v8_exp(v8_min0(x));
#endif
}

// The block's own steps for a vector decay: acc row r += M[r, s] (z_s ⊙ w_r)
// with w_r = e^{b_r − b_s} (rows r ≥ s) or, BACKWARD, e^{b_s − b_r} (r ≤ s)
// as running products along the rows of the per-step decays in `al` (row
// r: α_r = e^{b_r − b_{r−1}}) from 1 at row j = s − r0; rows the causal
// mask zeroes keep w = 1. Written out row by row (constant indices).
fn diag_step(acc: Blk, m: V8, z: V8, al: Blk, j: u32) -> Blk {
    var o = acc;
    let one = vec4<f32>(1.0);
    var wl = one;
    var wh = one;
#ifdef BACKWARD
    o.c10[3] = fma(vec4<f32>(m.hi.w), z.lo * wl, o.c10[3]); o.c11[3] = fma(vec4<f32>(m.hi.w), z.hi * wh, o.c11[3]);
    wl = select(one, wl * al.c10[3], 6u < j); wh = select(one, wh * al.c11[3], 6u < j);
    o.c10[2] = fma(vec4<f32>(m.hi.z), z.lo * wl, o.c10[2]); o.c11[2] = fma(vec4<f32>(m.hi.z), z.hi * wh, o.c11[2]);
    wl = select(one, wl * al.c10[2], 5u < j); wh = select(one, wh * al.c11[2], 5u < j);
    o.c10[1] = fma(vec4<f32>(m.hi.y), z.lo * wl, o.c10[1]); o.c11[1] = fma(vec4<f32>(m.hi.y), z.hi * wh, o.c11[1]);
    wl = select(one, wl * al.c10[1], 4u < j); wh = select(one, wh * al.c11[1], 4u < j);
    o.c10[0] = fma(vec4<f32>(m.hi.x), z.lo * wl, o.c10[0]); o.c11[0] = fma(vec4<f32>(m.hi.x), z.hi * wh, o.c11[0]);
    wl = select(one, wl * al.c10[0], 3u < j); wh = select(one, wh * al.c11[0], 3u < j);
    o.c00[3] = fma(vec4<f32>(m.lo.w), z.lo * wl, o.c00[3]); o.c01[3] = fma(vec4<f32>(m.lo.w), z.hi * wh, o.c01[3]);
    wl = select(one, wl * al.c00[3], 2u < j); wh = select(one, wh * al.c01[3], 2u < j);
    o.c00[2] = fma(vec4<f32>(m.lo.z), z.lo * wl, o.c00[2]); o.c01[2] = fma(vec4<f32>(m.lo.z), z.hi * wh, o.c01[2]);
    wl = select(one, wl * al.c00[2], 1u < j); wh = select(one, wh * al.c01[2], 1u < j);
    o.c00[1] = fma(vec4<f32>(m.lo.y), z.lo * wl, o.c00[1]); o.c01[1] = fma(vec4<f32>(m.lo.y), z.hi * wh, o.c01[1]);
    wl = select(one, wl * al.c00[1], 0u < j); wh = select(one, wh * al.c01[1], 0u < j);
    o.c00[0] = fma(vec4<f32>(m.lo.x), z.lo * wl, o.c00[0]); o.c01[0] = fma(vec4<f32>(m.lo.x), z.hi * wh, o.c01[0]);
#else
    o.c00[0] = fma(vec4<f32>(m.lo.x), z.lo * wl, o.c00[0]); o.c01[0] = fma(vec4<f32>(m.lo.x), z.hi * wh, o.c01[0]);
    wl = select(one, wl * al.c00[1], 1u > j); wh = select(one, wh * al.c01[1], 1u > j);
    o.c00[1] = fma(vec4<f32>(m.lo.y), z.lo * wl, o.c00[1]); o.c01[1] = fma(vec4<f32>(m.lo.y), z.hi * wh, o.c01[1]);
    wl = select(one, wl * al.c00[2], 2u > j); wh = select(one, wh * al.c01[2], 2u > j);
    o.c00[2] = fma(vec4<f32>(m.lo.z), z.lo * wl, o.c00[2]); o.c01[2] = fma(vec4<f32>(m.lo.z), z.hi * wh, o.c01[2]);
    wl = select(one, wl * al.c00[3], 3u > j); wh = select(one, wh * al.c01[3], 3u > j);
    o.c00[3] = fma(vec4<f32>(m.lo.w), z.lo * wl, o.c00[3]); o.c01[3] = fma(vec4<f32>(m.lo.w), z.hi * wh, o.c01[3]);
    wl = select(one, wl * al.c10[0], 4u > j); wh = select(one, wh * al.c11[0], 4u > j);
    o.c10[0] = fma(vec4<f32>(m.hi.x), z.lo * wl, o.c10[0]); o.c11[0] = fma(vec4<f32>(m.hi.x), z.hi * wh, o.c11[0]);
    wl = select(one, wl * al.c10[1], 5u > j); wh = select(one, wh * al.c11[1], 5u > j);
    o.c10[1] = fma(vec4<f32>(m.hi.y), z.lo * wl, o.c10[1]); o.c11[1] = fma(vec4<f32>(m.hi.y), z.hi * wh, o.c11[1]);
    wl = select(one, wl * al.c10[2], 6u > j); wh = select(one, wh * al.c11[2], 6u > j);
    o.c10[2] = fma(vec4<f32>(m.hi.z), z.lo * wl, o.c10[2]); o.c11[2] = fma(vec4<f32>(m.hi.z), z.hi * wh, o.c11[2]);
    wl = select(one, wl * al.c10[3], 7u > j); wh = select(one, wh * al.c11[3], 7u > j);
    o.c10[3] = fma(vec4<f32>(m.hi.w), z.lo * wl, o.c10[3]); o.c11[3] = fma(vec4<f32>(m.hi.w), z.hi * wh, o.c11[3]);
#endif
    return o;
}

// acc += Σ_{s in [s0, s1)} M[rows, s] z_s (the products without a vector
// decay). With SUBGROUPS and every lane of the workgroup on the same row
// block (`same_rows`: a whole number of column blocks per 8 lanes), lane l
// loads the scores of step s + l and each step takes them by shuffle,
// instead of every lane loading the same eight (gemm_blocked's trick).
fn span(acc0: Blk, ch: Chunk, r0: u32, n0: u32, s0: u32, s1: u32, same_rows: bool, lane: u32, rel: bool) -> Blk {
    var acc = acc0;
    var s = s0;
#ifdef SUBGROUPS
    if same_rows {
        for (; s + 8u <= s1; s += 8u) {
            let mine = m_rows(ch, r0, s + min(lane, 7u));
            for (var kk = 0u; kk < 8u; kk++) {
                let m = V8(subgroupShuffle(mine.lo, kk), subgroupShuffle(mine.hi, kk));
                acc = upd(acc, m, z_src(ch, ch.t0 + s + kk, n0, rel));
            }
        }
    }
#endif
    for (; s < s1; s++) { acc = upd(acc, m_rows(ch, r0, s), z_src(ch, ch.t0 + s, n0, rel)); }
    return acc;
}

// The state's term before its decay weights: X_rows · state (the entering
// state, or the leaving state's gradient). A vector decay's X here is q̃ /
// k̃ from la_prescale, already weighted; with GRADQK the weights are per key
// and applied by the caller. Step rows by shuffle as in `span`.
fn state_term(ch: Chunk, tr: u32, n0: u32, same_rows: bool, lane: u32) -> Blk {
    var it = Blk();
    var m = 0u;
#ifdef SUBGROUPS
    if same_rows {
        for (; m + 8u <= m_width(); m += 8u) {
            let mine = x_steps(ch, tr, m + min(lane, 7u));
            for (var kk = 0u; kk < 8u; kk++) {
                let x = V8(subgroupShuffle(mine.lo, kk), subgroupShuffle(mine.hi, kk));
                it = upd(it, x, y_row(ch, m + kk, n0));
            }
        }
    }
#endif
    for (; m < m_width(); m++) {
        it = upd(it, x_steps(ch, tr, m), y_row(ch, m, n0));
    }
    return it;
}

#ifdef GRADQK
#ifdef DECAY_VECTOR
// dq / dk of a vector decay whose chunk is mild (every b_C > −34): the
// plain products with the chunk-relative z̃ (k̃ = k ⊙ e^{b_C − b_s} / q̃ = q ⊙
// e^{b_s}) and the state's term times e^{b_C}, then row r times e^{b_r − b_C}
// / e^{−b_r}, all below e^{34}. (Where the factors are exact in f32 this
// equals the factored form; a term the products absorb is below the
// result's rounding.)
fn mild_grad(ch: Chunk, r0: u32, n0: u32, near: u32, bc: V8, same_rows: bool, lane: u32) -> Blk {
    let tr = ch.t0 + r0;
#ifdef BACKWARD
    var acc = span(Blk(), ch, r0, n0, r0, ch.count, same_rows, lane, true);
#else
    var acc = span(Blk(), ch, r0, n0, 0u, near, same_rows, lane, true);
#endif
    acc = add_blk(acc, scale_cols(state_term(ch, tr, n0, same_rows, lane), v8_exp(bc)));
    var sc = Blk();
    for (var i = 0u; i < 8u; i++) {
        let br = cum_keys(ch.b, ch.h, tr + i, n0);
#ifdef BACKWARD
        sc = blk_set_row(sc, i, v8_exp(V8(-br.lo, -br.hi)));
#else
        sc = blk_set_row(sc, i, v8_exp(v8_sub(br, bc)));
#endif
    }
    return mul_blk(acc, sc);
}

// dq / dk of a vector decay, any strength: the steps outside the row block
// factored around a reference step, the block's own as running products.
fn strong_grad(ch: Chunk, r0: u32, n0: u32, near: u32, same_rows: bool, lane: u32) -> Blk {
    let tr = ch.t0 + r0;
    var acc = Blk();
    // Steps outside the block, factored around the reference step.
#ifdef BACKWARD
    let tref = ch.t0 + near - 1u;
    let far0 = near;
    let far1 = ch.count;
#else
    let tref = tr;
    let far0 = 0u;
    let far1 = r0;
#endif
    let bref = cum_keys(ch.b, ch.h, tref, n0);
    // ẑ_s (la_prescale) is relative to its own block's last (forward) or
    // first (BACKWARD) step; one factor per block of 8 steps moves it to
    // the reference.
    for (var s0 = far0; s0 < far1; s0 += 8u) {
#ifdef BACKWARD
        let w = toward(v8_sub(bref, cum_keys(ch.b, ch.h, ch.t0 + s0, n0)));
#else
        let w = toward(v8_sub(bref, cum_keys(ch.b, ch.h, ch.t0 + s0 + 7u, n0)));
#endif
        var s = s0;
#ifdef SUBGROUPS
        if same_rows && s0 + 8u <= far1 {
            let mine = m_rows(ch, r0, s0 + min(lane, 7u));
            for (var kk = 0u; kk < 8u; kk++) {
                let m = V8(subgroupShuffle(mine.lo, kk), subgroupShuffle(mine.hi, kk));
                acc = upd(acc, m, v8_mul(zh_row(ch, ch.t0 + s0 + kk, n0), w));
            }
            s = s0 + 8u;
        }
#endif
        for (; s < min(s0 + 8u, far1); s++) {
            acc = upd(acc, m_rows(ch, r0, s), v8_mul(zh_row(ch, ch.t0 + s, n0), w));
        }
    }
    // The per-step decays of the block's rows, once (56 exps): α_i =
    // e^{b_i − b_{i−1}} in row i. (Rows past the sequence are clamped to
    // its last step: α = 1 there.)
    var al = Blk();
    var bprev = cum_keys(ch.b, ch.h, tr, n0);
    for (var i = 1u; i < 8u; i++) {
        let br = cum_keys(ch.b, ch.h, tr + i, n0);
        al = blk_set_row(al, i, v8_exp(v8_min0(v8_sub(br, bprev))));
        bprev = br;
    }
    // The state's term joins the far steps at the reference (e^{b_ref}, or
    // e^{b_C − b_ref}); then every row moves from the reference to itself
    // by the running product of the decays between (e^{b_r − b_ref}, or
    // e^{b_ref − b_r}).
    let it = state_term(ch, tr, n0, same_rows, lane);
#ifdef BACKWARD
    let eref = v8_exp(v8_min0(v8_sub(cum_keys(ch.b, ch.h, ch.last, n0), bref)));
    var w = v8_splat(1.0);
    for (var j = 0u; j < 8u; j++) {
        let i = 7u - j;
        if i < 7u { w = v8_mul(w, blk_row(al, i + 1u)); }
        let row = blk_row(acc, i);
        let add = v8_mul(blk_row(it, i), eref);
        acc = blk_set_row(acc, i, v8_mul(V8(row.lo + add.lo, row.hi + add.hi), w));
    }
#else
    let eref = v8_exp(v8_min0(bref));
    var w = v8_splat(1.0);
    for (var i = 0u; i < 8u; i++) {
        if i > 0u { w = v8_mul(w, blk_row(al, i)); }
        let row = blk_row(acc, i);
        let add = v8_mul(blk_row(it, i), eref);
        acc = blk_set_row(acc, i, v8_mul(V8(row.lo + add.lo, row.hi + add.hi), w));
    }
#endif
    // The block's own steps: running products of the same decays (diag_step).
    var s = r0;
#ifdef SUBGROUPS
    if same_rows && near == r0 + 8u {
        let mine = m_rows(ch, r0, r0 + min(lane, 7u));
        for (var kk = 0u; kk < 8u; kk++) {
            let m = V8(subgroupShuffle(mine.lo, kk), subgroupShuffle(mine.hi, kk));
            acc = diag_step(acc, m, z_row(ch, ch.t0 + r0 + kk, n0), al, kk);
        }
        s = near;
    }
#endif
    for (; s < near; s++) {
        acc = diag_step(acc, m_rows(ch, r0, s), z_row(ch, ch.t0 + s, n0), al, s - r0);
    }
    return acc;
}
#endif
#endif

// One invocation per 8x8 block (rows r0.., columns n0..) of the output.
@compute @workgroup_size(8)
fn la_apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>
#ifdef SUBGROUPS
, @builtin(subgroup_invocation_id) sid: u32
#endif
) {
#ifdef SUBGROUPS
    let lane = sid;
#else
    let lane = 0u;
#endif
    let nblocks = (n_width() + 7u) / 8u;
    let same_rows = nblocks % 8u == 0u;
    if gid.x >= (CH / 8u) * nblocks { return; }
    let r0 = (gid.x / nblocks) * 8u;
    let n0 = (gid.x % nblocks) * 8u;
    let ch = chunk_of(wid.y, wid.z);
    if r0 >= ch.count { return; }
    let tr = ch.t0 + r0;
    let near = min(r0 + 8u, ch.count);
    var acc = Blk();
#ifdef GRADQK
#ifdef DECAY_VECTOR
    // A chunk whose decays are mild for this lane's keys (b_C > −34; the
    // lanes agree with SUBGROUPS) takes plain products (mild_grad); strong
    // decays are factored around a reference step (strong_grad).
    let bc = cum_keys(ch.b, ch.h, ch.last, n0);
    let own_mild = all(bc.lo > vec4<f32>(-34.0)) && all(bc.hi > vec4<f32>(-34.0));
#ifdef SUBGROUPS
    let mild = subgroupAll(own_mild);
#else
    let mild = own_mild;
#endif
    if mild {
        acc = mild_grad(ch, r0, n0, near, bc, same_rows, lane);
    } else {
        acc = strong_grad(ch, r0, n0, near, same_rows, lane);
    }
#else
#ifdef BACKWARD
    acc = span(acc, ch, r0, n0, r0, ch.count, same_rows, lane, false);
#else
    acc = span(acc, ch, r0, n0, 0u, near, same_rows, lane, false);
#endif
#endif
#else
#ifdef BACKWARD
    acc = span(acc, ch, r0, n0, r0, ch.count, same_rows, lane, false);
#else
    acc = span(acc, ch, r0, n0, 0u, near, same_rows, lane, false);
#endif
#endif
    // The state's term, weighted e^{b_r} (forward) or e^{b_C − b_r} (a
    // vector decay: q̃ / k̃ carry the weights; with GRADQK it was added above).
#ifdef DECAY_VECTOR
#ifndef GRADQK
    acc = add_blk(acc, state_term(ch, tr, n0, same_rows, lane));
#endif
#else
    var it = state_term(ch, tr, n0, same_rows, lane);
    let br = cum_steps(ch.b, ch.h, tr, 0u);
#ifdef BACKWARD
    it = scale_rows(it, v8_exp(v8_min0(v8_sub(v8_splat(cumc(ch.b, ch.h, ch.last, 0u)), br))));
#else
    it = scale_rows(it, v8_exp(v8_min0(br)));
#endif
    acc = add_blk(acc, it);
#endif
    for (var i = 0u; i < 8u; i++) {
        let t = tr + i;
        let row = blk_row(acc, i);
        for (var j = 0u; j < 8u; j++) {
            if r0 + i < ch.count && n0 + j < n_width() { out[z_index(ch, t, n0 + j)] = v8_get(row, j); }
        }
    }
}
#endif

#ifdef LA_PRESCALE
@group(0) @binding(3) var<storage, read> q: array<f32>;            // key width
@group(0) @binding(4) var<storage, read> k: array<f32>;            // key width
@group(0) @binding(5) var<storage, read_write> qh: array<f32>;     // q̂: q_t ⊙ e^{b_t − b_first}
@group(0) @binding(6) var<storage, read_write> kh: array<f32>;     // k̂: k_t ⊙ e^{b_last − b_t}
@group(0) @binding(7) var<storage, read_write> qc: array<f32>;     // q̃: q_t ⊙ e^{b_t} (relative to the chunk's start)
@group(0) @binding(8) var<storage, read_write> kc: array<f32>;     // k̃: k_t ⊙ e^{b_C − b_t} (to the chunk's end)
@group(0) @binding(9) var<storage, read> g: array<f32>;            // log α, key width

// A vector decay's cumulative log-decays b_t within each chunk (la_cumulate's
// work, written to gc), then the operands relative to their block of 8
// steps (the first step of the block for q, the last within the chunk for
// k) and to their chunk (its start for q, its end for k, which la_map and
// the state terms of la_apply use); every factor ≤ 1, two exps per element
// (the chunk-relative ones are block-relative times a factor per block).
// One invocation per (key, chunk, b·H + h) walks the chunk's steps.
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
