//! Parsing a safetensors header and a sharded checkpoint's index, with errors a user can act on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensorError, SafeTensors};
use serde_json::Value;

use crate::files::FileStore;
use crate::{Error, Result};

/// Bytes of the little-endian header length that opens every safetensors file.
const N_LEN: usize = 8;

/// One tensor of a file: dtype, shape, absolute byte range in the file.
pub(super) struct Info {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub start: usize,
    pub end: usize,
}

fn weights_err(path: &Path, message: String) -> Error {
    Error::Weights {
        path: path.to_path_buf(),
        message,
    }
}

/// Reads the header of a whole (mapped) safetensors file. The crate checks that offsets are
/// contiguous, match dtype x shape, and end exactly at the end of the file.
pub(super) fn parse(bytes: &[u8], path: &Path) -> Result<Vec<(String, Info)>> {
    let (n, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| weights_err(path, explain(e, bytes)))?;
    let data_start = N_LEN + n;
    let infos = metadata.tensors();
    let mut out = Vec::with_capacity(infos.len());
    for (name, info) in infos {
        let (start, end) = info.data_offsets;
        let (Some(start), Some(end)) = (data_start.checked_add(start), data_start.checked_add(end))
        else {
            return Err(weights_err(
                path,
                format!("tensor '{name}' has offsets that overflow"),
            ));
        };
        if end > bytes.len() || start > end {
            return Err(weights_err(
                path,
                format!(
                    "tensor '{name}' lies past the end of the file ({} bytes)",
                    bytes.len()
                ),
            ));
        }
        out.push((
            name,
            Info {
                dtype: info.dtype,
                shape: info.shape.clone(),
                start,
                end,
            },
        ));
    }
    Ok(out)
}

/// Turns a safetensors parse error into a sentence about the file.
fn explain(e: SafeTensorError, bytes: &[u8]) -> String {
    let len = bytes.len();
    let header_len = bytes
        .get(..N_LEN)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes);
    match e {
        SafeTensorError::HeaderTooSmall => {
            format!("file is {len} bytes, too short to be a safetensors file")
        }
        SafeTensorError::HeaderTooLarge | SafeTensorError::InvalidHeaderLength => format!(
            "header length field says {} bytes but the file has {len}: truncated, or not a \
             safetensors file",
            header_len.unwrap_or(0)
        ),
        SafeTensorError::InvalidHeader(_) | SafeTensorError::InvalidHeaderDeserialization(_) => {
            format!(
                "header is not valid safetensors JSON ({e}): corrupt, or not a safetensors file"
            )
        }
        SafeTensorError::MetadataIncompleteBuffer => match expected_len(bytes) {
            Some(expected) if expected > len => format!(
                "file is truncated: the header describes {expected} bytes but the file has {len}"
            ),
            Some(expected) => format!(
                "file has {} unexpected trailing bytes (header describes {expected}, file has {len})",
                len - expected
            ),
            None => format!("tensor data does not match the file length ({len} bytes)"),
        },
        SafeTensorError::InvalidOffset(name) => {
            format!("tensor '{name}' has data offsets that overlap, leave a gap, or run backwards")
        }
        SafeTensorError::TensorInvalidInfo => {
            "a tensor's byte range does not match its dtype and shape".into()
        }
        other => format!("malformed safetensors header: {other}"),
    }
}

/// File length implied by the header: 8 + header + the largest end offset.
fn expected_len(bytes: &[u8]) -> Option<usize> {
    let n = usize::try_from(u64::from_le_bytes(bytes.get(..N_LEN)?.try_into().ok()?)).ok()?;
    let header: Value = serde_json::from_slice(bytes.get(N_LEN..N_LEN.checked_add(n)?)?).ok()?;
    let data_end = header
        .as_object()?
        .iter()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    N_LEN
        .checked_add(n)?
        .checked_add(usize::try_from(data_end).ok()?)
}

/// Reads `model.safetensors.index.json`: the shard files (sorted, each once) and the weight map.
/// Shard names must be plain file names inside `dir`.
pub(super) fn read_index(
    store: &FileStore,
    index: &Path,
    dir: &Path,
) -> Result<(Vec<PathBuf>, HashMap<String, String>)> {
    let text = store.read_to_string(index)?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| weights_err(index, format!("index is not valid JSON: {e}")))?;
    let Some(map) = value.get("weight_map").and_then(Value::as_object) else {
        return Err(weights_err(
            index,
            "index has no `weight_map` object".into(),
        ));
    };
    let mut weight_map = HashMap::with_capacity(map.len());
    let mut files: Vec<String> = Vec::new();
    for (name, file) in map {
        let Some(file) = file.as_str() else {
            return Err(weights_err(
                index,
                format!("`weight_map[{name}]` is not a file name"),
            ));
        };
        let plain = Path::new(file).file_name().and_then(|f| f.to_str()) == Some(file);
        if !plain || file == ".." {
            return Err(weights_err(
                index,
                format!(
                    "shard '{file}' of tensor '{name}' is not a plain file name in {}",
                    dir.display()
                ),
            ));
        }
        if !files.iter().any(|f| f == file) {
            files.push(file.to_owned());
        }
        weight_map.insert(name.clone(), file.to_owned());
    }
    if files.is_empty() {
        return Err(weights_err(index, "index lists no tensors".into()));
    }
    files.sort();
    let paths = files.iter().map(|f| dir.join(f)).collect::<Vec<_>>();
    if let Some(missing) = paths.iter().find(|p| !store.is_file(p)) {
        return Err(weights_err(
            index,
            format!(
                "shard {} listed in the index does not exist",
                missing.display()
            ),
        ));
    }
    Ok((paths, weight_map))
}
