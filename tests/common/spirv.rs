//! Kernels compiled to SPIR-V on the CPU (naga), for tests that look at the instructions a
//! kernel turns into (cooperative-matrix opcodes, for instance).

/// OpCooperativeMatrixLoadKHR, StoreKHR and MulAddKHR.
pub const COOP_OPS: [u32; 3] = [4457, 4458, 4459];

use naga::back::spv;
use naga::valid::{Capabilities, ValidationFlags, Validator};
use wgbert::runtime::Kernel;

/// The SPIR-V words of a kernel variant.
pub fn words(kernel: &Kernel) -> Vec<u32> {
    let src = kernel.wgsl().expect("preprocess");
    let module = naga::front::wgsl::parse_str(&src).expect("parse");
    let info = Validator::new(ValidationFlags::all(), Capabilities::all())
        .validate(&module)
        .expect("validate");
    let opts = spv::Options {
        lang_version: (1, 3),
        ..Default::default()
    };
    spv::write_vec(&module, &info, &opts, None).expect("SPIR-V")
}

/// The opcode of every instruction of a SPIR-V module, in order (after the 5-word header;
/// each instruction's first word holds its length above its opcode).
pub fn opcodes(words: &[u32]) -> Vec<u32> {
    let mut ops = Vec::new();
    let mut at = 5;
    while at < words.len() {
        ops.push(words[at] & 0xffff);
        at += (words[at] >> 16).max(1) as usize;
    }
    ops
}
