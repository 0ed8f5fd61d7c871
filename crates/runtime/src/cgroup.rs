//! One cgroup per container under a `berth` slice, on the unified (v2)
//! hierarchy, on v1 controllers, or both (the hybrid layout: v1 controllers
//! plus a controller-less v2 tree). Limits: memory (RAM and swap alike, so a
//! hog is stopped rather than swapped), CPU quota, pids. Removed at exit.

use crate::devices::Rule;
use crate::spec::Limits;
use crate::RuntimeError;
use std::path::{Path, PathBuf};

/// The cgroup hierarchies mounted on this host.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The unified hierarchy's mount point, if any.
    pub unified: Option<PathBuf>,
    /// v1 controller hierarchies: (controllers, mount point).
    pub v1: Vec<(Vec<String>, PathBuf)>,
}

impl Layout {
    /// Reads the layout from mountinfo text (pure).
    pub fn parse(mountinfo: &str) -> Layout {
        let mut l = Layout::default();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else { continue };
            let f: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            if f.len() < 5 || r.len() < 3 {
                continue;
            }
            let mnt = PathBuf::from(unescape(f[4]));
            match r[0] {
                "cgroup2" if l.unified.is_none() => l.unified = Some(mnt),
                "cgroup" => {
                    let ctrls: Vec<String> = r[2]
                        .split(',')
                        .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains('=') || o.starts_with("name="))
                        .filter(|o| {
                            ["memory", "cpu", "cpuacct", "pids", "cpuset", "devices", "freezer", "blkio"].contains(o)
                                || o.starts_with("name=")
                        })
                        .map(str::to_string)
                        .collect();
                    if !ctrls.is_empty() && !l.v1.iter().any(|(_, p)| *p == mnt) {
                        l.v1.push((ctrls, mnt));
                    }
                }
                _ => {}
            }
        }
        l
    }

    pub fn detect() -> Layout {
        Layout::parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
    }

    fn v1_mount(&self, ctrl: &str) -> Option<&PathBuf> {
        self.v1.iter().find(|(c, _)| c.iter().any(|x| x == ctrl)).map(|(_, p)| p)
    }

    /// Whether the unified hierarchy carries the controllers (pure v2).
    pub fn unified_controllers(&self) -> bool {
        self.unified.as_ref().is_some_and(|u| {
            std::fs::read_to_string(u.join("cgroup.controllers")).map(|s| s.contains("memory")).unwrap_or(false)
        })
    }
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

/// This process's path in the hierarchy whose /proc/self/cgroup entry
/// names `key` (`""` for v2).
fn own_path(key: &str) -> String {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = (it.next(), it.next().unwrap_or(""), it.next().unwrap_or("/"));
        if (key.is_empty() && ctrls.is_empty()) || ctrls.split(',').any(|c| c == key) {
            return path.to_string();
        }
    }
    "/".into()
}

/// Removes cgroups left by a berth that was killed: named `NAME-PID`
/// with PID no longer alive.
fn sweep_stale(slice: &Path) {
    let Ok(rd) = std::fs::read_dir(slice) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.rsplit('-').next().and_then(|p| p.parse::<i32>().ok()) else { continue };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        // Its berth is gone, and with it (PDEATHSIG) the container: remove
        // what is left, including what an init made below.
        remove_children(&e.path());
        remove_killing(&e.path());
    }
}

/// Removes the cgroups below `dir`, deepest first (killing what is in them).
fn remove_children(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_children(&e.path());
            remove_killing(&e.path());
        }
    }
}

/// Kills what is in the cgroup `d` and removes it, retrying while the
/// dying processes still hold it (up to a second).
fn remove_killing(d: &Path) {
    for attempt in 0..100 {
        if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
            for p in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = crate::sys::kill(p, libc::SIGKILL);
            }
        }
        match std::fs::remove_dir(d) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if attempt == 99 => tracing::warn!(cgroup = %d.display(), error = %e, "cannot remove cgroup"),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
}

/// Puts the device allow-list in force for the container cgroup `dir`:
/// its own program for `--device` runs, else the one on `slice` (attached
/// by the first run that finds none; two racing attach two equal ones).
fn devices_for(slice: &Path, dir: &Path, rules: &[Rule], own: bool) -> Result<(), RuntimeError> {
    if own {
        return device_program(dir, rules);
    }
    match crate::sys::device_programs_attached(slice) {
        Ok(n) if n > 0 => Ok(()),
        _ => device_program(slice, rules),
    }
}

