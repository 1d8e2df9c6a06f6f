//! What the cooperative-matrix (tensor-core) kernels share: the `WGBERT_COOP` mode, the
//! fragment shape and subgroup size a kernel is built for, how a self-check verdict becomes
//! a choice, and the helpers of those checks (f16 test values, mismatch search).
//!
//! Drivers can advertise cooperative matrices and compute wrong answers, so a tensor-core
//! kernel is chosen automatically only after it has agreed with the CPU reference on the
//! device itself. The checks run when a model loads (`ops::tune::f16_kernels`; once per device,
//! and their verdicts are cached on disk with the tuned tiles), never while a plan is
//! recorded; recording only reads the verdicts the `ops::choice::Choices` it is given holds.

use crate::ops::DType;
use crate::runtime::{Capabilities, Kernel};
use crate::{Error, Result};

/// A self-check's verdict: a pass, or why the kernel failed it.
pub type Verdict = std::result::Result<(), String>;

/// What `WGBERT_COOP` asks for (`LoadOptions::coop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// "0": never choose a tensor-core kernel by itself.
    Off,
    /// Unset or empty: choose one where the adapter has it and its self-check passed.
    #[default]
    Auto,
    /// "1": a model must run on the tensor-core kernels; loading fails otherwise.
    Required,
}

impl Mode {
    /// A `WGBERT_COOP` value (`None`: unset); any other value is an `Error::Option`.
    pub fn parse(value: Option<&str>) -> Result<Mode> {
        match value.map(str::trim) {
            None | Some("") => Ok(Mode::Auto),
            Some("0") => Ok(Mode::Off),
            Some("1") => Ok(Mode::Required),
            Some(other) => Err(Error::Option(format!(
                "WGBERT_COOP={other}: expected 0 (off), 1 (required) or unset (automatic)"
            ))),
        }
    }
}

/// The fragment shape (`m` x `n` x `k`: A is m x k, B k x n, the accumulator C m x n; f16
/// operands, f32 accumulators) and the subgroup size (the adapter's largest) a tensor-core
/// kernel is built for. The kernels are right at any narrower subgroup the driver runs them
/// at (their extra subgroups only stage), and drivers do run them at their largest: Intel's
/// compiles cooperative-matrix shaders at SIMD32 unless a pipeline asks for another size,
/// which wgpu does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub subgroup: u32,
}

impl Shape {
    /// `frag` x `frag` x `frag` fragments at `subgroup` lanes.
    pub const fn square(frag: u32, subgroup: u32) -> Shape {
        Shape {
            m: frag,
            n: frag,
            k: frag,
            subgroup,
        }
    }

    /// A shape of [`FRAGMENTS`] at `subgroup` lanes.
    pub const fn of([m, n, k]: [u32; 3], subgroup: u32) -> Shape {
        Shape { m, n, k, subgroup }
    }

    /// `MxNxK`, as listings and verdicts name it.
    pub fn name(self) -> String {
        format!("{}x{}x{}", self.m, self.n, self.k)
    }

    /// The defines of `common/coop.wgsl` for this shape (`FM`, `FN`, `FK`, the square
    /// placeholder `COOP` of the WGSL types) and `lanes` wide subgroups (`SG`), and the
    /// reshaping of the module where the shape is not square.
    pub fn apply(self, kernel: Kernel, lanes: u32) -> Kernel {
        let placeholder = if self.m == 8 && self.n == 8 && self.k == 8 {
            "8x8"
        } else {
            "16x16"
        };
        kernel
            .define("FM", self.m)
            .define("FN", self.n)
            .define("FK", self.k)
            .define("COOP", placeholder)
            .define("SG", lanes)
            .with_coop_shape([self.m, self.n, self.k])
    }
}

/// Fragment shapes the kernels are written for, preferred first: NVIDIA's 16x16x16, 16x8x16
/// and 16x8x8, Intel Xe2's 8x16x16, Intel Xe-HPG's 8x8x16, and 8x8x8 (Apple, lavapipe).
pub const FRAGMENTS: [[u32; 3]; 6] = [
    [16, 16, 16],
    [16, 8, 16],
    [16, 8, 8],
    [8, 16, 16],
    [8, 8, 16],
    [8, 8, 8],
];
/// Subgroup sizes the kernels are written for.
pub const SUBGROUPS: std::ops::RangeInclusive<u32> = 8..=64;

