//! `berth cp SRC DST` (one side `NAME:PATH`) and `berth bind NAME SRC
//! [DST]`. A running machine's side is handled by a child inside it
//! (`berth_runtime::inside`), a stopped machine's through its root
//! mounted detached (`Store::open_machine_root`); the walk itself is
//! `berth_runtime::copy`.

use super::open_store;
use crate::cli::Cli;
use anyhow::{anyhow, bail, Context, Result};
use berth_runtime::copy::{pack, place, Policy, Where};
use berth_runtime::machine::State;
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

enum Side<'a> {
    Host(&'a Path),
    Machine(&'a str, PathBuf),
}

/// `NAME:PATH` when what precedes the first `:` is a machine name (so a
/// host path with a colon can be written `./a:b`).
fn side(arg: &str) -> Side<'_> {
    if let Some((name, path)) = arg.split_once(':') {
        if berth_store::machines::validate_name(name).is_ok() {
            return Side::Machine(name, Path::new("/").join(path));
        }
    }
    Side::Host(Path::new(arg))
}

/// The last name of `path` (what a copy into a directory is called).
fn last_name(path: &Path, at: Where) -> Result<OsString> {
    Ok(berth_runtime::copy::last_name(path, at)?)
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("creating a pipe")
}

const INTO: Policy = Policy { into_machine: true, from_machine: false, keep_owners: true };

/// Out of a machine, owners are the caller's unless `archive` (as
/// `docker cp -a`): a machine must not choose which host user owns what
/// it hands out.
fn out_of(archive: bool) -> Policy {
    Policy { into_machine: false, from_machine: true, keep_owners: archive }
}

pub fn cp(cli: &Cli, src: &str, dst: &str, archive: bool) -> Result<i32> {
    match (side(src), side(dst)) {
        (Side::Host(h), Side::Machine(name, path)) => copy_in(cli, h, name, &path)?,
        (Side::Machine(name, path), Side::Host(h)) => copy_out(cli, name, &path, h, out_of(archive))?,
        (Side::Host(_), Side::Host(_)) => {
            bail!("neither {src} nor {dst} names a machine: write one side as NAME:PATH (cp(1) copies host files)")
        }
        (Side::Machine(..), Side::Machine(..)) => {
            bail!("berth cp copies between the host and one machine: copy out to a host directory, then in")
        }
    }
    Ok(0)
}

/// The running machine `name`, or `None` when it is stopped (then it
/// must be a machine of the store).
fn running(cli: &Cli, name: &str) -> Result<Option<State>> {
    if let Ok(st) = berth_runtime::machine::running(name) {
        return Ok(Some(st));
    }
    open_store(cli)?.load_machine(name)?;
    Ok(None)
}

fn copy_in(cli: &Cli, host: &Path, name: &str, path: &Path) -> Result<()> {
    let src_name = last_name(host, Where::Host)?;
    let (r, w) = pipe()?;
    match running(cli, name)? {
        Some(st) => {
            let dst = path.to_path_buf();
            let child = berth_runtime::inside::spawn(&st, &[r.as_raw_fd()], move || {
                let root = std::fs::File::open("/").map_err(|e| berth_runtime::RuntimeError::sys("opening /", e))?;
                place(std::fs::File::from(r), root.as_fd(), &dst, Where::InRoot, &src_name, INTO).map(|_| ())
            })?;
            let packed = pack(rustix::fs::CWD, host, Where::Host, std::fs::File::from(w));
            let placed = child.wait();
            first_error(packed.map(|_| ()), placed)
        }
        None => {
            let store = open_store(cli)?;
            let root = store.open_machine_root(name, true).map_err(|e| busy(name, e))?;
            both_halves(
                move || pack(rustix::fs::CWD, host, Where::Host, std::fs::File::from(w)).map(|_| ()),
                || place(std::fs::File::from(r), root.fd.as_fd(), path, Where::InRoot, &src_name, INTO).map(|_| ()),
            )
        }
    }
    .with_context(|| format!("cannot copy {} into machine {name}", host.display()))
}

