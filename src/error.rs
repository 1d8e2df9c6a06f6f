//! The one error type of the library. Every failure a user, a file or a GPU can cause ends up
//! here with a message that names the problem; the CLI prints it and exits non-zero.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in wgbert.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No adapter matched the request (backend, name) or none exists at all.
    #[error("no GPU adapter found{0}")]
    NoAdapter(String),

    /// The adapter refused to create a device with the requested features/limits.
    #[error("could not create a device on adapter '{adapter}': {message}")]
    RequestDevice { adapter: String, message: String },

    /// A shader failed to preprocess, parse, validate or compile into a pipeline.
    #[error("shader '{kernel}': {message}")]
    Shader { kernel: String, message: String },

    /// A buffer or a binding would exceed a device limit.
    #[error("buffer '{name}' needs {bytes} bytes, over the device limit {what} = {limit} bytes")]
    BufferTooLarge {
        name: String,
        bytes: u64,
        limit: u64,
        what: &'static str,
    },

    /// The device ran out of memory.
    #[error("GPU out of memory while {context}; try a smaller --max-tokens or --dtype f16")]
    OutOfMemory { context: String },

    /// The device was lost (driver reset, hang, removed GPU).
    #[error("GPU device lost: {0}; recreate the encoder (the process may need a restart)")]
    DeviceLost(String),

    /// Submitted work did not finish in time (a hung device or driver); the device is
    /// treated as failed from then on.
    #[error("GPU work did not finish within {seconds} s; the device is treated as hung")]
    GpuTimeout { seconds: f64 },

    /// A wgpu validation or internal error while running work.
    #[error("GPU error while {context}: {message}")]
    Gpu { context: String, message: String },

    /// Reading GPU results back failed.
    #[error("reading back '{what}' from the GPU failed: {message}")]
    Readback { what: String, message: String },

    /// An op was asked to record a step with an argument it cannot take (a shape, a size, a
    /// buffer too small for it). Names the op, its step, the argument and what it expected.
    #[error("{op} step '{step}': {arg} must be {expected}, got {got}")]
    OpArg {
        op: &'static str,
        step: String,
        arg: &'static str,
        expected: String,
        got: String,
    },

    /// A plan was run with inputs that do not match how it was built.
    #[error("invalid plan input: {0}")]
    PlanInput(String),

    /// The feature is not available on this adapter (e.g. profiling without timestamps).
    #[error("not supported on this adapter: {0}")]
    Unsupported(String),

    /// A check on the device read back nothing but zeros where the reference has values:
    /// the device did not run the work (a driver whose submissions do nothing, such as
    /// Mesa's drm-shim), so the check says nothing about the kernel. Never cached.
    #[error("inconclusive on this device: {0}")]
    Inconclusive(String),

    /// config.json is missing, not JSON, or describes an impossible model.
    #[error("config {path}: {message}")]
    Config { path: PathBuf, message: String },

    /// A checkpoint file is unreadable, malformed, or does not match the config.
    #[error("weights {path}: {message}")]
    Weights { path: PathBuf, message: String },

    /// tokenizer.json is missing or broken, or tokenizing failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// A text cannot be processed as asked (too long, no `[MASK]`, empty...).
    #[error("input {index}: {message}")]
    Input { index: usize, message: String },

    /// The model has no head for the requested task.
    #[error("this model cannot {task}: {message}")]
    MissingHead { task: &'static str, message: String },

    /// Finding or downloading model files failed.
    #[error("model source '{source_name}': {message}")]
    Hub {
        source_name: String,
        message: String,
    },

    /// A bad option value (dtype, pooling, capacity...).
    #[error("invalid option: {0}")]
    Option(String),

    /// Plain I/O on a named path.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// An input error of a chunk that starts at text `first`, renumbered to the whole
    /// input; any other error as it is.
    pub fn reindexed(self, first: usize) -> Error {
        match self {
            Error::Input { index, message } => Error::Input {
                index: index + first,
                message,
            },
            other => other,
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
