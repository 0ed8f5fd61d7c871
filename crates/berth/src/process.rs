//! The container's process from an image config and the command line, the
//! way docker and podman combine them. Pure functions.

use serde_json::Value;

/// Entrypoint + Cmd: `--entrypoint` replaces the image's and drops its Cmd;
/// command-line arguments replace Cmd.
pub fn argv(config: Option<&Value>, entrypoint: Option<&str>, cli: &[String]) -> Vec<String> {
    let list = |k: &str| -> Vec<String> {
        config
            .and_then(|c| c.get(k))
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let (ep, cmd) = match entrypoint {
        Some("") => (Vec::new(), cli.to_vec()),
        Some(e) => (vec![e.to_string()], cli.to_vec()),
        None => (list("Entrypoint"), if cli.is_empty() { list("Cmd") } else { cli.to_vec() }),
    };
    ep.into_iter().chain(cmd).collect()
}

/// The environment: the image's, then `container=berth` and `TERM`, then
/// `-E` settings; later ones win, order of first appearance is kept.
pub fn env(config: Option<&Value>, tty: bool, setenv: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match out.iter_mut().find(|(n, _)| n == k) {
        Some(e) => e.1 = v.to_string(),
        None => out.push((k.to_string(), v.to_string())),
    };
    if let Some(list) = config.and_then(|c| c.get("Env")).and_then(|v| v.as_array()) {
        for e in list.iter().filter_map(|s| s.as_str()) {
            if let Some((k, v)) = e.split_once('=') {
                set(k, v);
            }
        }
    }
    set("container", "berth");
    if tty {
        let term =
            std::env::var("TERM").ok().filter(|t| !t.is_empty() && t != "dumb").unwrap_or_else(|| "xterm".into());
        set("TERM", &term);
    }
    for e in setenv {
        match e.split_once('=') {
            Some((k, v)) if !k.is_empty() => set(k, v),
            _ => match std::env::var(e) {
                // `-E NAME` passes the host's value, as docker's `-e NAME` does.
                Ok(v) if !e.is_empty() => set(e, &v),
                _ => return Err(format!("invalid --setenv {e:?}: expected NAME=VALUE")),
            },
        }
    }
    Ok(out)
}

/// A string field of the image config (`User`, `WorkingDir`), if non-empty.
pub fn field<'a>(config: Option<&'a Value>, key: &str) -> Option<&'a str> {
    config.and_then(|c| c.get(key)).and_then(|v| v.as_str()).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn combines_like_docker() {
        let c = json!({"Entrypoint": ["/ep"], "Cmd": ["a", "b"], "Env": ["PATH=/bin", "X=1"]});
        assert_eq!(argv(Some(&c), None, &[]), vec!["/ep", "a", "b"]);
        assert_eq!(argv(Some(&c), None, &["z".into()]), vec!["/ep", "z"]);
        assert_eq!(argv(Some(&c), Some("/other"), &[]), vec!["/other"]);
        assert_eq!(argv(Some(&c), Some(""), &["sh".into()]), vec!["sh"]);
        let c2 = json!({"Cmd": ["/bin/sh"]});
        assert_eq!(argv(Some(&c2), None, &[]), vec!["/bin/sh"]);
        assert!(argv(None, None, &[]).is_empty());
        let e = env(Some(&c), false, &["X=2".into(), "Y=3".into()]).unwrap();
        assert_eq!(
            e,
            vec![
                ("PATH".into(), "/bin".into()),
                ("X".into(), "2".into()),
                ("container".into(), "berth".into()),
                ("Y".into(), "3".into())
            ]
        );
        assert!(env(None, false, &["=x".into()]).is_err());
    }
}
