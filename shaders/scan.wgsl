// First-order linear recurrences over time, one workgroup's worth of time
// parallelism at most (see shared/scan_core.wgsl for the recurrence, the
// layouts and the LOG / VEC4 / F16 defines; scan_tp.wgsl splits time across
// workgroups).
//
// Entries (each with a `_backward` twin for the gradient recurrence):
//   scan_serial   one invocation per (b, d) walks the sequence (parallel over
//                 batch × channels; best when B·D fills the device, and on
//                 CPU adapters, where it streams whole cache lines).
//   scan_chunked  a workgroup per (b, 8 channels): 8 segments of `seg` steps
//                 per channel summarise their affine maps, scan them across
//                 segments, then replay with the carried-in state; chunks of
//                 8·seg steps follow each other inside the workgroup. No
//                 workgroup waits for another.
// Flags:
//   SUBGROUP  the chunked kernel scans across segments with subgroup
//             shuffles (8-lane groups inside subgroups of ≥ 8) instead of
//             workgroup memory.

#ifdef SCAN_SERIAL_BACKWARD
#define BACKWARD
#define SERIAL
#endif
#ifdef SCAN_SERIAL
#define SERIAL
#endif
#ifdef SCAN_CHUNKED_BACKWARD
#define BACKWARD
#define CHUNKED
#endif
#ifdef SCAN_CHUNKED
#define CHUNKED
#endif
#import scan_core

#ifdef SERIAL
fn serial(gid: vec3<u32>, nwg: vec3<u32>) {
    let n = p.batch * p.dim;
    for (var i = gid.x; i < n; i += nwg.x * 64u) {
        let b = i / p.dim;
        let d = i % p.dim;
        var x = start(b, d);
        for (var u = 0u; u < p.steps; u++) {
            let t = time_of(u);
            x = apply(step_map(b, t, d), x);
            emit(b, t, d, x);
        }
        finish(b, d, x);
    }
}
#endif

#ifdef SCAN_SERIAL
@compute @workgroup_size(64)
fn scan_serial(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    serial(gid, nwg);
}
#endif

#ifdef SCAN_SERIAL_BACKWARD
@compute @workgroup_size(64)
fn scan_serial_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    serial(gid, nwg);
}
#endif

#ifdef CHUNKED
#ifndef SUBGROUP
var<workgroup> part: array<Map, 64>;
#endif

fn chunked(lid: u32, wid: vec3<u32>, sg: u32) {
    let s = lid % 8u;             // segment within the chunk
    let d = wid.x * 8u + lid / 8u; // channel
    let b = wid.y;
    let valid = d < p.dim;
    var carry = V(0.0);
    if valid { carry = start(b, d); }
    let k = p.seg;
    for (var c0 = 0u; c0 < p.steps; c0 += 8u * k) {
        let u0 = min(c0 + s * k, p.steps);
        let u1 = min(u0 + k, p.steps);
        // Pass 1: this segment's map.
        var m = identity();
        if valid {
            for (var u = u0; u < u1; u++) { m = combine(m, step_map(b, time_of(u), d)); }
        }
        // Inclusive scan of the 8 segments' maps, then exclusive by one.
        var incl = m;
#ifdef SUBGROUP
        for (var off = 1u; off < 8u; off <<= 1u) {
            let o = Map(subgroupShuffleUp(incl.m, off), subgroupShuffleUp(incl.c, off));
            if s >= off { incl = combine(o, incl); }
        }
        var excl = Map(subgroupShuffleUp(incl.m, 1u), subgroupShuffleUp(incl.c, 1u));
        if s == 0u { excl = identity(); }
        let base = sg - s;
        let total = Map(subgroupShuffle(incl.m, base + 7u), subgroupShuffle(incl.c, base + 7u));
#else
        for (var off = 1u; off < 8u; off <<= 1u) {
            part[lid] = incl;
            workgroupBarrier();
            if s >= off { incl = combine(part[lid - off], incl); }
            workgroupBarrier();
        }
        part[lid] = incl;
        workgroupBarrier();
        var excl = identity();
        if s > 0u { excl = part[lid - 1u]; }
        let total = part[lid - s + 7u];
        workgroupBarrier();
#endif
        // Pass 2: replay from the state entering this segment.
        if valid {
            var x = apply(excl, carry);
            for (var u = u0; u < u1; u++) {
                let t = time_of(u);
                x = apply(step_map(b, t, d), x);
                emit(b, t, d, x);
            }
        }
        carry = apply(total, carry);
    }
    if valid && s == 0u { finish(b, d, carry); }
}
#endif

#ifdef SCAN_CHUNKED
@compute @workgroup_size(64)
fn scan_chunked(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>
#ifdef SUBGROUP
                , @builtin(subgroup_invocation_id) sg: u32
#endif
                ) {
#ifdef SUBGROUP
    chunked(lid, wid, sg);
#else
    chunked(lid, wid, 0u);
#endif
}
#endif

#ifdef SCAN_CHUNKED_BACKWARD
@compute @workgroup_size(64)
fn scan_chunked_backward(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>
#ifdef SUBGROUP
                         , @builtin(subgroup_invocation_id) sg: u32
#endif
                         ) {
#ifdef SUBGROUP
    chunked(lid, wid, sg);
#else
    chunked(lid, wid, 0u);
#endif
}
#endif
