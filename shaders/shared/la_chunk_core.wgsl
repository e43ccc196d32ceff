// The chunked form's shared pieces (shared/la_core.wgsl has the recurrence
// and the chunked form's equations): each invocation of la_map, la_scores
// and la_apply computes one 8x8 register block (shared/la_block.wgsl) of
// one chunk of one head, in workgroups (blocks / 8, chunk, b·H + h). CH is a
// multiple of 8.
// A vector decay inside a product is factored around a reference step
// between the paired ones (the block's first row, or its last for
// BACKWARD), so both factors are ≤ 1; in the 8x8 diagonal block, whose
// pairs straddle any reference, e^{b_t − b_s} is a running product of the
// per-step decays instead. Where a chunk's decays are mild (every key's
// b_C > −34) the kernels use plain products of chunk-relative operands
// instead, every factor below e^{34}.

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

