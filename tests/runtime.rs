//! The runtime on a real adapter (lavapipe in CI): recorded plans, arena reuse, errors,
//! profiling.

mod common;

use wgbert::runtime::arena::SharedArena;
use wgbert::runtime::{Access, Kernel, Launch, PlanBuilder, RunSizes, SmokeParams, TensorId};

fn smoke() -> Kernel {
    Kernel::new("smoke", "main", &[Access::Read, Access::ReadWrite]).with_params::<SmokeParams>()
}

fn smoke_step(
    b: &mut PlanBuilder,
    x: wgbert::runtime::TensorId,
    y: wgbert::runtime::TensorId,
    scale: f32,
    offset: f32,
) {
    let max = b.gpu().caps().max_workgroups_per_dim;
    b.step(
        format!("y = x*{scale}+{offset}"),
        smoke(),
        &[x, y],
        move |s: &RunSizes| {
            let p = SmokeParams {
                n: s.rows,
                scale,
                offset,
                _pad: 0,
            };
            Launch::new(&p, wgbert::runtime::grid(s.rows.div_ceil(64), max))
        },
    )
    .unwrap();
}

#[test]
fn launches_with_parameter_bytes_of_another_size_are_refused() {
    let gpu = common::gpu();
    let mut b = PlanBuilder::new(gpu.clone());
    let (x, y) = (b.input("x", 64), b.output("y", 64));
    // Too short from the start: refused when the step is recorded.
    let e = b
        .step("short", smoke(), &[x, y], |_: &RunSizes| {
            Launch::new(&[0u32; 3], [1, 1, 1])
        })
        .unwrap_err();
    assert!(matches!(e, wgbert::Error::PlanInput(_)), "{e}");
    assert!(e.to_string().contains("takes 16 parameter bytes"), "{e}");
    // Wrong only for some run sizes: refused when such a run is prepared.
    b.step("varies", smoke(), &[x, y], |s: &RunSizes| {
        let p = [s.rows; 4];
        match s.rows {
            0 => Launch::new(&p, [1, 1, 1]),
            _ => Launch::new(&[s.rows; 8], [1, 1, 1]),
        }
    })
    .unwrap();
    let mut plan = b.build().unwrap();
    let e = plan
        .run(&RunSizes {
            rows: 3,
            ..Default::default()
        })
        .unwrap_err();
    assert!(e.to_string().contains("the launch gives 32"), "{e}");
}

#[test]
fn a_recorded_plan_runs_twice_with_new_inputs() {
    let gpu = common::gpu();
    let cap = 1000u64;
    let mut b = PlanBuilder::new(gpu.clone());
    let x = b.input("x", cap * 4);
    let t1 = b.activation("t1", cap * 4);
    let t2 = b.activation("t2", cap * 4);
    let t3 = b.activation("t3", cap * 4);
    let y = b.output("y", cap * 4);
    smoke_step(&mut b, x, t1, 2.0, 1.0);
    smoke_step(&mut b, t1, t2, 1.0, -3.0);
    smoke_step(&mut b, t2, t3, 0.5, 0.0);
    smoke_step(&mut b, t3, y, 1.0, 10.0);
    let mut plan = b.build().unwrap();
    // Four temporaries in a chain need only two slots.
    assert_eq!(plan.arena_bytes(), 2 * cap * 4, "{}", plan.describe());

    for (round, n) in [(0u32, 1000usize), (1, 77)] {
        let input: Vec<f32> = (0..n)
            .map(|i| i as f32 * (round as f32 + 1.0) - 5.0)
            .collect();
        plan.write(x, bytemuck::cast_slice(&input)).unwrap();
        plan.run(&RunSizes {
            rows: n as u32,
            ..Default::default()
        })
        .unwrap();
        let out: Vec<f32> = bytemuck::cast_slice(&plan.read(y, 0, n as u64 * 4).unwrap()).to_vec();
        for i in 0..n {
            let want = ((input[i] * 2.0 + 1.0) - 3.0) * 0.5 + 10.0;
            assert_eq!(out[i], want, "round {round} index {i}");
        }
    }
}

