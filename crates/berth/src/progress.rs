//! Per-layer progress bars (bytes, rate, ETA) on a terminal; nothing when
//! stderr is not a TTY or with `-q`.

use berth_oci::Digest;
use berth_store::pull::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Bars {
    /// Bars when stderr is a terminal and `quiet` is off.
    pub fn new(quiet: bool) -> Option<Bars> {
        if quiet || !std::io::stderr().is_terminal() {
            return None;
        }
        Some(Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        })
    }

    fn bar(&self, d: &Digest) -> Option<ProgressBar> {
        self.bars.lock().ok()?.get(d).cloned()
    }
}

impl Progress for Bars {
    fn resolved(&self, reference: &str, digest: &Digest, layers: usize) {
        let _ = self.multi.println(format!("Pulling {reference} ({digest}, {layers} layers)"));
    }

    fn layer_start(&self, digest: &Digest, size: u64) {
        let style =
            ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        let bar = self.multi.add(ProgressBar::new(size).with_style(style).with_prefix(digest.short().to_string()));
        if let Ok(mut m) = self.bars.lock() {
            m.insert(digest.clone(), bar);
        }
    }

    fn layer_bytes(&self, digest: &Digest, n: u64) {
        if let Some(b) = self.bar(digest) {
            b.inc(n);
        }
    }

    fn layer_done(&self, digest: &Digest, cached: bool) {
        match self.bar(digest) {
            Some(b) => b.finish_with_message("done"),
            None if cached => {
                let _ = self.multi.println(format!("{} already present", digest.short()));
            }
            None => {}
        }
    }
}
