// Time-parallel first-order scans: reduce, then scan, then rescan, so that
// time is split across workgroups as well as batch × channels (for GPUs
// with few (batch, channel) pairs per long sequence). See shared/scan_core.wgsl
// for the recurrence, layouts and defines. No workgroup ever waits for
// another: the three passes are three dispatches.
//
// Time is cut into `chunks` chunks of `seg` steps (virtual steps u: time
// runs backwards in the gradient). `sums` holds two V per (b, chunk, d):
// (b, k, 0, d) and (b, k, 1, d) in (B, chunks, 2, D) order.
//   scan_tp_reduce  one invocation per (b, chunk, d) composes its chunk's
//                   step maps into (m, c) = sums[b, k, ·, d].
//   scan_tp_carry   a workgroup per (b, d): 64 invocations each compose a
//                   run of chunk summaries, a workgroup scan gives each run
//                   its prefix, and each chunk's carry-in state (the state
//                   before its first step) replaces its m; the final state
//                   goes to `last` (forward).
//   scan_tp_apply   one invocation per (b, chunk, d) replays its chunk from
//                   the carry-in, writing every step's outputs.
// Memory traffic: the sequences are read twice and written once (~20 bytes
// per element in f32 against the 12 of one pass).
// Each entry has a `_backward` twin for the gradient recurrence.

#ifdef SCAN_TP_REDUCE_BACKWARD
#define BACKWARD
#define REDUCE
#endif
#ifdef SCAN_TP_REDUCE
#define REDUCE
#endif
#ifdef SCAN_TP_CARRY_BACKWARD
#define BACKWARD
#define CARRY
#endif
#ifdef SCAN_TP_CARRY
#define CARRY
#endif
#ifdef SCAN_TP_APPLY_BACKWARD
#define BACKWARD
#define APPLY
#endif
#ifdef SCAN_TP_APPLY
#define APPLY
#endif
#import scan_core

#ifdef BACKWARD
@group(0) @binding(9) var<storage, read_write> sums: array<V>;  // (B, chunks, 2, D)
#else
@group(0) @binding(6) var<storage, read_write> sums: array<V>;  // (B, chunks, 2, D)
#endif

fn sum_at(b: u32, k: u32, which: u32, d: u32) -> u32 {
    return ((b * p.chunks + k) * 2u + which) * p.dim + d;
}

// The chunk and channel of one invocation of the reduce and apply passes.
struct Cell { b: u32, k: u32, d: u32, u0: u32, u1: u32 }

fn cell(lid: u32, wid: vec3<u32>) -> Cell {
    let k = wid.y;
    let u0 = min(k * p.seg, p.steps);
    return Cell(wid.z, k, wid.x * 64u + lid, u0, min(u0 + p.seg, p.steps));
}

#ifdef REDUCE
fn reduce(lid: u32, wid: vec3<u32>) {
    let c = cell(lid, wid);
    if c.d >= p.dim { return; }
    var m = identity();
    for (var u = c.u0; u < c.u1; u++) { m = combine(m, step_map(c.b, time_of(u), c.d)); }
    sums[sum_at(c.b, c.k, 0u, c.d)] = m.m;
    sums[sum_at(c.b, c.k, 1u, c.d)] = m.c;
}
#endif

#ifdef CARRY
var<workgroup> part: array<Map, 64>;

fn carry(lid: u32, wid: vec3<u32>) {
    let d = wid.x;
    let b = wid.y;
    let per = (p.chunks + 63u) / 64u;
    let k0 = min(lid * per, p.chunks);
    let k1 = min(k0 + per, p.chunks);
    var m = identity();
    for (var k = k0; k < k1; k++) {
        m = combine(m, Map(sums[sum_at(b, k, 0u, d)], sums[sum_at(b, k, 1u, d)]));
    }
    // Inclusive Kogge-Stone scan of the 64 runs, then exclusive by one.
    var incl = m;
    for (var off = 1u; off < 64u; off <<= 1u) {
        part[lid] = incl;
        workgroupBarrier();
        if lid >= off { incl = combine(part[lid - off], incl); }
        workgroupBarrier();
    }
    part[lid] = incl;
    workgroupBarrier();
    var excl = identity();
    if lid > 0u { excl = part[lid - 1u]; }
    var x = apply(excl, start(b, d));
    for (var k = k0; k < k1; k++) {
        let f = Map(sums[sum_at(b, k, 0u, d)], sums[sum_at(b, k, 1u, d)]);
        sums[sum_at(b, k, 0u, d)] = x;
        x = apply(f, x);
    }
    // The last run ends where the sequence ends (later runs are empty).
    if lid == 63u { finish(b, d, x); }
}
#endif

#ifdef APPLY
fn replay(lid: u32, wid: vec3<u32>) {
    let c = cell(lid, wid);
    if c.d >= p.dim { return; }
    var x = sums[sum_at(c.b, c.k, 0u, c.d)];
    for (var u = c.u0; u < c.u1; u++) {
        let t = time_of(u);
        x = apply(step_map(c.b, t, c.d), x);
        emit(c.b, t, c.d, x);
    }
}
#endif

#ifdef SCAN_TP_REDUCE
@compute @workgroup_size(64)
fn scan_tp_reduce(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) { reduce(lid, wid); }
#endif
#ifdef SCAN_TP_REDUCE_BACKWARD
@compute @workgroup_size(64)
fn scan_tp_reduce_backward(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) { reduce(lid, wid); }
#endif
#ifdef SCAN_TP_CARRY
@compute @workgroup_size(64)
fn scan_tp_carry(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) { carry(lid, wid); }
#endif
#ifdef SCAN_TP_CARRY_BACKWARD
@compute @workgroup_size(64)
fn scan_tp_carry_backward(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) { carry(lid, wid); }
#endif
#ifdef SCAN_TP_APPLY
@compute @workgroup_size(64)
fn scan_tp_apply(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) { replay(lid, wid); }
#endif
#ifdef SCAN_TP_APPLY_BACKWARD
@compute @workgroup_size(64)
fn scan_tp_apply_backward(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) { replay(lid, wid); }
#endif
