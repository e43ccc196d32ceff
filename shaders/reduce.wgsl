// Reductions over one axis of a tensor viewed as (O, N, I): O = outer,
// N = reduced axis, I = inner. op: 0 sum, 1 mean, 2 max, 3 sum of squares.
// `reduce_rows` (I = 1): one workgroup per row, tree reduction in workgroup
// memory. `reduce_cols` (I > 1): one invocation per output, reading along N
// with stride I (consecutive invocations read consecutive addresses).
// `sumsq_partial`: per-workgroup partial sums of x² over a whole tensor, the
// first pass of the global L2 norm used for gradient clipping.

struct Params {
    outer: u32, n: u32, inner: u32, op: u32,
    out_offset: u32, sqrt_out: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // (O, N, I)
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // (O, I) at out_offset

const WG: u32 = 256u;
var<workgroup> scratch: array<f32, 256>;

fn identity() -> f32 {
    return select(0.0, -3.402823e38, p.op == 2u);
}

fn combine(acc: f32, v: f32) -> f32 {
    return select(acc + v, max(acc, v), p.op == 2u);
}

fn lift(v: f32) -> f32 {
    return select(v, v * v, p.op == 3u);
}

fn finish(v: f32) -> f32 {
    var r = select(v, v / f32(p.n), p.op == 1u);
    if p.sqrt_out != 0u { r = sqrt(r); }
    return r;
}

fn tree(lid: u32) -> f32 {
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier();
        if lid < s { scratch[lid] = combine(scratch[lid], scratch[lid + s]); }
    }
    workgroupBarrier();
    let r = scratch[0];
    workgroupBarrier();
    return r;
}

#ifdef REDUCE_ROWS
@compute @workgroup_size(256)
fn reduce_rows(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var row = wid.x; row < p.outer; row += nwg.x) {
        var acc = identity();
        for (var i = lid; i < p.n; i += WG) {
            acc = combine(acc, lift(x[row * p.n + i]));
        }
        scratch[lid] = acc;
        let r = tree(lid);
        if lid == 0u { y[p.out_offset + row] = finish(r); }
    }
}
#endif

#ifdef REDUCE_COLS
@compute @workgroup_size(256)
fn reduce_cols(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let total = p.outer * p.inner;
    for (var o = gid.x; o < total; o += nwg.x * WG) {
        let outer = o / p.inner;
        let inner = o % p.inner;
        var acc = identity();
        for (var j = 0u; j < p.n; j++) {
            acc = combine(acc, lift(x[(outer * p.n + j) * p.inner + inner]));
        }
        y[p.out_offset + o] = finish(acc);
    }
}
#endif

#ifdef SUMSQ_PARTIAL
// Here p.n is the element count; workgroup w writes y[out_offset + w].
@compute @workgroup_size(256)
fn sumsq_partial(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    var acc = 0.0;
    for (var i = wid.x * WG + lid; i < p.n; i += nwg.x * WG) {
        let v = x[i];
        acc += v * v;
    }
    scratch[lid] = acc;
    let r = tree(lid);
    if lid == 0u { y[p.out_offset + wid.x] = r; }
}
#endif
