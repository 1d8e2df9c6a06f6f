//! The smallest cooperative-matrix kernel there is, at any subgroup size: one 8x8x8 (or
//! 16x16x16) f16 product with an f32 accumulator, C = A B, checked against the CPU. It is
//! the reproducer of a driver fault: Mesa 26's lavapipe offers 8x8x8 cooperative matrices at
//! every subgroup size (`LP_NATIVE_VECTOR_WIDTH` 256, 512, 1024, 2048: 8, 16, 32, 64 lanes)
//! but crashes compiling or running them beyond 8 lanes, for this kernel as for wgbert's
//! (scripts/coop_subgroups.sh runs it at each width).
//!
//! cargo run --example coop_subgroups -- [global|workgroup] [subgroups per workgroup] [--spirv FILE]
//!
//! `global` loads A and B from and stores C to storage buffers; `workgroup` stages them in
//! workgroup memory first, as wgbert's kernels do. `--spirv FILE` writes the SPIR-V naga
//! makes of it (for `spirv-val`). Exit 0 when C matches, 1 when it does not (or the adapter
//! has no cooperative matrices); a driver fault ends the process, and the last line printed
//! says whether it happened creating the pipeline or running it.

use anyhow::{Result, bail};
use wgbert::runtime::{Gpu, GpuOptions};

fn shader(frag: u32, lanes: u32, staged: bool) -> String {
    let (load, store) = if staged {
        (
            "for (var i = lid; i < F * F; i += WG) { sa[i] = a[i]; sb[i] = b[i]; }
    workgroupBarrier();
    let fa = coopLoadT<coop_mat{F}x{F}<f16, A>>(&sa[o], s);
    let fb = coopLoadT<coop_mat{F}x{F}<f16, B>>(&sb[o], s);",
            "coopStoreT(fc, &sc[o], s);
    workgroupBarrier();
    for (var i = lid; i < F * F; i += WG) { c[i] = sc[i]; }",
        )
    } else {
        (
            "let fa = coopLoadT<coop_mat{F}x{F}<f16, A>>(&a[o], s);
    let fb = coopLoadT<coop_mat{F}x{F}<f16, B>>(&b[o], s);",
            "coopStoreT(fc, &c[o], s);",
        )
    };
    format!(
        "enable f16;
enable wgpu_cooperative_matrix;
const F: u32 = {frag}u;
const WG: u32 = {lanes}u;
@group(0) @binding(0) var<storage, read> a: array<f16>;
@group(0) @binding(1) var<storage, read> b: array<f16>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
var<workgroup> sa: array<f16, {n}>;
var<workgroup> sb: array<f16, {n}>;
var<workgroup> sc: array<f32, {n}>;
@compute @workgroup_size({lanes})
fn main(@builtin(local_invocation_index) lid: u32) {{
    let o = 0u;
    let s = F;
    {load}
    var fc = coop_mat{F}x{F}<f32, C>();
    fc = coopMultiplyAdd(fa, fb, fc);
    {store}
}}
",
        n = frag * frag,
        load = load.replace("{F}", &frag.to_string()),
        store = store,
        F = frag,
    )
}

/// The SPIR-V naga makes of `source`, as wgpu's Vulkan backend would (SPIR-V 1.3 and up).
fn spirv(source: &str) -> Result<Vec<u8>> {
    use wgpu::naga;
    let module = naga::front::wgsl::parse_str(source)?;
    let flags = naga::valid::ValidationFlags::all();
    let info =
        naga::valid::Validator::new(flags, naga::valid::Capabilities::all()).validate(&module)?;
    let options = naga::back::spv::Options {
        lang_version: (1, 4),
        ..Default::default()
    };
    let words = naga::back::spv::write_vec(&module, &info, &options, None)?;
    Ok(bytemuck::cast_slice(&words).to_vec())
}

fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let spirv_out = match args.iter().position(|a| a == "--spirv") {
        Some(i) if i + 1 < args.len() => Some(args.drain(i..=i + 1).nth(1).unwrap_or_default()),
        Some(_) => bail!("--spirv needs a file"),
        None => None,
    };
    let staged = args.first().map(String::as_str) == Some("workgroup");
    let groups: u32 = args.get(1).map_or(Ok(1), |s| s.parse())?;
    let gpu = Gpu::new(&GpuOptions::default())?;
    let caps = gpu.caps();
    let Some(frag) = [8u32, 16].into_iter().find(|&f| {
        caps.coop_matrix
            .iter()
            .any(|s| s.m == f && s.n == f && s.k == f && s.acc == "f32")
    }) else {
        bail!(
            "{}: no 8x8x8 or 16x16x16 cooperative matrices",
            gpu.info().name
        );
    };
    let lanes = caps.subgroup_max_size * groups;
    println!(
        "{} ({}): {frag}x{frag}x{frag}, subgroup {}, workgroup {lanes}, {}",
        gpu.info().name,
        gpu.info().driver_info,
        caps.subgroup_max_size,
        if staged {
            "workgroup memory"
        } else {
            "storage buffers"
        }
    );
    let n = (frag * frag) as usize;
    let a: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.0).collect();
    let b: Vec<f32> = (0..n).map(|i| (i % 5) as f32 * 0.5 - 1.0).collect();
    let half = |v: &[f32]| -> Vec<u8> {
        let h: Vec<half::f16> = v.iter().map(|&x| half::f16::from_f32(x)).collect();
        bytemuck::cast_slice(&h).to_vec()
    };
    let (ab, bb) = (gpu.upload("a", &half(&a))?, gpu.upload("b", &half(&b))?);
    let cb = gpu.storage("c", n as u64 * 4)?;
    let device = gpu.device();
    let source = shader(frag, lanes, staged);
    if let Some(path) = spirv_out {
        std::fs::write(&path, spirv(&source)?)?;
        println!("wrote {path}");
    }
    println!("creating the pipeline");
    let pipeline = gpu.guarded("creating the kernel", || {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("coop_subgroups"),
            source: wgpu::ShaderSource::Wgsl(source.as_str().into()),
        });
        device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("coop_subgroups"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        })
    })?;
    let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: ab.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: bb.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: cb.as_entire_binding(),
            },
        ],
    });
    println!("running it");
    let mut enc = device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }
    gpu.queue().submit([enc.finish()]);
    let got: Vec<f32> = bytemuck::cast_slice(&gpu.read("c", &cb, 0, n as u64 * 4)?).to_vec();
    let f = frag as usize;
    for r in 0..f {
        for col in 0..f {
            let want: f32 = (0..f).map(|k| a[r * f + k] * b[k * f + col]).sum();
            let g = got[r * f + col];
            if (g - want).abs() > 1e-3 {
                bail!("C[{r}, {col}] = {g}, want {want}");
            }
        }
    }
    println!("C matches the CPU product");
    Ok(())
}
