//! `berth run`: pick the root filesystem (image, machine or directory),
//! work out the process from the image config and the flags, and hand a
//! `RunSpec` to the runtime. Exit status: the command's.

use super::open_store;
use crate::cli::{parse_size, Cli, RunArgs};
use crate::process;
use anyhow::{anyhow, bail, Context, Result};
use berth_runtime::spec::{self, Limits, ResolvConf};
use berth_runtime::userns::{self, IdRange, Lease, Owner, Ownership, PrivateUsers};
use berth_runtime::{Console, ConsolePlan, Rootfs, RunSpec, Volatile};
use berth_store::{ImageRecord, Store};
use std::path::{Path, PathBuf};

/// A scratch directory under the store's `tmp/`, held against `gc` while
/// the run lives (see berth_store::runs), removed on drop.
struct RunDir {
    path: PathBuf,
    _hold: berth_store::runs::RunHold,
}

impl RunDir {
    fn new(store: &Store) -> Result<RunDir> {
        let (p, hold) = store.new_run_dir(&format!("{}-{:x}", std::process::id(), rand()))?;
        // Only what every run needs; the rest is made when used, since each
        // directory costs a little to create and to remove.
        std::fs::create_dir_all(p.join("root")).with_context(|| format!("creating {}", p.display()))?;
        Ok(RunDir { path: p, _hold: hold })
    }

