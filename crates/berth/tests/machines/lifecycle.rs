//! Machines: create, machines/list-images, clone, rename, rm, read-only,
//! `run -M`; images that machines use are kept by rmi and gc.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{image_id, image_tree, machine, machine_names, machines, sh_in, with_machine_image};
use crate::harness::berth::wait_with_timeout;

#[test]
fn create_lists_the_machine_and_run_keeps_its_changes() {
    let (_reg, berth, image) = with_machine_image();
    let id = image_id(&berth, &image);
    let before_image = image_tree(&berth, &image);
    let t0 = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    berth.run(["create", image.as_str(), "web"]).success();

    let list = machines(&berth);
    assert_eq!(list.len(), 1, "one machine: {list:?}");
    let m = &list[0];
    assert_eq!(m["name"], "web", "{m}");
    let img = m["image"].as_str().unwrap_or_else(|| panic!("`image` is not a string: {m}"));
    assert!(img == id || img == image, "`image` names the image (its ID {id} or {image}): {m}");
    assert_eq!(m["read_only"], false, "{m}");
    assert_eq!(m["running"], false, "{m}");
    assert!(m["usage"].is_u64(), "`usage` is a byte count: {m}");
    let created = m["created"].as_i64().unwrap_or_else(|| panic!("`created` is not a number: {m}"));
    assert!((created - t0).abs() < 120, "`created` ({created}) is not the time of creation (~{t0}): {m}");

    // The alias reads the same.
    let alias = berth.run(["list-images", "--json"]).success().json();
    assert_eq!(alias, serde_json::Value::Array(list.clone()), "`list-images --json` differs from `machines --json`");
    // The table names the machine too.
    let table = berth.run(["machines"]).success();
    assert!(table.stdout.lines().any(|l| l.split_whitespace().next() == Some("web")), "table: {}", table.stdout);

    sh_in(&berth, "web", "echo state > /state && rm /etc/keep").success();
    let out = sh_in(&berth, "web", "cat /state; test -e /etc/keep && echo keep-still-there; true").success();
    assert_eq!(out.stdout.trim(), "state", "the machine must keep its changes between runs: {out:?}");
    assert!(
        machine(&machines(&berth), "web").unwrap()["usage"].as_u64().unwrap() > 0,
        "usage must count the machine's own changes"
    );
    // The image itself is untouched.
    super::assert_same(&image_tree(&berth, &image), &before_image, &[], "the image after writes in a machine");
}

#[test]
fn create_copies_nothing_from_the_image() {
    let (_reg, berth, image) = with_machine_image();
    let t = Instant::now();
    berth.run(["create", image.as_str(), "cheap"]).success();
    let took = t.elapsed();
    let m = machine(&machines(&berth), "cheap").cloned().expect("machine listed");
    let usage = m["usage"].as_u64().unwrap_or_else(|| panic!("usage: {m}"));
    // busybox alone is ~2 MB: a copy would show.
    assert!(usage < 64 * 1024, "a fresh machine uses {usage} bytes: create copied the image? {m}");
    let du = super::host_sh(&format!("du -sb --apparent-size {}", super::q(&berth.root().join("machines"))));
    let bytes: u64 = du.split_whitespace().next().unwrap().parse().unwrap();
    assert!(bytes < 256 * 1024, "the store's machines/ holds {bytes} bytes after one create: {du}");
    assert!(took < Duration::from_secs(5), "create took {took:?}");
}

#[test]
fn clone_is_independent_and_leaves_the_template_untouched() {
    let (_reg, berth, image) = with_machine_image();
    berth.run(["create", image.as_str(), "tmpl"]).success();
    sh_in(&berth, "tmpl", "echo template > /etc/role && mkdir -p /opt/t && echo 1 > /opt/t/v && rm /srv/data")
        .success();
    let tmpl_before = sh_in(&berth, "tmpl", "find / -xdev | sort | md5sum; cat /etc/role /opt/t/v").success().stdout;

    berth.run(["clone", "tmpl", "copy"]).success();
    assert_eq!(machine_names(&berth), vec!["copy", "tmpl"]);
    let seen = sh_in(&berth, "copy", "cat /etc/role /opt/t/v; test -e /srv/data && echo data-back; true").success();
    assert_eq!(seen.stdout, "template\n1\n", "the clone must start with the template's changes (incl. deletions)");

    sh_in(
        &berth,
        "copy",
        "echo clone > /etc/role && echo 2 > /opt/t/v && rm -rf /somedir && echo new > /only-in-clone",
    )
    .success();
    let tmpl_after = sh_in(&berth, "tmpl", "find / -xdev | sort | md5sum; cat /etc/role /opt/t/v").success().stdout;
    assert_eq!(tmpl_after, tmpl_before, "changing the clone changed the template");
    let t = sh_in(&berth, "tmpl", "test -e /only-in-clone && echo leaked; test -d /somedir && echo somedir; true")
        .success();
    assert_eq!(t.stdout, "somedir\n", "template sees the clone's changes: {t:?}");
    let c = sh_in(&berth, "copy", "cat /etc/role /opt/t/v /only-in-clone").success();
    assert_eq!(c.stdout, "clone\n2\nnew\n");
    let list = machines(&berth);
    let (a, b) = (machine(&list, "tmpl").unwrap(), machine(&list, "copy").unwrap());
    assert_eq!(a["image"], b["image"], "a clone is on the same image: {list:?}");
}

