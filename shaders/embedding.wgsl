// Embedding lookup and its backward.
// T = tokens, V = vocabulary rows, D = embedding width.
// `gather`: out[t] = table[ids[t]]; an id >= V gives a zero row and is
//   reported (shared/index_check.wgsl).
// `scatter_add`: grad[ids[t]] += dout[t] for all t. Each invocation owns one
//   column d and walks the tokens in order, so no two invocations write the
//   same address (no float atomics needed) and the sum is deterministic.

struct Params {
    tokens: u32, vocab: u32, dim: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;      // (T)

const WG: u32 = 256u;

#ifdef GATHER
@group(0) @binding(2) var<storage, read> table: array<f32>;    // (V, D)
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // (T, D)
@group(0) @binding(4) var<storage, read_write> index_errors: array<atomic<u32>, 4>;
#import index_check

@compute @workgroup_size(256)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = p.tokens * p.dim;
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let id = ids[i / p.dim];
        let d = i % p.dim;
        if id >= p.vocab && d == 0u { report_index(1u, id, p.vocab); }
        out[i] = select(0.0, table[min(id, p.vocab - 1u) * p.dim + d], id < p.vocab);
    }
}
#endif

#ifdef SCATTER_ADD
@group(0) @binding(2) var<storage, read> dout: array<f32>;       // (T, D)
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;  // (V, D), accumulated into

@compute @workgroup_size(256)
fn scatter_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var d = gid.x; d < p.dim; d += nwg.x * WG) {
        for (var t = 0u; t < p.tokens; t++) {
            let id = ids[t];
            if id < p.vocab {
                grad[id * p.dim + d] += dout[t * p.dim + d];
            }
        }
    }
}
#endif
