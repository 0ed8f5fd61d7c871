//! A local APT repository the tests build: one `Architecture: all`
//! package made with `dpkg-deb`, indexed with `dpkg-scanpackages`, for a
//! machine to install from with `deb [trusted=yes] file:/srv/repo ./`
//! (no network, no mirror). What the seeds do with nginx from Debian's
//! mirror, done with a package whose every file the test knows.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The package's name, and what its command prints.
pub const PACKAGE: &str = "berth-hello";
pub const GREETING: &str = "hello from the local repository";
/// Where its service, enabled by the package, writes on boot.
pub const SERVICE_MARK: &str = "/run/berth-hello.started";

/// Builds the repository under `dir` (made if missing) and returns it:
/// `berth-hello_1.0_all.deb`, `Packages` and `Packages.gz`. The package
/// holds `/usr/bin/berth-hello` and a oneshot service enabled for
/// multi-user.target (the link is in the package, as a preset would make
/// it) that writes [`SERVICE_MARK`].
pub fn build(dir: &Path) -> PathBuf {
    let pkg = dir.join("pkg");
    let repo = dir.join("repo");
    fs::create_dir_all(pkg.join("DEBIAN")).expect("create the package tree");
    fs::create_dir_all(&repo).expect("create the repository dir");
    fs::write(
        pkg.join("DEBIAN/control"),
        format!(
            "Package: {PACKAGE}\nVersion: 1.0\nArchitecture: all\nMaintainer: berth tests <tests@berth.invalid>\n\
             Description: a package from the tests' own repository\n"
        ),
    )
    .unwrap();
    let bin = pkg.join("usr/bin/berth-hello");
    fs::create_dir_all(bin.parent().unwrap()).unwrap();
    fs::write(&bin, format!("#!/bin/sh\necho '{GREETING}'\n")).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let unit = pkg.join("usr/lib/systemd/system/berth-hello.service");
    fs::create_dir_all(unit.parent().unwrap()).unwrap();
    fs::write(
        &unit,
        format!(
            "[Unit]\nDescription=berth's test service\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\n\
             ExecStart=/bin/sh -c '/usr/bin/berth-hello > {SERVICE_MARK}'\n\n[Install]\nWantedBy=multi-user.target\n"
        ),
    )
    .unwrap();
    let wants = pkg.join("etc/systemd/system/multi-user.target.wants");
    fs::create_dir_all(&wants).unwrap();
    symlink("/usr/lib/systemd/system/berth-hello.service", wants.join("berth-hello.service")).unwrap();
    let deb = repo.join(format!("{PACKAGE}_1.0_all.deb"));
    sh(Command::new("dpkg-deb").args(["--root-owner-group", "-Zgzip", "--build"]).arg(&pkg).arg(&deb), "dpkg-deb");
    let out = Command::new("dpkg-scanpackages")
        .args([".", "/dev/null"])
        .current_dir(&repo)
        .output()
        .expect("run dpkg-scanpackages (apt-get install dpkg-dev)");
    assert!(out.status.success(), "dpkg-scanpackages failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("Package: {PACKAGE}")),
        "dpkg-scanpackages indexed nothing: {out:?}"
    );
    fs::write(repo.join("Packages"), &out.stdout).unwrap();
    sh(Command::new("gzip").args(["-k", "-9"]).arg(repo.join("Packages")), "gzip");
    repo
}

/// The shell line that points the machine's APT at the repository bound
/// at `/srv/repo` (and nothing else) and installs the package.
pub fn install_line() -> String {
    format!(
        "set -e; rm -f /etc/apt/sources.list.d/*; echo 'deb [trusted=yes] file:/srv/repo ./' > /etc/apt/sources.list; \
         apt-get -q update; DEBIAN_FRONTEND=noninteractive apt-get -q -y install {PACKAGE}"
    )
}

fn sh(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
}
