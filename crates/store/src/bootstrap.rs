//! `berth bootstrap DISTRO SUITE NAME`: drives the system's debootstrap
//! into staging, then makes a machine of the tree (and, with `--image`, an
//! image first, with the machine built on it).
//!
//! Downloaded packages are kept in `ROOT/cache/debootstrap/DISTRO-SUITE-ARCH/`
//! (debootstrap's `--cache-dir`, which checks each cached package against
//! the release's checksums before it uses it), so the next bootstrap of
//! that suite downloads only what changed: what `debootstrap
//! --make-tarball`/`--unpack-tarball` is used for by hand. The cache is
//! locked while a bootstrap uses it; `berth gc` leaves it (it is not
//! image data). A foreign architecture runs its maintainer scripts
//! through qemu-user-static's binfmt handlers, which must be registered.

use crate::import::{finish_rootfs, tar_tree};
use crate::machines::{validate_name, MachineRecord};
use crate::pull::StagingDir;
use crate::{Store, StoreError};
use std::process::Command;

#[derive(Debug, Clone, Default)]
pub struct BootstrapOptions {
    pub distro: String,
    pub suite: String,
    pub name: String,
    pub variant: Option<String>,
    pub include: Vec<String>,
    pub mirror: Option<String>,
    pub image: bool,
    /// Debian architecture (default: the host's).
    pub arch: Option<String>,
    /// Keep and reuse downloaded packages.
    pub cache: bool,
}

/// The host's Debian architecture.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "i386",
        "aarch64" => "arm64",
        "arm" => "armhf",
        "riscv64" => "riscv64",
        "powerpc64" => "ppc64el",
        "s390x" => "s390x",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The qemu-user binfmt handler that runs `arch`'s binaries, if the
/// host needs one (`None`: it runs them itself).
fn qemu_for(arch: &str) -> Result<Option<&'static str>, StoreError> {
    let host = host_arch();
    if arch == host || (host == "amd64" && arch == "i386") || (host == "arm64" && arch == "armhf") {
        return Ok(None);
    }
    let q = match arch {
        "amd64" => "x86_64",
        "i386" => "i386",
        "arm64" => "aarch64",
        "armhf" | "armel" => "arm",
        "riscv64" => "riscv64",
        "ppc64el" => "ppc64le",
        "s390x" => "s390x",
        "mips64el" => "mips64el",
        "loong64" => "loongarch64",
        _ => {
            return Err(StoreError::Import(format!(
                "unknown architecture {arch:?}: use a Debian name such as amd64, arm64, armhf, i386, riscv64, ppc64el, s390x"
            )))
        }
    };
    Ok(Some(q))
}

/// Checks that the host can run `arch`'s binaries (debootstrap's second
/// stage runs them).
fn check_arch(arch: &str) -> Result<(), StoreError> {
    let Some(q) = qemu_for(arch)? else { return Ok(()) };
    let handler = std::path::Path::new("/proc/sys/fs/binfmt_misc").join(format!("qemu-{q}"));
    let enabled = std::fs::read_to_string(&handler).is_ok_and(|t| t.lines().next() == Some("enabled"));
    if enabled {
        return Ok(());
    }
    Err(StoreError::Import(format!(
        "bootstrapping {arch} on this {} host needs qemu-user-static's binfmt handler qemu-{q}: apt-get install qemu-user-static (and binfmt-support)",
        host_arch()
    )))
}

/// The package cache for `o`, created and locked (exclusively: two
/// debootstraps writing one cache would trip on each other's files).
fn cache_dir(
    store: &Store,
    o: &BootstrapOptions,
    arch: &str,
) -> Result<(std::path::PathBuf, std::fs::File), StoreError> {
    let safe = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) && !s.starts_with('.');
    if !safe(&o.distro) || !safe(&o.suite) || !safe(arch) {
        return Err(StoreError::Import(format!(
            "{}/{}/{arch}: distribution, suite and architecture are plain names",
            o.distro, o.suite
        )));
    }
    let dir = store.root().join("cache").join("debootstrap").join(format!("{}-{}-{arch}", o.distro, o.suite));
    std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(format!("creating {}", dir.display()), e))?;
    let lock = std::fs::File::open(&dir).map_err(|e| StoreError::io(format!("opening {}", dir.display()), e))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| StoreError::io(format!("locking {}", dir.display()), e.into()))?;
    Ok((dir, lock))
}

fn default_mirror(distro: &str) -> Option<&'static str> {
    match distro {
        "debian" => Some("http://deb.debian.org/debian"),
        "ubuntu" => Some("http://archive.ubuntu.com/ubuntu"),
        _ => None,
    }
}

/// Runs debootstrap and stores the result; returns the new machine.
pub fn bootstrap(store: &Store, o: &BootstrapOptions) -> Result<MachineRecord, StoreError> {
    let err = |s: String| StoreError::Import(s);
    validate_name(&o.name)?;
    if store.machine_dir(&o.name).exists() {
        return Err(StoreError::MachineExists(o.name.clone()));
    }
    let mirror = match (&o.mirror, default_mirror(&o.distro)) {
        (Some(m), _) => m.clone(),
        (None, Some(m)) => m.to_string(),
        (None, None) => {
            return Err(err(format!(
                "unknown distribution {:?}: berth drives debootstrap, which knows debian and ubuntu",
                o.distro
            )))
        }
    };
    let arch = o.arch.clone().unwrap_or_else(|| host_arch().to_string());
    check_arch(&arch)?;
    let cache = if o.cache { Some(cache_dir(store, o, &arch)?) } else { None };
    let staging = StagingDir::new(store, "bootstrap")?;
    let root = staging.path.join("root");
    let log = staging.path.join("debootstrap.log");
    let mut cmd = Command::new("debootstrap");
    if let Some(v) = &o.variant {
        cmd.arg(format!("--variant={v}"));
    }
    if !o.include.is_empty() {
        cmd.arg(format!("--include={}", o.include.join(",")));
    }
    cmd.arg(format!("--arch={arch}"));
    if let Some((dir, _)) = &cache {
        cmd.arg(format!("--cache-dir={}", dir.display()));
    }
    cmd.arg(&o.suite).arg(&root).arg(&mirror);
    let logf = std::fs::File::create(&log).map_err(|e| StoreError::io("creating the debootstrap log", e))?;
    let logf2 = logf.try_clone().map_err(|e| StoreError::io("creating the debootstrap log", e))?;
    let status = cmd.stdout(logf).stderr(logf2).status().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => err("debootstrap is not installed: apt-get install debootstrap".into()),
        _ => StoreError::io("running debootstrap", e),
    })?;
    if !status.success() {
        // A cache this run made and filled with nothing goes with it.
        if let Some((dir, _)) = &cache {
            let _ = std::fs::remove_dir(dir);
            let _ = dir.parent().map(std::fs::remove_dir);
            let _ = dir.parent().and_then(|p| p.parent()).map(std::fs::remove_dir);
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let last: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = last[last.len().saturating_sub(2)..].join(" / ");
        return Err(err(format!("debootstrap {} {} failed: {tail}", o.suite, mirror)));
    }
    if o.image {
        let (diff, size) = tar_tree(&root, &staging.path.join("blob"))?;
        let name = crate::images::local_name(&o.name)?;
        let rec = finish_rootfs(store, staging, diff, size, None, vec![name])?;
        return store.create_machine(&o.name, Some(&rec.id));
    }
    store.adopt_tree(&o.name, &root)
}