#[test]
fn bad_plans_are_typed_errors() {
    let gpu = common::gpu();
    let mut b = PlanBuilder::new(gpu.clone());
    let x = b.input("x", 16);
    let y = b.output("y", 16);
    // Wrong number of buffers.
    let e = b
        .step("bad", smoke(), &[x], |_| Launch::default())
        .unwrap_err();
    assert!(e.to_string().contains("takes 2 buffers"), "{e}");
    // The same buffer read and written.
    let e = b
        .step("alias", smoke(), &[y, y], |_| Launch::default())
        .unwrap_err();
    assert!(e.to_string().contains("bound twice"), "{e}");
    // A buffer over the binding limit.
    let mut b = PlanBuilder::new(gpu.clone());
    let huge = gpu.caps().max_storage_binding + 4;
    let x = b.input("x", 16);
    let big = b.activation("too big", huge);
    smoke_step(&mut b, x, big, 1.0, 0.0);
    let e = b.build().err().expect("must refuse");
    assert!(matches!(e, wgbert::Error::BufferTooLarge { .. }), "{e}");
    assert!(e.to_string().contains("too big"), "{e}");
    // Writing more than an input holds; reading an input.
    let mut b = PlanBuilder::new(gpu.clone());
    let x = b.input("x", 16);
    let y = b.output("y", 16);
    smoke_step(&mut b, x, y, 1.0, 0.0);
    let plan = b.build().unwrap();
    assert!(plan.write(x, &[0u8; 20]).is_err());
    assert!(plan.read(x, 0, 4).is_err());
    assert!(plan.read(y, 8, 16).is_err());
}

#[test]
fn a_broken_shader_is_a_shader_error_naming_the_kernel() {
    let gpu = common::gpu();
    let k = Kernel::new("smoke", "no_such_entry", &[Access::Read, Access::ReadWrite])
        .with_params::<SmokeParams>();
    let e = wgbert::runtime::pipeline::pipeline(&gpu, &k).unwrap_err();
    match e {
        wgbert::Error::Shader { kernel, .. } => assert!(kernel.contains("no_such_entry")),
        other => panic!("expected a shader error, got {other}"),
    }
}

/// A profiled run times each step of the plan, in order, under its label and family, with
/// a positive time, and still computes the results. Without timestamp queries it is
/// `Unsupported` (and the timing checks are a skip).
#[test]
fn profiling_times_every_step_or_says_why_not() {
    let gpu = common::gpu();
    let mut b = PlanBuilder::new(gpu.clone());
    let x = b.input("x", 4096);
    let y = b.output("y", 4096);
    smoke_step(&mut b, x, y, 1.0, 0.0);
    smoke_step(&mut b, x, y, 2.0, 3.0);
    let mut plan = b.build().unwrap();
    let xs: Vec<f32> = common::rand_vec(1024, 5, 1.0);
    plan.write(x, bytemuck::cast_slice(&xs)).unwrap();
    let profiled = plan.run_profiled(&RunSizes {
        rows: 1024,
        ..Default::default()
    });
    if !common::require(common::Cap::Timestamps, "profiling a plan") {
        let e = profiled.unwrap_err();
        assert!(matches!(e, wgbert::Error::Unsupported(_)), "{e}");
        return;
    }
    let p = profiled.unwrap();
    let labels: Vec<&str> = p.steps.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["y = x*1+0", "y = x*2+3"]);
    for s in &p.steps {
        assert_eq!(s.family, "smoke");
        assert!(s.ns > 0.0 && s.ns < 60e9, "{}: {} ns", s.label, s.ns);
    }
    let families = p.by_family();
    assert_eq!(families.len(), 1, "{families:?}");
    assert_eq!((families[0].0.as_str(), families[0].2), ("smoke", 2));
    assert_eq!(families[0].1, p.steps[0].ns + p.steps[1].ns);
    let ys: Vec<f32> = bytemuck::cast_slice(&plan.read(y, 0, 4096).unwrap()).to_vec();
    let want: Vec<f64> = xs.iter().map(|&v| v as f64 * 2.0 + 3.0).collect();
    common::assert_close("profiled run's output", &ys, &want, 1e-6, 1e-6);
}

#[test]
fn info_lists_the_adapter() {
    let list = wgbert::runtime::list_adapters(None);
    assert!(!list.is_empty());
    let gpu = common::gpu();
    assert!(list.iter().any(|a| a.name == gpu.info().name));
}

/// A chain x -> t1 -> t2 -> y of `cap` floats (y = (2x + 1) - 3), its temporaries in `arena`.
fn chain_in(
    gpu: &std::sync::Arc<wgbert::runtime::Gpu>,
    arena: &std::sync::Arc<SharedArena>,
    cap: u64,
) -> (wgbert::runtime::Plan, TensorId, TensorId) {
    let mut b = PlanBuilder::new(gpu.clone()).shared_arena(arena.clone());
    let x = b.input("x", cap * 4);
    let t1 = b.activation("t1", cap * 4);
    let t2 = b.activation("t2", cap * 4);
    let y = b.output("y", cap * 4);
    smoke_step(&mut b, x, t1, 2.0, 1.0);
    smoke_step(&mut b, t1, t2, 1.0, -3.0);
    smoke_step(&mut b, t2, y, 1.0, 0.0);
    (b.build().unwrap(), x, y)
}

