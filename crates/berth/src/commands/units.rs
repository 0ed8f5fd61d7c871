//! `berth enable NAME` / `berth disable NAME`: a `berth@.service` template
//! that starts a machine in the foreground with its settings (`berth start
//! --foreground`: an app machine's command, or a boot for a machine with
//! none; its console goes to the journal; SIGTERM powers a booted one off
//! cleanly), and a `machines.target` wants link per machine, so it starts
//! at host boot. `BERTH_SYSTEMD_DIR`
//! moves the unit directory (default `/etc/systemd/system`).

use super::open_store;
use crate::cli::Cli;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

fn unit_dir() -> PathBuf {
    std::env::var_os("BERTH_SYSTEMD_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/etc/systemd/system"))
}

/// The template unit for a store at `root` and the binary `exe`.
pub fn template(exe: &Path, root: &Path) -> String {
    format!(
        "# Written by berth enable; berth disable leaves it for other machines.\n\
         [Unit]\n\
         Description=berth machine %i\n\
         PartOf=machines.target\n\
         Before=machines.target\n\
         After=network.target\n\
         RequiresMountsFor={root}\n\
         \n\
         [Service]\n\
         ExecStart={exe} --root {root} start --foreground %i\n\
         KillMode=mixed\n\
         Delegate=yes\n\
         Slice=machine.slice\n\
         TimeoutStopSec=30\n\
         SuccessExitStatus=0 130 143\n\
         \n\
         [Install]\n\
         WantedBy=machines.target\n",
        exe = exe.display(),
        root = root.display()
    )
}

fn reload() {
    // Only when systemd runs this host; elsewhere the files wait for it.
    if Path::new("/run/systemd/system").is_dir() {
        let _ = std::process::Command::new("systemctl").arg("daemon-reload").status();
    }
}

pub fn enable(cli: &Cli, name: &str) -> Result<i32> {
    let store = open_store(cli)?;
    store.load_machine(name)?;
    let dir = unit_dir();
    let wants = dir.join("machines.target.wants");
    std::fs::create_dir_all(&wants).with_context(|| format!("creating {}", wants.display()))?;
    let exe = std::env::current_exe().context("finding the berth binary")?;
    let unit = dir.join("berth@.service");
    std::fs::write(&unit, template(&exe, store.root())).with_context(|| format!("writing {}", unit.display()))?;
    let link = wants.join(format!("berth@{name}.service"));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("../berth@.service", &link).with_context(|| format!("creating {}", link.display()))?;
    reload();
    crate::output::print(&format!("Created symlink {} → {}\n", link.display(), unit.display()))?;
    Ok(0)
}

pub fn disable(cli: &Cli, name: &str) -> Result<i32> {
    let _ = open_store(cli)?;
    let link = unit_dir().join("machines.target.wants").join(format!("berth@{name}.service"));
    match std::fs::remove_file(&link) {
        Ok(()) => {
            reload();
            crate::output::print(&format!("Removed {}\n", link.display()))?;
            Ok(0)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!("machine {name} is not enabled"),
        Err(e) => Err(e).with_context(|| format!("removing {}", link.display())),
    }
}
