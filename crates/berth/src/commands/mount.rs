//! `berth mount IMAGE DIR`, `berth unmount DIR`.

use super::open_store;
use crate::cli::Cli;
use anyhow::Result;
use std::path::Path;

pub fn mount(cli: &Cli, image: &str, dir: &Path) -> Result<i32> {
    let store = open_store(cli)?;
    let rec = store.resolve(image)?;
    store.mount_image(&rec, dir)?;
    Ok(0)
}

pub fn unmount(dir: &Path) -> Result<i32> {
    berth_store::mount::unmount(dir)?;
    Ok(0)
}
