//! Kernels compiled to SPIR-V on the CPU (naga), for tests that look at the instructions a
//! kernel turns into (cooperative-matrix opcodes, for instance).

/// OpCooperativeMatrixLoadKHR, StoreKHR and MulAddKHR.
pub const COOP_OPS: [u32; 3] = [4457, 4458, 4459];

use naga::back::spv;
use naga::valid::{Capabilities, ValidationFlags, Validator};
use wgbert::runtime::Kernel;

/// The SPIR-V words of a kernel variant (its module as the runtime makes it: cooperative
/// types reshaped where the kernel's fragments are not square).
pub fn words(kernel: &Kernel) -> Vec<u32> {
    let module = kernel.module().expect("parse");
    let info = Validator::new(ValidationFlags::all(), Capabilities::all())
        .validate(&module)
        .expect("validate");
    let opts = spv::Options {
        lang_version: (1, 3),
        ..Default::default()
    };
    spv::write_vec(&module, &info, &opts, None).expect("SPIR-V")
}

/// The cooperative-matrix types of a SPIR-V module: (rows, columns, use: 0 A, 1 B, 2 C), from
/// OpTypeCooperativeMatrixKHR (4456) and the OpConstant (43) values of its operands.
pub fn coop_types(words: &[u32]) -> Vec<(u32, u32, u32)> {
    let mut constants = std::collections::HashMap::new();
    let mut types = Vec::new();
    let mut at = 5;
    while at < words.len() {
        let (len, op) = ((words[at] >> 16).max(1) as usize, words[at] & 0xffff);
        let ins = &words[at..(at + len).min(words.len())];
        match op {
            43 if ins.len() >= 4 => {
                constants.insert(ins[2], ins[3]);
            }
            4456 if ins.len() >= 7 => types.push((ins[4], ins[5], ins[6])),
            _ => {}
        }
        at += len;
    }
    types
        .into_iter()
        .map(|(r, c, u)| (constants[&r], constants[&c], constants[&u]))
        .collect()
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
