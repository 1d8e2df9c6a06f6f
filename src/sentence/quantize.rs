//! Quantized embeddings for storage, computed as sentence-transformers' `quantize_embeddings`
//! computes them: `int8` / `uint8` map each dimension's calibration range onto 256 buckets
//! (float32 arithmetic: `floor((x - min) / ((max - min) / 255))` clipped to 0..=255, a zero
//! step counted as 1; `int8` subtracts 128), `binary` / `ubinary` keep the sign bit of each
//! dimension packed 8 to a byte, first dimension in the high bit (`np.packbits`), `binary`
//! as the packed byte minus 128.
//!
//! Calibration ranges ([`Ranges`]) are given (a float32 `.npy` of shape `(2, dim)`: minimum
//! row, maximum row, as sentence-transformers' `ranges`) or computed over the embeddings being
//! quantized ([`RangeStats`]), which, as in sentence-transformers, needs at least two.

use std::path::Path;

use crate::{Error, Result};

/// The storage precision of an embedding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    #[default]
    Float32,
    Int8,
    Uint8,
    Binary,
    Ubinary,
}

impl Precision {
    /// The precision named as sentence-transformers names it.
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "float32" => Self::Float32,
            "int8" => Self::Int8,
            "uint8" => Self::Uint8,
            "binary" => Self::Binary,
            "ubinary" => Self::Ubinary,
            other => {
                return Err(Error::Option(format!(
                    "unknown precision '{other}' (known: float32, int8, uint8, binary, ubinary)"
                )));
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Float32 => "float32",
            Self::Int8 => "int8",
            Self::Uint8 => "uint8",
            Self::Binary => "binary",
            Self::Ubinary => "ubinary",
        }
    }

    /// Values per quantized vector of `dim` dimensions (bytes for every precision but float32).
    pub fn width(self, dim: usize) -> usize {
        match self {
            Self::Binary | Self::Ubinary => dim.div_ceil(8),
            _ => dim,
        }
    }

    /// Whether the values are signed bytes (int8, binary).
    pub fn signed(self) -> bool {
        matches!(self, Self::Int8 | Self::Binary)
    }

    /// Whether the precision maps values through calibration ranges (int8, uint8).
    pub fn uses_ranges(self) -> bool {
        matches!(self, Self::Int8 | Self::Uint8)
    }
}

/// Per-dimension calibration ranges: the smallest and largest value of each dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranges {
    pub min: Vec<f32>,
    pub max: Vec<f32>,
}

impl Ranges {
    /// Ranges from a float32 (or float64) `.npy` array of shape `(2, dim)`.
    pub fn read_npy(path: &Path) -> Result<Ranges> {
        let m = crate::npy::read_matrix(path)?;
        if m.rows != 2 || m.cols == 0 {
            return Err(Error::Option(format!(
                "{}: ranges must have shape (2, dim), got ({}, {})",
                path.display(),
                m.rows,
                m.cols
            )));
        }
        let (min, max) = m.values.split_at(m.cols);
        if m.values.iter().any(|v| !v.is_finite()) {
            return Err(Error::Option(format!(
                "{}: ranges hold a value that is not finite",
                path.display()
            )));
        }
        Ok(Ranges {
            min: min.to_vec(),
            max: max.to_vec(),
        })
    }

    /// The ranges as a float32 `.npy` file of shape `(2, dim)`.
    pub fn to_npy(&self) -> Vec<u8> {
        let shape = format!("(2, {})", self.min.len());
        let mut out = crate::npy::preamble("<f4", &shape, None);
        for v in self.min.iter().chain(&self.max) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Dimensions covered.
    pub fn dim(&self) -> usize {
        self.min.len()
    }

    /// Checks that the ranges cover vectors of `dim` dimensions.
    pub fn check_dim(&self, dim: usize) -> Result<()> {
        if self.dim() != dim {
            return Err(Error::Option(format!(
                "the ranges cover {} dimensions, the embeddings have {dim}",
                self.dim()
            )));
        }
        Ok(())
    }
}

/// Running minimum and maximum of the embeddings seen, for ranges computed from them.
#[derive(Debug, Clone, Default)]
pub struct RangeStats {
    ranges: Option<Ranges>,
    count: usize,
}

impl RangeStats {
    /// Takes one embedding into account.
    pub fn observe(&mut self, v: &[f32]) -> Result<()> {
        match &mut self.ranges {
            None => {
                self.ranges = Some(Ranges {
                    min: v.to_vec(),
                    max: v.to_vec(),
                })
            }
            Some(r) => {
                r.check_dim(v.len())?;
                for ((lo, hi), &x) in r.min.iter_mut().zip(&mut r.max).zip(v) {
                    *lo = lo.min(x);
                    *hi = hi.max(x);
                }
            }
        }
        self.count += 1;
        Ok(())
    }

