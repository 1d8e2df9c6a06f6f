//! Every kernel variant the crate can create is preprocessed, parsed and validated by naga and
//! translated to SPIR-V (Vulkan), MSL (Metal) and HLSL (DX12) on the CPU, so a shader that
//! breaks on Apple, AMD or Windows shows here without those machines. The SPIR-V writer is the
//! one that panics on the naga 30 cooperative-matrix bug, so panics are caught and reported.

mod common;

use std::panic::AssertUnwindSafe;

use naga::back::{hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};

fn translate(name: &str, entry: &str, src: &str) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(src)
        .map_err(|e| format!("parse: {}", e.emit_to_string(src)))?;
    translate_module(name, entry, src, module)
}

/// `translate` for a parsed module (`src` names its errors); the MSL writer is skipped for
/// non-square cooperative matrices, which Metal has not (8 x 8 only) and which only Vulkan
/// adapters report.
fn translate_module(
    name: &str,
    entry: &str,
    src: &str,
    module: naga::Module,
) -> Result<(), String> {
    let info = Validator::new(ValidationFlags::all(), Capabilities::all())
        .validate(&module)
        .map_err(|e| format!("validate: {}", e.emit_to_string(src)))?;
    if !module.entry_points.iter().any(|e| e.name == entry) {
        return Err(format!("no entry point '{entry}'"));
    }
    let uses_coop = src.contains("wgpu_cooperative_matrix");
    let square = !module.types.iter().any(|(_, t)| {
        matches!(t.inner, naga::TypeInner::CooperativeMatrix { rows, columns, .. } if rows != columns)
    });
    let spv_opts = spv::Options {
        lang_version: (1, 3),
        ..Default::default()
    };
    let pipe = spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: entry.to_string(),
    };
    let spirv = std::panic::catch_unwind(AssertUnwindSafe(|| {
        spv::write_vec(&module, &info, &spv_opts, Some(&pipe))
    }))
    .map_err(|p| format!("SPIR-V writer panicked: {}", panic_text(&p)))?
    .map_err(|e| format!("SPIR-V: {e}"))?;
    assert!(!spirv.is_empty(), "{name}: empty SPIR-V");

    if !square {
        return Ok(());
    }
    let msl_opts = msl::Options {
        lang_version: (3, 0),
        fake_missing_bindings: true,
        ..Default::default()
    };
    let msl_pipe = msl::PipelineOptions {
        entry_point: Some((naga::ShaderStage::Compute, entry.to_string())),
        ..Default::default()
    };
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        msl::write_string(&module, &info, &msl_opts, &msl_pipe)
    }))
    .map_err(|p| format!("MSL writer panicked: {}", panic_text(&p)))?
    .map_err(|e| format!("MSL: {e}"))?;

    // HLSL has no cooperative matrices in naga 30: those kernels are Vulkan/Metal only, and
    // the runtime never selects them on DX12.
    if !uses_coop {
        let hlsl_opts = hlsl::Options {
            shader_model: hlsl::ShaderModel::V6_2,
            fake_missing_bindings: true,
            ..Default::default()
        };
        let hlsl_pipe = hlsl::PipelineOptions {
            entry_point: Some((naga::ShaderStage::Compute, entry.to_string())),
        };
        let mut out = String::new();
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            hlsl::Writer::new(&mut out, &hlsl_opts, &hlsl_pipe)
                .write(&module, &info, None)
                .map(|_| ())
        }))
        .map_err(|p| format!("HLSL writer panicked: {}", panic_text(&p)))?
        .map_err(|e| format!("HLSL: {e}"))?;
    }
    Ok(())
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn every_kernel_translates_to_spirv_msl_and_hlsl() {
    let kernels = wgbert::ops::all_kernels();
    assert!(!kernels.is_empty());
    let mut failures = Vec::new();
    for k in &kernels {
        let name = k.name();
        let translated = k
            .wgsl()
            .map_err(|e| format!("preprocess: {e}"))
            .and_then(|src| {
                let module = k.module().map_err(|e| format!("parse: {e}"))?;
                translate_module(&name, k.entry, &src, module)
            });
        if let Err(e) = translated {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} kernels failed:\n{}",
        failures.len(),
        kernels.len(),
        failures.join("\n")
    );
}

