//! `berth import SOURCE [NAME]`.

use super::open_store;
use crate::cli::{Cli, ImportArgs};
use crate::progress::Bars;
use anyhow::{anyhow, Context, Result};
use berth_store::import::{import_dir, import_stream, ImportOptions};
use berth_store::pull::{Progress, Quiet};
use std::io::{IsTerminal, Read};
use std::path::Path;

/// Counts bytes read from the source into a terminal progress bar.
struct Counting<R> {
    inner: R,
    bar: Option<indicatif::ProgressBar>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(b) = &self.bar {
            b.inc(n as u64);
        }
        Ok(n)
    }
}

fn bar(quiet: bool, len: Option<u64>, label: &str) -> Option<indicatif::ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let style = match len {
        Some(_) => "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        None => "{prefix} {spinner} {bytes} {binary_bytes_per_sec}",
    };
    let b = indicatif::ProgressBar::new(len.unwrap_or(0)).with_prefix(format!("Importing {label}"));
    b.set_style(
        indicatif::ProgressStyle::with_template(style)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    Some(b)
}

pub fn run(cli: &Cli, a: &ImportArgs) -> Result<i32> {
    let store = open_store(cli)?;
    let opts = ImportOptions {
        format: a.format.parse().map_err(|e: String| anyhow!(e))?,
        strip_prefix: a.strip_prefix.clone(),
        name: a.name.clone(),
        select: a.image.clone(),
        pull: Default::default(),
    };
    let bars = Bars::new(a.quiet);
    let progress: &dyn Progress = match &bars {
        Some(b) => b,
        None => &Quiet,
    };
    let src = a.source.as_str();
    let rec = if src == "-" {
        let input = Counting { inner: std::io::stdin(), bar: bar(a.quiet, None, "stdin") };
        import_stream(&store, input, "stdin", &opts, progress)?
    } else if src.starts_with("http://") || src.starts_with("https://") {
        let (body, len) = berth_oci::registry::open_url(src, a.tls_verify)?;
        let label = src.split('?').next().unwrap_or(src);
        let input = Counting { inner: body, bar: bar(a.quiet, len, label.rsplit('/').next().unwrap_or(label)) };
        import_stream(&store, input, label, &opts, progress)?
    } else {
        let path = Path::new(src);
        let md = std::fs::metadata(path).with_context(|| format!("cannot import {src}: no such file or directory"))?;
        if md.is_dir() {
            import_dir(&store, path, &opts, progress)?
        } else {
            let f = std::fs::File::open(path).with_context(|| format!("cannot open {src}"))?;
            let input = Counting { inner: f, bar: bar(a.quiet, Some(md.len()), src) };
            import_stream(&store, input, src, &opts, progress)?
        }
    };
    if a.machine {
        let name = a.name.clone().unwrap_or_else(|| berth_store::import::default_name(src));
        store.create_machine(&name, Some(&rec.id))?;
    }
    crate::output::print(&format!("{}\n", rec.id))?;
    Ok(0)
}
