//! The tuned kernel families: what each one's candidates, default, check and timing are,
//! and where its choice lives in `Choices`.

use std::sync::Arc;

use super::checks::{
    check_attention, check_coop, check_coop_attention, check_tiled, time_attention,
    time_attention_kernel, time_coop, time_tiled,
};
use super::{ATTENTION, ATTENTION_COOP, MATMUL_COOP, MATMUL_TILED, RowClass, representative};
use crate::ops::choice::Choices;
use crate::ops::matmul::{coop, tiled};
use crate::ops::{DType, attention};
use crate::runtime::Gpu;
use crate::{Error, Result};

/// A tile configuration of a tuned family, named in caches and reports (`64x64`).
pub trait TileConfig: Copy + Send + 'static {
    fn name(self) -> String;
}

impl TileConfig for tiled::Config {
    fn name(self) -> String {
        tiled::Config::name(self)
    }
}

impl TileConfig for coop::Config {
    fn name(self) -> String {
        coop::Config::name(self)
    }
}

impl TileConfig for attention::Tiles {
    fn name(self) -> String {
        attention::Tiles::name(self)
    }
}

/// The class a family is tuned per, named in caches and reports: a matmul row class, or an
/// attention head size (`u32`, named `d64`).
pub trait ShapeClass: Copy {
    fn name(self) -> String;
}

impl ShapeClass for RowClass {
    fn name(self) -> String {
        RowClass::name(self).to_string()
    }
}

impl ShapeClass for u32 {
    fn name(self) -> String {
        format!("d{self}")
    }
}

/// A kernel family whose tile configuration is tuned per device, shape class and precision.
pub trait Family {
    /// The family's name in caches and reports.
    const OP: &'static str;
    type Config: TileConfig;
    type Class: ShapeClass;
    /// The candidates this device can run for `class`.
    fn candidates(gpu: &Gpu, class: Self::Class) -> Vec<Self::Config>;
    /// The static choice: without tuning, timestamps or a passing candidate.
    fn default(gpu: &Gpu, class: Self::Class) -> Self::Config;
    /// The CPU-reference check of one candidate on the device.
    fn check(gpu: &Arc<Gpu>, dtype: DType, class: Self::Class, config: Self::Config) -> Result<()>;
    /// Seconds per run of one candidate on the class's representative shape (`small`: an
    /// eighth of it).
    fn time(
        gpu: &Arc<Gpu>,
        dtype: DType,
        class: Self::Class,
        config: Self::Config,
        small: bool,
    ) -> Result<f64>;
    /// The configuration `choices` holds for `class` and `dtype`.
    fn get(choices: &Choices, class: Self::Class, dtype: DType) -> Option<Self::Config>;
    /// Puts `config` into `choices` for `class` and `dtype`.
    fn set(choices: &mut Choices, class: Self::Class, dtype: DType, config: Self::Config);
}

/// The tiled matmul, tuned per row class.
pub struct TiledMatmul;

impl Family for TiledMatmul {
    const OP: &'static str = MATMUL_TILED;
    type Config = tiled::Config;
    type Class = RowClass;

    fn candidates(gpu: &Gpu, _: RowClass) -> Vec<tiled::Config> {
        tiled::fitting(gpu.caps())
    }

    fn default(_: &Gpu, _: RowClass) -> tiled::Config {
        tiled::DEFAULT
    }

    fn check(gpu: &Arc<Gpu>, dtype: DType, _: RowClass, config: tiled::Config) -> Result<()> {
        check_tiled(gpu, dtype, config)
    }

    fn time(
        gpu: &Arc<Gpu>,
        dtype: DType,
        class: RowClass,
        config: tiled::Config,
        small: bool,
    ) -> Result<f64> {
        time_tiled(gpu, dtype, config, representative(class, small))
    }

    fn get(choices: &Choices, class: RowClass, dtype: DType) -> Option<tiled::Config> {
        choices.tiled(class, dtype)
    }

    fn set(choices: &mut Choices, class: RowClass, dtype: DType, config: tiled::Config) {
        choices.set_tiled(class, dtype, config);
    }
}

/// The tensor-core matmul (f16 only), tuned per row class. Its candidates are the grids that
/// fit the adapter at its cooperative-matrix shape; none where it has no usable ones.
pub struct CoopMatmul;

impl Family for CoopMatmul {
    const OP: &'static str = MATMUL_COOP;
    type Config = coop::Config;
    type Class = RowClass;

    fn candidates(gpu: &Gpu, _: RowClass) -> Vec<coop::Config> {
        let caps = gpu.caps();
        coop::supported(caps).map_or_else(|_| Vec::new(), |shape| coop::fitting(shape, caps))
    }

