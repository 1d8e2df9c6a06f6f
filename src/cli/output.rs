//! Matrix outputs that stream: `.npy` (C order) and `.safetensors` (one tensor
//! "embeddings"), of float32, or of int8 / uint8 for quantized embeddings. Both reserve a
//! fixed-size header, stream rows, then rewrite the header with the final row count, so any
//! number of rows is written with bounded memory.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use wgbert::sentence::quantize::Quantized;

const HEADER: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatrixFormat {
    Npy,
    Safetensors,
}

/// The element type of a matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element {
    F32,
    I8,
    U8,
}

impl Element {
    fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::I8 | Self::U8 => 1,
        }
    }
    fn npy(self) -> &'static str {
        match self {
            Self::F32 => "<f4",
            Self::I8 => "|i1",
            Self::U8 => "|u1",
        }
    }
    fn safetensors(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::I8 => "I8",
            Self::U8 => "U8",
        }
    }
}

pub struct MatrixWriter {
    out: BufWriter<File>,
    format: MatrixFormat,
    element: Element,
    cols: usize,
    rows: usize,
}

impl MatrixWriter {
    pub fn create(
        path: &Path,
        format: MatrixFormat,
        element: Element,
        cols: usize,
    ) -> Result<Self> {
        let file = File::create(path)
            .with_context(|| format!("cannot write output file {}", path.display()))?;
        let mut out = BufWriter::new(file);
        out.write_all(&[b' '; HEADER])?;
        Ok(MatrixWriter {
            out,
            format,
            element,
            cols,
            rows: 0,
        })
    }

    pub fn push(&mut self, row: &[f32]) -> Result<()> {
        self.push_quantized(&Quantized::F32(row.to_vec()))
    }

    /// One row of the matrix's element type.
    pub fn push_quantized(&mut self, row: &Quantized) -> Result<()> {
        let element = match row {
            Quantized::F32(_) => Element::F32,
            Quantized::I8(_) => Element::I8,
            Quantized::U8(_) => Element::U8,
        };
        if row.len() != self.cols || element != self.element {
            bail!(
                "a row of {} {element:?} values in a matrix of {} {:?} columns",
                row.len(),
                self.cols,
                self.element
            );
        }
        self.out.write_all(&row.to_bytes())?;
        self.rows += 1;
        Ok(())
    }

    pub fn finish(mut self) -> Result<()> {
        let (rows, cols, e) = (self.rows, self.cols, self.element);
        let header = match self.format {
            MatrixFormat::Npy => {
                wgbert::npy::preamble(e.npy(), &format!("({rows}, {cols})"), Some(HEADER))
            }
            MatrixFormat::Safetensors => safetensors_header(rows, cols, e),
        };
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header)?;
        self.out.flush()?;
        Ok(())
    }
}

/// safetensors: u64 header length, JSON header (trailing spaces allowed), data.
fn safetensors_header(rows: usize, cols: usize, e: Element) -> Vec<u8> {
    let bytes = rows * cols * e.size();
    let json = format!(
        "{{\"embeddings\":{{\"dtype\":\"{}\",\"shape\":[{rows},{cols}],\"data_offsets\":[0,{bytes}]}}}}",
        e.safetensors()
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
            let mut w = MatrixWriter::create(&p, fmt, Element::F32, 3).unwrap();
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

    #[test]
    fn quantized_rows_keep_their_type() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.safetensors");
        let mut w = MatrixWriter::create(&p, MatrixFormat::Safetensors, Element::I8, 2).unwrap();
        w.push_quantized(&Quantized::I8(vec![-128, 127])).unwrap();
        assert!(w.push_quantized(&Quantized::U8(vec![1, 2])).is_err());
        assert!(w.push(&[1.0, 2.0]).is_err());
        w.finish().unwrap();
        let data = std::fs::read(&p).unwrap();
        let st = safetensors::SafeTensors::deserialize(&data).unwrap();
        let t = st.tensor("embeddings").unwrap();
        assert_eq!(t.dtype(), safetensors::Dtype::I8);
        assert_eq!(t.data(), &[0x80, 0x7f]);
        let p = dir.path().join("q.npy");
        let mut w = MatrixWriter::create(&p, MatrixFormat::Npy, Element::U8, 1).unwrap();
        w.push_quantized(&Quantized::U8(vec![200])).unwrap();
        w.finish().unwrap();
        let data = std::fs::read(&p).unwrap();
        assert_eq!(data.len(), HEADER + 1);
        assert!(String::from_utf8_lossy(&data[..HEADER]).contains("'descr': '|u1'"));
    }
}
