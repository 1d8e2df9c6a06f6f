//! The row layout shared by the row kernels (LayerNorm, embedding, pooling) through
//! `shaders/common/rownorm.wgsl`: one workgroup of `ROW_THREADS` per row, `PT` values per
//! thread, and the flavour of the row reduction.

use crate::ops::DType;
use crate::ops::check::Op;
use crate::runtime::{Capabilities, Kernel, PlanBuilder, TensorId};
use crate::{Error, Result};

/// Threads of a row workgroup (`RN_WG` in `common/rownorm.wgsl`).
pub const ROW_THREADS: u32 = 128;
/// Values per thread of the largest variant (`PT`).
pub const MAX_PER_THREAD: u32 = 32;
/// Widest row the row kernels take (4096).
pub const MAX_HIDDEN: u32 = ROW_THREADS * MAX_PER_THREAD;

/// The `PT` buckets the row kernels are built with (powers of two).
pub const PER_THREAD_BUCKETS: [u32; 6] = [1, 2, 4, 8, 16, 32];

/// Values each thread holds for a row of `hidden` (the `PT` define): the power of two that
/// covers `hidden / ROW_THREADS`, so a model needs one variant per row width.
pub fn per_thread(op: Op<'_>, hidden: u32) -> Result<u32> {
    op.within("hidden", hidden, 1, MAX_HIDDEN)?;
    Ok(hidden.div_ceil(ROW_THREADS).next_power_of_two())
}

/// How a workgroup reduces a row's partial sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reduce {
    /// Shared-memory tree: portable.
    Workgroup,
    /// `subgroupAdd`, then one partial per subgroup: fewer barriers, needs `SUBGROUP`.
    Subgroup,
}

impl Reduce {
    /// Both flavours, for variant lists.
    pub const ALL: [Reduce; 2] = [Reduce::Workgroup, Reduce::Subgroup];

    /// The fastest flavour this device supports.
    pub fn best(caps: &Capabilities) -> Reduce {
        if caps.subgroups {
            Reduce::Subgroup
        } else {
            Reduce::Workgroup
        }
    }

    pub(crate) fn apply(self, k: Kernel) -> Kernel {
        match self {
            Reduce::Workgroup => k,
            Reduce::Subgroup => k.define("SUBGROUP", 1),
        }
    }

    pub(crate) fn check(self, caps: &Capabilities) -> Result<()> {
        if self == Reduce::Subgroup && !caps.subgroups {
            return Err(Error::Unsupported(
                "subgroup operations (SUBGROUP) for the row reduction".into(),
            ));
        }
        Ok(())
    }
}

/// A normalised row step whose arguments passed the shared checks.
pub(crate) struct NormRow {
    /// The `PT` define.
    pub pt: u32,
    /// Bytes of one row (and of the weight and bias vectors).
    pub row_bytes: u64,
    pub max_dim: u32,
}

/// The checks every LayerNorm-style step shares: storage type and reduction on this device,
/// row width, eps.
pub(crate) fn checked(
    op: Op<'_>,
    b: &PlanBuilder,
    dtype: DType,
    hidden: u32,
    reduce: Reduce,
    eps: f32,
) -> Result<NormRow> {
    let caps = b.gpu().caps();
    op.dtype(caps, dtype)?;
    reduce.check(caps)?;
    op.non_negative("eps", eps)?;
    Ok(NormRow {
        pt: per_thread(op, hidden)?,
        row_bytes: hidden as u64 * dtype.size(),
        max_dim: caps.max_workgroups_per_dim,
    })
}

impl NormRow {
    /// Checks the norm's weight and bias vectors; returns the tensor to bind as the bias (the
    /// weight stands in when there is none) and the `has_bias` flag of the parameters.
    pub fn weights(
        &self,
        op: Op<'_>,
        b: &PlanBuilder,
        weight: TensorId,
        bias: Option<TensorId>,
    ) -> Result<(TensorId, u32)> {
        op.bytes(b, "weight", weight, self.row_bytes)?;
        if let Some(bias) = bias {
            op.bytes(b, "bias", bias, self.row_bytes)?;
        }
        Ok((bias.unwrap_or(weight), bias.is_some() as u32))
    }
}
