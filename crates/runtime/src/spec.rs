//! What to run and how: the plain data a caller fills in. Parsers for the
//! `--bind`, `--tmpfs` and `--overlay` syntaxes live here too (pure).

use std::path::PathBuf;

/// The container's root filesystem before it is mounted.
#[derive(Debug, Clone)]
pub enum Rootfs {
    /// A directory tree used in place (`-D DIR`).
    Dir(PathBuf),
    /// An overlay: `lowers` top first; `upper`/`work` hold changes.
    Overlay { lowers: Vec<PathBuf>, upper: PathBuf, work: PathBuf },
    /// A block device (a disk image's root partition on a loop device).
    Block { device: PathBuf, fstype: String, read_only: bool },
}

/// `--volatile` modes, with systemd-nspawn's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Volatile {
    #[default]
    No,
    /// A tmpfs root with the tree's `/usr` mounted read-only.
    Yes,
    /// The tree read-only, `/var` a tmpfs.
    State,
    /// The tree with a tmpfs overlay: changes vanish at exit.
    Overlay,
}

impl std::str::FromStr for Volatile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "no" | "false" => Ok(Volatile::No),
            "yes" | "true" => Ok(Volatile::Yes),
            "state" => Ok(Volatile::State),
            "overlay" => Ok(Volatile::Overlay),
            _ => Err(format!("invalid --volatile={s}: use no, yes, state or overlay")),
        }
    }
}

/// `--bind`/`--bind-ro`/`--tmpfs`/`--overlay` mounts, applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindMount {
    /// `idmap`: the source's owners mapped into the container's users.
    Bind {
        src: PathBuf,
        dst: PathBuf,
        readonly: bool,
        recursive: bool,
        idmap: bool,
    },
    Tmpfs {
        dst: PathBuf,
        options: String,
    },
    Overlay {
        lowers: Vec<PathBuf>,
        upper: Option<PathBuf>,
        dst: PathBuf,
        readonly: bool,
    },
}

impl BindMount {
    /// Where it goes in the container.
    pub fn dst(&self) -> &std::path::Path {
        match self {
            BindMount::Bind { dst, .. } | BindMount::Tmpfs { dst, .. } | BindMount::Overlay { dst, .. } => dst,
        }
    }
}

/// How `/etc/resolv.conf` is provided (`--resolv-conf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResolvConf {
    Off,
    #[default]
    CopyHost,
    ReplaceHost,
    BindHost,
    Delete,
}

impl std::str::FromStr for ResolvConf {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "off" | "no" => ResolvConf::Off,
            "auto" | "copy-host" | "copy-auto" => ResolvConf::CopyHost,
            "replace-host" | "replace-auto" => ResolvConf::ReplaceHost,
            "bind-host" | "bind-auto" => ResolvConf::BindHost,
            "delete" => ResolvConf::Delete,
            _ => {
                return Err(format!(
                    "invalid --resolv-conf={s}: use off, copy-host, replace-host, bind-host, delete or auto"
                ))
            }
        })
    }
}

/// `--console`, with systemd-nspawn's meaning. Whatever the mode but
/// `pipe`, the container never holds the caller's terminal: it gets a pty
/// of its own that berth relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Console {
    /// A pty, relayed both ways (`-t`).
    Interactive,
    /// A pty whose output is relayed; input is not.
    ReadOnly,
    /// A pty, nothing relayed.
    Passive,
    /// The caller's stdio handed over as it is (terminal included).
    Pipe,
    /// A pty in place of each of stdin, stdout and stderr that is a
    /// terminal; pipes and files are handed over as they are.
    #[default]
    Autopipe,
}

impl std::str::FromStr for Console {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "interactive" => Console::Interactive,
            "read-only" => Console::ReadOnly,
            "passive" => Console::Passive,
            "pipe" => Console::Pipe,
            "autopipe" => Console::Autopipe,
            _ => return Err(format!("invalid --console={s}: use interactive, read-only, passive, pipe or autopipe")),
        })
    }
}

/// Where the pty's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relay {
    Stdout,
    Stderr,
    Discard,
}

/// How a run's stdio is wired, from the mode and which of the caller's
/// stdin, stdout and stderr are terminals (pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsolePlan {
    /// Which of 0, 1, 2 the container gets as the pty (none: no pty).
    pub pty: [bool; 3],
    /// Whether berth copies its stdin into the pty.
    pub input: bool,
    pub output: Relay,
}

