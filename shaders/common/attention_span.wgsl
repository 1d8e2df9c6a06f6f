// What attention.wgsl and attention_coop.wgsl share: the parameters, the bindings and the span
// of one workgroup (its sequence, head, query tile and the keys it visits).
// Bindings: 0 params, 1 qkv [T, 3H] ELEM (read; rows [Q | K | V], head h at columns h*D of each
// block, RoPE already applied), 2 cu_seqlens [B + 1] u32 (read), 3 key_lens [B] u32 (read;
// with p.key_limited, only the first key_lens[s] rows of sequence s are keys, while all its
// rows are queries), 4 out [T, H] ELEM (write).
// Dispatch: x = query tiles of BR rows (ceil(max_seqlen / BR)), y/z = (head, sequence) pairs
// spread by runtime::grid (linear = wg.y + wg.z * nwg.y; head = linear % n_heads).

// Binding 0: `p`, the AttentionParams of src/ops/attention/kernel.rs (gpu_params! writes its WGSL).
{{PARAMS}}
@group(0) @binding(1) var<storage, read> qkv: array<vec4<{{ELEM}}>>;
@group(0) @binding(2) var<storage, read> cu_seqlens: array<u32>;
@group(0) @binding(3) var<storage, read> key_lens: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<{{ELEM}}>>;

// One workgroup's work: sequence rows [start, start + len), queries [q0, q0 + BR) of them
// (relative), keys [k_begin, k_end): the band around the tile, cut to the sequence's keys.
// `live` is false (the workgroup returns at once, uniformly) past the last sequence or past
// the end of a shorter sequence.
struct Span {
    live: bool,
    head: u32,
    start: u32,
    len: u32,
    q0: u32,
    k_begin: u32,
    k_end: u32,
}

fn span(wg: vec3<u32>, nwg: vec3<u32>, br: u32) -> Span {
    var s: Span;
    let pair = wg.y + wg.z * nwg.y;
    s.head = pair % p.n_heads;
    let seq = pair / p.n_heads;
    if seq >= p.segments {
        return s;
    }
    let end = min(cu_seqlens[seq + 1u], p.rows);
    s.start = min(cu_seqlens[seq], end);
    s.len = end - s.start;
    s.q0 = wg.x * br;
    if s.q0 >= s.len {
        return s;
    }
    s.live = true;
    var keys = s.len;
    if p.key_limited != 0u {
        keys = min(key_lens[seq], s.len);
    }
    s.k_end = keys;
    if p.windowed != 0u {
        let q_end = min(s.q0 + br, s.len);
        s.k_begin = s.q0 - min(s.q0, p.window);
        s.k_end = min(keys, q_end - 1u + p.window + 1u);
    }
    return s;
}