/// Whether the adapter reports fragment shape `f` with f16 operands and an f32 accumulator.
fn reports(caps: &Capabilities, [m, n, k]: [u32; 3]) -> bool {
    caps.coop_matrix
        .iter()
        .any(|s| s.m == m && s.n == n && s.k == k && s.acc == "f32")
}

/// The shape the tensor-core kernels use on this adapter (the first of [`FRAGMENTS`] it
/// reports), or why there is none.
pub fn shape(caps: &Capabilities) -> std::result::Result<Shape, String> {
    shapes(caps)?
        .first()
        .copied()
        .ok_or_else(|| "no fragment shape".into())
}

/// Every shape of [`FRAGMENTS`] the adapter reports, preferred first, or why there is none.
pub fn shapes(caps: &Capabilities) -> std::result::Result<Vec<Shape>, String> {
    if !caps.f16 {
        return Err("the adapter has no SHADER_F16".into());
    }
    if caps.coop_matrix.is_empty() {
        return Err("the adapter reports no cooperative matrices".into());
    }
    if let Some(why) = &caps.coop_fault {
        return Err(why.clone());
    }
    if !caps.subgroups {
        return Err("the adapter has no subgroups".into());
    }
    let lanes = caps.subgroup_max_size;
    let found: Vec<Shape> = FRAGMENTS
        .into_iter()
        .filter(|&f| reports(caps, f))
        .map(|f| Shape::of(f, lanes))
        .collect();
    if found.is_empty() {
        let shapes: Vec<String> = caps
            .coop_matrix
            .iter()
            .map(|s| format!("{}x{}x{} f16->{}", s.m, s.n, s.k, s.acc))
            .collect();
        let known: Vec<String> = FRAGMENTS
            .iter()
            .map(|[m, n, k]| format!("{m}x{n}x{k}"))
            .collect();
        return Err(format!(
            "no f16 cooperative matrix with an f32 accumulator of a shape the kernels are \
             written for ({}; the adapter reports {})",
            known.join(", "),
            shapes.join(", ")
        ));
    }
    let (lo, hi) = (caps.subgroup_min_size, caps.subgroup_max_size);
    if !SUBGROUPS.contains(&lo) || !SUBGROUPS.contains(&hi) || !hi.is_power_of_two() {
        return Err(format!(
            "subgroup sizes {lo}..{hi} are outside the {}..{} the kernels support",
            SUBGROUPS.start(),
            SUBGROUPS.end()
        ));
    }
    // An emulated fragment spreads its m x n accumulator over the lanes, as a real one does.
    if found.iter().any(|s| s.m * s.n < lanes) {
        return Err(format!("{lanes}-lane subgroups are wider than a fragment"));
    }
    Ok(found)
}

/// Whether the automatic choice takes a family's tensor-core kernel for `dtype`, with its
/// shape, or why not: f16, `supported` (the family's own test of the adapter), not turned
/// off (`Mode::Off`), and the family's self-check passed (`verdict`; recording never runs
/// it).
pub fn status(
    mode: Mode,
    verdict: Option<&Verdict>,
    caps: &Capabilities,
    dtype: DType,
    supported: impl FnOnce(&Capabilities) -> std::result::Result<Shape, String>,
) -> std::result::Result<Shape, String> {
    if mode == Mode::Off {
        return Err("turned off by WGBERT_COOP=0".into());
    }
    if dtype != DType::F16 {
        return Err("f32 storage (the tensor-core kernel stores f16)".into());
    }
    let shape = supported(caps)?;
    match verdict {
        None => Err("its self-check has not run on this device".into()),
        Some(Err(why)) => Err(format!("its self-check failed: {why}")),
        Some(Ok(())) => Ok(shape),
    }
}

