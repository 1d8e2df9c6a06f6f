//! Results as Python `bytearray`s that numpy wraps without copying (`np.frombuffer`): each
//! value is copied once, from the library's result into the array numpy will own.

use pyo3::prelude::*;
use pyo3::types::PyByteArray;
use wgbert::encoder::Embedding;
use wgbert::sentence::quantize::Quantized;

/// Flat values, the number of rows of each item, and the row width.
pub type Matrix = (Py<PyByteArray>, Vec<usize>, usize);

/// A zeroed bytearray of `len` bytes.
pub fn zeroed(py: Python<'_>, len: usize) -> PyResult<Bound<'_, PyByteArray>> {
    PyByteArray::new_with(py, len, |_| Ok(()))
}

/// Writes f32 values little-endian at byte offset `at` of a bytearray this crate made and
/// has not handed out yet (so nothing else can resize it meanwhile).
pub fn put_f32(buf: &Bound<'_, PyByteArray>, at: usize, values: &[f32]) -> PyResult<usize> {
    // SAFETY: the bytearray was created here and is not visible to Python code yet.
    let bytes = unsafe { buf.as_bytes_mut() };
    let (end, len) = (at + values.len() * 4, bytes.len());
    let dest = bytes.get_mut(at..end).ok_or_else(|| {
        crate::errors::value_error(format!(
            "a result of {} bytes at {at} does not fit its array of {len}",
            values.len() * 4
        ))
    })?;
    for (d, v) in dest.chunks_exact_mut(4).zip(values) {
        d.copy_from_slice(&v.to_le_bytes());
    }
    Ok(end)
}

/// f32 values as one bytearray.
pub fn f32_array(py: Python<'_>, values: &[f32]) -> PyResult<Py<PyByteArray>> {
    let buf = zeroed(py, values.len() * 4)?;
    put_f32(&buf, 0, values)?;
    Ok(buf.unbind())
}

/// Every vector of `items` (each `width` wide), rows counted per item.
pub fn matrix(py: Python<'_>, items: &[Embedding], width: usize) -> PyResult<Matrix> {
    let rows: Vec<usize> = items.iter().map(|e| e.vectors.len()).collect();
    let buf = zeroed(py, rows.iter().sum::<usize>() * width * 4)?;
    let mut at = 0;
    for v in items.iter().flat_map(|e| &e.vectors) {
        if v.len() != width {
            return Err(crate::errors::value_error(format!(
                "a vector of {} values where {width} were expected",
                v.len()
            )));
        }
        at = put_f32(&buf, at, v)?;
    }
    Ok((buf.unbind(), rows, width))
}

/// Quantized rows (int8 or uint8) as one bytearray.
pub fn quantized_array(py: Python<'_>, rows: &[Quantized]) -> PyResult<Py<PyByteArray>> {
    let len = rows.iter().map(Quantized::len).sum();
    let buf = PyByteArray::new_with(py, len, |bytes| {
        let mut at = 0;
        for r in rows {
            let b = r.to_bytes();
            bytes[at..at + b.len()].copy_from_slice(&b);
            at += b.len();
        }
        Ok(())
    })?;
    Ok(buf.unbind())
}
