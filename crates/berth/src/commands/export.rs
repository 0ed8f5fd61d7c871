//! `berth export NAME FILE` and `berth commit MACHINE IMAGE`.

use super::open_store;
use crate::cli::Cli;
use anyhow::{anyhow, bail, Context, Result};
use berth_store::export::{write_oci_archive, write_oci_layout, write_tree_tar, ExportFormat, LayerCompression};
use berth_store::{ImageRecord, Store};
use std::io::Write;
use std::path::{Path, PathBuf};

pub fn commit(cli: &Cli, machine: &str, image: &str) -> Result<i32> {
    let store = open_store(cli)?;
    let rec = berth_store::commit::commit(&store, machine, image)?;
    crate::output::print(&format!("{}\n", rec.id))?;
    Ok(0)
}

/// The tag an exported layout carries: the image's first name's tag.
fn tag_of(store: &Store, rec: &ImageRecord) -> String {
    let refs = store.load_refs().unwrap_or_default();
    Store::names_of(&refs, &rec.id)
        .into_iter()
        .find_map(|n| n.parse::<berth_oci::Reference>().ok().and_then(|r| r.tag))
        .unwrap_or_else(|| "latest".into())
}

fn output(file: &str) -> Result<Box<dyn Write>> {
    if file == "-" {
        return Ok(Box::new(std::io::stdout().lock()));
    }
    let f = std::fs::File::create(file).with_context(|| format!("cannot create {file}"))?;
    Ok(Box::new(std::io::BufWriter::with_capacity(256 << 10, f)))
}

/// A scratch mount point under the store's tmp/, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Mounts `lowers` (top first) read-only on a scratch dir, in berth's own
/// private mount namespace.
fn mount_view(store: &Store, lowers: &[PathBuf]) -> Result<Scratch> {
    berth_runtime::private_mount_namespace()?;
    let p = store.tmp_dir().join(format!("export-{}", std::process::id()));
    std::fs::create_dir_all(&p)?;
    let s = Scratch(p);
    berth_store::mount::mount_overlay_ro(lowers, &s.0, true)?;
    Ok(s)
}

pub fn export(cli: &Cli, name: &str, file: &str, format: Option<&str>, compress: Option<&str>) -> Result<i32> {
    let store = open_store(cli)?;
    let format = match format {
        Some(f) => f.parse::<ExportFormat>().map_err(|e| anyhow!(e))?,
        None if Path::new(file).is_dir() || file.ends_with('/') => ExportFormat::Oci,
        None => ExportFormat::guess(file).map_err(|e| anyhow!(e))?,
    };
    if compress.is_some() && !format.is_oci() {
        bail!(
            "--compress is for --format oci and oci-archive: a tarball's compression comes from its name or --format"
        );
    }
    let compress: LayerCompression = compress.unwrap_or("gzip").parse().map_err(|e: String| anyhow!(e))?;
    if format == ExportFormat::Oci && file == "-" {
        bail!("--format oci writes a directory: give a directory name, or use --format oci-archive for a stream");
    }
    let machine = store.load_machine(name).ok();
    if let Some(m) = machine {
        let _lock = store.lock_machine_shared(name)?;
        let upper = store.machine_dir(name).join("upper");
        if format.is_oci() {
            drop(_lock);
            // The machine's changes become a layer of an unnamed image (gc sweeps it).
            let tmp_name = format!("localhost/berth-export-{name}:{}", std::process::id());
            let rec = berth_store::commit::commit(&store, name, &tmp_name)?;
            let r = export_image(&store, &rec, "latest", file, format, compress);
            store.update_refs(|refs| {
                refs.remove(&tmp_name);
                Ok(())
            })?;
            return r;
        }
        let out = output(file)?;
        match &m.image {
            None => write_tree_tar(&upper, format, out)?,
            Some(id) => {
                let rec = store.load_image(id)?;
                let mut lowers = vec![upper];
                lowers.extend(store.lower_dirs(&rec)?);
                let view = mount_view(&store, &lowers)?;
                write_tree_tar(&view.0, format, out)?;
            }
        }
        return Ok(0);
    }
    let rec = store.resolve(name).map_err(|e| anyhow!("{e} (and no machine has that name)"))?;
    let tag = tag_of(&store, &rec);
    export_image(&store, &rec, &tag, file, format, compress)
}

fn export_image(
    store: &Store,
    rec: &ImageRecord,
    tag: &str,
    file: &str,
    format: ExportFormat,
    compress: LayerCompression,
) -> Result<i32> {
    match format {
        ExportFormat::Oci => write_oci_layout(store, rec, tag, compress, Path::new(file))?,
        ExportFormat::OciArchive => {
            let mut out = write_oci_archive(store, rec, tag, compress, output(file)?)?;
            out.flush()?;
        }
        _ => {
            let lowers = store.lower_dirs(rec)?;
            let view = mount_view(store, &lowers)?;
            write_tree_tar(&view.0, format, output(file)?)?;
        }
    }
    Ok(0)
}
