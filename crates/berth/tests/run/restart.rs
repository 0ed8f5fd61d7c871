//! `--restart=no|on-failure|always` (issue 10, item 5): the supervisor
//! runs a machine that ends on its own again, with a growing wait, until
//! `berth stop` (also while it waits); a clean exit is not a failure; a
//! restart needs a machine to restart.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use super::kill_and_remove;
use crate::harness::berth::unique;
use crate::harness::container::{s, Ctx};

fn runs(file: &Path) -> usize {
    fs::read_to_string(file).map(|t| t.lines().count()).unwrap_or(0)
}

fn wait_runs(file: &Path, n: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while runs(file) < n {
        assert!(Instant::now() < deadline, "{what}: {} runs, wanted {n}", runs(file));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_failing_machine_is_restarted_until_stopped_and_a_clean_exit_is_not_a_failure() {
    let c = Ctx::probe();
    let data = c.dir("restart-data");
    fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o777)).expect("chmod");
    let bind = format!("{}:/data", s(&data));
    let start = |name: &str, policy: &str, script: &str| {
        let policy = format!("--restart={policy}");
        c.berth
            .run(["run", "-d", "--name", name, &policy, "--bind", &bind, &c.image, "/bin/sh", "-c", script])
            .success();
    };

    let failing = format!("rf-{}", unique());
    start(&failing, "on-failure", "echo run >> /data/failing; exit 3");
    wait_runs(&data.join("failing"), 3, "on-failure must run a failing machine again");
    c.berth.run(["stop", &failing]).success();
    let after = runs(&data.join("failing"));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(runs(&data.join("failing")), after, "the machine was run again after berth stop");
    assert!(!c.berth.run(["ps"]).success().stdout.contains(&failing), "a stopped machine is listed");
    kill_and_remove(&c, &failing);

    let clean = format!("rc-{}", unique());
    start(&clean, "on-failure", "echo run >> /data/clean; exit 0");
    wait_runs(&data.join("clean"), 1, "the machine ran");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(runs(&data.join("clean")), 1, "on-failure ran a machine again after a clean exit");
    kill_and_remove(&c, &clean);

    let always = format!("ra-{}", unique());
    start(&always, "always", "echo run >> /data/always; exit 0");
    wait_runs(&data.join("always"), 2, "always must run a machine again after a clean exit");
    c.berth.run(["stop", &always]).success();
    let after = runs(&data.join("always"));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(runs(&data.join("always")), after, "the machine was run again after berth stop");
    kill_and_remove(&c, &always);

    // The policy sticks with the machine: start restarts it too.
    let kept = format!("rk-{}", unique());
    let script = "echo run >> /data/kept; exit 1";
    c.berth
        .run(["create", &c.image, &kept, "--restart=on-failure", "--bind", &bind, "--", "/bin/sh", "-c", script])
        .success();
    c.berth.run(["start", &kept]).success();
    wait_runs(&data.join("kept"), 2, "a stored --restart must apply to start");
    c.berth.run(["stop", &kept]).success();
    kill_and_remove(&c, &kept);

    c.berth.run(["run", "--restart=always", &c.image, "true"]).failure().mentions_any(&["--name"]);
    let bad = c.berth.run(["run", "--restart=sometimes", &c.image, "true"]);
    assert!(!bad.status.success() && bad.stderr.contains("sometimes"), "{}", bad.stderr);
}
