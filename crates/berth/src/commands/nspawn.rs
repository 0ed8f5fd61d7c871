//! systemd-nspawn settings files: `NAME.nspawn` in `/etc/systemd/nspawn/`
//! or `/run/systemd/nspawn/` (the first found; `BERTH_NSPAWN_PATH` lists
//! other directories, colon-separated) applies to machine NAME as it does
//! for `systemd-nspawn -M NAME`: turned into `berth run` options and a
//! command, under the machine's stored settings and the command line
//! (which win).
//!
//! Keys berth has no equivalent for are reported on stderr, one line
//! each, never ignored silently. `VirtualEthernet=`, `Bridge=`, `Port=`,
//! `MACVLAN=`, `IPVLAN=` and `NetworkNamespacePath=` map to berth's
//! options; the other network keys that give a machine a network of its
//! own (`Zone=`, `Interface=`, `VirtualEthernetExtra=`) give it a private
//! network with only `lo`: the machine is never left on the host's
//! network when its file asked for its own. Written by hand: systemd's syntax (repeated
//! keys, `\` continuations, quoted words) is small, and no crate follows
//! it.

use anyhow::{bail, Result};
use berth_store::machines::Settings;
use std::path::{Path, PathBuf};

/// Where settings files are looked for, in order.
fn dirs() -> Vec<PathBuf> {
    match std::env::var_os("BERTH_NSPAWN_PATH") {
        // Absolute directories only: an empty entry is no "current directory".
        Some(p) => std::env::split_paths(&p).filter(|d| d.is_absolute()).collect(),
        None => vec![PathBuf::from("/etc/systemd/nspawn"), PathBuf::from("/run/systemd/nspawn")],
    }
}

/// Machine `name`'s settings file turned into run options, if it has one.
pub fn settings_for(name: &str) -> Result<Option<Settings>> {
    for d in dirs() {
        let p = d.join(format!("{name}.nspawn"));
        match std::fs::read_to_string(&p) {
            Ok(text) => return parse(&p, &text, warn_once(&p)).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => bail!("cannot read {}: {e}", p.display()),
        }
    }
    Ok(None)
}

/// Whether `path`'s warnings are still to be printed by this process
/// (`start` reads the file twice).
fn warn_once(path: &Path) -> bool {
    static SEEN: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let Ok(mut seen) = SEEN.lock() else { return true };
    if seen.iter().any(|p| p == path) {
        return false;
    }
    seen.push(path.to_path_buf());
    true
}

/// Splits a value into words as systemd does: whitespace separates,
/// single and double quotes group, backslash escapes.
fn words(v: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut quote: Option<char> = None;
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                let n = chars.next().ok_or("a value ends in a backslash")?;
                cur.push(n);
                have = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                have = true;
            }
            (None, c) if c.is_whitespace() => {
                if have {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            (None, c) => {
                cur.push(c);
                have = true;
            }
        }
    }
    if quote.is_some() {
        return Err("a quote is not closed".into());
    }
    if have {
        out.push(cur);
    }
    Ok(out)
}

fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Ok(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Ok(false),
        _ => Err(format!("{v:?} is not a boolean (yes or no)")),
    }
}

/// The settings file `text` (from `path`) as run options and a command.
pub fn parse(path: &Path, text: &str, warn: bool) -> Result<Settings> {
    let mut s = Settings::default();
    let mut section = String::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let mut line = raw.trim().to_string();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        // A trailing backslash continues the line (never a comment's).
        while line.ends_with('\\') {
            line.pop();
            match lines.next() {
                Some((_, more)) => {
                    line.push(' ');
                    line.push_str(more.trim());
                }
                None => break,
            }
        }
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let at = |why: String| anyhow::anyhow!("{}:{}: {why}", path.display(), i + 1);
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(at(format!("{line:?} is not KEY=VALUE")));
        };
        let (key, value) = (key.trim(), value.trim());
        if let Some(note) = apply(&mut s, &section, key, value).map_err(|why| at(format!("{key}=: {why}")))? {
            if warn {
                eprintln!("berth: {}:{}: [{section}] {key}= {note}", path.display(), i + 1);
            }
        }
    }
    Ok(s)
}