impl ConsolePlan {
    pub fn new(mode: Console, terminals: [bool; 3]) -> ConsolePlan {
        let all = [true; 3];
        let out_to = if terminals[1] {
            Relay::Stdout
        } else if terminals[2] {
            Relay::Stderr
        } else {
            Relay::Stdout
        };
        match mode {
            Console::Interactive => ConsolePlan { pty: all, input: true, output: Relay::Stdout },
            Console::ReadOnly => ConsolePlan { pty: all, input: false, output: Relay::Stdout },
            Console::Passive => ConsolePlan { pty: all, input: false, output: Relay::Discard },
            Console::Pipe => ConsolePlan { pty: [false; 3], input: false, output: Relay::Discard },
            Console::Autopipe => ConsolePlan {
                pty: terminals,
                input: terminals[0],
                output: if terminals[1] || terminals[2] { out_to } else { Relay::Discard },
            },
        }
    }

    pub fn uses_pty(&self) -> bool {
        self.pty.iter().any(|b| *b)
    }
}

/// `--device PATH[:CPATH][:rwm]`: a host device node made available in
/// the container (bound at CPATH, default PATH, and allowed in its cgroup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    pub host: PathBuf,
    pub container: PathBuf,
    /// `crate::devices` READ | WRITE | MKNOD bits.
    pub access: u32,
}

/// Parses `--device PATH[:CPATH][:rwm]` (docker's and podman's syntax).
pub fn parse_device(s: &str) -> Result<DeviceSpec, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let host = abs(parts[0], "device")?;
    let rwm = crate::devices::READ | crate::devices::WRITE | crate::devices::MKNOD;
    let (container, access) = match parts.as_slice() {
        [_] => (host.clone(), rwm),
        [_, x] if x.starts_with('/') => (abs(x, "device destination")?, rwm),
        [_, a] => (host.clone(), crate::devices::parse_access(a)?),
        [_, c, a] => (abs(c, "device destination")?, crate::devices::parse_access(a)?),
        _ => return Err(format!("invalid --device {s:?}: expected PATH[:CPATH][:rwm]")),
    };
    Ok(DeviceSpec { host, container, access })
}

/// Resource limits for the container's cgroup.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub memory: Option<u64>,
    /// CPUs as a fraction (1.5 = one and a half).
    pub cpus: Option<f64>,
    pub pids: Option<u64>,
}

/// `--network-veth` / `--network-bridge`: a veth pair whose host end
/// `host_if` joins `bridge` and whose far end is `host0` in the
/// container's network namespace, with `addrs` on it and default routes
/// via `gateways` (both empty on a bridge berth does not manage: the
/// link is up, addressing is the container's business).
#[derive(Debug, Clone, Default)]
pub struct NetAttach {
    pub host_if: String,
    pub bridge: String,
    pub addrs: Vec<crate::net::IpNet>,
    pub gateways: Vec<std::net::IpAddr>,
    /// `-p`: host ports forwarded to the container's IPv4 address.
    pub ports: Vec<crate::net::ports::PortMap>,
    /// The network's hosts file, bound over `/etc/hosts` (berth networks).
    pub hosts: Option<std::path::PathBuf>,
    /// The bridge's address, named in `/etc/resolv.conf` in place of the
    /// host's loopback resolver, when the network forwards DNS there.
    pub dns: Option<std::net::Ipv4Addr>,
}

/// A link on one of the host's interfaces, made inside the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// `--network-macvlan`: its own MAC address on the parent's segment.
    Macvlan,
    /// `--network-ipvlan`: the parent's MAC address, its own IP addresses.
    Ipvlan,
}

impl std::fmt::Display for LinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LinkKind::Macvlan => "macvlan",
            LinkKind::Ipvlan => "ipvlan",
        })
    }
}

impl RunSpec {
    /// Whether berth links the container's network namespace from the
    /// host side (a veth, macvlan or ipvlan) before its command starts.
    pub fn links_from_host(&self) -> bool {
        self.network.is_some() || !self.vlans.is_empty()
    }
}

/// `--network-macvlan IF` / `--network-ipvlan IF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanLink {
    pub kind: LinkKind,
    /// The host's interface it sits on.
    pub parent: String,
}

