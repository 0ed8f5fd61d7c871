//! `berth pull REF`.

use super::open_store;
use crate::cli::{parse_size, Cli, PullArgs, RegistryArgs};
use crate::progress::Bars;
use anyhow::{anyhow, Context, Result};
use berth_oci::registry::{ClientOptions, Credentials, RegistriesConfig};
use berth_oci::{Platform, Reference};
use berth_store::pull::{pull, PullOptions, Quiet};
use berth_store::{ImageRecord, Store, StoreError};

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

/// `run --pull=WHEN`: pulls `image` when the store lacks it (`missing`)
/// or every time (`always`), as podman run does; returns the image's
/// record, or `None` when the store lacks it and `never` leaves it to the
/// run to say so.
pub fn ensure_image(store: &Store, image: &str, when: &str, registry: &RegistryArgs) -> Result<Option<ImageRecord>> {
    let have = match store.resolve(image) {
        Ok(rec) => Some(rec),
        Err(StoreError::UnknownImage(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let had = have.is_some();
    match (when, have) {
        ("never", have) | ("missing", have @ Some(_)) => return Ok(have),
        // A name that found a local image (localhost/…, or an image ID) is
        // no registry's: `always` has nothing to pull for it.
        (_, Some(rec)) => {
            let registry_name = berth_store::images::normalize_name(image);
            let refs = store.load_refs()?;
            if !registry_name.is_some_and(|n| refs.contains_key(&n) && !n.starts_with("localhost/")) {
                return Ok(Some(rec));
            }
        }
        (_, None) => {}
    }
    let reference: Reference =
        image.parse().map_err(|e| anyhow!("image {image:?} is not in the store, and is no reference to pull: {e}"))?;
    let opts = PullOptions { client: client_options(registry)?, ..PullOptions::default() };
    let pulled = match Bars::new(false) {
        Some(b) => pull(store, &reference, &opts, &b),
        None => pull(store, &reference, &opts, &Quiet),
    };
    let rec = pulled.with_context(|| match had {
        true => format!("pulling {image:?} (--pull=always) failed"),
        false => format!("image {image:?} is not in the store and pulling it failed"),
    })?;
    Ok(Some(rec))
}

/// `berth push NAME REF`: the config and layer blobs the registry lacks,
/// then the manifest, byte for byte as stored (so its digest is kept).
pub fn push(cli: &Cli, a: &crate::cli::PushArgs) -> Result<i32> {
    use berth_oci::registry::Client;
    let reference: Reference = a.reference.parse()?;
    let store = open_store(cli)?;
    let rec = store.resolve(&a.name)?;
    let mut opts = client_options(&a.registry)?;
    opts.actions = "pull,push".into();
    let client = Client::new(&reference, &opts)?;
    client.ping()?;
    // A repository on the same registry that has the image: blobs can be
    // mounted from it instead of uploaded.
    let refs = store.load_refs()?;
    let from = berth_store::Store::names_of(&refs, &rec.id)
        .into_iter()
        .filter_map(|n| n.parse::<Reference>().ok())
        .find(|r| r.registry == reference.registry && r.repository != reference.repository)
        .map(|r| r.repository);
    let blobs =
        std::iter::once((rec.id.clone(), None)).chain(rec.layers.iter().map(|l| (l.digest.clone(), Some(l.size))));
    for (digest, _) in blobs {
        let path = store.blob_path(&digest);
        let size = std::fs::metadata(&path)
            .map_err(|_| {
                anyhow!("blob {digest} of image {} is not in the store; pull the image again", rec.id.short())
            })?
            .len();
        if client.blob_exists(&digest)? {
            if !a.quiet {
                eprintln!("Blob {} already present", digest.short());
            }
            continue;
        }
        if let Some(f) = &from {
            if client.mount_blob(&digest, f).unwrap_or(false) {
                if !a.quiet {
                    eprintln!("Blob {} mounted from {f}", digest.short());
                }
                continue;
            }
        }
        if !a.quiet {
            eprintln!("Uploading blob {} ({})", digest.short(), crate::output::human_size(size));
        }
        let open = || -> std::io::Result<Box<dyn std::io::Read + Send>> { Ok(Box::new(std::fs::File::open(&path)?)) };
        client.upload_blob(&digest, size, &open)?;
    }
    let manifest = store.read_blob(&rec.digest)?;
    let target = reference.api_reference();
    let digest = client.put_manifest(&target, &rec.manifest_media_type, &manifest)?;
    crate::output::print(&format!("{digest}\n"))?;
    Ok(0)
}
