//! Element conversion from a checkpoint dtype to a storage dtype, little-endian bytes in and out.

use half::{bf16, f16};

use super::{Storage, WeightDType};

/// Appends `bytes` (elements of `src`) to `out` as `storage` elements. BF16 and F16 widen to
/// F32 exactly; narrowing to F16 rounds to nearest even and fails with the first finite value
/// that would become infinite.
pub(super) fn convert(
    src: WeightDType,
    storage: Storage,
    bytes: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), f32> {
    out.reserve(bytes.len() / src.size_bytes() * storage.size_bytes());
    match (src, storage) {
        (WeightDType::F32, Storage::F32) | (WeightDType::F16, Storage::F16) => {
            out.extend_from_slice(bytes)
        }
        (WeightDType::F16, Storage::F32) => {
            for c in bytes.chunks_exact(2) {
                out.extend_from_slice(&f16::from_le_bytes([c[0], c[1]]).to_f32().to_le_bytes());
            }
        }
        (WeightDType::BF16, Storage::F32) => {
            for c in bytes.chunks_exact(2) {
                out.extend_from_slice(&bf16::from_le_bytes([c[0], c[1]]).to_f32().to_le_bytes());
            }
        }
        (WeightDType::F32, Storage::F16) => {
            for c in bytes.chunks_exact(4) {
                let x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                out.extend_from_slice(&to_f16(x)?.to_le_bytes());
            }
        }
        (WeightDType::BF16, Storage::F16) => {
            for c in bytes.chunks_exact(2) {
                let x = bf16::from_le_bytes([c[0], c[1]]).to_f32();
                out.extend_from_slice(&to_f16(x)?.to_le_bytes());
            }
        }
    }
    Ok(())
}

/// Rounds to f16 (nearest even); `Err(x)` when a finite `x` overflows to infinity.
fn to_f16(x: f32) -> Result<f16, f32> {
    let h = f16::from_f32(x);
    if h.is_finite() || !x.is_finite() {
        Ok(h)
    } else {
        Err(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: WeightDType, storage: Storage, bytes: &[u8]) -> Result<Vec<u8>, f32> {
        let mut out = vec![7u8; 3]; // appended to, not cleared
        convert(src, storage, bytes, &mut out)?;
        Ok(out.split_off(3))
    }

    fn f32s(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    #[test]
    fn bf16_widens_to_f32_exactly() -> Result<(), f32> {
        let bits = [
            0x3f80u16, 0xc020, 0x4049, 0x0001, 0x7f7f, 0xff80, 0x8000, 0x3a83,
        ];
        let bytes: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        let got = f32s(&run(WeightDType::BF16, Storage::F32, &bytes)?);
        for (v, b) in got.iter().zip(bits) {
            assert_eq!(v.to_bits(), u32::from(b) << 16, "bf16 {b:#06x}");
        }
        Ok(())
    }

    #[test]
    fn f16_widens_exactly_and_copies_through() -> Result<(), f32> {
        let halves = [
            f16::from_f32(0.5),
            f16::from_f32(-1.25),
            f16::MAX,
            f16::from_bits(1),
        ];
        let bytes: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
        let want: Vec<f32> = halves.iter().map(|h| h.to_f32()).collect();
        assert_eq!(f32s(&run(WeightDType::F16, Storage::F32, &bytes)?), want);
        assert_eq!(run(WeightDType::F16, Storage::F16, &bytes)?, bytes);
        Ok(())
    }

    #[test]
    fn narrowing_to_f16_rounds_to_nearest_even() -> Result<(), f32> {
        let values = [
            1.0f32,
            0.1,
            -3.3333,
            65504.0,
            65519.0,
            1e-6,
            1e-9,
            f32::INFINITY,
        ];
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let got = run(WeightDType::F32, Storage::F16, &bytes)?;
        let want: Vec<u8> = values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect();
        assert_eq!(got, want);
        // bf16 rounds 65504 up to 65536 (an overflow): use its largest value under f16::MAX.
        let values = [1.0f32, 0.1, -3.3333, 65280.0, 1e-6, 1e-9, f32::NEG_INFINITY];
        let bf: Vec<u8> = values
            .iter()
            .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
            .collect();
        let want: Vec<u8> = values
            .iter()
            .flat_map(|&v| f16::from_f32(bf16::from_f32(v).to_f32()).to_le_bytes())
            .collect();
        assert_eq!(run(WeightDType::BF16, Storage::F16, &bf)?, want);
        Ok(())
    }

    #[test]
    fn narrowing_to_f16_refuses_overflow() {
        for x in [70000.0f32, -1e30] {
            assert_eq!(
                run(WeightDType::F32, Storage::F16, &x.to_le_bytes()),
                Err(x)
            );
        }
        let big = bf16::from_f32(1e10).to_le_bytes();
        assert!(run(WeightDType::BF16, Storage::F16, &big).is_err());
    }
}
