//! Sparse rows (CSR) that stream: the indices and values go to two anonymous temporary files
//! next to the output while rows come, the row pointers stay in memory (8 bytes a row), and
//! `finish` writes the file: `.npz` as `scipy.sparse.save_npz` writes a CSR matrix
//! (`scipy.sparse.load_npz` reads it) or `.safetensors` with tensors `indptr` (I64),
//! `indices` (I32) and `values` (F32), and `format`/`shape` in its metadata.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// An NPY preamble of `descr` and `shape`, padded to a multiple of 64 bytes.
fn npy_preamble(descr: &str, shape: &str) -> Vec<u8> {
    wgbert::npy::preamble(descr, shape, None)
}

pub struct CsrWriter {
    path: std::path::PathBuf,
    format: CsrFormat,
    cols: usize,
    indptr: Vec<i64>,
    indices: BufWriter<File>,
    values: BufWriter<File>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrFormat {
    Npz,
    Safetensors,
}

impl CsrWriter {
    pub fn create(path: &Path, format: CsrFormat, cols: usize) -> Result<Self> {
        // Fail on a bad path before any work.
        File::create(path)
            .with_context(|| format!("cannot write output file {}", path.display()))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let temp = || -> Result<BufWriter<File>> {
            Ok(BufWriter::new(tempfile::tempfile_in(&dir).with_context(
                || format!("cannot make a temporary file in {}", dir.display()),
            )?))
        };
        Ok(CsrWriter {
            path: path.to_path_buf(),
            format,
            cols,
            indptr: vec![0],
            indices: temp()?,
            values: temp()?,
        })
    }

    pub fn push(&mut self, indices: &[u32], values: &[f32]) -> Result<()> {
        if indices.len() != values.len() || indices.iter().any(|&i| i as usize >= self.cols) {
            bail!(
                "a sparse row does not fit a matrix of {} columns",
                self.cols
            );
        }
        for &i in indices {
            self.indices.write_all(&(i as i32).to_le_bytes())?;
        }
        for v in values {
            self.values.write_all(&v.to_le_bytes())?;
        }
        let last = self.indptr.last().copied().unwrap_or(0);
        self.indptr.push(last + indices.len() as i64);
        Ok(())
    }

    pub fn finish(self) -> Result<()> {
        let rows = self.indptr.len() - 1;
        let nnz = *self.indptr.last().unwrap_or(&0) as usize;
        let indptr: Vec<u8> = self.indptr.iter().flat_map(|v| v.to_le_bytes()).collect();
        let rewind = |w: BufWriter<File>| -> Result<File> {
            let mut f = w.into_inner().map_err(|e| e.into_error())?;
            f.seek(SeekFrom::Start(0))?;
            Ok(f)
        };
        let mut indices = rewind(self.indices)?;
        let mut values = rewind(self.values)?;
        let file = File::create(&self.path)
            .with_context(|| format!("cannot write output file {}", self.path.display()))?;
        let mut out = BufWriter::new(file);
        match self.format {
            CsrFormat::Safetensors => {
                let (a, b, c) = (indptr.len(), nnz * 4, nnz * 4);
                let json = format!(
                    "{{\"__metadata__\":{{\"format\":\"csr\",\"shape\":\"[{rows}, {cols}]\"}},\
                     \"indptr\":{{\"dtype\":\"I64\",\"shape\":[{n}],\"data_offsets\":[0,{a}]}},\
                     \"indices\":{{\"dtype\":\"I32\",\"shape\":[{nnz}],\"data_offsets\":[{a},{ab}]}},\
                     \"values\":{{\"dtype\":\"F32\",\"shape\":[{nnz}],\"data_offsets\":[{ab},{abc}]}}}}",
                    cols = self.cols,
                    n = rows + 1,
                    ab = a + b,
                    abc = a + b + c,
                );
                let mut j = json.into_bytes();
                j.resize(j.len().div_ceil(8) * 8, b' ');
                out.write_all(&(j.len() as u64).to_le_bytes())?;
                out.write_all(&j)?;
                out.write_all(&indptr)?;
                std::io::copy(&mut indices, &mut out)?;
                std::io::copy(&mut values, &mut out)?;
            }
            CsrFormat::Npz => {
                let mut zip = StoredZip::new(out);
                let shape: Vec<u8> = [rows as i64, self.cols as i64]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect();
                zip.entry(
                    "indices.npy",
                    &npy_preamble("<i4", &format!("({nnz},)")),
                    &mut indices,
                )?;
                zip.entry(
                    "indptr.npy",
                    &npy_preamble("<i8", &format!("({},)", rows + 1)),
                    &mut &indptr[..],
                )?;
                zip.entry("format.npy", &npy_preamble("|S3", "()"), &mut &b"csr"[..])?;
                zip.entry("shape.npy", &npy_preamble("<i8", "(2,)"), &mut &shape[..])?;
                zip.entry(
                    "data.npy",
                    &npy_preamble("<f4", &format!("({nnz},)")),
                    &mut values,
                )?;
                out = zip.finish()?;
            }
        }
        out.flush()?;
        Ok(())
    }
}

/// A zip archive of stored (uncompressed) entries, as `numpy.savez` writes them, with the
/// zip64 extras that entries past 4 GiB need.
struct StoredZip<W: Write> {
    out: W,
    offset: u64,
    central: Vec<u8>,
    entries: u64,
}

impl<W: Write> StoredZip<W> {
    fn new(out: W) -> Self {
        StoredZip {
            out,
            offset: 0,
            central: Vec::new(),
            entries: 0,
        }
    }