impl VlanLink {
    /// Its name in the container, as systemd-nspawn names it: `mv-IF` or
    /// `iv-IF`, cut to the kernel's 15 bytes.
    pub fn name(&self) -> String {
        let prefix = match self.kind {
            LinkKind::Macvlan => "mv-",
            LinkKind::Ipvlan => "iv-",
        };
        let mut n = format!("{prefix}{}", self.parent);
        if n.len() > crate::net::MAX_IFNAME {
            let cut = (0..=crate::net::MAX_IFNAME).rev().find(|&i| n.is_char_boundary(i)).unwrap_or(0);
            n.truncate(cut);
        }
        n
    }
}

/// Everything `run` needs.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    pub rootfs: Option<Rootfs>,
    /// argv; argv[0] is looked up in the container's PATH.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// `NAME`, `UID`, `NAME:GROUP` or `UID:GID`; resolved in the container.
    pub user: Option<String>,
    pub cwd: Option<String>,
    pub hostname: String,
    /// Cgroup and log name.
    pub name: String,
    pub read_only: bool,
    pub volatile: Volatile,
    pub private_network: bool,
    /// A veth link into the container's (private) network namespace,
    /// made and configured by berth before the command or init starts.
    pub network: Option<NetAttach>,
    /// `--network-macvlan` / `--network-ipvlan` links (a private network).
    pub vlans: Vec<VlanLink>,
    /// `--network-namespace-path`: the network namespace to join.
    pub netns: Option<std::path::PathBuf>,
    pub mounts: Vec<BindMount>,
    pub resolv_conf: ResolvConf,
    /// `-t`: a pty relayed both ways (the same as `console: Interactive`).
    pub tty: bool,
    pub console: Console,
    pub capabilities_add: Vec<String>,
    pub capabilities_drop: Vec<String>,
    pub limits: Limits,
    /// `--device` nodes, beyond the ones every container gets.
    pub devices: Vec<DeviceSpec>,
    /// `--preserve-fds N`: descriptors 3..3+N go on to the command.
    pub preserve_fds: u32,
    /// `--system-call-filter` values (systemd-nspawn's syntax).
    pub system_call_filter: Vec<String>,
    /// Skip the seccomp filter (debugging).
    pub no_seccomp: bool,
    /// Run the tree's init as PID 1 (`-b/--boot`) instead of a command.
    pub boot: bool,
    /// The host IDs the container's users map to, in a user namespace of
    /// its own; `None`: the host's users (`--private-users=no`).
    pub users: Option<crate::userns::IdRange>,
    /// `--private-users-ownership`: how a tree used in place is mapped.
    pub ownership: crate::userns::Ownership,
}

fn abs(p: &str, what: &str) -> Result<PathBuf, String> {
    if !p.starts_with('/') {
        return Err(format!("{what} {p:?} must be an absolute path"));
    }
    Ok(PathBuf::from(p))
}

/// Parses `SRC[:DST[:OPTS]]` (OPTS: `rbind`, `norbind`, `ro`, `rw`,
/// `idmap`, `noidmap`).
pub fn parse_bind(s: &str, readonly: bool) -> Result<BindMount, String> {
    let parts: Vec<&str> = s.splitn(3, ':').collect();
    let src = abs(parts[0], "bind source")?;
    let dst = match parts.get(1) {
        Some(d) if !d.is_empty() => abs(d, "bind destination")?,
        _ => src.clone(),
    };
    let mut m = BindMount::Bind { src, dst, readonly, recursive: true, idmap: false };
    if let (Some(opts), BindMount::Bind { readonly, recursive, idmap, .. }) = (parts.get(2), &mut m) {
        for o in opts.split(',') {
            match o {
                "rbind" => *recursive = true,
                "norbind" => *recursive = false,
                "ro" => *readonly = true,
                "rw" => *readonly = false,
                "idmap" => *idmap = true,
                "noidmap" => *idmap = false,
                "" => {}
                other => {
                    return Err(format!(
                        "unknown bind option {other:?} in {s:?}: use rbind, norbind, ro, rw, idmap or noidmap"
                    ))
                }
            }
        }
    }
    Ok(m)
}

/// Parses `DST[:OPTS]` for `--tmpfs`.
pub fn parse_tmpfs(s: &str) -> Result<BindMount, String> {
    let (d, o) = s.split_once(':').unwrap_or((s, ""));
    Ok(BindMount::Tmpfs {
        dst: abs(d, "tmpfs destination")?,
        options: if o.is_empty() { "mode=0755".into() } else { o.into() },
    })
}