/// Attaches the device allow-list for `rules` to the cgroup2 dir `dir`.
fn device_program(dir: &Path, rules: &[Rule]) -> Result<(), RuntimeError> {
    crate::sys::attach_device_program(dir, &crate::devices::program(rules))
        .map_err(|e| RuntimeError::sys(format!("attaching the device allow-list to {}", dir.display()), e))
}

/// A container's cgroup directories, one per hierarchy it lives in.
#[derive(Debug)]
pub struct Cgroup {
    dirs: Vec<PathBuf>,
    /// The one on the unified hierarchy, which a process can be cloned
    /// straight into (see [`Cgroup::unified`]).
    unified: Option<PathBuf>,
}

fn write(p: &Path, v: &str) -> Result<(), RuntimeError> {
    std::fs::write(p, v).map_err(|e| RuntimeError::sys(format!("writing {v:?} to {}", p.display()), e))
}

impl Cgroup {
    /// Creates the cgroup `name`, applies `limits` and lets its processes
    /// open only the devices `devices` allows.
    pub fn create(name: &str, limits: &Limits, devices: &[Rule]) -> Result<Cgroup, RuntimeError> {
        let layout = Layout::detect();
        let mut cg = Cgroup { dirs: Vec::new(), unified: None };
        let mkdir = |p: &Path, cg: &mut Cgroup| -> Result<(), RuntimeError> {
            std::fs::create_dir_all(p).map_err(|e| RuntimeError::sys(format!("creating cgroup {}", p.display()), e))?;
            cg.dirs.push(p.to_path_buf());
            Ok(())
        };
        // Runs with berth's own device set live under a slice that holds
        // its device program once for all of them (loading and attaching
        // one per container costs its start a third of a millisecond);
        // runs with --device under a sibling, each with its own program.
        let own_devices = devices != crate::devices::defaults().as_slice();
        if layout.unified_controllers() {
            let root = layout.unified.clone().unwrap_or_default();
            let slice = root.join(if own_devices { "berth-devices.slice" } else { "berth.slice" });
            std::fs::create_dir_all(&slice)
                .map_err(|e| RuntimeError::sys(format!("creating {}", slice.display()), e))?;
            for dir in [&root, &slice] {
                for c in ["+memory", "+pids", "+cpu"] {
                    let _ = std::fs::write(dir.join("cgroup.subtree_control"), c);
                }
            }
            sweep_stale(&slice);
            let dir = slice.join(name);
            mkdir(&dir, &mut cg)?;
            cg.unified = Some(dir.clone());
            devices_for(&slice, &dir, devices, own_devices)?;
            if let Some(m) = limits.memory {
                write(&dir.join("memory.max"), &m.to_string())?;
                let _ = std::fs::write(dir.join("memory.swap.max"), "0");
            }
            if let Some(c) = limits.cpus {
                write(&dir.join("cpu.max"), &format!("{} 100000", (c * 100_000.0).round().max(1000.0) as u64))?;
            }
            if let Some(p) = limits.pids {
                write(&dir.join("pids.max"), &p.to_string())?;
            }
            return Ok(cg);
        }
        // v1 or hybrid: limits go to the v1 controllers, nested under our
        // own cgroup so delegated limits above us still hold. A controller
        // with no limit to enforce is left alone: moving a process into a
        // v1 cgroup can wait for an RCU grace period, which is most of a
        // container's start on a busy host. The unified tree (hybrid) or,
        // failing that, the pids controller tracks the container's processes.
        let nested = |ctrl: &str, mnt: &Path| mnt.join(own_path(ctrl).trim_start_matches('/')).join("berth");
        let track_in_pids = layout.unified.is_none();
        // Without a unified hierarchy to hang a device program on, the v1
        // devices controller enforces the allow-list.
        // (`BERTH_DEVICES_CGROUP=v1` takes that path on a hybrid host too,
        // which is how it is tested on one.)
        let v1_devices = layout.unified.is_none() || std::env::var("BERTH_DEVICES_CGROUP").is_ok_and(|v| v == "v1");
        let want = [
            ("memory", limits.memory.is_some()),
            ("cpu", limits.cpus.is_some()),
            ("pids", limits.pids.is_some() || track_in_pids),
            ("devices", v1_devices),
        ];
        for (ctrl, needed) in want {
            if !needed {
                continue;
            }
            let Some(mnt) = layout.v1_mount(ctrl) else {
                if ctrl != "pids" || limits.pids.is_some() {
                    return Err(RuntimeError::Setup(format!(
                        "the {ctrl} cgroup controller is not mounted: cannot apply the limit"
                    )));
                }
                continue;
            };
            let slice = nested(ctrl, mnt);
            sweep_stale(&slice);
            let dir = slice.join(name);
            mkdir(&dir, &mut cg)?;
            match ctrl {
                "memory" => {
                    if let Some(m) = limits.memory {
                        write(&dir.join("memory.limit_in_bytes"), &m.to_string())?;
                        let sw = dir.join("memory.memsw.limit_in_bytes");
                        if sw.exists() {
                            write(&sw, &m.to_string())?;
                        }
                    }
                }
                "cpu" => {
                    if let Some(c) = limits.cpus {
                        write(&dir.join("cpu.cfs_period_us"), "100000")?;
                        write(
                            &dir.join("cpu.cfs_quota_us"),
                            &((c * 100_000.0).round().max(1000.0) as u64).to_string(),
                        )?;
                    }
                }
                "devices" => {
                    write(&dir.join("devices.deny"), "a")?;
                    for line in devices.iter().flat_map(Rule::v1_lines) {
                        write(&dir.join("devices.allow"), &line)?;
                    }
                }
                _ => {
                    if let Some(p) = limits.pids {
                        write(&dir.join("pids.max"), &p.to_string())?;
                    }
                }
            }
        }
        if let Some(u) = &layout.unified {
            // (A slice of their own for runs under the v1 controller, so no
            // device program attached for others applies to them.)
            let slice_name = match (v1_devices, own_devices) {
                (true, _) => "berth-v1devices",
                (false, true) => "berth-devices",
                (false, false) => "berth",
            };
            let slice = u.join(own_path("").trim_start_matches('/')).join(slice_name);
            sweep_stale(&slice);
            let dir = slice.join(name);
            mkdir(&dir, &mut cg)?;
            cg.unified = Some(dir.clone());
            // On a hybrid host too: the kernel runs device programs by the
            // task's cgroup2 membership, and joining a v1 devices cgroup
            // would cost the start an RCU grace period.
            if !v1_devices {
                devices_for(&slice, &dir, devices, own_devices)?;
            }
        }
        Ok(cg)
    }

