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
use crate::runtime::Capabilities;
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

/// The fragment shape (`frag` x `frag` x `frag`, f16 operands, f32 accumulators) and the
/// subgroup size (the adapter's largest) a tensor-core kernel is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    pub frag: u32,
    pub subgroup: u32,
}

/// Fragment sizes the kernels are written for, preferred first.
pub const FRAGS: [u32; 2] = [16, 8];
/// Subgroup sizes the kernels are written for.
pub const SUBGROUPS: std::ops::RangeInclusive<u32> = 8..=64;

/// The shape the tensor-core kernels use on this adapter, or why there is none.
pub fn shape(caps: &Capabilities) -> std::result::Result<Shape, String> {
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
    let has = |f: u32| {
        caps.coop_matrix
            .iter()
            .any(|s| s.m == f && s.n == f && s.k == f && s.acc == "f32")
    };
    let Some(frag) = FRAGS.into_iter().find(|&f| has(f)) else {
        let shapes: Vec<String> = caps
            .coop_matrix
            .iter()
            .map(|s| format!("{}x{}x{} f16->{}", s.m, s.n, s.k, s.acc))
            .collect();
        return Err(format!(
            "no 16x16x16 or 8x8x8 f16 cooperative matrix with an f32 accumulator (the \
             adapter reports {})",
            shapes.join(", ")
        ));
    };
    let (lo, hi) = (caps.subgroup_min_size, caps.subgroup_max_size);
    if !SUBGROUPS.contains(&lo) || !SUBGROUPS.contains(&hi) || !hi.is_power_of_two() {
        return Err(format!(
            "subgroup sizes {lo}..{hi} are outside the {}..{} the kernels support",
            SUBGROUPS.start(),
            SUBGROUPS.end()
        ));
    }
    Ok(Shape { frag, subgroup: hi })
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

    fn caps(shapes: &[(u32, &'static str)], sg: (u32, u32)) -> Capabilities {
        Capabilities {
            cpu: false,
            f16: true,
            subgroups: true,
            subgroup_min_size: sg.0,
            subgroup_max_size: sg.1,
            timestamps: false,
            coop_matrix: shapes
                .iter()
                .map(|&(f, acc)| CoopShape {
                    m: f,
                    n: f,
                    k: f,
                    acc,
                })
                .collect(),
            coop_fault: None,
            max_storage_binding: 1 << 27,
            max_buffer_size: 1 << 28,
            max_workgroup_storage: 32768,
            max_invocations: 1024,
            max_workgroups_per_dim: 65535,
            min_uniform_offset_alignment: 256,
            min_storage_offset_alignment: 256,
        }
    }

    #[test]
    fn shape_follows_the_adapter() {
        let s = shape(&caps(&[(8, "f16"), (8, "f32")], (8, 8))).unwrap();
        assert_eq!(
            s,
            Shape {
                frag: 8,
                subgroup: 8
            }
        );
        let s = shape(&caps(&[(8, "f32"), (16, "f32")], (32, 64))).unwrap();
        assert_eq!(
            s,
            Shape {
                frag: 16,
                subgroup: 64
            }
        );
        let e = shape(&caps(&[(16, "f16")], (32, 32))).unwrap_err();
        assert!(e.contains("16x16x16 f16->f16"), "{e}");
        assert!(
            shape(&caps(&[], (32, 32)))
                .unwrap_err()
                .contains("no cooperative")
        );
        assert!(
            shape(&caps(&[(16, "f32")], (4, 4)))
                .unwrap_err()
                .contains("4..4")
        );
        assert!(shape(&caps(&[(16, "f32")], (32, 128))).is_err());
        let faulty = Capabilities {
            coop_fault: Some("crashes".into()),
            ..caps(&[(8, "f32")], (8, 8))
        };
        assert_eq!(shape(&faulty).unwrap_err(), "crashes");
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
