//! The uniform both attention shaders read, shared by the family and its tensor-core variant.

/// Mirrors `AttentionParams` in `shaders/common/attention_span.wgsl` (size checked against
/// naga's reflection in tests/shaders.rs).
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AttentionParams {
    pub n_heads: u32,
    pub segments: u32,
    /// Row strides in vec4 units.
    pub qkv_stride: u32,
    pub out_stride: u32,
    pub windowed: u32,
    pub window: u32,
    /// log2(e) / sqrt(head_dim).
    pub scale: f32,
    /// Rows of the batch (cu_seqlens offsets are clamped to it).
    pub rows: u32,
    /// 1: sequence s has keys only in its first `key_lens[s]` rows; 0: in all of them.
    pub key_limited: u32,
}
