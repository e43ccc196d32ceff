// The chunk's causal scores (CH × CH, lower triangle), one 8x8 block per
// invocation (shared/la_chunk_core.wgsl): A_ts = Σ_k q_tk k_sk e^{b_tk −
// b_sk}; BACKWARD: P_ts = do_t · v_s (times e^{b_t − b_s} for scalar
// decays; a vector decay is applied where P is used, in la_apply).

#import la_chunk_core

// The forward scores of a vector decay weight each key (far_scores,
// diag_scores); the others are plain products, decayed afterwards.
#ifdef DECAY_VECTOR
#ifndef BACKWARD
#define VECTOR_SCORES
#endif
#endif

@group(0) @binding(3) var<storage, read> xs: array<f32>;        // rows t: q / dout (BACKWARD)
// With VEC4 (the operands' width a multiple of 4) the column operands are
// read as vec4s: four indices of eight steps are eight 16-byte loads.
#ifdef VEC4
alias Y = vec4<f32>;
#else
alias Y = f32;
#endif
@group(0) @binding(4) var<storage, read> ys: array<Y>;          // columns s: k / v
@group(0) @binding(5) var<storage, read_write> att: array<f32>; // (B·H·K, CH, CH)
@group(0) @binding(6) var<storage, read> xh: array<f32>;        // DECAY_VECTOR forward: q̂ (la_prescale)
@group(0) @binding(7) var<storage, read> yh: array<f32>;        // DECAY_VECTOR forward: k̂
@group(0) @binding(8) var<storage, read> yc: array<Y>;          // DECAY_VECTOR forward: k̃ (q̃ is bound as lg)

fn ys1(i: u32) -> f32 {
#ifdef VEC4
    return ys[i / 4u][i % 4u];
#else
    return ys[i];
#endif
}
fn yc1(i: u32) -> f32 {
#ifdef VEC4
    return yc[i / 4u][i % 4u];
#else
    return yc[i];
#endif
}

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
    if t < p.len { return ys1(at(ch.b, ch.h, t, i)); }
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

#ifdef VEC4
// Steps t..t+8 at indices i..i+4 (i a multiple of 4) of ys, or with `rel`
// of yc: one 16-byte load per step; quad_col(r, j) is index i + j.
fn y_quads(ch: Chunk, t: u32, i: u32, rel: bool) -> array<vec4<f32>, 8> {
    var r: array<vec4<f32>, 8>;
    for (var j = 0u; j < 8u; j++) {
        if t + j < p.len {
            let o = at(ch.b, ch.h, t + j, i) / 4u;
            if rel { r[j] = yc[o]; } else { r[j] = ys[o]; }
        }
    }
    return r;
}
#endif

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
    if t < p.len { return yc1(kat(ch.b, ch.h, t, i)); }
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
#ifdef VEC4
            let ya = y_quads(ch, ts, i, true);
            let yb = y_quads(ch, ts, i + 4u, true);
            for (var kk = 0u; kk < 4u; kk++) {
                let x = pick(shuffled(x0, kk), shuffled(x1, kk), upper);
                acc = upd(acc, v8_mul(x, v8_splat(subgroupShuffle(f, kk))), quad_col(ya, kk));
            }
            for (var kk = 4u; kk < 8u; kk++) {
                let x = pick(shuffled(x0, kk), shuffled(x1, kk), upper);
                acc = upd(acc, v8_mul(x, v8_splat(subgroupShuffle(f, kk))), quad_col(yb, kk - 4u));
            }
#else
            for (var kk = 0u; kk < 8u; kk++) {
                let x = pick(shuffled(x0, kk), shuffled(x1, kk), upper);
                acc = upd(acc, v8_mul(x, v8_splat(subgroupShuffle(f, kk))), kc_steps(ch, ts, i + kk));
            }
#endif
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
#ifdef VEC4
        let ya = y_quads(ch, ts, i, false);
        let yb = y_quads(ch, ts, i + 4u, false);
        for (var kk = 0u; kk < 4u; kk++) {
            acc = upd(acc, pick(shuffled(x0, kk), shuffled(x1, kk), upper), quad_col(ya, kk));
        }
        for (var kk = 4u; kk < 8u; kk++) {
            acc = upd(acc, pick(shuffled(x0, kk), shuffled(x1, kk), upper), quad_col(yb, kk - 4u));
        }
#else
        for (var kk = 0u; kk < 8u; kk++) {
            let x = pick(shuffled(x0, kk), shuffled(x1, kk), upper);
            acc = upd(acc, x, y_steps(ch, ts, i + kk));
        }
#endif
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
