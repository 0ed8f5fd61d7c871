//! `berth import SOURCE [NAME]`: a file, a directory, stdin, a URL
//! (checked against `SHA256SUMS` by `--verify`) or an appc name found by
//! discovery (`aci:NAME[:VERSION]`).

use super::open_store;
use crate::cli::{Cli, ImportArgs};
use crate::progress::Bars;
use anyhow::{anyhow, Context, Result};
use berth_store::import::discovery::{self, AciName};
use berth_store::import::verify::{self, VerifyOptions};
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
    let vopts = VerifyOptions {
        mode: a.verify.as_deref().map(str::parse).transpose()?,
        keyring: a.keyring.clone(),
        tls_verify: a.tls_verify,
    };
    let mut default_name = berth_store::import::default_name(src);
    let mut notice = None;
    let rec = if src == "-" {
        verify::refuse_local(src, vopts.mode)?;
        let input = Counting { inner: std::io::stdin(), bar: bar(a.quiet, None, "stdin") };
        import_stream(&store, input, "stdin", &opts, progress)?
    } else if src.starts_with("http://") || src.starts_with("https://") {
        // The download is opened first, so a URL that is not there fails
        // with that one error before anything beside it is fetched.
        let (body, len) = berth_oci::registry::open_url(src, a.tls_verify)?;
        let plan = verify::plan_url(src, &vopts)?;
        let label = src.split('?').next().unwrap_or(src);
        let input = Counting { inner: body, bar: bar(a.quiet, len, label.rsplit('/').next().unwrap_or(label)) };
        let rec = verify::import_checked(&store, input, label, &plan, &opts, progress)?;
        notice = plan.notice;
        rec
    } else if let Some(appc) = src.strip_prefix("aci:") {
        let name = AciName::parse(appc)?;
        default_name = berth_store::import::default_name(&name.name);
        let ep = discovery::discover(&name, a.tls_verify)?;
        let (body, len) = berth_oci::registry::open_url(&ep.aci, a.tls_verify)?;
        let plan = verify::plan_aci(&ep.aci, &ep.asc, &ep.pubkeys, &vopts)?;
        let input = Counting { inner: body, bar: bar(a.quiet, len, &name.name) };
        let label = ep.aci.split(['?', '#']).next().unwrap_or(&ep.aci);
        let rec = verify::import_checked(&store, input, label, &plan, &opts, progress)?;
        notice = plan.notice;
        rec
    } else {
        verify::refuse_local(src, vopts.mode)?;
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
        let name = a.name.clone().unwrap_or(default_name);
        store.create_machine(&name, Some(&rec.id))?;
    }
    // After the import, so a failed one still ends with a one-line error.
    if let Some(n) = notice {
        eprintln!("{n}");
    }
    crate::output::print(&format!("{}\n", rec.id))?;
    Ok(0)
}