#[test]
fn every_shader_file_is_used_by_some_kernel() {
    let kernels = wgbert::ops::all_kernels();
    for (file, _) in wgbert::runtime::shader::SHADERS {
        assert!(
            kernels.iter().any(|k| k.shader == *file),
            "shaders/{file}.wgsl has no kernel variant in ops::all_kernels()"
        );
    }
}

/// The naga 30 cooperative-matrix bug (see GPU.md): a coopStoreT whose pointer index is an
/// inline expression panics in the SPIR-V writer. This test proves the check above catches
/// that class of failure: the bad form must be reported, the `let`-bound form must pass.
#[test]
fn the_translation_check_catches_the_coop_store_bug() {
    let shader = |store: &str| {
        format!(
            "enable f16;\nenable wgpu_cooperative_matrix;\n\
             struct P {{ n: u32 }}\n\
             @group(0) @binding(0) var<uniform> p: P;\n\
             @group(0) @binding(1) var<storage, read> a: array<f16>;\n\
             @group(0) @binding(2) var<storage, read_write> c: array<f32>;\n\
             @compute @workgroup_size(32)\n\
             fn main(@builtin(workgroup_id) wg: vec3<u32>) {{\n\
               var acc = coop_mat16x16<f32, C>();\n\
               let m = coopLoadT<coop_mat16x16<f16, A>>(&a[0], 16u);\n\
               let b = coopLoadT<coop_mat16x16<f16, B>>(&a[0], 16u);\n\
               acc = coopMultiplyAdd(m, b, acc);\n\
               {store}\n\
             }}\n"
        )
    };
    let good = shader("let o = wg.x * p.n * 16u; let s = p.n; coopStoreT(acc, &c[o], s);");
    let bad = shader("coopStoreT(acc, &c[wg.x * p.n * 16u], p.n);");
    match translate("coop-good", "main", &good) {
        Ok(()) => {}
        // Older/newer naga may lack the extension entirely: then there is nothing to catch.
        Err(e) if e.starts_with("parse") => return,
        Err(e) => panic!("the let-bound form must translate: {e}"),
    }
    let e = translate("coop-bad", "main", &bad).expect_err("the inline-index form must be caught");
    assert!(e.contains("SPIR-V"), "{e}");
}

