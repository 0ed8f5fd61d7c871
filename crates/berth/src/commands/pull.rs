//! `berth pull REF`.

use super::open_store;
use crate::cli::{parse_size, Cli, PullArgs, RegistryArgs};
use crate::progress::Bars;
use anyhow::{anyhow, Result};
use berth_oci::registry::{ClientOptions, Credentials, RegistriesConfig};
use berth_oci::{Platform, Reference};
use berth_store::pull::{pull, PullOptions, Quiet};

/// Registry client options from the shared flags and the config file.
pub fn client_options(a: &RegistryArgs) -> Result<ClientOptions> {
    let config = RegistriesConfig::load(&RegistriesConfig::default_path())?;
    Ok(ClientOptions {
        tls_verify: a.tls_verify,
        creds: a.creds.as_deref().map(Credentials::parse),
        authfile: a.authfile.clone(),
        config,
        ..ClientOptions::default()
    })
}

pub fn run(cli: &Cli, a: &PullArgs) -> Result<i32> {
    let reference: Reference = a.reference.parse()?;
    let platform = match &a.platform {
        Some(p) => p.parse::<Platform>()?,
        None => Platform::host(),
    };
    let opts = PullOptions {
        platform,
        client: client_options(&a.registry)?,
        max_layer_bytes: parse_size(&a.max_layer_size).map_err(|e| anyhow!(e))?,
        jobs: a.jobs,
        name: a.name.clone(),
    };
    let store = open_store(cli)?;
    let bars = Bars::new(a.quiet);
    let rec = match &bars {
        Some(b) => pull(&store, &reference, &opts, b)?,
        None => pull(&store, &reference, &opts, &Quiet)?,
    };
    crate::output::print(&format!("{}\n", rec.id))?;
    Ok(0)
}