    fn default(gpu: &Gpu, _: RowClass) -> coop::Config {
        let caps = gpu.caps();
        coop::supported(caps).map_or(coop::DEFAULT, |shape| coop::default_for(shape, caps))
    }

    fn check(gpu: &Arc<Gpu>, _: DType, _: RowClass, config: coop::Config) -> Result<()> {
        check_coop(gpu, config)
    }

    fn time(
        gpu: &Arc<Gpu>,
        _: DType,
        class: RowClass,
        config: coop::Config,
        small: bool,
    ) -> Result<f64> {
        time_coop(gpu, config, representative(class, small))
    }

    fn get(choices: &Choices, class: RowClass, _: DType) -> Option<coop::Config> {
        choices.coop_matmul(class)
    }

    fn set(choices: &mut Choices, class: RowClass, _: DType, config: coop::Config) {
        choices.set_coop_matmul(class, config);
    }
}

/// The portable attention kernel, tuned per head size.
pub struct PortableAttention;

impl Family for PortableAttention {
    const OP: &'static str = ATTENTION;
    type Config = attention::Tiles;
    /// The head size.
    type Class = u32;

    fn candidates(gpu: &Gpu, head_dim: u32) -> Vec<attention::Tiles> {
        attention::fitting(head_dim, gpu.caps())
    }

    fn default(gpu: &Gpu, head_dim: u32) -> attention::Tiles {
        attention::Tiles::default_for(head_dim, gpu.caps())
    }

    fn check(gpu: &Arc<Gpu>, dtype: DType, d: u32, tiles: attention::Tiles) -> Result<()> {
        check_attention(gpu, dtype, d, tiles)
    }

    fn time(
        gpu: &Arc<Gpu>,
        dtype: DType,
        d: u32,
        tiles: attention::Tiles,
        small: bool,
    ) -> Result<f64> {
        time_attention(gpu, dtype, d, tiles, small)
    }

    fn get(choices: &Choices, d: u32, dtype: DType) -> Option<attention::Tiles> {
        choices.attention(d, dtype)
    }

    fn set(choices: &mut Choices, d: u32, dtype: DType, tiles: attention::Tiles) {
        choices.set_attention(d, dtype, tiles);
    }
}

/// The tensor-core attention kernel (f16 only), tuned per head size. Its candidates are the
/// tiles that fit the adapter's workgroup memory; none where it has no usable cooperative
/// matrices.
pub struct CoopAttention;

impl Family for CoopAttention {
    const OP: &'static str = ATTENTION_COOP;
    type Config = attention::Tiles;
    /// The head size.
    type Class = u32;

    fn candidates(gpu: &Gpu, head_dim: u32) -> Vec<attention::Tiles> {
        let caps = gpu.caps();
        match attention::coop::supported(caps) {
            Ok(_) => attention::coop::fitting(head_dim, caps.max_workgroup_storage),
            Err(_) => Vec::new(),
        }
    }

    fn default(gpu: &Gpu, head_dim: u32) -> attention::Tiles {
        attention::coop::default_tiles(head_dim, gpu.caps().max_workgroup_storage)
            .unwrap_or(attention::coop::DEFAULT)
    }

    fn check(gpu: &Arc<Gpu>, _: DType, d: u32, tiles: attention::Tiles) -> Result<()> {
        check_coop_attention(gpu, d, tiles)
    }

    fn time(gpu: &Arc<Gpu>, _: DType, d: u32, tiles: attention::Tiles, small: bool) -> Result<f64> {
        let shape = attention::coop::supported(gpu.caps()).map_err(Error::Unsupported)?;
        let storage = gpu.caps().max_workgroup_storage;
        let kernel = attention::coop::kernel(shape, d, tiles, storage).ok_or_else(|| {
            Error::Unsupported(format!("{ATTENTION_COOP} {}: does not fit", tiles.name()))
        })?;
        time_attention_kernel(gpu, DType::F16, d, kernel, small)
    }

    fn get(choices: &Choices, d: u32, _: DType) -> Option<attention::Tiles> {
        choices.coop_attention(d)
    }

    fn set(choices: &mut Choices, d: u32, _: DType, tiles: attention::Tiles) {
        choices.set_coop_attention(d, tiles);
    }
}

/// The candidate (or the default) of `F` named `name` on this device.
pub(super) fn named<F: Family>(gpu: &Gpu, class: F::Class, name: &str) -> Option<F::Config> {
    F::candidates(gpu, class)
        .into_iter()
        .chain([F::default(gpu, class)])
        .find(|&c| c.name() == name)
}