fn copy_out(cli: &Cli, name: &str, path: &Path, host: &Path, policy: Policy) -> Result<()> {
    let src_name = last_name(path, Where::InRoot)?;
    let (r, w) = pipe()?;
    match running(cli, name)? {
        Some(st) => {
            let src = path.to_path_buf();
            let child = berth_runtime::inside::spawn(&st, &[w.as_raw_fd()], move || {
                let root = std::fs::File::open("/").map_err(|e| berth_runtime::RuntimeError::sys("opening /", e))?;
                pack(root.as_fd(), &src, Where::InRoot, std::fs::File::from(w)).map(|_| ())
            })?;
            let placed = place(std::fs::File::from(r), rustix::fs::CWD, host, Where::Host, &src_name, policy);
            let packed = child.wait();
            first_error(packed, placed.map(|_| ()))
        }
        None => {
            let store = open_store(cli)?;
            let root = store.open_machine_root(name, false).map_err(|e| busy(name, e))?;
            let fd = root.fd.as_fd();
            both_halves(
                move || pack(fd, path, Where::InRoot, std::fs::File::from(w)).map(|_| ()),
                || place(std::fs::File::from(r), rustix::fs::CWD, host, Where::Host, &src_name, policy).map(|_| ()),
            )
        }
    }
    .with_context(|| format!("cannot copy {} out of machine {name}", path.display()))
}

/// A stopped machine's lock taken by someone else: it is starting, or
/// another berth command (a copy in, `rm`, `rename`) is working on it.
fn busy(name: &str, e: berth_store::StoreError) -> anyhow::Error {
    match e {
        berth_store::StoreError::MachineRunning(_) => {
            anyhow!("machine {name} is busy (it is starting, or another berth command works on it): try again")
        }
        e => e.into(),
    }
}

/// The error that caused the other: the packing half's, unless it only
/// saw the placing half stop reading (a broken pipe); when packing fails,
/// the placing half only sees the stream end. Made plain text, so a
/// broken pipe inside is not taken for berth's own output closing.
fn first_error(
    packed: Result<(), berth_runtime::RuntimeError>,
    placed: Result<(), berth_runtime::RuntimeError>,
) -> Result<()> {
    // (A child's error comes back as text.)
    let broken = |e: &berth_runtime::RuntimeError| match e {
        berth_runtime::RuntimeError::Sys { source, .. } => source.kind() == std::io::ErrorKind::BrokenPipe,
        e => e.to_string().contains("Broken pipe"),
    };
    match (packed, placed) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(p), Err(e)) if broken(&p) => Err(anyhow!(e.to_string())),
        (Err(e), _) | (Ok(()), Err(e)) => Err(anyhow!(e.to_string())),
    }
}

/// Runs the packing half on a thread and the placing half here.
fn both_halves(
    pack: impl FnOnce() -> Result<(), berth_runtime::RuntimeError> + Send,
    place: impl FnOnce() -> Result<(), berth_runtime::RuntimeError>,
) -> Result<()> {
    std::thread::scope(|s| {
        let t = s.spawn(pack);
        let placed = place();
        let packed = t.join().unwrap_or_else(|_| Err(berth_runtime::RuntimeError::Setup("the copy failed".into())));
        first_error(packed, placed)
    })
}

pub fn bind(name: &str, src: &Path, dst: Option<&Path>, read_only: bool, mkdir: bool) -> Result<i32> {
    let st = berth_runtime::machine::running(name)
        .map_err(|_| anyhow!("machine {name:?} is not running: berth bind mounts into a running machine (berth run --bind for one that starts)"))?;
    let src = std::path::absolute(src).with_context(|| format!("cannot find {}", src.display()))?;
    let dst = dst.map(Path::to_path_buf).unwrap_or_else(|| src.clone());
    if !dst.is_absolute() {
        bail!("{}: the path in the machine must be absolute", dst.display());
    }
    berth_runtime::inside::bind(&st, &src, &dst, read_only, mkdir)
        .with_context(|| format!("cannot bind {} into machine {name}", src.display()))?;
    Ok(0)
}
