//! What a running container uses outlives `gc` and `rmi`: its scratch
//! directory (the throw-away upper) and the layers it has mounted, named
//! or not. On berth before this, `gc` during `run --rm` took the upper
//! (`can't create /f: nonexistent directory`) and `rmi` + `gc` the layers.

use crate::harness::container::Ctx;
use std::time::Duration;

#[test]
fn gc_and_rmi_leave_what_running_containers_use() {
    let c = Ctx::busybox();
    // Writes after gc and rmi have run: to its upper, and running binaries
    // of its layers it has not run yet.
    let script = "echo up; read go; echo ok > /f && cat /f && ls /bin >/dev/null && echo done";
    let mut run = c.spawn(&["--rm", &c.image, "/bin/sh", "-c", script]);
    run.wait_for_output("up", Duration::from_secs(20));
    // A stale scratch dir of a berth that died goes all the same.
    let stale = c.store().join("tmp/run-1-dead");
    std::fs::create_dir_all(stale.join("upper")).expect("stale dir");
    c.berth.run(["gc"]).success();
    assert!(!stale.exists(), "gc removes a dead run's scratch dir");
    c.berth.run(["rmi", &c.image]).success();
    c.berth.run(["gc"]).success();
    let layers = std::fs::read_dir(c.store().join("layers")).expect("layers").count();
    assert!(layers > 0, "the running container's layers stay after rmi + gc");
    // Let the container go on: it finds its upper and its layers.
    {
        use std::io::Write;
        let mut stdin = run.stdin.take().expect("piped stdin");
        stdin.write_all(b"go\n").expect("write to the container");
    }
    let o = run.wait().success();
    assert!(o.out().contains("ok\n") && o.out().contains("done"), "{}", o.describe());
    // Nothing holds them now: the next gc takes them.
    c.berth.run(["gc"]).success();
    assert_eq!(std::fs::read_dir(c.store().join("layers")).expect("layers").count(), 0, "layers go once unused");
}