    /// The directory on the unified hierarchy, opened for
    /// `CLONE_INTO_CGROUP`: a process cloned into it starts there, where
    /// moving it in afterwards takes the cgroup migration lock, which can
    /// wait for an RCU grace period on a busy host.
    pub fn unified(&self) -> Result<Option<rustix::fd::OwnedFd>, RuntimeError> {
        use rustix::fs::{Mode, OFlags};
        self.unified
            .as_ref()
            .map(|d| {
                rustix::fs::open(d, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                    .map_err(|e| RuntimeError::sys(format!("opening cgroup {}", d.display()), e))
            })
            .transpose()
    }

    /// Moves `pid` into every directory of the cgroup (but the unified
    /// one when `cloned_in`: it started there).
    pub fn add(&self, pid: i32, cloned_in: bool) -> Result<(), RuntimeError> {
        for d in &self.dirs {
            if cloned_in && Some(d) == self.unified.as_ref() {
                continue;
            }
            write(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Kills what is left and removes the directories, with whatever the
    /// container made below them (a booted systemd makes its own tree).
    pub fn remove(&self) {
        for d in &self.dirs {
            remove_children(d);
            remove_killing(d);
        }
    }

    /// Hands the cgroup to the container's root (host uid `owner`), as
    /// systemd-nspawn does for a booted init in a user namespace: the
    /// directories and the files an init writes to manage its own subtree.
    pub fn delegate(&self, owner: u32) -> Result<(), RuntimeError> {
        let id = Some(rustix::fs::Uid::from_raw(owner));
        let gid = Some(rustix::fs::Gid::from_raw(owner));
        for d in &self.dirs {
            for f in ["", "cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "tasks"] {
                let p = if f.is_empty() { d.clone() } else { d.join(f) };
                match rustix::fs::chown(&p, id, gid) {
                    Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                    Err(e) => return Err(RuntimeError::sys(format!("handing {} to the container", p.display()), e)),
                }
            }
        }
        Ok(())
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hybrid_layout() {
        let mi = "30 25 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755\n\
                  31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                  32 30 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                  33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
                  34 30 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n";
        let l = Layout::parse(mi);
        assert_eq!(l.unified, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(l.v1_mount("cpu"), Some(&PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")));
        assert_eq!(l.v1_mount("memory"), Some(&PathBuf::from("/sys/fs/cgroup/memory")));
        assert!(l.v1_mount("pids").is_none());
    }
}
