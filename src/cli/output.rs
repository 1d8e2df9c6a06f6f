//! Matrix outputs that stream: `.npy` (float32, C order) and `.safetensors` (one F32 tensor
//! "embeddings"). Both reserve a fixed-size header, stream rows, then rewrite the header with
//! the final row count, so any number of rows is written with bounded memory.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};

const HEADER: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatrixFormat {
    Npy,
    Safetensors,
}

pub struct MatrixWriter {
    out: BufWriter<File>,
    format: MatrixFormat,
    cols: usize,
    rows: usize,
}

impl MatrixWriter {
    pub fn create(path: &Path, format: MatrixFormat, cols: usize) -> Result<Self> {
        let file = File::create(path)
            .with_context(|| format!("cannot write output file {}", path.display()))?;
        let mut out = BufWriter::new(file);
        out.write_all(&[b' '; HEADER])?;
        Ok(MatrixWriter {
            out,
            format,
            cols,
            rows: 0,
        })
    }

    pub fn push(&mut self, row: &[f32]) -> Result<()> {
        if row.len() != self.cols {
            bail!(
                "row of {} values in a matrix of {} columns",
                row.len(),
                self.cols
            );
        }
        for v in row {
            self.out.write_all(&v.to_le_bytes())?;
        }
        self.rows += 1;
        Ok(())
    }

    pub fn finish(mut self) -> Result<()> {
        let header = match self.format {
            MatrixFormat::Npy => npy_header(self.rows, self.cols),
            MatrixFormat::Safetensors => safetensors_header(self.rows, self.cols),
        };
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header)?;
        self.out.flush()?;
        Ok(())
    }
}

/// NPY v1.0: magic, version, u16 header length, dict padded with spaces, ending in '\n';
/// the whole preamble is a multiple of 64 bytes (here exactly HEADER).
fn npy_header(rows: usize, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    let len = HEADER - 10;
    h.extend_from_slice(&(len as u16).to_le_bytes());
    let mut d = dict.into_bytes();
    d.resize(len - 1, b' ');
    d.push(b'\n');
    h.extend_from_slice(&d);
    h
}

/// safetensors: u64 header length, JSON header (trailing spaces allowed), data.
fn safetensors_header(rows: usize, cols: usize) -> Vec<u8> {
    let bytes = rows * cols * 4;
    let json = format!(
        "{{\"embeddings\":{{\"dtype\":\"F32\",\"shape\":[{rows},{cols}],\"data_offsets\":[0,{bytes}]}}}}"
    );
    let len = HEADER - 8;
    let mut h = (len as u64).to_le_bytes().to_vec();
    let mut j = json.into_bytes();
    j.resize(len, b' ');
    h.extend_from_slice(&j);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_read_back() {
        let dir = tempfile::tempdir().unwrap();
        for fmt in [MatrixFormat::Npy, MatrixFormat::Safetensors] {
            let p = dir.path().join("m");
            let mut w = MatrixWriter::create(&p, fmt, 3).unwrap();
            w.push(&[1.0, 2.0, 3.0]).unwrap();
            w.push(&[4.0, 5.0, 6.5]).unwrap();
            w.finish().unwrap();
            let data = std::fs::read(&p).unwrap();
            assert_eq!(data.len(), HEADER + 24);
            if fmt == MatrixFormat::Safetensors {
                let st = safetensors::SafeTensors::deserialize(&data).unwrap();
                let t = st.tensor("embeddings").unwrap();
                assert_eq!(t.shape(), &[2, 3]);
                assert_eq!(&t.data()[20..24], &6.5f32.to_le_bytes());
            } else {
                assert!(String::from_utf8_lossy(&data[..HEADER]).contains("'shape': (2, 3)"));
            }
        }
    }
}