#[test]
fn rename_moves_the_machine_with_its_state() {
    let (_reg, berth, image) = with_machine_image();
    berth.run(["create", image.as_str(), "old"]).success();
    sh_in(&berth, "old", "echo kept > /state").success();
    berth.run(["rename", "old", "new"]).success();
    assert_eq!(machine_names(&berth), vec!["new"]);
    assert_eq!(sh_in(&berth, "new", "cat /state").success().stdout, "kept\n");
    let before = super::listing(&berth);
    berth.run(["run", "-M", "old", "true"]).failure().mentions_any(&["old"]);
    berth.run(["rename", "old", "other"]).failure().mentions_any(&["old"]);
    before.assert_unchanged(&super::listing(&berth), "rename of a missing machine");
}

#[test]
fn rm_removes_several_machines_and_refuses_unknown_ones() {
    let (_reg, berth, image) = with_machine_image();
    for n in ["a", "b", "c"] {
        berth.run(["create", image.as_str(), n]).success();
    }
    sh_in(&berth, "a", "echo x > /x").success();
    berth.run(["rm", "a", "b"]).success();
    assert_eq!(machine_names(&berth), vec!["c"]);
    assert!(!berth.root().join("machines/a").exists(), "machines/a still on disk after rm");
    let before = super::listing(&berth);
    berth.run(["rm", "nope"]).failure().mentions_any(&["nope"]);
    before.assert_unchanged(&super::listing(&berth), "rm of a missing machine");
    // A name can be reused after rm, and starts fresh.
    berth.run(["create", image.as_str(), "a"]).success();
    let o = sh_in(&berth, "a", "test -e /x && echo stale; true").success();
    assert_eq!(o.stdout, "", "a re-created machine sees the old one's files");
}

#[test]
fn read_only_shows_and_sets_and_run_gets_a_read_only_root() {
    let (_reg, berth, image) = with_machine_image();
    berth.run(["create", image.as_str(), "ro"]).success();
    assert_eq!(berth.run(["read-only", "ro"]).success().stdout.trim(), "false");
    berth.run(["read-only", "ro", "true"]).success();
    assert_eq!(berth.run(["read-only", "ro"]).success().stdout.trim(), "true");
    assert_eq!(machine(&machines(&berth), "ro").unwrap()["read_only"], true);

    let o = sh_in(&berth, "ro", "touch /written 2>&1; echo rc=$?").success();
    assert!(
        o.stdout.contains("rc=1") || !o.stdout.contains("rc=0"),
        "write to a read-only machine's root succeeded: {o:?}"
    );
    let mi = sh_in(&berth, "ro", "cat /proc/self/mountinfo").success();
    // Field 5 is the mount point, field 6 its options; the last `/` wins.
    let opts = mi
        .stdout
        .lines()
        .rev()
        .find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() > 5 && f[4] == "/").then(|| f[5].to_string())
        })
        .unwrap_or_else(|| panic!("no / in mountinfo: {}", mi.stdout));
    assert!(opts.split(',').any(|o| o == "ro"), "/ is not mounted read-only in a read-only machine: {}", mi.stdout);

    berth.run(["read-only", "ro", "false"]).success();
    assert_eq!(berth.run(["read-only", "ro"]).success().stdout.trim(), "false");
    sh_in(&berth, "ro", "touch /written").success();
    let before = super::listing(&berth);
    berth.run(["read-only", "missing", "true"]).failure().mentions_any(&["missing"]);
    before.assert_unchanged(&super::listing(&berth), "read-only of a missing machine");
}

