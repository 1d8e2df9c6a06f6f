//! Library errors as the exceptions of `wgbert.exceptions`, by their kind.

use pyo3::prelude::*;

/// The exception class of `wgbert.exceptions` that a library error is raised as.
fn class_name(e: &wgbert::Error) -> &'static str {
    use wgbert::Error as E;
    match e {
        E::NoAdapter(_)
        | E::RequestDevice { .. }
        | E::Shader { .. }
        | E::BufferTooLarge { .. }
        | E::OutOfMemory { .. }
        | E::DeviceLost(_)
        | E::GpuTimeout { .. }
        | E::Gpu { .. }
        | E::Readback { .. }
        | E::Unsupported(_)
        | E::Inconclusive(_) => "DeviceError",
        E::Hub { .. } => "WgbertFileNotFoundError",
        E::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            "WgbertFileNotFoundError"
        }
        E::Config { path, .. } if !path.exists() => "WgbertFileNotFoundError",
        E::Io { .. } => "WgbertError",
        E::OpArg { .. }
        | E::PlanInput(_)
        | E::Config { .. }
        | E::Weights { .. }
        | E::Tokenizer(_)
        | E::Input { .. }
        | E::MissingHead { .. }
        | E::Option(_) => "WgbertValueError",
    }
}

/// A library error as the Python exception of its kind, with the library's message.
pub fn py_err(e: wgbert::Error) -> PyErr {
    raise(class_name(&e), e.to_string())
}

/// An exception of `wgbert.exceptions` by class name.
pub fn raise(name: &str, message: String) -> PyErr {
    Python::attach(|py| {
        let class = py.import("wgbert.exceptions").and_then(|m| m.getattr(name));
        match class {
            Ok(class) => match class.call1((message.clone(),)) {
                Ok(instance) => PyErr::from_value(instance),
                Err(err) => err,
            },
            Err(_) => pyo3::exceptions::PyRuntimeError::new_err(message),
        }
    })
}

pub fn value_error(message: impl Into<String>) -> PyErr {
    py_err(wgbert::Error::Option(message.into()))
}
