//! Settings that stick: the run options a machine is made with (`berth
//! create IMAGE NAME [OPTIONS] [-- CMD…]`, `berth run --name NAME …`)
//! are kept in its record, and `berth start`, `berth run -M` and the unit
//! `berth enable` writes run it with them, the command line's options
//! laid on top (later wins for single values; lists such as `--bind` and
//! `-E` add up; a command given replaces the stored one).
//!
//! They are kept as the options' own words (`--bind=/srv/a:/a`), written
//! from what clap parsed, so the record reads like the command line that
//! made it and means what that command line meant: relative host paths
//! are made absolute when stored. Only options that describe the machine
//! are kept; per-run ones (`-d`, `--rm`, `--pull`, the console, …) are not.

use crate::cli::{Cli, RunArgs};
use anyhow::{bail, Context, Result};
use berth_store::machines::Settings;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use std::ffi::OsString;

/// The `run` options that are a machine's settings (clap ids).
const SETTINGS: &[&str] = &[
    "boot",
    "ephemeral",
    "volatile",
    "read_only",
    "bind",
    "bind_ro",
    "tmpfs",
    "overlay",
    "overlay_ro",
    "setenv",
    "user",
    "chdir",
    "hostname",
    "private_network",
    "network_veth",
    "network_bridge",
    "network_macvlan",
    "network_ipvlan",
    "network_namespace_path",
    "port",
    "capability",
    "drop_capability",
    "system_call_filter",
    "private_users",
    "private_users_pick",
    "private_users_ownership",
    "device",
    "memory",
    "cpus",
    "pids_limit",
    "resolv_conf",
    "entrypoint",
    "restart",
];

/// The `run` subcommand's definition.
fn run_command() -> clap::Command {
    Cli::command().find_subcommand("run").cloned().unwrap_or_else(|| clap::Command::new("run"))
}

/// The matches of `berth … run …` as given in `argv`.
pub fn run_matches(argv: impl IntoIterator<Item = OsString>) -> Result<(Cli, ArgMatches)> {
    let m = Cli::command().try_get_matches_from(argv)?;
    let cli = Cli::from_arg_matches(&m)?;
    let run = m.subcommand_matches("run").cloned().context("internal: not a run command line")?;
    Ok((cli, run))
}

/// `value` with a relative host path at its start made absolute.
fn absolute_source(value: &str) -> String {
    let abs = |p: &str| match p.is_empty() || p.starts_with('/') {
        true => p.to_string(),
        false => std::path::absolute(p).map(|a| a.display().to_string()).unwrap_or_else(|_| p.to_string()),
    };
    match value.split_once(':') {
        Some((first, rest)) => format!("{}:{rest}", abs(first)),
        None => abs(value),
    }
}

