//! Uniform parameter blocks. One declaration, [`gpu_params!`](crate::gpu_params), gives both
//! the `#[repr(C)]` Rust struct that host code fills and the WGSL struct its shader reads
//! (with the binding-0 uniform `p`), so the two cannot drift apart. A shader writes
//! `{{PARAMS}}` where the declaration goes; [`Kernel::with_params`](super::Kernel::with_params)
//! supplies it.

/// A kernel's parameter block (binding 0). Fields are 4-byte scalars (`u32`, `i32`, `f32`),
/// so the Rust and WGSL layouts agree field by field with no implicit padding.
pub trait GpuParams: bytemuck::Pod {
    /// `struct NAME { ... }` followed by `@group(0) @binding(0) var<uniform> p: NAME;`.
    const WGSL: &'static str;
}

/// The WGSL spelling of a parameter field type: a 4-byte scalar, or an array of 4-vectors
/// of one (`[[u32; 4]; N]`, as arrays in a uniform block must have a 16-byte stride).
#[doc(hidden)]
#[macro_export]
macro_rules! wgsl_type {
    (u32) => {
        "u32"
    };
    (i32) => {
        "i32"
    };
    (f32) => {
        "f32"
    };
    ([[$t:tt; 4]; $n:literal]) => {
        concat!(
            "array<vec4<",
            $crate::wgsl_type!($t),
            ">, ",
            stringify!($n),
            ">"
        )
    };
}

/// Declares a kernel parameter block: the Rust struct (`#[repr(C)]`, `Pod`) and its WGSL
/// twin ([`GpuParams::WGSL`]). Attributes and doc comments pass through to the Rust struct.
/// Field types: `u32`, `i32`, `f32`, or `[[T; 4]; N]` of those (WGSL `array<vec4<T>, N>`,
/// which must start at a 16-byte offset). Padding is spelled out as ordinary fields
/// (`_pad0: u32`). tests/shaders.rs compares every kernel's size with naga's reflection.
///
/// ```
/// wgbert::gpu_params! {
///     /// y = x * scale over n elements.
///     pub struct ScaleParams {
///         pub n: u32,
///         pub scale: f32,
///     }
/// }
/// use wgbert::runtime::GpuParams;
/// assert!(ScaleParams::WGSL.starts_with("struct ScaleParams {\n    n: u32,\n    scale: f32,\n}"));
/// ```
#[macro_export]
macro_rules! gpu_params {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:tt ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $ty, )*
        }

        impl $crate::runtime::GpuParams for $name {
            const WGSL: &'static str = concat!(
                "struct ", stringify!($name), " {\n",
                $( "    ", stringify!($field), ": ", $crate::wgsl_type!($ty), ",\n", )*
                "}\n\n@group(0) @binding(0) var<uniform> p: ", stringify!($name), ";\n"
            );
        }
    };
}

crate::gpu_params! {
    /// The parameters of the runtime's smoke kernel (`shaders/smoke.wgsl`:
    /// y = x * scale + offset over n elements), used by the runtime tests.
    pub struct SmokeParams {
        pub n: u32,
        pub scale: f32,
        pub offset: f32,
        pub _pad: u32,
    }
}
