//! User namespaces: the host IDs a container's users map to, and the
//! idmapped mounts that let it see its files with the image's owners.
//!
//! Why: without a user namespace, container root is host root held back
//! only by capabilities, seccomp and masks; one gap (a writable
//! `core_pattern`, a device node, a leaked descriptor) and it is root on
//! the host. Inside its own user namespace, container root is an
//! unprivileged host uid (SECURITY.md "host root"): what it reaches of the
//! host it reaches as nobody, and the kernel refuses it global settings.
//! Each container gets 65536 IDs of its own ([`range`]); layers and trees
//! are mounted through idmapped mounts ([`idmap`]), so nothing on disk is
//! chowned and a machine can move to another range.

pub mod chown;
pub mod idmap;
pub mod range;

pub use range::{IdRange, Lease, Owner};

/// Writes `line` to `PREFIX/uid_map` and `PREFIX/gid_map` (a process's
/// /proc directory, relative to `dir`).
pub(crate) fn write_maps(dir: impl rustix::fd::AsFd, prefix: &str, line: &str) -> rustix::io::Result<()> {
    for f in ["uid_map", "gid_map"] {
        let fd = rustix::fs::openat(
            &dir,
            format!("{prefix}/{f}"),
            rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        rustix::io::write(&fd, line.as_bytes())?;
    }
    Ok(())
}

/// `--private-users`, with systemd-nspawn's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrivateUsers {
    /// Host users: container root is host root (with a narrow capability set).
    No,
    /// A range of 65536 IDs picked by berth, its own while it runs.
    #[default]
    Pick,
    /// A user namespace mapping IDs 0-65535 onto themselves.
    Identity,
    /// The given range.
    Fixed(IdRange),
}

impl std::str::FromStr for PrivateUsers {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid --private-users={s}: use pick, no, identity or UID[:COUNT]");
        Ok(match s {
            "pick" | "yes" | "true" | "1" => PrivateUsers::Pick,
            "no" | "false" | "0" => PrivateUsers::No,
            "identity" => PrivateUsers::Identity,
            _ => {
                let (b, c) = s.split_once(':').unwrap_or((s, "65536"));
                let base: u32 = b.parse().map_err(|_| bad())?;
                let count: u32 = c.parse().map_err(|_| bad())?;
                if count == 0 || base.checked_add(count).is_none() {
                    return Err(bad());
                }
                PrivateUsers::Fixed(IdRange { base, count })
            }
        })
    }
}

/// `--private-users-ownership`, with systemd-nspawn's meaning, for trees
/// used in place (`-D`, a machine's own tree, a disk image).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ownership {
    /// Map when the filesystem can be idmapped, else chown.
    #[default]
    Auto,
    /// An idmapped mount: the tree keeps its owners on disk.
    Map,
    /// Shift the tree's owners into the range on disk (and back when the
    /// range changes), for filesystems that cannot be idmapped.
    Chown,
    /// Neither: the container sees the host's owners, mostly as nobody.
    Off,
}

impl std::str::FromStr for Ownership {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => Ownership::Auto,
            "map" => Ownership::Map,
            "chown" => Ownership::Chown,
            "off" | "no" => Ownership::Off,
            _ => return Err(format!("invalid --private-users-ownership={s}: use auto, map, chown or off")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_flags() {
        assert_eq!("pick".parse::<PrivateUsers>().unwrap(), PrivateUsers::Pick);
        assert_eq!("no".parse::<PrivateUsers>().unwrap(), PrivateUsers::No);
        assert_eq!(
            "100000:1000".parse::<PrivateUsers>().unwrap(),
            PrivateUsers::Fixed(IdRange { base: 100000, count: 1000 })
        );
        assert_eq!(
            "200000".parse::<PrivateUsers>().unwrap(),
            PrivateUsers::Fixed(IdRange { base: 200000, count: 65536 })
        );
        assert!("4294967295:2".parse::<PrivateUsers>().is_err());
        assert!("x".parse::<PrivateUsers>().is_err() && "1:0".parse::<PrivateUsers>().is_err());
        assert_eq!("off".parse::<Ownership>().unwrap(), Ownership::Off);
        assert!("shift".parse::<Ownership>().is_err());
    }
}
