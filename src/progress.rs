//! Progress of long jobs (downloads, weight uploads), reported to an observer the caller
//! sets. The library never prints; the `wgbert` command line draws a bar from these calls.

use std::sync::Arc;

/// Receives the progress of one job at a time: `start`, any number of `advance`, `finish`.
/// The default methods ignore everything, so an observer implements what it shows.
pub trait Progress: Send + Sync {
    /// A job starts: `total` units (bytes of a download, tensors of an upload) of `what`.
    fn start(&self, what: &str, total: u64) {
        let _ = (what, total);
    }

    /// `n` more units are done; `item` names the current one (a tensor) or is empty.
    fn advance(&self, n: u64, item: &str) {
        let _ = (n, item);
    }

    /// The job is over.
    fn finish(&self) {}
}

/// An optional observer as options carry it.
pub type Observer = Option<Arc<dyn Progress>>;
