//! The loading bar on stderr: the library reports progress to an observer, this one draws it
//! (nothing when stderr is not a terminal).

use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressStyle};
use wgbert::progress::{Observer, Progress};

/// A bar per job the library reports.
#[derive(Default)]
pub struct Bar(Mutex<Option<ProgressBar>>);

impl Bar {
    /// A bar, or no observer at all with `--quiet`.
    pub fn unless(quiet: bool) -> Observer {
        (!quiet).then(|| Arc::new(Bar::default()) as Arc<dyn Progress>)
    }

    fn with(&self, f: impl FnOnce(&ProgressBar)) {
        if let Ok(bar) = self.0.lock()
            && let Some(bar) = bar.as_ref()
        {
            f(bar);
        }
    }
}

impl Progress for Bar {
    fn start(&self, what: &str, total: u64) {
        // Downloads count bytes, uploads count tensors.
        let counts = if what.starts_with("downloading") {
            "{bytes}/{total_bytes}"
        } else {
            "{pos}/{len} {msg}"
        };
        let template = format!("{what} {{bar:30}} {counts}");
        let style = ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        if let Ok(mut bar) = self.0.lock() {
            *bar = Some(ProgressBar::new(total).with_style(style));
        }
    }

    fn advance(&self, n: u64, item: &str) {
        self.with(|bar| {
            bar.inc(n);
            if !item.is_empty() {
                bar.set_message(item.to_string());
            }
        });
    }

    fn finish(&self) {
        self.with(ProgressBar::finish_and_clear);
    }
}
