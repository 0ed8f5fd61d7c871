//! `berth bootstrap DISTRO SUITE NAME`: drives the system's debootstrap
//! into staging, then makes a machine of the tree (and, with `--image`, an
//! image first, with the machine built on it).

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
    cmd.arg(&o.suite).arg(&root).arg(&mirror);
    let logf = std::fs::File::create(&log).map_err(|e| StoreError::io("creating the debootstrap log", e))?;
    let logf2 = logf.try_clone().map_err(|e| StoreError::io("creating the debootstrap log", e))?;
    let status = cmd.stdout(logf).stderr(logf2).status().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => err("debootstrap is not installed: apt-get install debootstrap".into()),
        _ => StoreError::io("running debootstrap", e),
    })?;
    if !status.success() {
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
