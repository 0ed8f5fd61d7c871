//! `berth login REGISTRY` and `berth logout REGISTRY`: check the
//! credentials against the registry, then edit the containers auth file.

use crate::cli::{LoginArgs, LogoutArgs, RegistryArgs};
use anyhow::{bail, Context, Result};
use berth_oci::registry::{authfile, Client, Credentials};
use berth_oci::Reference;
use std::io::{BufRead, IsTerminal, Write};

fn registry_key(r: &str) -> String {
    let r = r.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
    match r {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        other => other.into(),
    }
}

fn prompt(label: &str) -> Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("no {label} given: pass --{label} (or --password-stdin)");
    }
    eprint!("{}: ", if label == "username" { "Username" } else { "Password" });
    std::io::stderr().flush()?;
    let mut s = String::new();
    std::io::stdin().lock().read_line(&mut s)?;
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

pub fn login(a: &LoginArgs) -> Result<i32> {
    let key = registry_key(&a.registry);
    let username = match &a.username {
        Some(u) => u.clone(),
        None => prompt("username")?,
    };
    let password = if a.password_stdin {
        let mut s = String::new();
        std::io::stdin().lock().read_line(&mut s)?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else {
        match &a.password {
            Some(p) => p.clone(),
            None => prompt("password")?,
        }
    };
    let creds = Credentials { username, password };
    // Any repository works for the check; the token scope is not used by /v2/.
    let reference: Reference =
        format!("{key}/berth-login-check").parse().with_context(|| format!("invalid registry {:?}", a.registry))?;
    let reg = RegistryArgs { tls_verify: a.tls_verify, creds: None, authfile: None };
    let mut opts = super::pull::client_options(&reg)?;
    opts.creds = Some(creds.clone());
    Client::new(&reference, &opts)?.check_login().context("login failed")?;
    let file = a.authfile.clone().unwrap_or_else(authfile::default_write_file);
    authfile::store(&file, &key, Some(&creds))?;
    crate::output::print("Login Succeeded!\n")?;
    Ok(0)
}

pub fn logout(a: &LogoutArgs) -> Result<i32> {
    let key = registry_key(&a.registry);
    let file = a.authfile.clone().unwrap_or_else(authfile::default_write_file);
    if !authfile::store(&file, &key, None)? {
        bail!("not logged in to {key} (no entry in {})", file.display());
    }
    crate::output::print(&format!("Removed login credentials for {key}\n"))?;
    Ok(0)
}
