//! `berth images`, `inspect`, `rmi`, `tag`, `gc`.

use super::open_store;
use crate::cli::Cli;
use crate::output::{ago, human_size, print, print_json, table};
use anyhow::Result;
use berth_store::{ImageRecord, Store};

#[derive(serde::Serialize)]
struct ImageJson<'a> {
    id: String,
    names: Vec<String>,
    digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    index_digest: Option<String>,
    platform: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<&'a str>,
    added: u64,
    size: u64,
    layers: usize,
}

fn image_json(r: &ImageRecord, names: Vec<String>) -> ImageJson<'_> {
    ImageJson {
        id: r.id.to_string(),
        names,
        digest: r.digest.to_string(),
        index_digest: r.index_digest.as_ref().map(|d| d.to_string()),
        platform: r.platform.to_string(),
        created: r.created.as_deref(),
        added: r.added,
        size: r.size(),
        layers: r.layers.len(),
    }
}

/// Splits `host/repo:tag` into (`host/repo`, `tag`) for the table.
fn repo_tag(name: &str) -> (String, String) {
    if let Some((repo, d)) = name.split_once('@') {
        return (repo.to_string(), format!("@{}", &d[..d.len().min(19)]));
    }
    let slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    match name[slash..].rfind(':') {
        Some(i) => (name[..slash + i].to_string(), name[slash + i + 1..].to_string()),
        None => (name.to_string(), "<none>".into()),
    }
}

pub fn list(cli: &Cli, json: bool) -> Result<i32> {
    let store = open_store(cli)?;
    let refs = store.load_refs()?;
    let images = store.images()?;
    if json {
        let v: Vec<_> = images.iter().map(|r| image_json(r, Store::names_of(&refs, &r.id))).collect();
        print_json(&v)?;
        return Ok(0);
    }
    let mut rows = Vec::new();
    for r in &images {
        let mut names = Store::names_of(&refs, &r.id);
        if names.is_empty() {
            names.push("<none>:<none>".into());
        }
        for n in names {
            let (repo, tag) = repo_tag(&n);
            rows.push(vec![repo, tag, r.id.short().to_string(), ago(r.added), human_size(r.size())]);
        }
    }
    print(&table(&["REPOSITORY", "TAG", "IMAGE ID", "PULLED", "SIZE"], &rows))?;
    Ok(0)
}

pub fn inspect(cli: &Cli, name: &str, json: bool) -> Result<i32> {
    let store = open_store(cli)?;
    let rec = match store.resolve(name) {
        Ok(rec) => rec,
        Err(e) => match store.load_machine(name) {
            Ok(m) => return inspect_machine(&store, &m, json),
            Err(_) => return Err(e.into()),
        },
    };
    let refs = store.load_refs()?;
    let config: serde_json::Value = serde_json::from_slice(&store.read_blob(&rec.id)?)?;
    if json {
        let mut v = serde_json::to_value(image_json(&rec, Store::names_of(&refs, &rec.id)))?;
        v["manifest_media_type"] = rec.manifest_media_type.clone().into();
        v["config"] = config;
        v["layers"] = serde_json::to_value(&rec.layers)?;
        print_json(&v)?;
        return Ok(0);
    }
    let mut s = String::new();
    s += &format!("ID:        {}\n", rec.id);
    s += &format!("Names:     {}\n", Store::names_of(&refs, &rec.id).join(", "));
    s += &format!("Digest:    {}\n", rec.digest);
    if let Some(i) = &rec.index_digest {
        s += &format!("Index:     {i}\n");
    }
    s += &format!("Platform:  {}\n", rec.platform);
    if let Some(c) = &rec.created {
        s += &format!("Created:   {c}\n");
    }
    s += &format!("Size:      {}\n", human_size(rec.size()));
    let c = &config["config"];
    let show = |k: &str| -> Option<String> {
        let v = c.get(k)?;
        if v.is_null() {
            return None;
        }
        Some(if let Some(s) = v.as_str() { s.to_string() } else { v.to_string() })
    };
    for (label, key) in
        [("Entrypoint", "Entrypoint"), ("Cmd", "Cmd"), ("WorkingDir", "WorkingDir"), ("User", "User"), ("Env", "Env")]
    {
        if let Some(v) = show(key).filter(|v| !v.is_empty()) {
            s += &format!("{:<11}{v}\n", format!("{label}:"));
        }
    }
    s += "Layers:\n";
    for l in &rec.layers {
        s += &format!(
            "  {}  {:>10}  {:>10}  {}\n",
            l.digest,
            human_size(l.size),
            human_size(l.unpacked_size),
            l.media_type
        );
    }
    print(&s)?;
    Ok(0)
}

pub fn rmi(cli: &Cli, names: &[String], force: bool) -> Result<i32> {
    let store = open_store(cli)?;
    for line in store.remove_images(names, force)? {
        print(&format!("{line}\n"))?;
    }
    Ok(0)
}

pub fn tag(cli: &Cli, src: &str, dst: &str) -> Result<i32> {
    let store = open_store(cli)?;
    store.tag(src, dst)?;
    Ok(0)
}

/// `berth fsck`: exit 0 when the store is sound, 1 (with one line per
/// problem) when it is not.
pub fn fsck(cli: &Cli, json: bool) -> Result<i32> {
    let store = open_store(cli)?;
    let r = store.fsck()?;
    if json {
        print_json(&r)?;
    } else {
        let mut out = String::new();
        for p in &r.problems {
            out += &format!("{}: {}\n", p.what, p.why);
        }
        out += &format!(
            "Checked {} blobs, {} images, {} layers, {} names, {} machines: {}\n",
            r.blobs,
            r.images,
            r.layers,
            r.names,
            r.machines,
            match r.problems.len() {
                0 => "no problems".to_string(),
                1 => "1 problem".to_string(),
                n => format!("{n} problems"),
            }
        );
        print(&out)?;
    }
    Ok(if r.problems.is_empty() { 0 } else { 1 })
}

pub fn gc(cli: &Cli, json: bool) -> Result<i32> {
    let store = open_store(cli)?;
    let stats = store.gc()?;
    if json {
        print_json(&stats)?;
    } else {
        print(&format!(
            "Removed {} images, {} layers, {} blobs, {} staging entries; freed {}\n",
            stats.images.len(),
            stats.layers,
            stats.blobs,
            stats.tmp,
            human_size(stats.bytes)
        ))?;
    }
    Ok(0)
}

/// `berth inspect MACHINE`: its record, settings included.
fn inspect_machine(store: &Store, m: &berth_store::machines::MachineRecord, json: bool) -> Result<i32> {
    if json {
        print_json(m)?;
        return Ok(0);
    }
    let mut s = String::new();
    s += &format!("Machine:   {}\n", m.name);
    if let Some(id) = &m.image {
        let refs = store.load_refs()?;
        let names = Store::names_of(&refs, id);
        s += &format!("Image:     {}\n", names.first().cloned().unwrap_or_else(|| id.to_string()));
    }
    s += &format!("Read-only: {}\n", if m.read_only { "yes" } else { "no" });
    match &m.settings {
        Some(set) => {
            s += &format!("Options:   {}\n", set.options.join(" "));
            let cmd = match (set.command.is_empty(), set.image_command) {
                (false, _) => set.command.join(" "),
                (true, true) => "(the image's)".to_string(),
                (true, false) => "(none: start boots its init)".to_string(),
            };
            s += &format!("Command:   {cmd}\n");
        }
        None => s += "Settings:  none (start boots its init)\n",
        // (An app machine without a command runs its image's.)
    }
    print(&s)?;
    Ok(0)
}
