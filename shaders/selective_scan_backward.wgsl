// The selective scan's backward in three dispatches (recurrence and shapes:
// shared/selective_core.wgsl). The state gradient runs backwards in time,
//   dx_t = dy_t C_t + a_{t+1} dx_{t+1},   dy_t = dout_t · silu(z_t),
// a first-order recurrence per (b, d, n) again, chunked the same way:
//   selective_scan_reduce_backward  per (b, d, chunk): the chunk's map of dx.
//   selective_scan_carry_backward   per (b, d, n): the walk over the chunks
//                                   from the end, giving each chunk the dx
//                                   entering it from the future.
//   selective_scan_apply_backward   per (b, WG channels of one group,
//                                   chunk): per state index, replays the
//                                   chunk's forward from the saved entering
//                                   state, then walks it back, writing du, dδ, dz, dh0, and partial
//                                   sums of dA, dD, dδ_bias (per b, chunk) and
//                                   of dB, dC (per WG channels; a workgroup
//                                   reduction over the channels of a group).
// WG: channels per workgroup of the last pass (64, or 8 on CPU adapters).
// SUBGROUP: WG is the adapter's (fixed) subgroup size, and the workgroup's
// sums are subgroupAdds instead of a workgroup-memory reduction.

#define BACKWARD
#ifdef SELECTIVE_SCAN_CARRY_BACKWARD
#define CARRY
#endif
#import selective_core

@group(0) @binding(7) var<storage, read> dlast: array<f32>;       // (B, D, N): dL/d final state, read with FLAG_DLAST
@group(0) @binding(8) var<storage, read> states: array<f32>;      // (B, D, K, N, 2): slot 0 = forward state entering each chunk
@group(0) @binding(9) var<storage, read> dout: array<f32>;        // like u
@group(0) @binding(10) var<storage, read_write> sums: array<f32>; // (B, D, K, N, 2): dx maps, then dx entering from the future
@group(0) @binding(11) var<storage, read_write> dseq: array<f32>; // 3 planes like u: du, dδraw, dz
@group(0) @binding(12) var<storage, read_write> dbc: array<f32>;  // (2, B, G, blocks, N, L): partial dB, dC
@group(0) @binding(13) var<storage, read_write> dchan: array<f32>; // (B·K, D, N + 2): partial dA, dD, dδ_bias
@group(0) @binding(14) var<storage, read_write> dh0: array<f32>;  // (B, D, N), written with FLAG_H0

fn chunk_of(v: u32) -> u32 { return p.chunks - 1u - v; }
fn start_of(b: u32, d: u32, n: u32) -> f32 {
    if has(FLAG_DLAST) { return dlast[state_at(b, d, n)]; }
    return 0.0;
}

// a at the step after the chunk, which carries the dx entering from the
// future; past the end that dx is dL/d final state, taken as it is.
fn a_after(c: Cell, an: f32) -> f32 {
    let t1 = c.t0 + c.count;
    if t1 >= p.len { return 1.0; }
    return exp(delta_of(delta[seq(c.b, c.d, t1)], c.d) * an);
}

#ifdef SELECTIVE_SCAN_REDUCE_BACKWARD
@compute @workgroup_size(64)
fn selective_scan_reduce_backward(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let c = cell_of(wid.x * 64u + lid, wid.y, wid.z);
    if !c.live { return; }
    var dl: array<f32, CH>;
    var dy: array<f32, CH>;
    for (var i = 0u; i < CH; i++) {
        if i < c.count {
            let t = c.t0 + i;
            dl[i] = delta_of(delta[seq(c.b, c.d, t)], c.d);
            dy[i] = dout[seq(c.b, c.d, t)] * gate_of(c.b, c.d, t);
        }
    }
    let g = group_of(c.d);
    for (var n = 0u; n < p.nstate; n++) {
        let an = a_of(c.d, n);
        // dx entering from the future is multiplied by ∏ a_{t+1} over the chunk.
        var m = a_after(c, an);
        var s = 0.0;
        var coef = m;
        for (var j = 0u; j < CH; j++) {
            let i = CH - 1u - j;
            if i < c.count {
                s = dy[i] * cm[bc(c.b, g, n, c.t0 + i)] + coef * s;
                coef = exp(dl[i] * an);
                if i > 0u { m *= coef; }
            }
        }
        sums[sum_at(c.b, c.d, c.k, n, 0u)] = m;
        sums[sum_at(c.b, c.d, c.k, n, 1u)] = s;
    }
}
#endif

#ifdef SELECTIVE_SCAN_CARRY_BACKWARD
@compute @workgroup_size(64)
fn selective_scan_carry_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let l = lane_of(gid.x);
    if l.live { carry(l); }
}
#endif

#ifdef SELECTIVE_SCAN_APPLY_BACKWARD
#define WG 64u
#ifndef SUBGROUP
// Per-lane contributions to dB (first CH) and dC (next CH) of one state index.
var<workgroup> red: array<f32, WG * 2u * CH>;
#endif

