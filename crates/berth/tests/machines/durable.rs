//! Durability: every rename that publishes something in the store (a
//! blob, a layer, an image record, `refs.json`, a machine) is followed by
//! an fsync of the directory it landed in, so a power cut cannot roll back
//! what berth reported done. Seen with `strace -y`, which names the
//! directory behind each fsync'd descriptor, over a pull, an import, a
//! create, clone, rename, commit and rm.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::berth::run_command;
use crate::harness::{fixtures, Berth, Registry};

/// `berth ARGS` under strace, logging renames and fsyncs to `log`.
fn traced(berth: &Berth, log: &Path, args: &[&str]) {
    let inner = berth.command(args);
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-y", "-qq", "-s", "4096", "-e", "trace=rename,renameat,renameat2,fsync,fdatasync", "-o"]);
    cmd.arg(log).arg("--").arg(inner.get_program()).args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.stdin(std::process::Stdio::null());
    run_command(cmd).success();
}

/// The quoted strings of a strace line, unescaped enough for paths.
fn quoted(line: &str) -> Vec<String> {
    line.split('"').skip(1).step_by(2).map(|s| s.replace("\\\"", "\"")).collect()
}

/// Renames into `store` (outside its `tmp/` and `locks/`) that no later
/// fsync of the target's directory covers.
fn unsynced(store: &Path, log: &Path) -> Vec<String> {
    let text = fs::read_to_string(log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut missing = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let call = l.split_whitespace().nth(1).unwrap_or("");
        if !call.starts_with("rename") || !l.trim_end().ends_with("= 0") {
            continue;
        }
        let Some(target) = quoted(l).get(1).map(PathBuf::from) else { continue };
        let Ok(rel) = target.strip_prefix(store) else { continue };
        if rel.starts_with("tmp") || rel.starts_with("locks") {
            continue;
        }
        let parent = target.parent().unwrap().to_string_lossy().into_owned();
        let synced = lines[i + 1..].iter().any(|n| {
            let c = n.split_whitespace().nth(1).unwrap_or("");
            (c.starts_with("fsync(") || c.starts_with("fdatasync(")) && n.contains(&format!("<{parent}>)"))
        });
        if !synced {
            missing.push(l.to_string());
        }
    }
    missing
}

#[test]
fn every_rename_that_publishes_is_followed_by_a_directory_fsync() {
    let reg = Registry::start();
    reg.push_image("multi", "latest", &fixtures::multilayer());
    let berth = Berth::new();
    berth.run(["images"]).success();
    let store = fs::canonicalize(berth.root()).unwrap();
    let reference = reg.reference("multi", "latest");
    let tree = berth.new_dir("tree");
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/os-release"), "ID=durable\n").unwrap();
    let tree = tree.to_str().unwrap().to_string();
    let steps: Vec<Vec<&str>> = vec![
        vec!["pull", "--tls-verify=false", &reference],
        vec!["import", &tree, "imported"],
        vec!["create", "imported", "m1"],
        vec!["clone", "m1", "m2"],
        vec!["rename", "m2", "m3"],
        vec!["commit", "m1", "committed"],
        vec!["rm", "m3"],
        vec!["tag", "committed", "again"],
    ];
    let mut problems = Vec::new();
    for (n, args) in steps.iter().enumerate() {
        let log = berth.dir().join(format!("strace-{n}.log"));
        traced(&berth, &log, args);
        let renames = fs::read_to_string(&log).unwrap().lines().filter(|l| l.contains(" rename")).count();
        assert!(renames > 0, "`berth {}` renamed nothing: is strace tracing it?", args.join(" "));
        for l in unsynced(&store, &log) {
            problems.push(format!("berth {}: {l}", args.join(" ")));
        }
    }
    assert!(
        problems.is_empty(),
        "renames into the store with no fsync of their directory after:\n{}",
        problems.join("\n")
    );
}
