// Calibration kernels for `recur-bench peak`.
// `fma_peak`: each invocation runs `iters` rounds of eight independent vec4
//   FMA chains (64 flops a round) and stores one value so nothing is elided.
// `copy_peak`: dst = src with vec4 loads and stores (bytes moved = 2 * size).

struct Params {
    n: u32, iters: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

#ifdef FMA_PEAK
@compute @workgroup_size(256)
fn fma_peak(@builtin(global_invocation_id) gid: vec3<u32>) {
    let s = src[gid.x % p.n];
    let m = vec4<f32>(0.9999, 1.0001, 0.99995, 1.00005);
    var a0 = s; var a1 = s + 1.0; var a2 = s + 2.0; var a3 = s + 3.0;
    var a4 = s + 4.0; var a5 = s + 5.0; var a6 = s + 6.0; var a7 = s + 7.0;
    for (var i = 0u; i < p.iters; i++) {
        a0 = fma(a0, m, s); a1 = fma(a1, m, s); a2 = fma(a2, m, s); a3 = fma(a3, m, s);
        a4 = fma(a4, m, s); a5 = fma(a5, m, s); a6 = fma(a6, m, s); a7 = fma(a7, m, s);
    }
    dst[gid.x % p.n] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}
#endif

#ifdef COPY_PEAK
@compute @workgroup_size(256)
fn copy_peak(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.n; i += nwg.x * 256u) {
        dst[i] = src[i];
    }
}
#endif