@compute @workgroup_size(WG)
fn selective_scan_apply_backward(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let per_group = p.dim / p.groups;
    let g = wid.x / p.blocks;
    let blk = wid.x % p.blocks;
    let r = blk * WG + lid;
    let c = cell_of(select(p.dim, g * per_group + r, r < per_group), wid.y, wid.z);
    // Lanes past the group compute nothing but take part in the barriers.
    var dl: array<f32, CH>;
    var uu: array<f32, CH>;
    var dy: array<f32, CH>;
    var y: array<f32, CH>;
    var xh: array<f32, CH>;
    var ah: array<f32, CH>;
    var du: array<f32, CH>;
    var ddl: array<f32, CH>;
    var pb: array<f32, CH>;
    var pc: array<f32, CH>;
    var skip = 0.0;
    for (var i = 0u; i < CH; i++) {
        y[i] = 0.0;
        dl[i] = 0.0;
        uu[i] = 0.0;
        dy[i] = 0.0;
        ddl[i] = 0.0;
        if c.live && i < c.count {
            let s = seq(c.b, c.d, c.t0 + i);
            dl[i] = delta_of(delta[s], c.d);
            uu[i] = u[s];
            dy[i] = dout[s] * gate_of(c.b, c.d, c.t0 + i);
        }
    }
    if c.live { skip = skip_of(c.d); }
    var dskip = 0.0;
    for (var i = 0u; i < CH; i++) {
        du[i] = dy[i] * skip;
        dskip += dy[i] * uu[i];
    }
    for (var n = 0u; n < p.nstate; n++) {
        for (var i = 0u; i < CH; i++) {
            pb[i] = 0.0;
            pc[i] = 0.0;
        }
        if c.live {
            let an = a_of(c.d, n);
            let x0 = states[sum_at(c.b, c.d, c.k, n, 0u)];
            var x = x0;
            for (var i = 0u; i < CH; i++) {
                if i < c.count {
                    ah[i] = exp(dl[i] * an);
                    x = ah[i] * x + dl[i] * uu[i] * bm[bc(c.b, g, n, c.t0 + i)];
                    xh[i] = x;
                    // The forward's y, for dz at the end.
                    y[i] += cm[bc(c.b, g, n, c.t0 + i)] * x;
                }
            }
            var s = sums[sum_at(c.b, c.d, c.k, n, 0u)];
            var a_next = a_after(c, an);
            var da_sum = 0.0;
            for (var j = 0u; j < CH; j++) {
                let i = CH - 1u - j;
                if i < c.count {
                    let t = c.t0 + i;
                    let bv = bm[bc(c.b, g, n, t)];
                    s = dy[i] * cm[bc(c.b, g, n, t)] + a_next * s;
                    let ai = ah[i];
                    var xprev = x0;
                    if i > 0u { xprev = xh[i - 1u]; }
                    let da = s * xprev;
                    ddl[i] += da * ai * an + s * bv * uu[i];
                    du[i] += s * dl[i] * bv;
                    da_sum += da * ai * dl[i];
                    pb[i] = s * dl[i] * uu[i];
                    pc[i] = dy[i] * xh[i];
                    a_next = ai;
                }
            }
            if c.k == 0u && has(FLAG_H0) { dh0[state_at(c.b, c.d, n)] = a_next * s; }
            dchan[((c.b * p.chunks + c.k) * p.dim + c.d) * (p.nstate + 2u) + n] = da_sum;
        }
        // Sum dB and dC over this workgroup's channels.
        let o = (((c.b * p.groups + g) * p.blocks + blk) * p.nstate + n) * p.len + c.t0;
        let plane_bc = p.batch * p.groups * p.blocks * p.nstate * p.len;
#ifdef SUBGROUP
        // The workgroup is one subgroup (WG = its size): no workgroup memory.
        for (var i = 0u; i < CH; i++) {
            let sb = subgroupAdd(pb[i]);
            let sc = subgroupAdd(pc[i]);
            if lid == 0u && i < c.count {
                dbc[o + i] = sb;
                dbc[plane_bc + o + i] = sc;
            }
        }
#else
        for (var i = 0u; i < CH; i++) {
            red[lid * 2u * CH + i] = pb[i];
            red[lid * 2u * CH + CH + i] = pc[i];
        }
        workgroupBarrier();
        for (var j = lid; j < 2u * CH; j += WG) {
            let w = j / CH;
            let i = j % CH;
            var acc = 0.0;
            for (var l = 0u; l < WG; l++) { acc += red[l * 2u * CH + j]; }
            if i < c.count { dbc[w * plane_bc + o + i] = acc; }
        }
        workgroupBarrier();
#endif
    }
    if !c.live { return; }
    let plane = p.batch * p.dim * p.len;
    var dbias = 0.0;
    for (var i = 0u; i < CH; i++) {
        if i < c.count {
            let t = c.t0 + i;
            let s = seq(c.b, c.d, t);
            var dd = ddl[i];
            if has(FLAG_SOFTPLUS) { dd *= sigmoid_f(delta[s] + bias_of(c.d)); }
            dbias += dd;
            var dz = 0.0;
            if has(FLAG_Z) {
                let zv = z[s];
                let sg = sigmoid_f(zv);
                dz = dout[s] * (y[i] + skip * uu[i]) * sg * (1.0 + zv * (1.0 - sg));
            }
            dseq[s] = du[i];
            dseq[plane + s] = dd;
            dseq[2u * plane + s] = dz;
        }
    }
    let o = ((c.b * p.chunks + c.k) * p.dim + c.d) * (p.nstate + 2u);
    dchan[o + p.nstate] = dskip;
    dchan[o + p.nstate + 1u] = dbias;
}
#endif
