//! The uniform both attention shaders read, shared by the family and its tensor-core variant.

crate::gpu_params! {
    /// The parameters of both attention shaders (`shaders/common/attention_span.wgsl`).
    pub struct AttentionParams {
        pub n_heads: u32,
        pub segments: u32,
        /// Row strides in vec4 units: qkv (3H / 4) and out (H / 4).
        pub qkv_stride: u32,
        pub out_stride: u32,
        /// 1: banded by `window` (|i - j| <= window); 0: every key of the sequence.
        pub windowed: u32,
        pub window: u32,
        /// log2(e) / sqrt(head_dim).
        pub scale: f32,
        /// Rows of the batch: cu_seqlens offsets past it (a corrupt input) are clamped,
        /// never looped over.
        pub rows: u32,
        /// 1: sequence s has keys only in its first `key_lens[s]` rows; 0: in all of them.
        pub key_limited: u32,
    }
}
