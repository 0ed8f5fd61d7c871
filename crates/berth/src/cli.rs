//! The command line, defined once: it feeds `--help`, the man page and the
//! shell completions. Verb and flag names follow ../shared/SPEC.md.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "Run Linux containers and machines without Docker",
    propagate_version = true
)]
pub struct Cli {
    /// Store directory
    #[arg(long, global = true, env = "BERTH_ROOT", default_value = "/var/lib/berth", value_name = "DIR")]
    pub root: PathBuf,
    /// Log what berth does to stderr (RUST_LOG syntax also works)
    #[arg(long, global = true, hide = true)]
    pub debug: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Pull an image from a registry into the store
    Pull(PullArgs),
    /// List images
    Images(JsonArg),
    /// Show an image's config, layers, sizes, digests and platform
    Inspect(InspectArgs),
    /// Remove image names, and images no name points at any more
    Rmi(RmiArgs),
    /// Give an image another name
    Tag { src: String, dst: String },
    /// Remove everything no image references
    Gc(JsonArg),
    /// Verify every blob's digest and every record's references; change nothing
    Fsck(JsonArg),
    /// Mount an image's root filesystem read-only at DIR
    Mount { image: String, dir: PathBuf },
    /// Unmount what `berth mount` mounted
    Unmount { dir: PathBuf },
    /// Run a command in a container made from an image, a machine or a directory
    Run(Box<RunArgs>),
    /// Import an image from a tarball, an OCI layout or archive, a docker-archive or an ACI
    Import(ImportArgs),
    /// Build a machine with debootstrap (and an image, with --image)
    Bootstrap(BootstrapArgs),
    /// Push an image to a registry
    Push(PushArgs),
    /// Write an image or machine as a tarball, an OCI layout or an oci-archive
    Export {
        /// Image or machine
        name: String,
        /// Output file (or directory, for --format oci); - for stdout
        file: String,
        /// tar, tar.gz, tar.xz, tar.zst, tar.bz2, oci or oci-archive (default: from FILE's name)
        #[arg(long)]
        format: Option<String>,
        /// Layer compression of an oci or oci-archive export: gzip (default, read by every tool), zstd or none
        #[arg(long, value_name = "gzip|zstd|none")]
        compress: Option<String>,
    },
    /// Turn a machine's changes into a new image layer
    Commit { machine: String, image: String },
    /// Start a machine in the background with its settings (boot, when it has none)
    Start {
        name: String,
        /// Stay in the foreground (what the unit `berth enable` writes runs)
        #[arg(long, hide = true)]
        foreground: bool,
    },
    /// List running machines
    Ps(JsonArg),
    /// Show a running machine: leader, uptime, init state, processes, console
    Status { name: String },
    /// A login shell (or CMD) in a running machine, on a pty
    Shell {
        name: String,
        /// Run as this user of the machine
        #[arg(short, long)]
        user: Option<String>,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Run a command in a running machine; its exit status is passed through
    Exec {
        name: String,
        /// Give the command a pty
        #[arg(short, long)]
        tty: bool,
        #[arg(short, long)]
        user: Option<String>,
        #[arg(short = 'E', long = "setenv", value_name = "NAME=VALUE")]
        setenv: Vec<String>,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Power a machine off cleanly through its init; SIGKILL after --timeout
    Stop {
        name: String,
        /// Seconds to wait for a clean power-off
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// Send a signal to a machine's init
    Kill {
        name: String,
        /// Signal name or number
        #[arg(short, long, default_value = "TERM")]
        signal: String,
    },
    /// Stop a machine at once (SIGKILL)
    Terminate { name: String },
    /// Show a machine's console log
    Logs {
        name: String,
        /// Keep printing as the machine writes
        #[arg(short, long)]
        follow: bool,
    },
    /// Start a machine at host boot (a systemd unit)
    Enable { name: String },
    /// Stop starting a machine at host boot
    Disable { name: String },
    /// Make a machine from an image (copies nothing), with the run options and command it keeps
    #[command(
        after_help = "Examples:\n  berth create debian web --boot\n  berth create app spotify --bind-ro /tmp/.X11-unix -E DISPLAY=:0 -u spotify -- /usr/bin/spotify"
    )]
    Create {
        image: String,
        name: String,
        /// berth run options that describe the machine
        #[arg(allow_hyphen_values = true, value_name = "OPTIONS")]
        options: Vec<String>,
        /// The machine's command, after --
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// List machines
    #[command(visible_alias = "list-images")]
    Machines(JsonArg),
    /// Copy a machine (its own changes; image layers stay shared)
    Clone { src: String, dst: String },
    /// Rename a machine
    Rename { old: String, new: String },
    /// Copy files between the host and a machine, running or stopped (NAME:PATH on one side)
    Cp {
        /// Source: a host path or NAME:PATH
        src: String,
        /// Destination: a host path or NAME:PATH (into it when it is a directory)
        dst: String,
        /// Out of a machine, keep its owners (uid/gid numbers) instead of making the files yours
        #[arg(short, long)]
        archive: bool,
    },
    /// Bind-mount a host file or directory into a running machine
    Bind {
        /// Running machine
        name: String,
        /// Host file or directory
        src: PathBuf,
        /// Where in the machine (default: the same path as SRC)
        dst: Option<PathBuf>,
        /// Mount it read-only
        #[arg(long)]
        read_only: bool,
        /// Create DST (and its parents) in the machine when missing
        #[arg(long)]
        mkdir: bool,
    },
    /// Manage the bridges machines join (create, ls, rm)
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Remove machines
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Show or set whether a machine's root is read-only
    #[command(name = "read-only")]
    ReadOnly {
        name: String,
        #[arg(value_parser = clap::builder::BoolishValueParser::new())]
        value: Option<bool>,
    },
    /// Store credentials for a registry
    Login(LoginArgs),
    /// Remove stored credentials for a registry
    Logout(LogoutArgs),
    /// Print shell completions
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// Write man pages into DIR
    #[command(hide = true, name = "generate-man")]
    GenerateMan { dir: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Make a network: a bridge of that name with its own subnet, NAT to the outside
    Create {
        name: String,
        /// Its IPv4 subnet (default: a free private /16)
        #[arg(long, value_name = "CIDR")]
        subnet: Option<String>,
    },
    /// List berth's networks
    #[command(visible_alias = "list")]
    Ls(JsonArg),
    /// Remove networks (their bridges, NAT rules and address leases)
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct JsonArg {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Verify TLS and refuse plain http (false: allow both)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub tls_verify: Option<bool>,
    /// Credentials for the registry
    #[arg(long, value_name = "USER[:PASS]")]
    pub creds: Option<String>,
    /// Auth file to read credentials from (containers auth.json format)
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Image reference: alpine, alpine:3.20, host:5000/x/y:z, name@sha256:…
    pub reference: String,
    /// Platform to pull from a multi-platform image
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Also name the image NAME in the store
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print nothing but the image ID
    #[arg(short, long)]
    pub quiet: bool,
    /// Refuse layers that unpack to more than SIZE (e.g. 500M, 20G)
    #[arg(long, value_name = "SIZE", default_value = "64G")]
    pub max_layer_size: String,
    /// Layers downloaded at once
    #[arg(long, default_value_t = 3, hide = true)]
    pub jobs: usize,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  berth run busybox echo hello\n  berth run --name web -E PORT=8080 myimage\n  berth run -M web /bin/sh\n  berth run -D /srv/tree --read-only /bin/ls /\n  echo hi | berth run busybox cat"
)]
pub struct RunArgs {
    /// Run the machine NAME (made by `--name`, `create`, `clone` or `import`);
    /// with -D DIR or -i DISK, the name of that run (ps, exec, stop reach it)
    #[arg(short = 'M', long = "machine", value_name = "NAME")]
    pub machine: Option<String>,
    /// Run in place in the directory tree DIR, as systemd-nspawn -D does
    #[arg(short = 'D', long = "directory", value_name = "DIR", conflicts_with = "image")]
    pub directory: Option<PathBuf>,
    /// Run a raw disk image's root partition, as systemd-nspawn --image
    /// does. `-i IMAGE` where IMAGE is no file means interactive (podman's
    /// -i), and `-it` is interactive with a tty.
    #[arg(short = 'i', long = "image", value_name = "DISKIMAGE")]
    pub image: Option<String>,
    /// Keep the container as machine NAME for later `run -M NAME`
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// When to pull IMAGE: when the store lacks it, always, or never
    #[arg(long, value_name = "WHEN", default_value = "missing", value_parser = ["missing", "always", "never"])]
    pub pull: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Boot the tree's init (systemd) as PID 1; arguments go to the init
    #[arg(short = 'b', long)]
    pub boot: bool,
    /// Run in the background, supervised; manage with ps, status, stop, logs
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Remove the machine made by --name once the command exits
    #[arg(long)]
    pub rm: bool,
    /// Run the machine again when it ends on its own: no, on-failure (non-zero exit) or always; with backoff
    #[arg(long, value_name = "POLICY", default_value = "no", value_parser = ["no", "on-failure", "always"])]
    pub restart: String,
    /// Throw away changes at exit, even with -M or -D
    #[arg(short = 'x', long)]
    pub ephemeral: bool,
    /// Volatile root: yes (tmpfs root, /usr from the tree), state (/var on tmpfs), overlay (tmpfs overlay)
    #[arg(long, value_name = "MODE", num_args = 0..=1, default_missing_value = "yes", require_equals = true)]
    pub volatile: Option<String>,
    /// Mount the root read-only
    #[arg(long)]
    pub read_only: bool,
    /// Bind-mount a host path: SRC[:DST[:OPTS]] (OPTS: rbind, norbind, ro)
    #[arg(long, value_name = "SRC[:DST[:OPTS]]")]
    pub bind: Vec<String>,
    /// Bind-mount a host path read-only
    #[arg(long, value_name = "SRC[:DST[:OPTS]]")]
    pub bind_ro: Vec<String>,
    /// Mount a tmpfs: DST[:OPTS]
    #[arg(long, value_name = "DST[:OPTS]")]
    pub tmpfs: Vec<String>,
    /// Overlay mount: LOWER[:LOWER…]:UPPER:DST (empty UPPER: changes in a throw-away tmpfs)
    #[arg(long, value_name = "LOWER:…:UPPER:DST")]
    pub overlay: Vec<String>,
    /// Read-only overlay mount: LOWER[:LOWER…]:DST
    #[arg(long, value_name = "LOWER:…:DST")]
    pub overlay_ro: Vec<String>,
    /// Set an environment variable
    #[arg(short = 'E', long = "setenv", value_name = "NAME=VALUE")]
    pub setenv: Vec<String>,
    /// Run as NAME|UID[:GROUP|GID], looked up in the container's /etc/passwd
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,
    /// Working directory in the container
    #[arg(long, value_name = "DIR")]
    pub chdir: Option<String>,
    /// Hostname (default: the machine name)
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Give the command a pseudo-terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Keep stdin open (it is passed through unless -t)
    #[arg(long)]
    pub interactive: bool,
    /// interactive (-t), read-only, passive, pipe, or autopipe (default: a
    /// pty in place of each terminal among stdin/stdout/stderr)
    #[arg(long, value_name = "MODE")]
    pub console: Option<String>,
    /// A network namespace with only lo, up
    #[arg(long)]
    pub private_network: bool,
    /// A private network with a veth link (host0) on berth's default bridge, addressed and routed
    #[arg(short = 'n', long)]
    pub network_veth: bool,
    /// A private network with a veth link (host0) on bridge BR (a berth network, or a bridge of yours)
    #[arg(long, value_name = "BR")]
    pub network_bridge: Option<String>,
    /// A private network with a macvlan link (mv-IF) on the host's interface IF, up, unaddressed
    #[arg(long, value_name = "IF")]
    pub network_macvlan: Vec<String>,
    /// A private network with an ipvlan link (iv-IF) on the host's interface IF, up, unaddressed
    #[arg(long, value_name = "IF")]
    pub network_ipvlan: Vec<String>,
    /// Join the network namespace at P (/run/netns/NAME, /proc/PID/ns/net) instead of making one
    #[arg(long, value_name = "P")]
    pub network_namespace_path: Option<std::path::PathBuf>,
    /// Publish a port: [tcp:|udp:][HOSTIP:]HOSTPORT[:CONTPORT] (implies --network-veth)
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    pub port: Vec<String>,
    /// Add capabilities (CAP_NAME, comma-separated, or all)
    #[arg(long, value_name = "CAPS")]
    pub capability: Vec<String>,
    /// Drop capabilities (CAP_NAME, comma-separated, or all)
    #[arg(long, value_name = "CAPS")]
    pub drop_capability: Vec<String>,
    /// Allow more system calls ("keyctl @clock"), or refuse some ("~@mount"), as systemd-nspawn
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
    pub system_call_filter: Vec<String>,
    /// The container's users: a range of host IDs of its own (pick, the default), the host's (no),
    /// identity, or UID[:COUNT]
    #[arg(long, value_name = "MODE", default_value = "pick")]
    pub private_users: String,
    /// The same as --private-users=pick
    #[arg(short = 'U')]
    pub private_users_pick: bool,
    /// How a tree used in place is shown to the container's users: auto, map (idmapped), chown or off
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub private_users_ownership: String,
    /// Hand descriptors 3 to 3+N-1 on to the command (all others are closed)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Make a host device node available: PATH[:CPATH][:rwm]
    #[arg(long, value_name = "DEVICE")]
    pub device: Vec<String>,
    /// Memory limit (RAM and swap), e.g. 256M
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU limit in CPUs, e.g. 0.5
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// Limit on the number of processes
    #[arg(long, value_name = "N")]
    pub pids_limit: Option<u64>,
    /// /etc/resolv.conf: copy-host (default), replace-host, bind-host, delete, off
    #[arg(long, value_name = "MODE", default_value = "copy-host")]
    pub resolv_conf: String,
    /// Override the image's entrypoint
    #[arg(long, value_name = "CMD")]
    pub entrypoint: Option<String>,
    /// Run without the seccomp filter
    #[arg(long, hide = true)]
    pub no_seccomp: bool,
    /// IMAGE (without -M/-D), then the command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "IMAGE|CMD")]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  berth import ubuntu-24.04-root.tar.xz ubuntu\n  berth import --strip-prefix rootfs/ image.tar.gz myroot\n  berth import ./oci-layout-dir\n  docker save busybox | berth import -\n  berth import https://example.com/rootfs.tar.zst\n  berth import --verify=signature --keyring keys.gpg https://example.com/images/root.tar.xz\n  berth import aci:quay.io/coreos/etcd:v3.1.0"
)]
pub struct ImportArgs {
    /// A file, a directory, - for stdin, an http(s) URL, or aci:NAME[:VERSION] (appc discovery)
    pub source: String,
    /// Name for the image (default: from the source)
    pub name: Option<String>,
    /// What the source is; detected from content by default
    #[arg(long, default_value = "auto", value_name = "FORMAT")]
    pub format: String,
    /// Use only this directory of a root tarball as the root (e.g. rootfs/)
    #[arg(long, value_name = "DIR/")]
    pub strip_prefix: Option<String>,
    /// Which image of an OCI layout (tag) or docker-archive (name) to import
    #[arg(long, value_name = "TAG")]
    pub image: Option<String>,
    /// Also make a machine of the image, named NAME (as machinectl import does)
    #[arg(long)]
    pub machine: bool,
    /// Verify TLS for URLs
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true, default_value = "true")]
    pub tls_verify: bool,
    /// Check a URL against SHA256SUMS beside it, and its SHA256SUMS.gpg (an ACI: its .aci.asc); default: what is there
    #[arg(long, value_name = "no|checksum|signature")]
    pub verify: Option<String>,
    /// Public keys for --verify=signature (default /etc/berth/import-pubring.gpg)
    #[arg(long, value_name = "FILE")]
    pub keyring: Option<std::path::PathBuf>,
    /// Print nothing but the image ID
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  berth bootstrap debian bookworm web --variant minbase --include systemd,systemd-sysv,dbus\n  berth bootstrap debian bookworm base --image && berth create base web2"
)]
pub struct BootstrapArgs {
    /// debian or ubuntu
    pub distro: String,
    /// Release, e.g. bookworm
    pub suite: String,
    /// Name of the new machine (and image, with --image)
    pub name: String,
    /// debootstrap variant (minbase, buildd, fakechroot)
    #[arg(long)]
    pub variant: Option<String>,
    /// Extra packages, comma-separated
    #[arg(long, value_delimiter = ',')]
    pub include: Vec<String>,
    /// Package mirror URL
    #[arg(long)]
    pub mirror: Option<String>,
    /// Also store the tree as image NAME, with the machine built on it
    #[arg(long)]
    pub image: bool,
    /// Debian architecture to install (default: the host's; others run through qemu-user-static)
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
    /// Keep downloaded packages under the store for the next bootstrap of the suite (--cache=no: don't)
    #[arg(long, value_name = "BOOL", default_value = "yes", value_parser = clap::builder::BoolishValueParser::new(), require_equals = true, num_args = 0..=1, default_missing_value = "yes")]
    pub cache: bool,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Image in the store
    pub name: String,
    /// Destination, e.g. registry.example:5000/team/app:1.0
    pub reference: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print nothing but the manifest digest
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    pub name: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Remove an image by ID even when several names point at it
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Registry host[:port]
    pub registry: String,
    #[arg(short, long)]
    pub username: Option<String>,
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    pub password_stdin: bool,
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub tls_verify: Option<bool>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// Registry host[:port]
    pub registry: String,
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
}

/// Parses `500M`, `20G`, `1048576` into bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = s[i..].to_ascii_lowercase();
            let m: u64 = match unit.trim_end_matches("ib").trim_end_matches('b') {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                "t" => 1 << 40,
                _ => return Err(format!("invalid size {s:?}: use a number with an optional K, M, G or T suffix")),
            };
            (&s[..i], m)
        }
        None => (s, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid size {s:?}: use a number with an optional K, M, G or T suffix"))?;
    n.checked_mul(mult).ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("10").unwrap(), 10);
        assert_eq!(super::parse_size("2k").unwrap(), 2048);
        assert_eq!(super::parse_size("64G").unwrap(), 64 << 30);
        assert_eq!(super::parse_size("1MiB").unwrap(), 1 << 20);
        assert!(super::parse_size("x").is_err());
        assert!(super::parse_size("5Q").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
