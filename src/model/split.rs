//! Weights in row pieces: a `[rows, cols]` tensor larger than one storage binding (the
//! embedding table of a 256k vocabulary, an f32 ModernBERT-base's 147 MiB table on a 128 MiB
//! adapter) is uploaded as several buffers of whole rows, each within the device's binding
//! limit (`Capabilities::max_storage_binding`, which `GpuOptions::max_binding` can lower).
//! Rows, not columns, because every consumer reads whole rows: the embedding gather takes
//! one row per token (`ops::embedding::record_piece`) and a linear layer's row r is its
//! output feature r, so each piece's product fills its own output columns
//! (`ops::matmul::record_cols`). A bias is split like its weight. A gated weight (`mlp.Wi`:
//! `[2I, H]`, input rows then gate rows, paired by feature) is cut by output feature, each
//! piece holding its features' input rows followed by their gate rows: the GeGLU kernel reads
//! it as it reads a whole `Wi` (`halves` = 2).

use crate::runtime::{DeviceBuffer, Gpu, MemoryKind};
use crate::{Error, Result};

/// Output features `first..first + rows` of a tensor, in one buffer: those rows of each
/// half, one half after the other.
#[derive(Clone)]
pub struct Piece {
    pub first: usize,
    pub rows: usize,
    pub buf: DeviceBuffer,
}

/// A weight on the device: one piece, or several when it exceeds a binding.
#[derive(Clone)]
pub struct Weight {
    /// The checkpoint's name of the tensor.
    pub name: String,
    /// Rows in all (`halves` times the output features).
    pub rows: usize,
    /// Bytes of one row in the storage precision.
    pub row_bytes: u64,
    /// 1, or 2 for a gated weight whose rows are two halves paired by feature.
    pub halves: usize,
    pub pieces: Vec<Piece>,
}

/// How one tensor is held (`wgbert info --model`): its bytes and the rows of each piece.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SplitReport {
    pub name: String,
    pub bytes: u64,
    /// Rows per piece, in order.
    pub pieces: Vec<usize>,
}

impl Weight {
    /// Whether the weight is held in more than one buffer.
    pub fn is_split(&self) -> bool {
        self.pieces.len() > 1
    }

    pub fn bytes(&self) -> u64 {
        self.rows as u64 * self.row_bytes
    }

    pub fn report(&self) -> SplitReport {
        SplitReport {
            name: self.name.clone(),
            bytes: self.bytes(),
            pieces: self.pieces.iter().map(|p| p.rows * self.halves).collect(),
        }
    }

    /// The pieces as `(first, features)`: what a bias split like this weight takes.
    pub fn ranges(&self) -> Vec<(usize, usize)> {
        self.pieces.iter().map(|p| (p.first, p.rows)).collect()
    }
}

/// The pieces `(first, features)` of a tensor of `features` output features, each of
/// `halves` rows of `row_bytes`, for a device whose buffers may hold at most `limit` bytes:
/// as many whole features per piece as fit, the last piece holding the rest. One piece when
/// the tensor fits. A feature's rows over `limit` are `Error::BufferTooLarge` naming it.
pub fn plan_pieces(
    name: &str,
    features: usize,
    halves: usize,
    row_bytes: u64,
    limit: u64,
) -> Result<Vec<(usize, usize)>> {
    let feature_bytes = row_bytes * halves as u64;
    if features as u64 * feature_bytes <= limit {
        return Ok(vec![(0, features)]);
    }
    let per = limit / feature_bytes.max(1);
    if per == 0 {
        return Err(Error::BufferTooLarge {
            name: format!("{name} (one row)"),
            bytes: feature_bytes,
            limit,
            what: "max_storage_buffer_binding_size",
        });
    }
    let per = usize::try_from(per).unwrap_or(usize::MAX);
    Ok((0..features)
        .step_by(per)
        .map(|first| (first, per.min(features - first)))
        .collect())
}

/// The largest buffer the device binds whole: the binding limit, within the buffer limit,
/// rounded down to 4 bytes (buffers are padded to 4).
pub fn binding_limit(gpu: &Gpu) -> u64 {
    let caps = gpu.caps();
    let limit = caps.max_storage_binding.min(caps.max_buffer_size);
    limit - limit % 4
}

/// Uploads `data` (`rows` rows in `halves` halves, in the storage precision) as the pieces
/// `ranges` of output features, each a buffer counted as weights and labelled with its
/// features.
pub fn upload(
    gpu: &Gpu,
    name: &str,
    data: &[u8],
    (rows, halves): (usize, usize),
    ranges: &[(usize, usize)],
) -> Result<Weight> {
    let bad = |message: String| Error::Gpu {
        context: format!("uploading '{name}'"),
        message,
    };
    let row_bytes = (data.len() / rows.max(1)) as u64;
    let features = rows / halves.max(1);
    if row_bytes * rows as u64 != data.len() as u64 || features * halves != rows {
        return Err(bad(format!(
            "{} bytes do not split into {rows} rows in {halves} halves",
            data.len()
        )));
    }
    let whole = ranges.len() == 1;
    let mut pieces = Vec::with_capacity(ranges.len());
    let mut bytes = Vec::new();
    for &(first, n) in ranges {
        let label = if whole {
            name.to_string()
        } else {
            format!("{name}[{first}..{}]", first + n)
        };
        let part = |h: usize| {
            let start = (h * features + first) as u64 * row_bytes;
            let end = start + n as u64 * row_bytes;
            data.get(start as usize..end as usize)
                .ok_or_else(|| bad(format!("rows {first}..{} past its end", first + n)))
        };
        // A whole tensor's one piece is the data as it is (halves included), and a piece of
        // one half a slice of it; only a gated piece gathers its two halves.
        let buf = if whole {
            gpu.upload_as(MemoryKind::Weights, &label, data)?
        } else if halves == 1 {
            gpu.upload_as(MemoryKind::Weights, &label, part(0)?)?
        } else {
            bytes.clear();
            for h in 0..halves {
                bytes.extend_from_slice(part(h)?);
            }
            gpu.upload_as(MemoryKind::Weights, &label, &bytes)?
        };
        pieces.push(Piece {
            first,
            rows: n,
            buf,
        });
    }
    Ok(Weight {
        name: name.to_string(),
        rows,
        row_bytes,
        halves,
        pieces,
    })
}

#[cfg(test)]
mod tests {
    use super::plan_pieces;

    #[test]
    fn pieces_hold_whole_rows_and_the_last_holds_the_rest() {
        assert_eq!(
            plan_pieces("t", 512, 1, 128, 1 << 20).unwrap(),
            vec![(0, 512)]
        );
        // 40 KiB of 128-byte rows: 320 rows a piece.
        let p = plan_pieces("t", 512, 1, 128, 40 << 10).unwrap();
        assert_eq!(p, vec![(0, 320), (320, 192)]);
        let p = plan_pieces("t", 7, 1, 12, 25).unwrap();
        assert_eq!(p, vec![(0, 2), (2, 2), (4, 2), (6, 1)]);
        assert_eq!(plan_pieces("t", 3, 1, 8, 24).unwrap(), vec![(0, 3)]);
        // Gated: a feature is two rows.
        let p = plan_pieces("t", 96, 2, 256, 30 << 10).unwrap();
        assert_eq!(p, vec![(0, 60), (60, 36)]);
    }

    #[test]
    fn a_row_over_the_limit_is_refused_by_name() {
        let e = plan_pieces("decoder.weight", 4, 1, 4096, 1000).unwrap_err();
        assert!(e.to_string().contains("decoder.weight"), "{e}");
    }
}
