//! `embed --precision`: quantized outputs. With ranges given (`--ranges`), or a precision
//! that needs none (binary, ubinary), each record is quantized and written as it comes. An
//! int8 / uint8 run without ranges computes them over all of its embeddings, as
//! sentence-transformers does over the embeddings it is given: the float records wait in an
//! anonymous temporary file beside the output (so memory stays bounded), and are quantized
//! and written once the last one has been seen (`--save-ranges` keeps those ranges, to
//! quantize later queries alike).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};
use wgbert::encoder::Embedding;
use wgbert::sentence::quantize::{Precision, Quantized, RangeStats, Ranges, quantize};

use super::embed::{EmbedArgs, Sink};
use super::input::TextItem;

/// Where a record's quantized vectors go: the JSON object it came with (carried fields and
/// what the command adds) and its vectors, in its own order.
pub type Emit<'a> = dyn FnMut(Map<String, Value>, Vec<Quantized>) -> Result<()> + 'a;

/// Quantizes records now, or keeps them until the ranges are known.
pub struct QuantStage {
    precision: Precision,
    ranges: Option<Ranges>,
    stats: RangeStats,
    held: Option<BufWriter<File>>,
    save: Option<PathBuf>,
}

impl QuantStage {
    /// `ranges`: a `(2, dim)` .npy file (int8 and uint8 only); `save`: where computed ranges
    /// go; `dir`: where records wait while ranges are computed.
    pub fn new(
        precision: Precision,
        ranges: Option<&Path>,
        save: Option<&Path>,
        dir: &Path,
        dim: usize,
    ) -> Result<Self> {
        if !precision.uses_ranges() && (ranges.is_some() || save.is_some()) {
            bail!(
                "--ranges and --save-ranges are for --precision int8 and uint8, not {}",
                precision.name()
            );
        }
        if ranges.is_some() && save.is_some() {
            bail!("--save-ranges writes computed ranges; --ranges gives them already");
        }
        let ranges = match ranges {
            Some(p) => {
                let r = Ranges::read_npy(p)?;
                r.check_dim(dim)
                    .with_context(|| format!("--ranges {}", p.display()))?;
                Some(r)
            }
            None => None,
        };
        let held = match precision.uses_ranges() && ranges.is_none() {
            true => Some(BufWriter::new(tempfile::tempfile_in(dir).with_context(
                || format!("cannot make a temporary file in {}", dir.display()),
            )?)),
            false => None,
        };
        if let Some(p) = save {
            // A bad path fails before any work.
            File::create(p).with_context(|| format!("cannot write {}", p.display()))?;
        }
        Ok(QuantStage {
            precision,
            ranges,
            stats: RangeStats::default(),
            held,
            save: save.map(Path::to_path_buf),
        })
    }

    /// One record: its object and float vectors.
    pub fn push(
        &mut self,
        obj: Map<String, Value>,
        vectors: Vec<Vec<f32>>,
        emit: &mut Emit,
    ) -> Result<()> {
        match &mut self.held {
            Some(w) => {
                for v in &vectors {
                    self.stats.observe(v)?;
                }
                let line = serde_json::json!({"o": obj, "v": vectors});
                serde_json::to_writer(&mut *w, &line)?;
                w.write_all(b"\n")?;
                Ok(())
            }
            None => emit(obj, self.quantize(&vectors)?),
        }
    }

    fn quantize(&self, vectors: &[Vec<f32>]) -> Result<Vec<Quantized>> {
        vectors
            .iter()
            .map(|v| quantize(v, self.precision, self.ranges.as_ref()).map_err(Into::into))
            .collect()
    }

    /// Writes what waited for the ranges (computing and saving them first).
    pub fn finish(mut self, emit: &mut Emit) -> Result<()> {
        let Some(held) = self.held.take() else {
            return Ok(());
        };
        let stats = std::mem::take(&mut self.stats);
        let ranges = stats.finish(self.precision)?;
        if let Some(p) = &self.save {
            std::fs::write(p, ranges.to_npy())
                .with_context(|| format!("writing {}", p.display()))?;
        }
        self.ranges = Some(ranges);
        let mut file = held.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        for line in BufReader::new(file).lines() {
            let mut rec: Value = serde_json::from_str(&line?)?;
            let obj = match rec.get_mut("o").map(Value::take) {
                Some(Value::Object(o)) => o,
                _ => bail!("a held record lost its fields"),
            };
            let vectors: Vec<Vec<f32>> =
                serde_json::from_value(rec.get_mut("v").map(Value::take).unwrap_or_default())?;
            emit(obj, self.quantize(&vectors)?)?;
        }
        Ok(())
    }
}

