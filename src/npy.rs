//! NumPy's `.npy` format, as far as wgbert needs it: the header of a C-order array (written
//! by the command line's matrix outputs and by [`crate::sentence::quantize::Ranges`]), and
//! reading a small 2-D float array (calibration ranges) back with every malformed file an
//! error that names it.

use std::path::Path;

use crate::{Error, Result};

const MAGIC: &[u8] = b"\x93NUMPY";

/// An NPY v1.0 preamble (magic, version, header dict) for an array of `descr` (`<f4`, `|i1`,
/// ...) and `shape` (Python tuple syntax: `(2, 16)`, `(5,)`, `()`), padded with spaces so that
/// it is `len` bytes long, or the next multiple of 64 bytes when `len` is `None` or too small.
pub fn preamble(descr: &str, shape: &str, len: Option<usize>) -> Vec<u8> {
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let least = (10 + dict.len() + 1).div_ceil(64) * 64;
    let total = len.filter(|&l| l >= least).unwrap_or(least);
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(&[1, 0]);
    h.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    let mut d = dict.into_bytes();
    d.resize(total - 11, b' ');
    d.push(b'\n');
    h.extend_from_slice(&d);
    h
}

/// A 2-D array of f32 values read from a `.npy` file, in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub values: Vec<f32>,
}

/// Reads a 2-D float32 or float64 `.npy` file (either byte order, C or Fortran order).
pub fn read_matrix(path: &Path) -> Result<Matrix> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_matrix(&bytes).map_err(|message| Error::Option(format!("{}: {message}", path.display())))
}

/// [`read_matrix`] on the bytes of a file; the error says what is wrong with them.
pub fn parse_matrix(bytes: &[u8]) -> std::result::Result<Matrix, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start + len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("the .npy header is cut short or not text")?;
    let descr = dict_value(header, "descr").ok_or("the .npy header has no 'descr'")?;
    let descr = descr
        .strip_prefix(['\'', '"'])
        .and_then(|d| d.split(['\'', '"']).next())
        .ok_or("the .npy header's 'descr' is not a string")?;
    let (size, big) = match descr {
        "<f4" | "|f4" | "=f4" => (4, false),
        ">f4" => (4, true),
        "<f8" | "|f8" | "=f8" => (8, false),
        ">f8" => (8, true),
        other => return Err(format!("dtype {other} is not float32 or float64")),
    };
    let fortran = dict_value(header, "fortran_order").is_some_and(|v| v.starts_with("True"));
    let shape = dict_value(header, "shape").ok_or("the .npy header has no 'shape'")?;
    let dims: Vec<usize> = shape
        .trim_start_matches('(')
        .split(')')
        .next()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| format!("bad shape {shape}"))?;
    let [rows, cols] = dims[..] else {
        return Err(format!("shape {dims:?} is not 2-D"));
    };
    let data = &bytes[start + len..];
    let n = rows
        .checked_mul(cols)
        .filter(|n| n.checked_mul(size) == Some(data.len()))
        .ok_or_else(|| {
            format!(
                "{} data bytes for a {rows} x {cols} array of {size}-byte values",
                data.len()
            )
        })?;
    let value = |i: usize| -> f32 {
        let b = &data[i * size..(i + 1) * size];
        match (size, big) {
            (4, false) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            (4, true) => f32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            (_, false) => f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32,
            (_, true) => f64::from_be_bytes(b.try_into().unwrap_or([0; 8])) as f32,
        }
    };
    let values = (0..n)
        .map(|i| {
            let (r, c) = (i / cols.max(1), i % cols.max(1));
            value(if fortran { c * rows + r } else { i })
        })
        .collect();
    Ok(Matrix { rows, cols, values })
}

/// The text after `'key':` in a header dict, up to the end of the dict.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    Some(rest.trim_start().strip_prefix(':')?.trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_headers_read_back() {
        let mut bytes = preamble("<f4", "(2, 3)", None);
        assert_eq!(bytes.len() % 64, 0);
        for v in [1.0f32, 2.0, 3.0, -1.0, 0.5, 8.0] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let m = parse_matrix(&bytes).unwrap();
        assert_eq!((m.rows, m.cols), (2, 3));
        assert_eq!(m.values, [1.0, 2.0, 3.0, -1.0, 0.5, 8.0]);
        assert_eq!(preamble("|i1", "(1,)", Some(256)).len(), 256);
    }

    #[test]
    fn fortran_order_and_float64() {
        let header = "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }";
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        for v in [1.0f64, 3.0, 2.0, 4.0] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let m = parse_matrix(&bytes).unwrap();
        assert_eq!(m.values, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn malformed_files_say_why() {
        assert!(parse_matrix(b"hello").unwrap_err().contains("magic"));
        let mut bytes = preamble("<i8", "(2, 2)", None);
        bytes.extend_from_slice(&[0; 32]);
        assert!(parse_matrix(&bytes).unwrap_err().contains("not float32"));
        let mut bytes = preamble("<f4", "(2, 2)", None);
        bytes.extend_from_slice(&[0; 12]);
        assert!(parse_matrix(&bytes).unwrap_err().contains("12 data bytes"));
        let mut bytes = preamble("<f4", "(4,)", None);
        bytes.extend_from_slice(&[0; 16]);
        assert!(parse_matrix(&bytes).unwrap_err().contains("not 2-D"));
    }
}