/// Applies one key; `Ok(Some(note))` when berth does not do what it asks
/// (the note says what it does instead).
fn apply(s: &mut Settings, section: &str, key: &str, value: &str) -> Result<Option<String>, String> {
    let mut opt = |flag: &str, v: &str| s.options.push(format!("--{flag}={v}"));
    let flag_if = |s: &mut Settings, flag: &str, v: &str| -> Result<(), String> {
        if boolean(v)? {
            s.options.push(format!("--{flag}"));
        }
        Ok(())
    };
    match (section, key) {
        ("Exec", "Boot") => flag_if(s, "boot", value)?,
        ("Exec", "Ephemeral") => flag_if(s, "ephemeral", value)?,
        ("Exec", "Parameters") => s.command = words(value)?,
        ("Exec", "Environment") => words(value)?.iter().for_each(|w| opt("setenv", w)),
        ("Exec", "User") => opt("user", value),
        ("Exec", "WorkingDirectory") => opt("chdir", value),
        ("Exec", "Hostname") => opt("hostname", value),
        ("Exec", "Capability") => opt("capability", &words(value)?.join(",")),
        ("Exec", "DropCapability") => opt("drop-capability", &words(value)?.join(",")),
        ("Exec", "SystemCallFilter") => opt("system-call-filter", value),
        ("Exec", "ResolvConf") => opt("resolv-conf", value),
        ("Exec", "PrivateUsers") => {
            let v = match boolean(value) {
                Ok(true) => "pick",
                Ok(false) => "no",
                Err(_) => value,
            };
            opt("private-users", v)
        }
        ("Files", "ReadOnly") => flag_if(s, "read-only", value)?,
        ("Files", "Volatile") => {
            let v = match boolean(value) {
                Ok(true) => "yes",
                Ok(false) => "no",
                Err(_) => value,
            };
            opt("volatile", v)
        }
        ("Files", "Bind") => opt("bind", value),
        ("Files", "BindReadOnly") => opt("bind-ro", value),
        ("Files", "TemporaryFileSystem") => opt("tmpfs", value),
        ("Files", "Overlay") => opt("overlay", value),
        ("Files", "OverlayReadOnly") => opt("overlay-ro", value),
        ("Files", "PrivateUsersOwnership") => opt("private-users-ownership", value),
        ("Network", "Private") => flag_if(s, "private-network", value)?,
        ("Network", "VirtualEthernet") => flag_if(s, "network-veth", value)?,
        ("Network", "Bridge") => opt("network-bridge", value),
        ("Network", "MACVLAN") => words(value)?.iter().for_each(|w| opt("network-macvlan", w)),
        ("Network", "IPVLAN") => words(value)?.iter().for_each(|w| opt("network-ipvlan", w)),
        ("Network", "NetworkNamespacePath") => opt("network-namespace-path", value),
        ("Network", "Zone" | "Interface" | "VirtualEthernetExtra") => {
            s.options.push("--private-network".into());
            return Ok(Some("is not supported yet: the machine gets a private network with only lo instead".into()));
        }
        ("Network", "Port") => opt("port", value),
        _ => return Ok(Some("is not known to berth: ignored".into())),
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_as_systemd_does() {
        assert_eq!(words(r#"/bin/sh -c "echo a b" 'x y' z\ w"#).unwrap(), ["/bin/sh", "-c", "echo a b", "x y", "z w"]);
        assert!(words("\"open").is_err());
        assert_eq!(words("  ").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_file_becomes_run_options() {
        let text = "[Exec]\nBoot=no\nParameters=/bin/sh -c \"echo hi\"\nEnvironment=A=1 \"B=two words\"\nUser=spotify\n\
                    Capability=CAP_NET_ADMIN CAP_SYS_TIME\n\n[Files]\nBind=/tmp/.X11-unix\nBindReadOnly=/a:/b\nVolatile=overlay\n\
                    # comment\n[Network]\nPrivate=yes\n";
        let s = parse(Path::new("x.nspawn"), text, false).unwrap();
        assert_eq!(s.command, ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(
            s.options,
            [
                "--setenv=A=1",
                "--setenv=B=two words",
                "--user=spotify",
                "--capability=CAP_NET_ADMIN,CAP_SYS_TIME",
                "--bind=/tmp/.X11-unix",
                "--bind-ro=/a:/b",
                "--volatile=overlay",
                "--private-network"
            ]
        );
        let e = parse(Path::new("x.nspawn"), "[Exec]\nBoot=maybe\n", false).unwrap_err().to_string();
        assert!(e.contains("x.nspawn:2") && e.contains("Boot="), "{e}");
        let net = parse(Path::new("x.nspawn"), "[Network]\nVirtualEthernet=yes\n", false).unwrap();
        assert_eq!(net.options, ["--network-veth"]);
        let net = parse(Path::new("x.nspawn"), "[Network]\nBridge=br0\nPort=tcp:8080:80\n", false).unwrap();
        assert_eq!(net.options, ["--network-bridge=br0", "--port=tcp:8080:80"]);
        let net = parse(Path::new("x.nspawn"), "[Network]\nZone=web\n", false).unwrap();
        assert_eq!(net.options, ["--private-network"], "a link asked for must never leave the host's network");
        let net = parse(
            Path::new("x.nspawn"),
            "[Network]\nMACVLAN=eth0 eth1\nIPVLAN=eth2\nNetworkNamespacePath=/run/netns/x\n",
            false,
        )
        .unwrap();
        assert_eq!(
            net.options,
            [
                "--network-macvlan=eth0",
                "--network-macvlan=eth1",
                "--network-ipvlan=eth2",
                "--network-namespace-path=/run/netns/x"
            ]
        );
    }
}