/// The quantizing stage of `--precision`, where one is needed; quantized vectors are
/// `width` floats wide before packing.
pub fn quant_stage(
    a: &EmbedArgs,
    precision: Precision,
    width: usize,
) -> Result<Option<QuantStage>> {
    if precision == Precision::Float32 {
        if a.ranges.is_some() || a.save_ranges.is_some() {
            bail!("--ranges and --save-ranges need --precision int8 or uint8");
        }
        return Ok(None);
    }
    // Records wait beside the output (or in the working directory) while ranges are computed.
    let dir = match a.output.as_deref().and_then(Path::parent) {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (ranges, save) = (a.ranges.as_deref(), a.save_ranges.as_deref());
    Ok(Some(QuantStage::new(precision, ranges, save, &dir, width)?))
}

/// A text's output object without its embedding.
pub fn record(
    index: usize,
    item: TextItem,
    e: &Embedding,
) -> serde_json::Map<String, serde_json::Value> {
    let mut obj = item.extra;
    obj.insert("index".into(), index.into());
    obj.insert("n_tokens".into(), e.n_tokens.into());
    obj
}

pub fn write_quantized(
    sink: &mut Sink,
    mut obj: serde_json::Map<String, serde_json::Value>,
    v: Vec<Quantized>,
) -> Result<()> {
    let row = v.first().context("an embedding went missing")?;
    match sink {
        Sink::Matrix(m) => m.push_quantized(row),
        Sink::Jsonl(w) => {
            obj.insert("embedding".into(), row.to_json());
            writeln!(w, "{}", serde_json::Value::Object(obj)).context("writing the output")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stage: &mut QuantStage, rows: &[&[f32]], out: &mut Vec<Vec<Quantized>>) {
        for r in rows {
            let mut emit = |_: Map<String, Value>, q: Vec<Quantized>| -> Result<()> {
                out.push(q);
                Ok(())
            };
            stage.push(Map::new(), vec![r.to_vec()], &mut emit).unwrap();
        }
    }

    #[test]
    fn computed_ranges_wait_for_the_last_record() {
        let dir = tempfile::tempdir().unwrap();
        let save = dir.path().join("ranges.npy");
        let mut stage =
            QuantStage::new(Precision::Uint8, None, Some(&save), dir.path(), 2).unwrap();
        let mut out = Vec::new();
        run(&mut stage, &[&[0.0, 1.0], &[1.0, -1.0]], &mut out);
        assert!(
            out.is_empty(),
            "nothing is written before the ranges are known"
        );
        let mut emit = |_: Map<String, Value>, q: Vec<Quantized>| -> Result<()> {
            out.push(q);
            Ok(())
        };
        stage.finish(&mut emit).unwrap();
        assert_eq!(out.len(), 2);
        // As sentence-transformers: [[0, 254], [254, 0]] (a range's maximum lands in bucket
        // 254 in float32).
        assert_eq!(out[0][0], Quantized::U8(vec![0, 254]));
        assert_eq!(out[1][0], Quantized::U8(vec![254, 0]));
        let r = Ranges::read_npy(&save).unwrap();
        assert_eq!((r.min, r.max), (vec![0.0, -1.0], vec![1.0, 1.0]));
    }

    #[test]
    fn binary_writes_at_once_and_refuses_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let mut stage = QuantStage::new(Precision::Ubinary, None, None, dir.path(), 2).unwrap();
        let mut out = Vec::new();
        run(&mut stage, &[&[1.0, -1.0]], &mut out);
        assert_eq!(out, [vec![Quantized::U8(vec![0x80])]]);
        let r = dir.path().join("r.npy");
        std::fs::write(&r, b"x").unwrap();
        assert!(QuantStage::new(Precision::Binary, Some(&r), None, dir.path(), 2).is_err());
        let one = QuantStage::new(Precision::Int8, None, None, dir.path(), 2);
        let mut one = one.unwrap();
        let mut sink = Vec::new();
        run(&mut one, &[&[1.0, 2.0]], &mut sink);
        let e = one.finish(&mut |_, _| Ok(())).unwrap_err().to_string();
        assert!(e.contains("from 1 embedding"), "{e}");
    }
}
