//! `berth create`, `machines`, `clone`, `rename`, `rm`, `read-only`.

use super::open_store;
use crate::cli::Cli;
use crate::output::{ago, human_size, print, print_json, table};
use anyhow::Result;

pub fn create(cli: &Cli, image: &str, name: &str, options: &[String], command: &[String]) -> Result<i32> {
    let settings = super::settings::of_create(name, options, command)?;
    let store = open_store(cli)?;
    let rec = store.resolve(image)?;
    store.create_machine_set(name, &rec.id, settings)?;
    Ok(0)
}

pub fn list(cli: &Cli, json: bool) -> Result<i32> {
    let store = open_store(cli)?;
    let machines = store.machines()?;
    if json {
        print_json(&machines)?;
        return Ok(0);
    }
    let refs = store.load_refs()?;
    let rows: Vec<Vec<String>> = machines
        .iter()
        .map(|m| {
            let image = match &m.record.image {
                Some(id) => {
                    berth_store::Store::names_of(&refs, id).into_iter().next().unwrap_or_else(|| id.short().to_string())
                }
                None => "-".into(),
            };
            vec![
                m.record.name.clone(),
                image,
                if m.running { "running".into() } else { "stopped".into() },
                if m.record.read_only { "yes".into() } else { "no".into() },
                human_size(m.usage),
                ago(m.record.created),
            ]
        })
        .collect();
    print(&table(&["NAME", "IMAGE", "STATE", "RO", "USAGE", "CREATED"], &rows))?;
    Ok(0)
}

pub fn clone(cli: &Cli, src: &str, dst: &str) -> Result<i32> {
    open_store(cli)?.clone_machine(src, dst)?;
    Ok(0)
}

pub fn rename(cli: &Cli, old: &str, new: &str) -> Result<i32> {
    open_store(cli)?.rename_machine(old, new)?;
    // Its address was leased under the old name: the next run leases anew.
    super::network::forget_machine(old);
    Ok(0)
}

pub fn rm(cli: &Cli, names: &[String]) -> Result<i32> {
    let store = open_store(cli)?;
    // Check every name first, so a typo removes nothing.
    for n in names {
        store.load_machine(n)?;
        if store.is_running(n) {
            return Err(berth_store::StoreError::MachineRunning(n.clone()).into());
        }
    }
    for n in names {
        store.remove_machine(n)?;
        super::network::forget_machine(n);
    }
    Ok(0)
}

pub fn read_only(cli: &Cli, name: &str, value: Option<bool>) -> Result<i32> {
    let store = open_store(cli)?;
    match value {
        Some(v) => store.set_machine_read_only(name, v)?,
        None => print(&format!("{}\n", store.load_machine(name)?.read_only))?,
    }
    Ok(0)
}

pub fn bootstrap(cli: &Cli, a: &crate::cli::BootstrapArgs) -> Result<i32> {
    let store = open_store(cli)?;
    let opts = berth_store::bootstrap::BootstrapOptions {
        distro: a.distro.clone(),
        suite: a.suite.clone(),
        name: a.name.clone(),
        variant: a.variant.clone(),
        include: a.include.clone(),
        mirror: a.mirror.clone(),
        image: a.image,
        arch: a.arch.clone(),
        cache: a.cache,
    };
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!("Running debootstrap {} {} (this takes a minute or two)…", a.suite, a.name);
    }
    berth_store::bootstrap::bootstrap(&store, &opts)?;
    Ok(0)
}
