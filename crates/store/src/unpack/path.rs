//! Entry paths from a layer, made safe before anything touches the disk:
//! leading `/` and `./` are dropped (an absolute name lands inside the
//! root), `..` anywhere is refused. Pure; no I/O.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// The components of a cleaned entry path; empty means the root itself.
pub type Components = Vec<OsString>;

/// Cleans an entry name. `Err` carries the reason, for the error message.
pub fn clean(raw: &[u8]) -> Result<Components, &'static str> {
    if raw.contains(&0) {
        return Err("the name contains a NUL byte");
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("the name contains '..', which would leave the layer's root"),
            c => out.push(OsString::from_vec(c.to_vec())),
        }
    }
    Ok(out)
}

/// Splits `comps` into parent components and final name.
pub fn split(comps: &[OsString]) -> Option<(&[OsString], &OsString)> {
    comps.split_last().map(|(last, parent)| (parent, last))
}

/// Joins components into a relative path for openat2.
pub fn join(comps: &[OsString]) -> std::path::PathBuf {
    if comps.is_empty() {
        return std::path::PathBuf::from(".");
    }
    comps.iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_names() {
        assert_eq!(clean(b"./a/b/").unwrap(), vec![OsString::from("a"), OsString::from("b")]);
        assert_eq!(clean(b"/etc//passwd").unwrap(), vec![OsString::from("etc"), OsString::from("passwd")]);
        assert!(clean(b"./").unwrap().is_empty());
        assert!(clean(b"../x").is_err());
        assert!(clean(b"a/../../x").is_err());
        assert!(clean(b"a/..").is_err());
        assert!(clean(b"a\0b").is_err());
        assert_eq!(clean(b"..a/b..").unwrap().len(), 2);
    }
}
