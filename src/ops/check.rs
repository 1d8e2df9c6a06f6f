//! Argument checks shared by every op's `record`. A bad argument becomes one error,
//! `Error::OpArg`, naming the op, its step, the argument and what it expected; a device that
//! lacks a capability (f16, subgroups) is `Error::Unsupported`.

use std::fmt::Display;

use crate::ops::{DType, Rows};
use crate::runtime::{Capabilities, PlanBuilder, TensorId};
use crate::{Error, Result};

/// The op and step being recorded: the context of every check.
#[derive(Debug, Clone, Copy)]
pub struct Op<'a> {
    /// The kernel family (`layernorm`, `topk`...).
    pub name: &'static str,
    /// The step's label in the plan.
    pub step: &'a str,
}

impl<'a> Op<'a> {
    pub fn new(name: &'static str, step: &'a str) -> Self {
        Op { name, step }
    }

    /// The error for argument `arg`: it had `got`, the op takes `expected`.
    pub fn err(self, arg: &'static str, expected: impl Display, got: impl Display) -> Error {
        Error::OpArg {
            op: self.name,
            step: self.step.to_string(),
            arg,
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }

    /// Requires `lo <= value <= hi`.
    pub fn within(self, arg: &'static str, value: u32, lo: u32, hi: u32) -> Result<()> {
        if (lo..=hi).contains(&value) {
            Ok(())
        } else {
            Err(self.err(arg, format_args!("in {lo}..={hi}"), value))
        }
    }

    /// Requires a finite value `>= 0` (LayerNorm's eps).
    pub fn non_negative(self, arg: &'static str, value: f32) -> Result<()> {
        if value.is_finite() && value >= 0.0 {
            Ok(())
        } else {
            Err(self.err(arg, "finite and >= 0", value))
        }
    }

    /// Requires a finite value `> 0` (RoPE's theta).
    pub fn positive(self, arg: &'static str, value: f32) -> Result<()> {
        if value.is_finite() && value > 0.0 {
            Ok(())
        } else {
            Err(self.err(arg, "finite and > 0", value))
        }
    }

    /// Requires that tensor `t` holds at least `bytes` (weights, fixed-size outputs).
    pub fn bytes(self, b: &PlanBuilder, arg: &'static str, t: TensorId, bytes: u64) -> Result<()> {
        let held = b.bytes(t);
        if held < bytes {
            return Err(self.err(
                arg,
                format_args!("at least {bytes} bytes"),
                format_args!("{held} bytes"),
            ));
        }
        Ok(())
    }

    /// Refuses a fixed row count over the `cap` rows a step's buffers hold. Run-time counts
    /// (`Rows::Tokens`...) are clamped to `cap` in the launch instead, so a run with more
    /// rows than the plan was built for cannot write past the buffers.
    pub fn rows(self, rows: Rows, cap: u32) -> Result<()> {
        match rows {
            Rows::Fixed(n) if n > cap => Err(self.err(
                "rows",
                format_args!("at most {cap} (what its buffers hold)"),
                n,
            )),
            _ => Ok(()),
        }
    }

    /// Refuses f16 storage on a device without `SHADER_F16`.
    pub fn dtype(self, caps: &Capabilities, dtype: DType) -> Result<()> {
        if dtype == DType::F16 && !caps.f16 {
            return Err(Error::Unsupported(format!(
                "{}: f16 storage needs SHADER_F16; use f32 on this adapter",
                self.name
            )));
        }
        Ok(())
    }
}

/// Rows of `row_bytes` that tensor `t` holds.
pub fn rows_in(b: &PlanBuilder, t: TensorId, row_bytes: u64) -> u32 {
    (b.bytes(t) / row_bytes.max(1)).min(u32::MAX as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_op_step_argument_and_expectation() {
        let op = Op::new("topk", "mlm top-k");
        let e = op.within("k", 65, 1, 64).unwrap_err();
        assert!(
            matches!(
                e,
                Error::OpArg {
                    op: "topk",
                    arg: "k",
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "topk step 'mlm top-k': k must be in 1..=64, got 65"
        );
        assert!(op.within("k", 64, 1, 64).is_ok());
        assert!(op.non_negative("eps", f32::NAN).is_err());
        assert!(op.non_negative("eps", 0.0).is_ok());
        assert!(op.positive("theta", 0.0).is_err());
        assert!(op.rows(Rows::Fixed(3), 2).is_err());
        assert!(op.rows(Rows::Fixed(2), 2).is_ok());
        assert!(op.rows(Rows::Tokens, 0).is_ok());
    }
}