/// Parses `--overlay LOWER[:LOWER…]:UPPER:DST` (an empty UPPER means a
/// throw-away tmpfs upper), as systemd-nspawn does.
pub fn parse_overlay(s: &str, readonly: bool) -> Result<BindMount, String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() < 2 {
        return Err(format!("invalid --overlay {s:?}: expected LOWER[:LOWER…]:UPPER:DEST"));
    }
    let dst = abs(parts[parts.len() - 1], "overlay destination")?;
    let (lowers, upper) = if parts.len() == 2 {
        (vec![abs(parts[0], "overlay lower")?], None)
    } else {
        let up = parts[parts.len() - 2];
        let upper = if up.is_empty() { None } else { Some(abs(up, "overlay upper")?) };
        let lowers = parts[..parts.len() - 2].iter().map(|p| abs(p, "overlay lower")).collect::<Result<Vec<_>, _>>()?;
        (lowers, upper)
    };
    // nspawn lists lowers bottom first; overlayfs wants top first.
    let lowers = lowers.into_iter().rev().collect();
    Ok(BindMount::Overlay { lowers, upper, dst, readonly })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds() {
        assert_eq!(
            parse_bind("/a:/b:ro,norbind", false).unwrap(),
            BindMount::Bind { src: "/a".into(), dst: "/b".into(), readonly: true, recursive: false, idmap: false }
        );
        assert_eq!(
            parse_bind("/a", true).unwrap(),
            BindMount::Bind { src: "/a".into(), dst: "/a".into(), readonly: true, recursive: true, idmap: false }
        );
        assert!(matches!(parse_bind("/a:/b:idmap", false).unwrap(), BindMount::Bind { idmap: true, .. }));
        assert!(parse_bind("rel:/b", false).is_err());
        assert!(parse_bind("/a:/b:weird", false).is_err());
        assert!(matches!(parse_tmpfs("/x:size=1m").unwrap(), BindMount::Tmpfs { options, .. } if options == "size=1m"));
        let o = parse_overlay("/l1:/l2:/up:/dst", false).unwrap();
        assert_eq!(
            o,
            BindMount::Overlay {
                lowers: vec!["/l2".into(), "/l1".into()],
                upper: Some("/up".into()),
                dst: "/dst".into(),
                readonly: false
            }
        );
        assert!(matches!(parse_overlay("/l::/d", false).unwrap(), BindMount::Overlay { upper: None, .. }));
        assert!("state".parse::<Volatile>().is_ok());
        assert!("bogus".parse::<ResolvConf>().is_err());
    }

    #[test]
    fn devices() {
        use crate::devices::{MKNOD, READ, WRITE};
        let d = parse_device("/dev/fuse").unwrap();
        assert_eq!((d.container.as_path(), d.access), (std::path::Path::new("/dev/fuse"), READ | WRITE | MKNOD));
        let d = parse_device("/dev/dri/card0:/dev/card:rw").unwrap();
        assert_eq!((d.container.as_path(), d.access), (std::path::Path::new("/dev/card"), READ | WRITE));
        assert_eq!(parse_device("/dev/kvm:r").unwrap().access, READ);
        assert!(parse_device("dev/kvm").is_err() && parse_device("/dev/kvm:q").is_err());
        assert!(parse_device("/a:/b:r:x").is_err());
    }

    #[test]
    fn console_plans() {
        let p = ConsolePlan::new(Console::Autopipe, [true, true, true]);
        assert_eq!((p.pty, p.input, p.output), ([true; 3], true, Relay::Stdout));
        // `berth run … | less`: only stdin and stderr are the terminal.
        let p = ConsolePlan::new(Console::Autopipe, [true, false, true]);
        assert_eq!((p.pty, p.input, p.output), ([true, false, true], true, Relay::Stderr));
        let p = ConsolePlan::new(Console::Autopipe, [false; 3]);
        assert!(!p.uses_pty());
        let p = ConsolePlan::new(Console::ReadOnly, [false; 3]);
        assert_eq!((p.pty, p.input), ([true; 3], false));
        assert!(!ConsolePlan::new(Console::Pipe, [true; 3]).uses_pty());
        assert!("read-only".parse::<Console>().is_ok() && "tty".parse::<Console>().is_err());
    }
}