/// An `--overlay` value with every host path (all but the last, the
/// path inside) made absolute; an empty upper stays empty.
fn absolute_overlay(value: &str) -> String {
    let parts: Vec<&str> = value.split(':').collect();
    let n = parts.len();
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| match i + 1 < n && !p.is_empty() && !p.starts_with('/') {
            true => std::path::absolute(p).map(|a| a.display().to_string()).unwrap_or_else(|_| p.to_string()),
            false => p.to_string(),
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// The options given on the command line `m` whose ids `keep` takes,
/// as (id, word) pairs.
fn words(m: &ArgMatches, keep: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let cmd = run_command();
    let mut out = Vec::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if !keep(id) || m.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        let flag = match (arg.get_long(), arg.get_short()) {
            (Some(l), _) => format!("--{l}"),
            (None, Some(s)) => format!("-{s}"),
            (None, None) => continue,
        };
        if id == "private_users_pick" {
            // -U is --private-users=pick: one option, so either form overrides the other.
            out.push(("private_users".to_string(), "--private-users=pick".to_string()));
            continue;
        }
        if !arg.get_action().takes_values() {
            out.push((id.to_string(), flag));
            continue;
        }
        for v in m.get_raw(id).into_iter().flatten() {
            let v = v.to_string_lossy().into_owned();
            let v = match id {
                "bind" | "bind_ro" => absolute_source(&v),
                "overlay" | "overlay_ro" => absolute_overlay(&v),
                // -E NAME takes the value from here and now, not from
                // wherever the machine is started later.
                "setenv" if !v.contains('=') => match std::env::var(&v) {
                    Ok(val) => format!("{v}={val}"),
                    Err(_) => v,
                },
                _ => v,
            };
            out.push((id.to_string(), format!("{flag}={v}")));
        }
    }
    out
}

fn is_setting(id: &str) -> bool {
    SETTINGS.contains(&id)
}

/// Every option but the machine and the positional words.
fn is_option(id: &str) -> bool {
    id != "args" && id != "machine"
}

/// What machine `name` runs with: its settings file (`NAME.nspawn`)
/// under its stored settings (`stored`, which win); `None` when it has
/// neither.
pub fn effective(name: &str, stored: Option<Settings>) -> Result<Option<Settings>> {
    let file = super::nspawn::settings_for(name)?;
    Ok(match (file, stored) {
        (None, s) => s,
        (Some(f), None) => Some(f),
        (Some(f), Some(s)) => Some(Settings {
            options: f.options.into_iter().chain(s.options).collect(),
            command: if s.command.is_empty() && !s.image_command { f.command } else { s.command },
            image_command: s.image_command,
        }),
    })
}

/// The settings a run's command line `m` gives (its command included).
pub fn of_run(m: &ArgMatches, command: &[String]) -> Settings {
    Settings {
        options: words(m, is_setting).into_iter().map(|(_, w)| w).collect(),
        command: command.to_vec(),
        image_command: false,
    }
}

/// `berth create IMAGE NAME [OPTIONS] [-- CMD…]`: the options, checked as
/// `run` would take them, and refused when they are not settings.
pub fn of_create(name: &str, options: &[String], command: &[String]) -> Result<Settings> {
    // (clap keeps a `--` among the options when an option comes first.)
    let (options, command) = match options.iter().position(|w| w == "--") {
        Some(i) => (&options[..i], &options[i + 1..]),
        None => (options, command),
    };
    let mut argv: Vec<OsString> = ["berth", "run", "-M", name].iter().map(OsString::from).collect();
    argv.extend(options.iter().map(OsString::from));
    let (_, m) = run_matches(argv)?;
    let a = RunArgs::from_arg_matches(&m)?;
    if let Some(w) = a.args.first() {
        bail!("{w}: not a run option (a machine's command goes after --, e.g. `berth create IMAGE {name} -- /bin/sh`)");
    }
    if let Some(v) = a.setenv.iter().find(|v| !v.contains('=') && std::env::var(v).is_err()) {
        bail!("-E {v}: {v} is not set here, and a machine keeps the value it is given: write -E {v}=VALUE");
    }
    if let Some((_, w)) = words(&m, |id| is_option(id) && !is_setting(id)).first() {
        bail!("{w} is not a machine setting: give it to `berth run -M {name}` instead");
    }
    Ok(of_run(&m, command))
}

/// The command line that runs machine `name` with its stored `settings`
/// and the options of this command line `m` on top (a single-valued
/// option given here replaces the stored one; lists add up); `command`
/// (this command line's) replaces the stored one when given.
pub fn layered(
    cli: &Cli,
    name: &str,
    settings: &Settings,
    m: &ArgMatches,
    command: &[String],
) -> Result<(Cli, RunArgs, ArgMatches)> {
    let given = words(m, is_option);
    let cmd = run_command();
    let single = |id: &str| {
        cmd.get_arguments()
            .find(|a| a.get_id().as_str() == id)
            .is_some_and(|a| !matches!(a.get_action(), clap::ArgAction::Append | clap::ArgAction::Count))
    };
    // A single-valued option is kept once: the last given (the command
    // line's over the stored settings', those over the settings file's).
    let stored: Vec<String> = settings.options.iter().map(|w| flag_of(w)).collect();
    let given_flags: Vec<String> = given.iter().map(|(_, w)| flag_of(w)).collect();
    // A command given here runs instead of the stored boot or command, as
    // systemd-nspawn's positional arguments override Boot=.
    let drop_boot = !command.is_empty() && !given.iter().any(|(id, _)| id == "boot");
    let overridden = |i: usize| {
        let flag = &stored[i];
        if drop_boot && flag == "--boot" {
            return true;
        }
        id_of(&cmd, flag).as_deref().is_some_and(single)
            && (given_flags.contains(flag) || stored[i + 1..].contains(flag))
    };
    let mut argv: Vec<OsString> = vec!["berth".into(), "--root".into(), cli.root.clone().into_os_string()];
    if cli.debug {
        argv.push("--debug".into());
    }
    argv.push("run".into());
    argv.extend(settings.options.iter().enumerate().filter(|(i, _)| !overridden(*i)).map(|(_, w)| OsString::from(w)));
    argv.extend(given.into_iter().map(|(_, w)| OsString::from(w)));
    argv.extend(["-M".into(), name.into(), "--".into()]);
    let command = if command.is_empty() { &settings.command } else { command };
    argv.extend(command.iter().map(OsString::from));
    let (cli, m) = run_matches(argv).with_context(|| format!("machine {name}'s stored settings"))?;
    let a = RunArgs::from_arg_matches(&m)?;
    Ok((cli, a, m))
}

/// The flag of an option word (`--bind=/a:/b` → `--bind`).
fn flag_of(word: &str) -> String {
    word.split('=').next().unwrap_or(word).to_string()
}

/// The clap id of a `--long` or `-s` flag of `run`.
fn id_of(cmd: &clap::Command, flag: &str) -> Option<String> {
    cmd.get_arguments()
        .find(|a| {
            a.get_long().is_some_and(|l| flag.strip_prefix("--") == Some(l))
                || a.get_short().is_some_and(|c| flag.strip_prefix('-') == Some(c.to_string().as_str()))
        })
        .map(|a| a.get_id().to_string())
}
