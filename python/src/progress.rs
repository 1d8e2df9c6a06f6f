//! The library's `Progress` observer forwarded to a Python object with `start(what, total)`,
//! `advance(n, item)` and `finish()` (the bar of `wgbert._progress`), and the bar of
//! `encode`'s chunks. An exception the object raises is kept, no later call is made, and the
//! call that reported to it raises that exception when it returns.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use wgbert::progress::Progress;

pub struct PyProgress {
    target: Py<PyAny>,
    error: Mutex<Option<PyErr>>,
}

impl PyProgress {
    pub fn new(target: Py<PyAny>) -> Arc<PyProgress> {
        Arc::new(PyProgress {
            target,
            error: Mutex::new(None),
        })
    }

    fn call<A: for<'py> pyo3::call::PyCallArgs<'py>>(&self, method: &str, args: A) {
        let Ok(mut error) = self.error.lock() else {
            return;
        };
        if error.is_some() {
            return;
        }
        Python::attach(|py| {
            if let Err(e) = self.target.call_method1(py, method, args) {
                *error = Some(e);
            }
        });
    }

    /// The first exception the object raised, if any (then it is forgotten).
    pub fn take_error(&self) -> PyResult<()> {
        match self.error.lock().ok().and_then(|mut e| e.take()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Progress for PyProgress {
    fn start(&self, what: &str, total: u64) {
        self.call("start", (what.to_string(), total));
    }
    fn advance(&self, n: u64, item: &str) {
        self.call("advance", (n, item.to_string()));
    }
    fn finish(&self) {
        self.call("finish", ());
    }
}

/// Tells `encode`'s bar (with the GIL held, between chunks): its errors, such as a
/// `KeyboardInterrupt` raised while it draws, end the call.
pub fn tell<'py, A: pyo3::call::PyCallArgs<'py>>(
    py: Python<'py>,
    bar: &Option<Py<PyAny>>,
    method: &str,
    args: A,
) -> PyResult<()> {
    if let Some(b) = bar {
        b.call_method1(py, method, args)?;
    }
    Ok(())
}

/// A chunk's step of `encode`: on an error the bar is finished and the step's error raised
/// (an error the bar raises while finishing is dropped: the step's is the one to report).
pub fn finish_on_error<T>(
    py: Python<'_>,
    bar: &Option<Py<PyAny>>,
    step: PyResult<T>,
) -> PyResult<T> {
    if step.is_err() {
        let _ = tell(py, bar, "finish", ());
    }
    step
}