/// naga 30's WGSL spells square cooperative matrices only; a kernel of a non-square shape is
/// reshaped after parsing (`runtime::shader::reshape_coop`). Its SPIR-V must declare A as
/// m x k, B as k x n and C as m x n, and the module must validate.
#[test]
fn non_square_fragments_are_declared_with_their_shape() {
    use wgbert::ops::coop::{FRAGMENTS, Shape};
    use wgbert::ops::matmul::{Epilogue, coop};
    let mut checked = 0;
    for frag in FRAGMENTS {
        let [m, n, k] = frag;
        let shape = Shape::of(frag, 32);
        let matmul = coop::kernel(shape, coop::DEFAULT, Epilogue::Residual, true, 768);
        let tiles = wgbert::ops::attention::coop::DEFAULT;
        let attention = wgbert::ops::attention::coop::kernel(shape, 64, tiles, 49152).unwrap();
        for kernel in [matmul, attention] {
            let mut types = common::spirv::coop_types(&common::spirv::words(&kernel));
            types.sort();
            types.dedup();
            // OpTypeCooperativeMatrixKHR Use: 0 MatrixA, 1 MatrixB, 2 MatrixAccumulator.
            let mut want = vec![(m, k, 0), (k, n, 1), (m, n, 2)];
            want.sort();
            assert_eq!(types, want, "{}", kernel.name());
            assert_eq!(kernel.coop_shape.is_some(), !(m == n && n == k));
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * FRAGMENTS.len());
}

/// Reshaping refuses what it cannot express: naga has 8 and 16 rows or columns only.
#[test]
fn reshaping_refuses_sizes_naga_has_not() {
    let src = "enable f16;\nenable wgpu_cooperative_matrix;\n\
               @compute @workgroup_size(32) fn main() { var c = coop_mat16x16<f32, C>(); }\n";
    let mut module = naga::front::wgsl::parse_str(src).unwrap();
    let e = wgbert::runtime::shader::reshape_coop(&mut module, [32, 8, 16]).unwrap_err();
    assert!(e.contains("32"), "{e}");
    wgbert::runtime::shader::reshape_coop(&mut module, [16, 8, 16]).unwrap();
    let shapes: Vec<_> = module
        .types
        .iter()
        .filter_map(|(_, t)| match t.inner {
            naga::TypeInner::CooperativeMatrix { rows, columns, .. } => Some((rows, columns)),
            _ => None,
        })
        .collect();
    use naga::CooperativeSize::{Eight, Sixteen};
    assert_eq!(shapes, [(Sixteen, Eight)]);
}

/// The size naga gives the uniform at `@group(0) @binding(0)`, the step's parameters.
fn params_size(src: &str) -> Result<u64, String> {
    let module = naga::front::wgsl::parse_str(src).map_err(|e| format!("parse: {e}"))?;
    let (_, var) = module
        .global_variables
        .iter()
        .find(|(_, v)| {
            v.binding
                .as_ref()
                .is_some_and(|b| b.group == 0 && b.binding == 0)
        })
        .ok_or("no @group(0) @binding(0)")?;
    Ok(module.types[var.ty].inner.size(module.to_ctx()) as u64)
}

#[test]
fn every_kernel_declares_the_parameter_size_its_shader_has() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for k in wgbert::ops::all_kernels() {
        let name = k.name();
        let Some(declared) = k.params else {
            failures.push(format!(
                "{name}: declares no parameter struct (Kernel::with_params)"
            ));
            continue;
        };
        let reflected = k
            .wgsl()
            .map_err(|e| e.to_string())
            .and_then(|src| params_size(&src));
        match reflected {
            Ok(size) if size == declared => checked += 1,
            Ok(size) => failures.push(format!("{name}: Rust {declared} bytes, WGSL {size}")),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        checked > 50,
        "only {checked} kernels declare their parameters"
    );
}

#[test]
fn the_opcode_scan_walks_instruction_lengths() {
    // Header, then OpCapability Shader (2 words: 17, 1), OpNop (1 word: 0).
    let words = [
        0x0723_0203,
        0x0001_0300,
        0,
        1,
        0,
        (2 << 16) | 17,
        1,
        1 << 16,
    ];
    assert_eq!(common::spirv::opcodes(&words), [17, 0]);
}

/// Portable kernels must run where cooperative matrices do not exist.
#[test]
fn portable_kernels_emit_no_cooperative_matrix_instructions() {
    let portable = [
        "layernorm",
        "embedding",
        "pooling",
        "gather",
        "topk",
        "rope",
        "convert",
    ];
    let kernels = wgbert::ops::all_kernels();
    let mut seen = 0;
    for k in kernels.iter().filter(|k| portable.contains(&k.shader)) {
        let ops = common::spirv::opcodes(&common::spirv::words(k));
        assert!(ops.len() > 10, "{}: {} instructions", k.name(), ops.len());
        for op in common::spirv::COOP_OPS {
            assert!(!ops.contains(&op), "{}: opcode {op}", k.name());
        }
        seen += 1;
    }
    assert!(seen > 20, "{seen} kernels");
}