    /// One entry: `head` then everything `body` reads. The local header carries the sizes
    /// after the data (a data descriptor), so the body streams once.
    fn entry(&mut self, name: &str, head: &[u8], body: &mut dyn std::io::Read) -> Result<()> {
        let start = self.offset;
        let mut local = Vec::new();
        local.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        local.extend_from_slice(&45u16.to_le_bytes()); // version needed (zip64)
        local.extend_from_slice(&0x0008u16.to_le_bytes()); // sizes in a data descriptor
        local.extend_from_slice(&0u16.to_le_bytes()); // stored
        local.extend_from_slice(&[0, 0, 0x21, 0]); // time 00:00, date 1980-01-01
        local.extend_from_slice(&0u32.to_le_bytes()); // crc (in the descriptor)
        local.extend_from_slice(&u32::MAX.to_le_bytes()); // sizes: zip64
        local.extend_from_slice(&u32::MAX.to_le_bytes());
        local.extend_from_slice(&(name.len() as u16).to_le_bytes());
        local.extend_from_slice(&20u16.to_le_bytes());
        local.extend_from_slice(name.as_bytes());
        local.extend_from_slice(&0x0001u16.to_le_bytes());
        local.extend_from_slice(&16u16.to_le_bytes());
        local.extend_from_slice(&0u64.to_le_bytes());
        local.extend_from_slice(&0u64.to_le_bytes());
        self.out.write_all(&local)?;
        let mut crc = Crc32::default();
        crc.update(head);
        self.out.write_all(head)?;
        let mut size = head.len() as u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = body.read(&mut buf)?;
            if n == 0 {
                break;
            }
            crc.update(&buf[..n]);
            self.out.write_all(&buf[..n])?;
            size += n as u64;
        }
        let crc = crc.value();
        let mut desc = Vec::new();
        desc.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
        desc.extend_from_slice(&crc.to_le_bytes());
        desc.extend_from_slice(&size.to_le_bytes());
        desc.extend_from_slice(&size.to_le_bytes());
        self.out.write_all(&desc)?;
        self.offset += (local.len() as u64) + size + desc.len() as u64;
        let c = &mut self.central;
        c.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        c.extend_from_slice(&45u16.to_le_bytes()); // made by
        c.extend_from_slice(&45u16.to_le_bytes()); // needed
        c.extend_from_slice(&0x0008u16.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&[0, 0, 0x21, 0]);
        c.extend_from_slice(&crc.to_le_bytes());
        c.extend_from_slice(&u32::MAX.to_le_bytes());
        c.extend_from_slice(&u32::MAX.to_le_bytes());
        c.extend_from_slice(&(name.len() as u16).to_le_bytes());
        c.extend_from_slice(&28u16.to_le_bytes()); // extra: zip64 sizes and offset
        c.extend_from_slice(&0u16.to_le_bytes()); // comment
        c.extend_from_slice(&0u16.to_le_bytes()); // disk
        c.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        c.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        c.extend_from_slice(&u32::MAX.to_le_bytes()); // offset: zip64
        c.extend_from_slice(name.as_bytes());
        c.extend_from_slice(&0x0001u16.to_le_bytes());
        c.extend_from_slice(&24u16.to_le_bytes());
        c.extend_from_slice(&size.to_le_bytes());
        c.extend_from_slice(&size.to_le_bytes());
        c.extend_from_slice(&start.to_le_bytes());
        self.entries += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<W> {
        let cd_start = self.offset;
        let cd_len = self.central.len() as u64;
        self.out.write_all(&self.central)?;
        let eocd64 = cd_start + cd_len;
        let mut e = Vec::new();
        e.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
        e.extend_from_slice(&44u64.to_le_bytes());
        e.extend_from_slice(&45u16.to_le_bytes());
        e.extend_from_slice(&45u16.to_le_bytes());
        e.extend_from_slice(&0u32.to_le_bytes());
        e.extend_from_slice(&0u32.to_le_bytes());
        e.extend_from_slice(&self.entries.to_le_bytes());
        e.extend_from_slice(&self.entries.to_le_bytes());
        e.extend_from_slice(&cd_len.to_le_bytes());
        e.extend_from_slice(&cd_start.to_le_bytes());
        // zip64 end-of-central-directory locator
        e.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
        e.extend_from_slice(&0u32.to_le_bytes());
        e.extend_from_slice(&eocd64.to_le_bytes());
        e.extend_from_slice(&1u32.to_le_bytes());
        // end of central directory, its fields pointing to the zip64 record
        e.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        e.extend_from_slice(&u16::MAX.to_le_bytes());
        e.extend_from_slice(&u16::MAX.to_le_bytes());
        e.extend_from_slice(&u32::MAX.to_le_bytes());
        e.extend_from_slice(&u32::MAX.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        self.out.write_all(&e)?;
        Ok(self.out)
    }
}

/// CRC-32 (IEEE), the zip checksum.
#[derive(Default)]
struct Crc32(u32);

impl Crc32 {
    fn update(&mut self, data: &[u8]) {
        let mut c = !self.0;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xEDB8_8320
                } else {
                    c >> 1
                };
            }
        }
        self.0 = !c;
    }
    fn value(&self) -> u32 {
        self.0
    }
}