fn run_chain(plan: &mut wgbert::runtime::Plan, x: TensorId, y: TensorId, n: usize, what: &str) {
    let input: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 7.0).collect();
    plan.write(x, bytemuck::cast_slice(&input)).unwrap();
    plan.run(&RunSizes {
        rows: n as u32,
        ..Default::default()
    })
    .unwrap();
    let out: Vec<f32> = bytemuck::cast_slice(&plan.read(y, 0, n as u64 * 4).unwrap()).to_vec();
    for i in 0..n {
        assert_eq!(out[i], input[i] * 2.0 - 2.0, "{what}: index {i}");
    }
}

#[test]
fn plans_in_a_shared_arena_hold_the_largest_and_rebind_when_it_grows() {
    // A device of its own: the memory count is per device and other tests run in parallel.
    let gpu = wgbert::runtime::Gpu::new(&Default::default()).unwrap();
    let arena = SharedArena::new(gpu.clone());
    let (mut small, sx, sy) = chain_in(&gpu, &arena, 100);
    run_chain(&mut small, sx, sy, 100, "small plan");
    assert_eq!(arena.bytes(), small.arena_bytes());
    let before = arena.generation();

    // A plan ten times larger grows the slots: the arena holds its activations, not both.
    let (mut big, bx, by) = chain_in(&gpu, &arena, 1000);
    assert_ne!(arena.generation(), before);
    assert_eq!(arena.bytes(), big.arena_bytes());
    run_chain(&mut big, bx, by, 1000, "big plan");
    // Until the small plan rebinds, it still holds the old slots.
    let held = gpu.memory().activations;
    let settled = arena.bytes() + small.own_bytes() + big.own_bytes();
    assert_eq!(held, settled + small.arena_bytes(), "{:?}", gpu.memory());
    // Its next run binds the new slots, computes the same, and gives the old ones back.
    run_chain(&mut small, sx, sy, 100, "small plan after the arena grew");
    assert_eq!(gpu.memory().activations, settled, "{:?}", gpu.memory());
    run_chain(&mut big, bx, by, 1000, "big plan again");
    let peak = gpu.memory().peak;
    // A cleared arena is refilled by the next plan that runs, to that plan's size.
    arena.clear().unwrap();
    run_chain(&mut small, sx, sy, 100, "small plan after a clear");
    assert_eq!(arena.bytes(), small.arena_bytes());
    drop((small, big, arena));
    let m = gpu.memory();
    assert_eq!((m.current, m.activations), (0, 0), "{m:?}");
    assert!(peak >= settled);
}

/// A kernel is compiled once however many threads ask for it at the same time, and
/// `pipeline::prepare` compiles each distinct kernel of its list once (on several threads)
/// and none that exists: the count a warm start's "no pipeline compiled twice" rests on.
#[test]
fn every_kernel_is_compiled_once() {
    // A device of its own: its counter is this test's alone.
    let gpu = wgbert::runtime::Gpu::new(&wgbert::runtime::GpuOptions::default()).unwrap();
    let created = || gpu.counters().pipelines_created;
    let kernel = |tag: u32| smoke().define("TEST_TAG", tag);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| wgbert::runtime::pipeline::pipeline(&gpu, &kernel(0)).unwrap());
        }
    });
    assert_eq!(created(), 1);
    let list = [
        kernel(1),
        kernel(2),
        kernel(1),
        kernel(0),
        kernel(3),
        kernel(2),
    ];
    wgbert::runtime::pipeline::prepare(&gpu, &list).unwrap();
    assert_eq!(created(), 4, "kernels 1, 2 and 3 once each, 0 not again");
    wgbert::runtime::pipeline::prepare(&gpu, &list).unwrap();
    assert_eq!(created(), 4);
    // A plan over existing kernels compiles nothing.
    let mut b = PlanBuilder::new(gpu.clone());
    let x = b.input("x", 256);
    let y = b.output("y", 256);
    smoke_step(&mut b, x, y, 2.0, 1.0);
    b.build().unwrap();
    assert_eq!(created(), 5, "the plan's smoke kernel (no tag) once");
    let mut b = PlanBuilder::new(gpu.clone());
    let (x, y) = (b.input("x", 256), b.output("y", 256));
    smoke_step(&mut b, x, y, 3.0, 0.0);
    smoke_step(&mut b, y, x, 1.0, 0.0);
    b.build().unwrap();
    assert_eq!(created(), 5);
    // An error is the kernel's, in the list's order.
    let bad = Kernel::new("smoke", "no_such_entry", &[Access::Read, Access::ReadWrite])
        .with_params::<SmokeParams>();
    let err = wgbert::runtime::pipeline::prepare(&gpu, &[kernel(4), bad]).unwrap_err();
    assert!(err.to_string().contains("no_such_entry"), "{err}");
}