    /// The ranges of what was seen; sentence-transformers refuses to calibrate on a single
    /// embedding, and so does this.
    pub fn finish(self, precision: Precision) -> Result<Ranges> {
        match self.ranges {
            Some(r) if self.count >= 2 => Ok(r),
            _ => Err(Error::Option(format!(
                "cannot compute {} ranges from {} embedding(s): give calibration ranges \
                 (a (2, dim) float32 .npy of per-dimension minimum and maximum)",
                precision.name(),
                self.count
            ))),
        }
    }
}

/// One embedding in its storage precision.
#[derive(Debug, Clone, PartialEq)]
pub enum Quantized {
    F32(Vec<f32>),
    I8(Vec<i8>),
    U8(Vec<u8>),
}

impl Quantized {
    /// The values as JSON numbers.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::F32(v) => serde_json::json!(v),
            Self::I8(v) => serde_json::json!(v),
            Self::U8(v) => serde_json::json!(v),
        }
    }

    /// The values as little-endian bytes (f32: 4 bytes each; the others one).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Self::I8(v) => v.iter().map(|&x| x as u8).collect(),
            Self::U8(v) => v.clone(),
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::I8(v) => v.len(),
            Self::U8(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Quantizes one embedding; `ranges` are needed (and checked) for int8 and uint8.
pub fn quantize(v: &[f32], precision: Precision, ranges: Option<&Ranges>) -> Result<Quantized> {
    Ok(match precision {
        Precision::Float32 => Quantized::F32(v.to_vec()),
        Precision::Int8 | Precision::Uint8 => {
            let r = ranges.ok_or_else(|| {
                Error::Option(format!("{} needs calibration ranges", precision.name()))
            })?;
            r.check_dim(v.len())?;
            let buckets = v
                .iter()
                .zip(r.min.iter().zip(&r.max))
                .map(|(&x, (&lo, &hi))| {
                    // All in f32, as numpy computes it on float32 arrays.
                    let step = (hi - lo) / 255.0;
                    let step = if step == 0.0 { 1.0 } else { step };
                    ((x - lo) / step).floor().clamp(0.0, 255.0) as u8
                });
            if precision == Precision::Uint8 {
                Quantized::U8(buckets.collect())
            } else {
                Quantized::I8(buckets.map(|b| (b as i16 - 128) as i8).collect())
            }
        }
        Precision::Binary | Precision::Ubinary => {
            let packed = v.chunks(8).map(|c| {
                c.iter()
                    .enumerate()
                    .fold(0u8, |acc, (i, &x)| acc | (u8::from(x > 0.0) << (7 - i)))
            });
            if precision == Precision::Ubinary {
                Quantized::U8(packed.collect())
            } else {
                Quantized::I8(packed.map(|b| (b as i16 - 128) as i8).collect())
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_as_sentence_transformers() {
        let r = Ranges {
            min: vec![-1.0, 0.0, 2.0],
            max: vec![1.0, 0.0, 4.0],
        };
        let v = [0.0f32, 5.0, 4.0];
        // -1..1 in 255 steps: 0 is bucket floor(1 / (2/255)) = 127; a zero range uses step 1;
        // the maximum lands in bucket 254 in float32 (numpy: [[127 5 254]], [[-1 -123 126]]).
        assert_eq!(
            quantize(&v, Precision::Uint8, Some(&r)).unwrap(),
            Quantized::U8(vec![127, 5, 254])
        );
        assert_eq!(
            quantize(&v, Precision::Int8, Some(&r)).unwrap(),
            Quantized::I8(vec![-1, -123, 126])
        );
        let e = quantize(&v[..2], Precision::Int8, Some(&r)).unwrap_err();
        assert!(e.to_string().contains("cover 3 dimensions"), "{e}");
        assert!(quantize(&v, Precision::Int8, None).is_err());
    }

    #[test]
    fn bits_pack_high_first() {
        let v = [1.0f32, -1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 3.0, 0.5];
        assert_eq!(
            quantize(&v, Precision::Ubinary, None).unwrap(),
            Quantized::U8(vec![0b1001_0001, 0b1000_0000])
        );
        assert_eq!(
            quantize(&v, Precision::Binary, None).unwrap(),
            Quantized::I8(vec![(0b1001_0001i16 - 128) as i8, 0])
        );
        assert_eq!(Precision::Binary.width(9), 2);
    }

    #[test]
    fn computed_ranges_need_two_embeddings() {
        let mut s = RangeStats::default();
        s.observe(&[1.0, -2.0]).unwrap();
        assert!(s.clone().finish(Precision::Int8).is_err());
        s.observe(&[-1.0, 3.0]).unwrap();
        assert!(s.observe(&[0.0]).is_err(), "a width change is an error");
        let r = s.finish(Precision::Int8).unwrap();
        assert_eq!((r.min, r.max), (vec![-1.0, -2.0], vec![1.0, 3.0]));
    }

    #[test]
    fn ranges_round_trip_through_npy() {
        let r = Ranges {
            min: vec![-0.5, 0.25],
            max: vec![0.5, 1.0],
        };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ranges.npy");
        std::fs::write(&p, r.to_npy()).unwrap();
        assert_eq!(Ranges::read_npy(&p).unwrap(), r);
        std::fs::write(&p, b"junk").unwrap();
        let e = Ranges::read_npy(&p).unwrap_err().to_string();
        assert!(e.contains("ranges.npy") && e.contains("magic"), "{e}");
    }
}
