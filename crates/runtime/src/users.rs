//! `-u/--user` resolution against the container's own `/etc/passwd` and
//! `/etc/group`. Parsers take text; no I/O.

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
    pub name: Option<String>,
    pub shell: Option<String>,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
    shell: &'a str,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 || l.starts_with('#') {
            return None;
        }
        Some(PasswdEntry { name: f[0], uid: f[2].parse().ok()?, gid: f[3].parse().ok()?, home: f[5], shell: f[6] })
    })
}

/// (name, gid, members) of each group.
fn group_entries(text: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 || l.starts_with('#') {
            return None;
        }
        Some((f[0], f[2].parse().ok()?, f[3].split(',').filter(|m| !m.is_empty()).collect()))
    })
}

/// Resolves `spec` (`NAME`, `UID`, `NAME:GROUP`, `UID:GID`). A numeric UID
/// absent from passwd is allowed (as docker does) with GID = UID's passwd
/// gid or 0; a name that is absent is an error.
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<User, String> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if u.is_empty() {
        return Err(format!("invalid user {spec:?}"));
    }
    let entry = match u.parse::<u32>() {
        Ok(uid) => passwd_entries(passwd).find(|e| e.uid == uid),
        Err(_) => Some(
            passwd_entries(passwd)
                .find(|e| e.name == u)
                .ok_or_else(|| format!("user {u:?} not found in the container's /etc/passwd"))?,
        ),
    };
    let uid = match (&entry, u.parse::<u32>()) {
        (Some(e), _) => e.uid,
        (None, Ok(n)) => n,
        (None, Err(_)) => unreachable_user(u)?,
    };
    let mut gid = entry.as_ref().map(|e| e.gid).unwrap_or(0);
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group_entries(group)
                .find(|(n, _, _)| *n == g)
                .map(|(_, id, _)| id)
                .ok_or_else(|| format!("group {g:?} not found in the container's /etc/group"))?,
        };
    }
    let name = entry.as_ref().map(|e| e.name.to_string());
    let mut groups = vec![gid];
    if let Some(n) = &name {
        for (_, id, members) in group_entries(group) {
            if members.contains(&n.as_str()) && !groups.contains(&id) {
                groups.push(id);
            }
        }
    }
    Ok(User {
        uid,
        gid,
        groups,
        home: entry.as_ref().map(|e| e.home.to_string()).filter(|h| !h.is_empty()).unwrap_or_else(|| "/".into()),
        name,
        shell: entry.as_ref().map(|e| e.shell.to_string()).filter(|s| !s.is_empty()),
    })
}

fn unreachable_user(u: &str) -> Result<u32, String> {
    Err(format!("user {u:?} not found in the container's /etc/passwd"))
}

#[cfg(test)]
mod tests {
    use super::*;
    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/bash\n# comment\n";
    const GROUP: &str = "root:x:0:\nalice:x:1000:\nwheel:x:10:alice,bob\naudio:x:29:alice\n";

    #[test]
    fn resolves_names_ids_and_groups() {
        let a = resolve("alice", PASSWD, GROUP).unwrap();
        assert_eq!((a.uid, a.gid, a.groups.clone(), a.home.as_str()), (1000, 1000, vec![1000, 10, 29], "/home/alice"));
        let r = resolve("0", PASSWD, GROUP).unwrap();
        assert_eq!((r.uid, r.gid), (0, 0));
        let n = resolve("4242:55", PASSWD, GROUP).unwrap();
        assert_eq!((n.uid, n.gid, n.home.as_str()), (4242, 55, "/"));
        let w = resolve("alice:wheel", PASSWD, GROUP).unwrap();
        assert_eq!(w.gid, 10);
        assert!(resolve("mallory", PASSWD, GROUP).unwrap_err().contains("mallory"));
        assert!(resolve("alice:nogroup", PASSWD, GROUP).is_err());
    }
}