    /// `upper/` and `work/` for a throw-away overlay.
    fn overlay_dirs(&self) -> Result<(PathBuf, PathBuf)> {
        let (u, w) = (self.path.join("upper"), self.path.join("work"));
        for d in [&u, &w] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        Ok((u, w))
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn rand() -> u64 {
    let t =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    t ^ ((std::process::id() as u64) << 32)
}

pub(super) fn config_of(store: &Store, rec: &ImageRecord) -> Result<serde_json::Value> {
    let body = store.read_blob(&rec.id)?;
    let v: serde_json::Value = serde_json::from_slice(&body).context("parsing the image config")?;
    Ok(v.get("config").cloned().unwrap_or(serde_json::Value::Null))
}

/// An image's layers, top first; an empty directory stands in for none.
fn lowers_of(store: &Store, rec: &ImageRecord, run: &RunDir) -> Result<Vec<PathBuf>> {
    let mut l = store.run_layers(&run.path, rec)?;
    if l.is_empty() {
        let empty = run.path.join("empty");
        std::fs::create_dir_all(&empty)?;
        l.push(empty);
    }
    Ok(l)
}

/// The host IDs the run's users map to: for a machine, the range it had
/// last time unless a running container holds it (the new one is
/// recorded); else one that no running container holds and no machine
/// has reserved.
fn users_lease(store: &Store, mode: PrivateUsers, machine: Option<&str>) -> Result<Option<Lease>> {
    match mode {
        PrivateUsers::No => Ok(None),
        PrivateUsers::Identity => Ok(Some(Lease::fixed(IdRange { base: 0, count: userns::range::SIZE })?)),
        PrivateUsers::Fixed(r) => Ok(Some(Lease::fixed(r)?)),
        PrivateUsers::Pick => {
            let rec = machine.and_then(|m| store.load_machine(m).ok());
            let owner = rec.as_ref().map(|r| Owner {
                store: std::fs::canonicalize(store.root()).unwrap_or_else(|_| store.root().to_path_buf()),
                machine: r.name.clone(),
            });
            let lease = userns::range::lease(rec.as_ref().and_then(|r| r.uid_base), owner.as_ref())?;
            if let Some(r) = rec.filter(|r| r.uid_base != Some(lease.range.base)) {
                store.set_machine_uid_base(&r.name, Some(lease.range.base))?;
            }
            Ok(Some(lease))
        }
    }
}

/// Whether a user other than root can reach `p`: every directory from `/`
/// down to it searchable by others.
fn reachable_by_others(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(p) = std::fs::canonicalize(p) else { return false };
    p.ancestors().all(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// A lock on tree `dir` for the run: exclusive for a run that writes to
/// it, shared for one that does not.
fn lock_tree(dir: &Path, shared: bool) -> Result<rustix::fd::OwnedFd> {
    use rustix::fs::{flock, FlockOperation, Mode, OFlags};
    let fd = rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .with_context(|| format!("opening {}", dir.display()))?;
    let op = if shared { FlockOperation::NonBlockingLockShared } else { FlockOperation::NonBlockingLockExclusive };
    match flock(&fd, op) {
        Ok(()) => Ok(fd),
        Err(rustix::io::Errno::WOULDBLOCK) => bail!(
            "directory tree {} is in use by another container: wait for it, or run with -x or --read-only",
            dir.display()
        ),
        Err(e) => Err(e).with_context(|| format!("locking {}", dir.display())),
    }
}

/// What `ps` and `status` show as a running machine's root.
fn root_of(spec: &RunSpec, name: &str, disk: Option<&Path>) -> String {
    match (&spec.rootfs, disk) {
        (Some(Rootfs::Dir(d)), _) => d.display().to_string(),
        (_, Some(disk)) => format!("disk {}", disk.display()),
        _ => format!("machine {name}"),
    }
}

fn default_hostname(image: &str) -> String {
    let base = image.split('@').next().unwrap_or(image);
    let base = base.rsplit('/').next().unwrap_or(base);
    let base = base.split(':').next().unwrap_or(base);
    let h: String = base.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(63).collect();
    if h.is_empty() {
        "berth".into()
    } else {
        h
    }
}

/// `berth run` as given on this process's command line.
pub fn run(cli: &Cli, a: &RunArgs) -> Result<i32> {
    let (_, m) = super::settings::run_matches(std::env::args_os())?;
    run_matched(cli, a, &m)
}

/// `berth run` parsed into `a` from the matches `m`: a stored machine
/// with settings runs with them, `m`'s options on top.
pub fn run_matched(cli: &Cli, a: &RunArgs, m: &clap::ArgMatches) -> Result<i32> {
    let names_a_run = a.directory.is_some() || a.image.as_deref().is_some_and(|v| Path::new(v).is_file());
    if let Some(name) = &a.machine {
        // A named `-D`/`-i` run reads `NAME.nspawn` as systemd-nspawn
        // does; a stored machine its settings over that file.
        let settings = if names_a_run {
            berth_store::machines::validate_name(name)?;
            super::nspawn::settings_for(name)?
        } else {
            let store = open_store(cli)?;
            match store.load_machine(name) {
                Ok(rec) => super::settings::effective(name, rec.settings)?,
                Err(_) => None,
            }
        };
        if let Some(settings) = settings {
            let (cli2, a2, m2) = super::settings::layered(cli, name, &settings, m, &a.args)?;
            return run_now(&cli2, &a2, &m2);
        }
    }
    run_now(cli, a, m)
}

fn run_now(cli: &Cli, a: &RunArgs, m: &clap::ArgMatches) -> Result<i32> {
    if !berth_runtime::caller_fds_open(a.preserve_fds) {
        bail!(
            "--preserve-fds {}: descriptors 3 to {} must be open when berth starts: hand them over or pass fewer",
            a.preserve_fds,
            2 + a.preserve_fds
        );
    }
    let store = open_store(cli)?;
    // `-i` is nspawn's --image when it names a file, else podman's -i.
    let mut args = a.args.clone();
    let mut tty = a.tty;
    let disk = match a.image.as_deref() {
        Some("t") => {
            tty = true;
            None
        }
        Some(v) if Path::new(v).is_file() => Some(PathBuf::from(v)),
        Some(v) => {
            args.insert(0, v.to_string());
            None
        }
        None => None,
    };
    let (image_name, cmd) = if a.machine.is_some() || a.directory.is_some() || disk.is_some() {
        (None, args.clone())
    } else {
        match args.split_first() {
            Some((i, rest)) => (Some(i.clone()), rest.to_vec()),
            None => bail!("no image given: use `berth run IMAGE [CMD…]`, `-M NAME` or `-D DIR`"),
        }
    };
    if a.name.is_some() && image_name.is_none() {
        bail!("--name makes a machine from an image; with -M or -D the machine or tree already exists");
    }
    // The name ps, exec, status and stop know the run by, if any.
    let managed = a.machine.as_ref().or(a.name.as_ref());
    if a.detach {
        if managed.is_none() {
            bail!("-d needs a machine to manage: give --name NAME (or -M NAME)");
        }
        if a.rm {
            bail!("--rm does not go with -d: remove the machine with `berth rm` after `berth stop`");
        }
        if disk.is_some() {
            bail!("-d does not go with -i DISK: run the disk in the foreground, or import it (berth import DISK NAME) and run -d -M NAME");
        }
    }
    let restart: berth_runtime::detach::Restart = a.restart.parse().map_err(|e: String| anyhow!(e))?;
    if restart != berth_runtime::detach::Restart::No {
        if managed.is_none() {
            bail!("--restart needs a machine to restart: give --name NAME or -M NAME (and -d to run it in the background)");
        }
        if a.rm {
            bail!("--rm does not go with --restart: the machine would be removed while it is to be restarted");
        }
    }
    let volatile: Volatile = a.volatile.as_deref().unwrap_or("no").parse().map_err(|e: String| anyhow!(e))?;
    // Whose the network lease is: a stored machine's (kept across its
    // runs, under its lock), else this run's (given back when it ends).
    let stored_machine = match (&a.machine, &a.name) {
        (Some(m), _) if a.directory.is_none() && disk.is_none() => Some(m.clone()),
        (None, Some(n)) if !a.ephemeral => Some(n.clone()),
        _ => None,
    };
    let wants_link = a.network_veth || a.network_bridge.is_some() || !a.port.is_empty();
    if wants_link && a.detach && stored_machine.is_none() {
        bail!("-d with a network link needs a machine that keeps its address: make one with `berth create` or `run --name` (without -x)");
    }
    let vlans = super::network::vlans(a)?;
    if let Some(p) = &a.network_namespace_path {
        if wants_link || !vlans.is_empty() || a.private_network {
            bail!(
                "--network-namespace-path joins a network namespace as it is: drop --private-network, -n, \
                 --network-bridge, -p, --network-macvlan and --network-ipvlan"
            );
        }
        berth_runtime::net::ns::open_named(p).map_err(|e| anyhow!(e))?;
    }
    // The image, pulled first when --pull says so.
    let mut image_rec = match &image_name {
        Some(image) => super::pull::ensure_image(&store, image, &a.pull, &a.registry)?,
        None => None,
    };
    let run_dir = RunDir::new(&store)?;
    let tmp_overlay = |lowers: Vec<PathBuf>| -> Result<Rootfs> {
        let (upper, work) = run_dir.overlay_dirs()?;
        Ok(Rootfs::Overlay { lowers, upper, work })
    };
    let mut _lock = None;
    let mut config = None;
    let mut machine_ro = false;
    let mut _attached = None;
    let mut _tree_lock = None;
    // Whether a `-D` tree is written to (else it is only read).
    let writes_tree = !a.ephemeral && !a.read_only && volatile == Volatile::No;
    // With -D or -i, -M names the run, as nspawn's --machine does: it is
    // locked like a machine of that name, and is its hostname.
    let run_name = match (&a.machine, a.directory.is_some() || disk.is_some()) {
        (Some(name), true) => {
            berth_store::machines::validate_name(name)?;
            _lock = Some(store.lock_machine(name)?);
            Some(name.clone())
        }
        _ => None,
    };
    let (rootfs, hostname) = if let Some(img) = &disk {
        let att = berth_store::import::disk::attach_root(img, a.read_only)
            .with_context(|| format!("disk image {}", img.display()))?;
        let rootfs = Rootfs::Block {
            device: PathBuf::from(&att.device),
            fstype: att.fstype.to_string(),
            read_only: a.read_only,
        };
        _attached = Some(att);
        let stem = img.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        (rootfs, default_hostname(stem.split('.').next().unwrap_or(&stem)))
    } else if let Some(dir) = &a.directory {
        let dir = std::fs::canonicalize(dir).with_context(|| format!("directory {} does not exist", dir.display()))?;
        if !dir.is_dir() {
            bail!("{} is not a directory", dir.display());
        }
        // One writer at a time, as systemd-nspawn locks a tree: two
        // containers writing one tree would each own its files (and a
        // shift of owners under a running one would pull them away).
        _tree_lock = Some(lock_tree(&dir, !writes_tree)?);
        let h = default_hostname(&dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        (if a.ephemeral { tmp_overlay(vec![dir])? } else { Rootfs::Dir(dir) }, h)
    } else if let Some(name) = a.machine.as_ref().filter(|_| run_name.is_none()) {
        let m = store.load_machine(name)?;
        _lock = Some(store.lock_machine(name)?);
        machine_ro = m.read_only;
        let mdir = store.machine_dir(name);
        let image_lowers = match &m.image {
            Some(id) => {
                let rec = store.resolve(&id.to_string()).with_context(|| format!("machine {name}'s image"))?;
                config = Some(config_of(&store, &rec)?);
                Some(lowers_of(&store, &rec, &run_dir)?)
            }
            None => None,
        };
        let rootfs = match (image_lowers, a.ephemeral) {
            (Some(lowers), false) => Rootfs::Overlay { lowers, upper: mdir.join("upper"), work: mdir.join("work") },
            (Some(lowers), true) => tmp_overlay(std::iter::once(mdir.join("upper")).chain(lowers).collect())?,
            (None, false) => Rootfs::Dir(mdir.join("upper")),
            (None, true) => tmp_overlay(vec![mdir.join("upper")])?,
        };
        (rootfs, name.clone())
    } else {
        let image = image_name.as_deref().unwrap_or_default();
        let rec = match image_rec.take() {
            Some(rec) => rec,
            None => store.resolve(image)?,
        };
        config = Some(config_of(&store, &rec)?);
        let lowers = lowers_of(&store, &rec, &run_dir)?;
        match &a.name {
            Some(name) if !a.ephemeral => {
                let mut settings = super::settings::of_run(m, &cmd);
                settings.image_command = cmd.is_empty() && !a.boot;
                store.create_machine_set(name, &rec.id, settings)?;
                _lock = Some(store.lock_machine(name)?);
                let mdir = store.machine_dir(name);
                (Rootfs::Overlay { lowers, upper: mdir.join("upper"), work: mdir.join("work") }, name.clone())
            }
            Some(name) => (tmp_overlay(lowers)?, name.clone()),
            None => (tmp_overlay(lowers)?, default_hostname(image)),
        }
    };
    let hostname = run_name.clone().unwrap_or(hostname);
    let config = config.as_ref().filter(|c| !c.is_null());
    let mut args = if a.boot { cmd.clone() } else { process::argv(config, a.entrypoint.as_deref(), &cmd) };
    if args.is_empty() && !a.boot {
        if config.is_some() {
            bail!("the image has no Entrypoint or Cmd: give a command, e.g. `berth run IMAGE /bin/sh`");
        }
        args.push("/bin/sh".into());
    }
    let mut mounts = Vec::new();
    for b in &a.bind {
        mounts.push(spec::parse_bind(b, false).map_err(|e| anyhow!(e))?);
    }
    for b in &a.bind_ro {
        mounts.push(spec::parse_bind(b, true).map_err(|e| anyhow!(e))?);
    }
    for t in &a.tmpfs {
        mounts.push(spec::parse_tmpfs(t).map_err(|e| anyhow!(e))?);
    }
    for o in &a.overlay {
        mounts.push(spec::parse_overlay(o, false).map_err(|e| anyhow!(e))?);
    }
    for o in &a.overlay_ro {
        mounts.push(spec::parse_overlay(o, true).map_err(|e| anyhow!(e))?);
    }
    for m in &mounts {
        if let spec::BindMount::Bind { src, .. } = m {
            if !Path::new(src).exists() {
                bail!("bind source {} does not exist", src.display());
            }
        }
    }
    let limits = Limits {
        memory: a.memory.as_deref().map(parse_size).transpose().map_err(|e| anyhow!(e))?,
        cpus: a.cpus,
        pids: a.pids_limit,
    };
    if a.cpus.is_some_and(|c| c.is_nan() || c <= 0.0) {
        bail!("--cpus must be a positive number");
    }
    let console: Console = match &a.console {
        Some(c) => c.parse().map_err(|e: String| anyhow!(e))?,
        None => Console::Autopipe,
    };
    // TERM goes with a pty on the command's stdout.
    let terminals = berth_runtime::stdio_terminals();
    let console_mode = if tty { Console::Interactive } else { console };
    // (A booted init gets a console pty whatever the mode, and TERM only
    // with -t, as nspawn gives it.)
    let pty_out = tty || (!a.boot && ConsolePlan::new(console_mode, terminals).pty[1]);
    let mut env = process::env(config, pty_out, &a.setenv).map_err(|e| anyhow!(e))?;
    if a.boot && !env.iter().any(|(k, _)| k == "container_uuid") {
        // systemd takes its machine ID from here when /etc/machine-id is
        // empty: stable per machine, as systemd-nspawn derives it.
        let id = berth_oci::Digest::of(hostname.as_bytes());
        env.push(("container_uuid".into(), id.hex()[..32].to_string()));
    }
    let private_users: PrivateUsers = if a.private_users_pick {
        PrivateUsers::Pick
    } else {
        a.private_users.parse().map_err(|e: String| anyhow!(e))?
    };
    let ownership: Ownership = a.private_users_ownership.parse().map_err(|e: String| anyhow!(e))?;
    // A named -D or -i run is no stored machine: it gets no stored
    // machine's range of user IDs.
    let machine_name = managed.filter(|_| (!a.ephemeral || a.machine.is_some()) && run_name.is_none());
    let lease = users_lease(&store, private_users, machine_name.map(String::as_str))?;
    if lease.as_ref().is_some_and(|l| l.range.base != 0) && ownership != Ownership::Off {
        // A file the container's root makes is root's on disk (nothing is
        // shifted), so a setuid file it makes in a tree other users can
        // reach is a setuid-root file on the host.
        let mut places: Vec<&Path> = a.directory.iter().filter(|_| writes_tree).map(PathBuf::as_path).collect();
        for m in &mounts {
            if let spec::BindMount::Overlay { upper: Some(u), readonly: false, .. } = m {
                places.push(u);
            }
        }
        for p in places.into_iter().filter(|p| reachable_by_others(p)) {
            eprintln!(
                "berth: warning: {} is reachable by every user of this host, and files the container makes setuid \
                 there are setuid root on the host: keep it below a directory only root can enter (chmod 700)",
                p.display()
            );
        }
    }
    // The link, leased now that the machine (if any) is locked.
    let net_owner = match &stored_machine {
        Some(n) => berth_runtime::net::network::Owner::machine(n),
        // A named run (-x --name, -D/-i with -M) is known by its name.
        None => berth_runtime::net::network::Owner::this_run(managed.map(String::as_str)),
    };
    let network = super::network::plan(a, &net_owner)?;
    let _net_lease = super::network::TransientLease::of(network.is_some(), net_owner);
    let spec = RunSpec {
        rootfs: Some(rootfs),
        args,
        env,
        user: a.user.clone().or_else(|| process::field(config, "User").map(str::to_string)),
        cwd: a.chdir.clone().or_else(|| process::field(config, "WorkingDir").map(str::to_string)),
        hostname: a.hostname.clone().unwrap_or(hostname.clone()),
        name: hostname,
        read_only: a.read_only || machine_ro,
        volatile,
        private_network: a.private_network || network.is_some() || !vlans.is_empty(),
        network,
        vlans,
        netns: a.network_namespace_path.clone(),
        mounts,
        resolv_conf: a.resolv_conf.parse::<ResolvConf>().map_err(|e| anyhow!(e))?,
        tty,
        console,
        capabilities_add: a.capability.clone(),
        capabilities_drop: a.drop_capability.clone(),
        limits,
        devices: a.device.iter().map(|d| spec::parse_device(d)).collect::<Result<_, _>>().map_err(|e| anyhow!(e))?,
        system_call_filter: a.system_call_filter.clone(),
        preserve_fds: a.preserve_fds,
        no_seccomp: a.no_seccomp,
        boot: a.boot,
        users: lease.as_ref().map(|l| l.range),
        ownership,
    };
    if let Some(name) = managed.filter(|_| a.detach) {
        let root = root_of(&spec, name, disk.as_deref());
        let image = match (&image_name, store.load_machine(name).ok().and_then(|m| m.image)) {
            (Some(i), _) => Some(i.clone()),
            (None, Some(id)) if run_name.is_none() => Some(id.short().to_string()),
            _ => None,
        };
        berth_runtime::detach::start_detached(&spec, &run_dir.path, name, &root, image, restart)?;
        // The supervisor owns the scratch dir, the machine lock and the
        // range of user IDs now.
        std::mem::forget(run_dir);
        std::mem::forget(_lock);
        std::mem::forget(lease);
        return Ok(0);
    }
    // A run with a machine name is a running machine: ps, exec, status and
    // stop reach it.
    let outcome = match managed {
        Some(name) => {
            let root = root_of(&spec, name, disk.as_deref());
            // In the foreground the caller supervises (a terminal, or
            // systemd for the enable unit): what it sends ends the run.
            let _ = restart;
            berth_runtime::detach::run_managed(
                &spec,
                &run_dir.path,
                name,
                &root,
                image_name.clone(),
                Default::default(),
            )
        }
        None => berth_runtime::run(&spec, &run_dir.path),
    };
    drop(_lock);
    drop(lease);
    // An ephemeral run (-x) made no machine to remove.
    if a.rm && !a.ephemeral {
        if let Some(name) = &a.name {
            store.remove_machine(name)?;
            super::network::forget_machine(name);
        }
    }
    match outcome {
        Ok(o) => {
            if let Some(m) = o.message {
                eprintln!("berth: {m}");
            }
            Ok(o.status)
        }
        Err(e) => {
            eprintln!("berth: {e}");
            Ok(125)
        }
    }
}
