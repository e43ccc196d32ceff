// Data movement: batched transpose and copies along an axis (slice, concat).
// `transpose`: (Z, R, C) -> (Z, C, R) through a 16x17 workgroup tile so that
//   both the reads and the writes are contiguous across invocations.
// `copy_axis`: src viewed as (O, NS, I), dst as (O, ND, I); copies LEN rows of
//   the middle axis from src_off in src to dst_off in dst.
// `swap01`: (R, C, I) -> (C, R, I), e.g. batch-first <-> time-major.

struct Params {
    rows: u32, cols: u32, outer: u32, inner: u32,
    ns: u32, nd: u32, src_off: u32, dst_off: u32,
    len: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

#import storage
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<S>;        // f32, or f16 with F16
@group(0) @binding(2) var<storage, read_write> dst: array<S>;

#ifdef TRANSPOSE
var<workgroup> tile: array<S, 272>;  // 16 x 17, padded against bank conflicts

// src (Z, R, C), dst (Z, C, R)
@compute @workgroup_size(16, 16, 1)
fn transpose(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let z = wid.z;
    let r = wid.y * 16u + lid.y;
    let c = wid.x * 16u + lid.x;
    let plane = p.rows * p.cols;
    if r < p.rows && c < p.cols {
        tile[lid.y * 17u + lid.x] = src[z * plane + r * p.cols + c];
    }
    workgroupBarrier();
    let tr = wid.y * 16u + lid.x;  // output column (input row)
    let tc = wid.x * 16u + lid.y;  // output row (input column)
    if tr < p.rows && tc < p.cols {
        dst[z * plane + tc * p.rows + tr] = tile[lid.x * 17u + lid.y];
    }
}
#endif

#ifdef COPY_AXIS
@compute @workgroup_size(256)
fn copy_axis(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = p.outer * p.len * p.inner;
    for (var i = gid.x; i < n; i += nwg.x * 256u) {
        let inner = i % p.inner;
        let j = (i / p.inner) % p.len;
        let o = i / (p.inner * p.len);
        dst[(o * p.nd + p.dst_off + j) * p.inner + inner] = src[(o * p.ns + p.src_off + j) * p.inner + inner];
    }
}
#endif

#ifdef SWAP01
// src (R, C, I) with R = rows, C = cols, I = inner; dst (C, R, I).
@compute @workgroup_size(256)
fn swap01(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = p.rows * p.cols * p.inner;
    for (var i = gid.x; i < n; i += nwg.x * 256u) {
        let inner = i % p.inner;
        let r = (i / p.inner) % p.rows;
        let c = i / (p.inner * p.rows);
        dst[i] = src[(r * p.cols + c) * p.inner + inner];
    }
}
#endif
