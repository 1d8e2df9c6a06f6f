//! Kernel choices as a value: the tile configurations of the tuned kernel families, the
//! classes they are chosen per, the `WGBERT_COOP` mode and the tensor-core self-check
//! verdicts of one device, gathered in [`Choices`]. A model load makes one (`ops::tune`
//! searches, checks and caches; `Encoder` keeps it) and every recording reads it: what a
//! plan records depends only on its inputs, and two encoders on one device may differ.
//!
//! This module is a leaf: the op families (`ops::matmul`, `ops::attention`) import their
//! configuration types and the choice from here, and the search (`ops::tune`) depends on
//! them, never the other way round. Each family's module adds the behaviour of its
//! configuration (names, fits, kernels) in its own `impl` block.

use std::collections::HashMap;

use crate::ops::DType;
use crate::ops::coop::{Mode, Verdict};

/// Row classes of the matmul: the rows a run has decide which chosen tile it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RowClass {
    /// Up to 512 rows (short batches, heads).
    Mid,
    /// More than 512 rows.
    Large,
}

impl RowClass {
    pub const ALL: [RowClass; 2] = [RowClass::Mid, RowClass::Large];

    pub fn name(self) -> &'static str {
        match self {
            RowClass::Mid => "rows<=512",
            RowClass::Large => "rows>512",
        }
    }

    /// The rows of the class, `lo..=hi`.
    pub fn rows(self) -> (u32, u32) {
        match self {
            RowClass::Mid => (0, 512),
            RowClass::Large => (513, u32::MAX),
        }
    }
}

/// A tile configuration of the tiled matmul (`matmul::tiled::Config`): each thread owns `rm`
/// rows (16 apart) and `rn` W rows of the tile (16 apart; for GeGLU the first `rn / 2` are
/// values, the others their gates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TiledConfig {
    pub rm: u32,
    pub rn: u32,
}

/// A tile configuration of the tensor-core matmul (`matmul::coop::Config`): a grid of `wm` x
/// `wn` warp tiles, one subgroup per warp tile, each of `acc` accumulator values per lane
/// (the fragments of a warp tile follow from the fragment shape and subgroup size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CoopConfig {
    pub wm: u32,
    pub wn: u32,
    pub acc: u32,
}

/// A tile configuration of an attention kernel (`attention::Tiles`): `br` query rows per
/// workgroup and `bc` keys per staged K/V tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttentionTiles {
    pub br: u32,
    pub bc: u32,
}

/// The kernel choices of one device for plan recording: tile configurations per family,
/// class and precision (a family without one uses its static default), the tensor-core mode
/// and the verdicts of their self-checks (a tensor-core kernel is chosen automatically only
/// where its verdict is a pass). `Choices::default()` records the portable kernels at their
/// default tiles.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Choices {
    /// What `WGBERT_COOP` asked for.
    pub coop: Mode,
    /// The tensor-core matmul's self-check on this device; `None` where it has not run.
    pub matmul_check: Option<Verdict>,
    /// The tensor-core attention's self-check on this device; `None` where it has not run.
    pub attention_check: Option<Verdict>,
    tiled: HashMap<(RowClass, DType), TiledConfig>,
    coop_matmul: HashMap<RowClass, CoopConfig>,
    attention: HashMap<(u32, DType), AttentionTiles>,
    coop_attention: HashMap<u32, AttentionTiles>,
}

impl Choices {
    /// No choices yet, in tensor-core mode `coop` (no self-check has run).
    pub fn new(coop: Mode) -> Choices {
        Choices {
            coop,
            ..Default::default()
        }
    }

    /// The tiled matmul's configuration for `class` and `dtype`, if one was chosen.
    pub fn tiled(&self, class: RowClass, dtype: DType) -> Option<TiledConfig> {
        self.tiled.get(&(class, dtype)).copied()
    }

    /// Uses `config` for the tiled matmul's `class` in `dtype` (tuned, cached or pinned).
    pub fn set_tiled(&mut self, class: RowClass, dtype: DType, config: TiledConfig) {
        self.tiled.insert((class, dtype), config);
    }

    /// The tensor-core matmul's configuration for `class` (f16), if one was chosen.
    pub fn coop_matmul(&self, class: RowClass) -> Option<CoopConfig> {
        self.coop_matmul.get(&class).copied()
    }

    /// Uses `config` for the tensor-core matmul's `class`.
    pub fn set_coop_matmul(&mut self, class: RowClass, config: CoopConfig) {
        self.coop_matmul.insert(class, config);
    }

    /// The portable attention kernel's tiles at `head_dim` in `dtype`, if chosen.
    pub fn attention(&self, head_dim: u32, dtype: DType) -> Option<AttentionTiles> {
        self.attention.get(&(head_dim, dtype)).copied()
    }

    /// Uses `tiles` for the portable attention kernel at `head_dim` in `dtype`.
    pub fn set_attention(&mut self, head_dim: u32, dtype: DType, tiles: AttentionTiles) {
        self.attention.insert((head_dim, dtype), tiles);
    }

    /// The tensor-core attention kernel's tiles at `head_dim` (f16), if chosen.
    pub fn coop_attention(&self, head_dim: u32) -> Option<AttentionTiles> {
        self.coop_attention.get(&head_dim).copied()
    }

    /// Uses `tiles` for the tensor-core attention kernel at `head_dim`.
    pub fn set_coop_attention(&mut self, head_dim: u32, tiles: AttentionTiles) {
        self.coop_attention.insert(head_dim, tiles);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_are_kept_per_class_and_precision() {
        let mut c = Choices::default();
        let t = TiledConfig { rm: 2, rn: 2 };
        c.set_tiled(RowClass::Mid, DType::F32, t);
        assert_eq!(c.tiled(RowClass::Mid, DType::F32), Some(t));
        assert_eq!(c.tiled(RowClass::Mid, DType::F16), None);
        assert_eq!(c.tiled(RowClass::Large, DType::F32), None);
        let other = c.clone();
        c.set_attention(64, DType::F16, AttentionTiles { br: 32, bc: 32 });
        assert_ne!(c, other, "a copy is a value of its own");
        assert_eq!(other.attention(64, DType::F16), None);
    }
}
