//! `wgbert bench --kernels`: matmul and attention sweeps in TFLOP/s.

use anyhow::Result;
use std::sync::Arc;
use wgbert::ops::DType;
use wgbert::runtime::Gpu;

pub fn run(_gpu: &Arc<Gpu>, _dtype: Option<DType>, _json: bool) -> Result<()> {
    anyhow::bail!("kernel sweeps are not available in this build")
}
