// The selective scan's forward in three dispatches (see
// shared/selective_core.wgsl for the recurrence and the shapes):
//   selective_scan_reduce  one invocation per (b, d, chunk) composes the
//                          chunk's steps into (∏ a, x from 0) for every n.
//   selective_scan_carry   one invocation per (b, d, n) walks the chunk
//                          maps: each chunk's entering state (kept for the
//                          backward) and the final state.
//   selective_scan_apply   one invocation per (b, d, chunk) replays the
//                          chunk from its entering states and writes out.

#ifdef SELECTIVE_SCAN_CARRY
#define CARRY
#endif
#import selective_core

@group(0) @binding(7) var<storage, read> h0: array<f32>;          // (B, D, N), read with FLAG_H0
@group(0) @binding(8) var<storage, read_write> out: array<f32>;   // like u
@group(0) @binding(9) var<storage, read_write> last: array<f32>;  // (B, D, N) final state
@group(0) @binding(10) var<storage, read_write> sums: array<f32>; // (B, D, K, N, 2) chunk maps, then entering states

fn chunk_of(v: u32) -> u32 { return v; }
fn start_of(b: u32, d: u32, n: u32) -> f32 {
    if has(FLAG_H0) { return h0[state_at(b, d, n)]; }
    return 0.0;
}

#ifdef SELECTIVE_SCAN_REDUCE
@compute @workgroup_size(64)
fn selective_scan_reduce(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let c = cell_of(wid.x * 64u + lid, wid.y, wid.z);
    if !c.live { return; }
    var dl: array<f32, CH>;
    var du: array<f32, CH>;  // δ u
    var total = 0.0;
    for (var i = 0u; i < CH; i++) {
        if i < c.count {
            let s = seq(c.b, c.d, c.t0 + i);
            dl[i] = delta_of(delta[s], c.d);
            du[i] = dl[i] * u[s];
            total += dl[i];
        }
    }
    let g = group_of(c.d);
    for (var n = 0u; n < p.nstate; n++) {
        let an = a_of(c.d, n);
        var x = 0.0;
        for (var i = 0u; i < CH; i++) {
            if i < c.count { x = exp(dl[i] * an) * x + du[i] * bm[bc(c.b, g, n, c.t0 + i)]; }
        }
        sums[sum_at(c.b, c.d, c.k, n, 0u)] = exp(total * an);
        sums[sum_at(c.b, c.d, c.k, n, 1u)] = x;
    }
}
#endif

#ifdef SELECTIVE_SCAN_CARRY
@compute @workgroup_size(64)
fn selective_scan_carry(@builtin(global_invocation_id) gid: vec3<u32>) {
    let l = lane_of(gid.x);
    if !l.live { return; }
    last[state_at(l.b, l.d, l.n)] = carry(l);
}
#endif

#ifdef SELECTIVE_SCAN_APPLY
@compute @workgroup_size(64)
fn selective_scan_apply(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let c = cell_of(wid.x * 64u + lid, wid.y, wid.z);
    if !c.live { return; }
    var dl: array<f32, CH>;
    var uu: array<f32, CH>;
    var y: array<f32, CH>;
    for (var i = 0u; i < CH; i++) {
        y[i] = 0.0;
        if i < c.count {
            let s = seq(c.b, c.d, c.t0 + i);
            dl[i] = delta_of(delta[s], c.d);
            uu[i] = u[s];
        }
    }
    let g = group_of(c.d);
    for (var n = 0u; n < p.nstate; n++) {
        let an = a_of(c.d, n);
        var x = sums[sum_at(c.b, c.d, c.k, n, 0u)];
        for (var i = 0u; i < CH; i++) {
            if i < c.count {
                let t = c.t0 + i;
                x = exp(dl[i] * an) * x + dl[i] * uu[i] * bm[bc(c.b, g, n, t)];
                y[i] += cm[bc(c.b, g, n, t)] * x;
            }
        }
    }
    let skip = skip_of(c.d);
    for (var i = 0u; i < CH; i++) {
        if i < c.count {
            let t = c.t0 + i;
            out[seq(c.b, c.d, t)] = (y[i] + skip * uu[i]) * gate_of(c.b, c.d, t);
        }
    }
}
#endif