/// Deterministic values in [-scale, scale], rounded to f16 (self-check inputs).
pub fn f16_values(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let v: Vec<f32> = (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect();
    DType::F16.decode(&DType::F16.encode(&v))
}

/// Whether a check read back nothing: every value zero where the reference has values. A
/// device that never ran the work (submissions that do nothing) answers so; its check is
/// inconclusive, not a failure of the kernel.
pub fn reads_nothing(got: &[f32], want: &[f64]) -> bool {
    got.iter().all(|&g| g == 0.0) && want.iter().any(|&w| w != 0.0)
}

/// `got` against `want` within `atol + rtol |want|`: `Error::Inconclusive` where the device
/// read back nothing (`reads_nothing`), `Error::Unsupported` naming the first element off
/// (`at` turns its index into words), else fine.
pub fn compare(
    got: &[f32],
    want: &[f64],
    (atol, rtol): (f64, f64),
    at: impl Fn(usize) -> String,
) -> Result<()> {
    if reads_nothing(got, want) {
        return Err(Error::Inconclusive(format!(
            "{}: read back only zeros ({} values; the reference has others)",
            at(0),
            got.len()
        )));
    }
    match first_mismatch(got, want, atol, rtol) {
        None => Ok(()),
        Some((j, g, r)) => Err(Error::Unsupported(format!(
            "{} = {g}, reference {r}",
            at(j)
        ))),
    }
}

/// A check's error with what was checked in front of it; an inconclusive one stays so.
pub fn named(what: impl std::fmt::Display, e: Error) -> Error {
    match e {
        Error::Inconclusive(m) => Error::Inconclusive(format!("{what}: {m}")),
        e => Error::Unsupported(format!("{what}: {e}")),
    }
}

/// The first `(index, got, want)` with `|got - want| > atol + rtol |want|` or `got` not
/// finite (self-check comparison).
pub fn first_mismatch(
    got: &[f32],
    want: &[f64],
    atol: f64,
    rtol: f64,
) -> Option<(usize, f32, f64)> {
    if got.len() != want.len() {
        return Some((got.len().min(want.len()), f32::NAN, f64::NAN));
    }
    got.iter()
        .zip(want)
        .enumerate()
        .map(|(j, (&g, &r))| (j, g, r))
        .find(|&(_, g, r)| !g.is_finite() || (g as f64 - r).abs() > atol + rtol * r.abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::CoopShape;

    fn caps(shapes: &[([u32; 3], &'static str)], sg: (u32, u32)) -> Capabilities {
        Capabilities {
            f16: true,
            subgroups: true,
            subgroup_min_size: sg.0,
            subgroup_max_size: sg.1,
            coop_matrix: shapes
                .iter()
                .map(|&([m, n, k], acc)| CoopShape { m, n, k, acc })
                .collect(),
            max_storage_binding: 1 << 27,
            max_buffer_size: 1 << 28,
            max_workgroup_storage: 32768,
            max_invocations: 1024,
            ..Default::default()
        }
    }

    #[test]
    fn shape_follows_the_adapter() {
        let (s8, s16) = ([8, 8, 8], [16, 16, 16]);
        let s = shape(&caps(&[(s8, "f16"), (s8, "f32")], (8, 8))).unwrap();
        assert_eq!(s, Shape::square(8, 8));
        let s = shape(&caps(&[(s8, "f32"), (s16, "f32")], (32, 64))).unwrap();
        assert_eq!(s, Shape::square(16, 64));
        let e = shape(&caps(&[(s16, "f16")], (32, 32))).unwrap_err();
        assert!(e.contains("16x16x16 f16->f16"), "{e}");
        assert!(
            shape(&caps(&[], (32, 32)))
                .unwrap_err()
                .contains("no cooperative")
        );
        assert!(
            shape(&caps(&[(s16, "f32")], (4, 4)))
                .unwrap_err()
                .contains("4..4")
        );
        assert!(shape(&caps(&[(s16, "f32")], (32, 128))).is_err());
        let faulty = Capabilities {
            coop_fault: Some("crashes".into()),
            ..caps(&[(s8, "f32")], (8, 8))
        };
        assert_eq!(shape(&faulty).unwrap_err(), "crashes");
    }

    #[test]
    fn every_vendor_shape_is_found_at_its_subgroup() {
        // NVIDIA: three shapes, 32 lanes, 16x16x16 preferred.
        let nv = caps(
            &[
                ([16, 16, 16], "f32"),
                ([16, 8, 16], "f32"),
                ([16, 8, 8], "f32"),
            ],
            (32, 32),
        );
        let names: Vec<String> = shapes(&nv).unwrap().iter().map(|s| s.name()).collect();
        assert_eq!(names, ["16x16x16", "16x8x16", "16x8x8"]);
        // Intel Xe-HPG: 8x8x16 at the largest subgroup (ANV compiles it SIMD32).
        let dg2 = caps(&[([8, 8, 16], "f32")], (8, 32));
        assert_eq!(shape(&dg2).unwrap(), Shape::of([8, 8, 16], 32));
        // Intel Xe2: 8x16x16; its f16 accumulator is not used.
        let bmg = caps(&[([8, 16, 16], "f16"), ([8, 16, 16], "f32")], (16, 32));
        assert_eq!(shape(&bmg).unwrap(), Shape::of([8, 16, 16], 32));
        // A shape the kernels are not written for is named with the ones they are.
        let e = shape(&caps(&[([32, 8, 16], "f32")], (32, 32))).unwrap_err();
        assert!(e.contains("32x8x16") && e.contains("8x16x16"), "{e}");
    }

    #[test]
    fn non_square_shapes_are_reshaped() {
        let k = Shape::of([16, 8, 8], 32).apply(Kernel::new("matmul_coop", "main", &[]), 32);
        assert_eq!(k.coop_shape, Some([16, 8, 8]));
        assert!(
            k.name().contains("FM=16,FN=8,FK=8,COOP=16x16,SG=32"),
            "{}",
            k.name()
        );
        let k = Shape::square(8, 8).apply(Kernel::new("matmul_coop", "main", &[]), 8);
        assert_eq!(k.coop_shape, None);
        assert!(k.name().contains("COOP=8x8"), "{}", k.name());
    }

    #[test]
    fn mismatches_are_found() {
        let want = [1.0f64, 2.0, 3.0];
        assert_eq!(first_mismatch(&[1.0, 2.0, 3.0], &want, 1e-3, 0.0), None);
        assert_eq!(
            first_mismatch(&[1.0, 2.5, 3.0], &want, 1e-3, 0.0).map(|m| m.0),
            Some(1)
        );
        assert!(first_mismatch(&[f32::NAN, 2.0, 3.0], &want, 1.0, 1.0).is_some());
        assert!(first_mismatch(&[1.0], &want, 1.0, 1.0).is_some());
        assert_eq!(f16_values(4, 3, 1.0), f16_values(4, 3, 1.0));
    }

    #[test]
    fn zeros_read_back_are_inconclusive_not_a_failure() {
        let want = [0.0f64, 2.0, -1.0];
        assert!(reads_nothing(&[0.0; 3], &want));
        // A reference of zeros is matched by zeros; one value read is a real answer.
        assert!(!reads_nothing(&[0.0; 3], &[0.0; 3]));
        assert!(!reads_nothing(&[0.0, 2.0, 0.0], &want));
        let at = |j: usize| format!("y[{j}]");
        let e = compare(&[0.0; 3], &want, (1e-3, 0.0), at).unwrap_err();
        assert!(matches!(e, Error::Inconclusive(_)), "{e}");
        let e = compare(&[0.0, 2.0, 0.0], &want, (1e-3, 0.0), at).unwrap_err();
        assert!(
            matches!(&e, Error::Unsupported(m) if m.contains("y[2] = 0")),
            "{e}"
        );
        assert!(compare(&[0.0, 2.0, -1.0], &want, (1e-3, 0.0), at).is_ok());
        assert!(matches!(named("check", e), Error::Unsupported(_)));
        let zeros = Error::Inconclusive("zeros".into());
        assert!(matches!(named("check", zeros), Error::Inconclusive(m) if m == "check: zeros"));
    }
}