#[test]
fn machines_shows_a_running_machine_as_running() {
    let (_reg, berth, image) = with_machine_image();
    berth.run(["create", image.as_str(), "busy"]).success();
    let mut child = berth.spawn(["run", "-M", "busy", "sleep", "6"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = false;
    while Instant::now() < deadline {
        if machine(&machines(&berth), "busy").map(|m| m["running"] == true).unwrap_or(false) {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let removed = berth.run(["rm", "busy"]);
    let renamed = berth.run(["rename", "busy", "lazy"]);
    let run = wait_with_timeout(&mut child, "berth run -M busy sleep 6".into());
    assert!(seen, "`machines --json` never showed `running: true` while `run -M busy` ran");
    assert!(!removed.status.success(), "rm of a running machine succeeded: {removed:?}");
    assert!(!renamed.status.success(), "rename of a running machine succeeded: {renamed:?}");
    let _ = removed.failure().mentions_any(&["busy"]);

    assert!(run.status.success(), "the run was disturbed: {run:?}");
    assert_eq!(machine(&machines(&berth), "busy").unwrap()["running"], false, "still running after exit");
}

#[test]
fn concurrent_creates_of_one_name_make_exactly_one_machine() {
    let (_reg, berth, image) = with_machine_image();
    let children: Vec<_> = (0..6).map(|_| berth.spawn(["create", image.as_str(), "race"])).collect();
    let runs: Vec<_> =
        children.into_iter().map(|mut c| wait_with_timeout(&mut c, "berth create IMG race".into())).collect();
    let ok = runs.iter().filter(|r| r.status.success()).count();
    assert_eq!(ok, 1, "exactly one of 6 concurrent `create IMG race` may succeed: {runs:#?}");
    for r in runs.iter().filter(|r| !r.status.success()) {
        assert!(r.stderr.contains("race"), "the losers must say the name is taken: {r:?}");
    }
    assert_eq!(machine_names(&berth), vec!["race"]);
}

#[test]
fn concurrent_clones_of_one_stopped_template_all_succeed() {
    let (_reg, berth, image) = with_machine_image();
    berth.run(["create", image.as_str(), "tmpl"]).success();
    sh_in(&berth, "tmpl", "echo template > /etc/role").success();
    // `for i in 0 1 2 3; do berth clone tmpl c$i & done; wait`
    let children: Vec<_> = (0..4).map(|i| berth.spawn(["clone".to_string(), "tmpl".into(), format!("c{i}")])).collect();
    let runs: Vec<_> =
        children.into_iter().map(|mut c| wait_with_timeout(&mut c, "berth clone tmpl cN".into())).collect();
    let failed: Vec<_> = runs.iter().filter(|r| !r.status.success()).collect();
    assert!(failed.is_empty(), "{} of 4 concurrent clones of a stopped template failed: {failed:#?}", failed.len());
    assert_eq!(machine_names(&berth), vec!["c0", "c1", "c2", "c3", "tmpl"]);
    assert_eq!(sh_in(&berth, "c3", "cat /etc/role").success().stdout, "template\n");
}

#[test]
fn name_clashes_and_bad_names_are_refused_with_the_store_unchanged() {
    let (_reg, berth, image) = with_machine_image();
    berth.run(["create", image.as_str(), "one"]).success();
    berth.run(["create", image.as_str(), "two"]).success();
    let before = super::listing(&berth);
    berth.run(["create", image.as_str(), "one"]).failure().mentions_any(&["one"]);
    berth.run(["clone", "one", "two"]).failure().mentions_any(&["two"]);
    berth.run(["rename", "one", "two"]).failure().mentions_any(&["two"]);
    berth.run(["clone", "nope", "three"]).failure().mentions_any(&["nope"]);
    berth.run(["create", "no-such-image", "three"]).failure().mentions_any(&["no-such-image"]);
    for bad in ["../escape", "a/b", "", ".hidden"] {
        berth.run(["create", image.as_str(), bad]).failure();
        berth.run(["clone", "one", bad]).failure();
        berth.run(["rename", "one", bad]).failure();
    }
    before.assert_unchanged(&super::listing(&berth), "refused create/clone/rename");
    assert!(!berth.dir().join("escape").exists() && !berth.root().join("escape").exists(), "`../escape` was created");
}

#[test]
fn rmi_refuses_an_image_a_machine_uses_and_gc_keeps_its_layers() {
    let (_reg, berth, image) = with_machine_image();
    berth.run(["create", image.as_str(), "user1"]).success();
    berth.run(["clone", "user1", "user2"]).success();
    let layers = berth.layer_dirs();
    let before = super::listing(&berth);
    berth.run(["rmi", image.as_str()]).failure().mentions_any(&["user1", "user2"]);
    before.assert_unchanged(&super::listing(&berth), "refused rmi");

    berth.run(["gc"]).success();
    assert_eq!(berth.layer_dirs(), layers, "gc removed layers machines use");
    assert_eq!(sh_in(&berth, "user1", "cat /etc/keep").success().stdout, "kept\n");

    berth.run(["rm", "user1", "user2"]).success();
    berth.run(["rmi", image.as_str()]).success();
    berth.run(["gc"]).success();
    assert!(
        berth.layer_dirs().is_empty(),
        "layers left after the last machine and image went: {:?}",
        berth.layer_dirs()
    );
}
