//! `berth import` of image archives: an OCI layout directory, an
//! oci-archive, docker-archives written by `skopeo copy`, and appc ACIs.
//! Trees are compared with `umoci unpack` of the same image.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use super::{assert_nothing_attached, assert_same, host, image_id, image_names, image_tree, printed_id, q};
use crate::harness::tree;
use crate::harness::{fixtures, umoci, Berth, Image};

fn umoci_tree(image: &Image) -> tree::Tree {
    let u = umoci::unpack(image);
    tree::snapshot(&u.rootfs)
}

#[test]
fn oci_layout_directory_keeps_the_image_id_and_tree() {
    let berth = Berth::new();
    let image = fixtures::multilayer();
    let layout = berth.dir().join("mylayout");
    image.write_layout(&layout, "v1");
    let run = berth.run(["import".as_ref(), layout.as_os_str()]).success();
    assert_eq!(printed_id(&run), image.id(), "an OCI image keeps its config digest as ID");
    let names = image_names(&berth);
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("localhost/mylayout"), "default name from the directory: {names:?}");
    assert_same(&image_tree(&berth, &names[0]), &umoci_tree(&image), &["."], "OCI layout import vs umoci");
    // Forcing the format works as well.
    berth
        .run(["import".as_ref(), layout.as_os_str(), "forced".as_ref(), "--format".as_ref(), "oci".as_ref()])
        .success();
    assert_eq!(image_id(&berth, "forced"), image.id());
}

#[test]
fn oci_layout_with_two_tags_imports_the_one_named_by_image() {
    let berth = Berth::new();
    let (a, b) = (fixtures::tiny("first"), fixtures::tiny("second"));
    let layout = berth.dir().join("two");
    a.write_layout(&layout, "a");
    b.write_layout(&layout, "b");
    let run = berth
        .run(["import".as_ref(), layout.as_os_str(), "picked".as_ref(), "--image".as_ref(), "b".as_ref()])
        .success();
    assert_eq!(printed_id(&run), b.id(), "--image b must pick the image tagged b");
    let mnt = berth.mount("picked");
    let marker = fs::read_to_string(mnt.join("etc/marker")).unwrap();
    berth.unmount(&mnt);
    assert_eq!(marker, "second");
    let before = super::listing(&berth);
    berth
        .run(["import".as_ref(), layout.as_os_str(), "none".as_ref(), "--image".as_ref(), "c".as_ref()])
        .failure()
        .mentions_any(&["c"]);
    before.assert_unchanged(&super::listing(&berth), "--image naming a missing tag");
}

#[test]
fn oci_archive_plain_and_compressed() {
    let berth = Berth::new();
    let image = fixtures::special();
    let layout = berth.dir().join("layout");
    image.write_layout(&layout, "latest");
    let archive = berth.dir().join("special-oci.tar");
    host(Command::new("tar").arg("-C").arg(&layout).arg("-cf").arg(&archive).arg("."));
    let run = berth.run(["import".as_ref(), archive.as_os_str(), "arch".as_ref()]).success();
    assert_eq!(printed_id(&run), image.id());
    let want = umoci_tree(&image);
    assert_same(&image_tree(&berth, "arch"), &want, &["."], "oci-archive import vs umoci");
    // skopeo reads the same archive: berth and skopeo agree on what it is.
    let sk = host(Command::new("skopeo").arg("inspect").arg(format!("oci-archive:{}", archive.display())));
    let sk: Value = serde_json::from_str(&sk).unwrap();
    assert_eq!(sk["Digest"], image.digest());

    let gz = super::compress_file("gzip", &archive, "gz");
    berth
        .run(["import".as_ref(), gz.as_os_str(), "archgz".as_ref(), "--format".as_ref(), "oci-archive".as_ref()])
        .success();
    assert_eq!(image_id(&berth, "archgz"), image.id());
    // Detected from content as well.
    berth.run(["import".as_ref(), gz.as_os_str(), "archgz-auto".as_ref()]).success();
    assert_eq!(image_id(&berth, "archgz-auto"), image.id());
}

/// `skopeo copy oci:LAYOUT:latest docker-archive:FILE:NAME`.
fn docker_archive(berth: &Berth, image: &Image, file: &Path, name: &str) {
    let layout = berth.dir().join(format!("layout-{}", crate::harness::berth::unique()));
    image.write_layout(&layout, "latest");
    let _ = fs::remove_file(file);
    host(
        Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker-archive:{}:{name}", file.display())),
    );
}

#[test]
fn docker_archive_from_skopeo_gets_its_repo_tags_as_names() {
    let berth = Berth::new();
    let image = fixtures::multilayer();
    let file = berth.dir().join("saved.tar");
    docker_archive(&berth, &image, &file, "example.com/team/app:v2");
    berth.run(["import".as_ref(), file.as_os_str()]).success();
    let names = image_names(&berth);
    assert!(
        names.iter().any(|n| n == "example.com/team/app:v2"),
        "the archive's RepoTags (example.com/team/app:v2) must name the image: {names:?}"
    );
    assert_same(&image_tree(&berth, "example.com/team/app:v2"), &umoci_tree(&image), &["."], "docker-archive vs umoci");
    // The config (Cmd, Env) survives the trip.
    let cfg = berth.inspect("example.com/team/app:v2");
    assert_eq!(cfg["config"]["config"]["Cmd"], json!(["/bin/sh"]), "{cfg}");
    assert_nothing_attached(&berth, "docker-archive import");

    // Without RepoTags, the file's stem names it.
    let bare = berth.dir().join("untagged.tar");
    let layout = berth.dir().join("untagged-layout");
    image.write_layout(&layout, "latest");
    host(
        Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker-archive:{}", bare.display())),
    );
    berth.run(["import".as_ref(), bare.as_os_str()]).success();
    assert!(image_names(&berth).contains(&"localhost/untagged:latest".to_string()), "{:?}", image_names(&berth));
}

#[test]
fn docker_save_piped_to_import_dash() {
    let berth = Berth::new();
    let image = fixtures::busybox();
    let file = berth.dir().join("bb.tar");
    docker_archive(&berth, &image, &file, "docker.io/library/busybox:latest");
    let run = super::run_with_stdin(&berth, ["import", "-"], &file).success();
    let id = printed_id(&run);
    let names = image_names(&berth);
    assert!(names.contains(&"docker.io/library/busybox:latest".to_string()), "{names:?}");
    assert_eq!(image_id(&berth, "busybox"), id, "`busybox` is docker.io/library/busybox:latest");
    assert_same(&image_tree(&berth, "busybox"), &umoci_tree(&image), &["."], "docker save | berth import -");
    let o = berth.run(["run", "busybox", "echo", "hello"]).success();
    assert_eq!(o.stdout, "hello\n");
}

#[test]
fn docker_archive_with_two_images_is_picked_by_name() {
    let berth = Berth::new();
    let (one, two) = (fixtures::tiny("one"), fixtures::tiny("two"));
    let (f1, f2) = (berth.dir().join("one.tar"), berth.dir().join("two.tar"));
    docker_archive(&berth, &one, &f1, "registry.test/one:1");
    docker_archive(&berth, &two, &f2, "registry.test/two:2");
    // Merge the two `docker save` archives into one, as `docker save a b` writes.
    let merged = berth.new_dir("merged");
    let (d1, d2) = (berth.new_dir("x1"), berth.new_dir("x2"));
    host(Command::new("tar").arg("-xf").arg(&f1).arg("-C").arg(&d1));
    host(Command::new("tar").arg("-xf").arg(&f2).arg("-C").arg(&d2));
    let mut manifest: Vec<Value> = Vec::new();
    for d in [&d1, &d2] {
        let m: Vec<Value> = serde_json::from_slice(&fs::read(d.join("manifest.json")).unwrap()).unwrap();
        manifest.extend(m);
        host(Command::new("sh").arg("-c").arg(format!("cp -an {}/. {}/", q(d), q(&merged))));
    }
    fs::write(merged.join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();
    let _ = fs::remove_file(merged.join("repositories"));
    let archive = berth.dir().join("both.tar");
    host(Command::new("tar").arg("-C").arg(&merged).arg("-cf").arg(&archive).arg("."));

    berth.run(["import".as_ref(), archive.as_os_str(), "--image".as_ref(), "registry.test/two:2".as_ref()]).success();
    let names = image_names(&berth);
    assert!(names.contains(&"registry.test/two:2".to_string()), "{names:?}");
    assert!(!names.contains(&"registry.test/one:1".to_string()), "--image two imported one as well: {names:?}");
    let mnt = berth.mount("registry.test/two:2");
    let marker = fs::read_to_string(mnt.join("etc/marker")).unwrap();
    berth.unmount(&mnt);
    assert_eq!(marker, "two");
    berth.run(["import".as_ref(), archive.as_os_str(), "--image".as_ref(), "registry.test/one:1".as_ref()]).success();
    let mnt = berth.mount("registry.test/one:1");
    let marker = fs::read_to_string(mnt.join("etc/marker")).unwrap();
    berth.unmount(&mnt);
    assert_eq!(marker, "one");
}

pub const ACI_MANIFEST: &str = r#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/app","labels":[{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}],"app":{"exec":["/bin/sh","-c","echo aci"],"user":"0","group":"0","workingDirectory":"/tmp","environment":[{"name":"FOO","value":"bar"}]}}"#;

/// An ACI: `manifest` and the busybox root under `rootfs/`.
fn aci(dir: &Path) -> (PathBuf, PathBuf) {
    let bb = fixtures::busybox();
    let layer = bb.layers[0].tar.clone().unwrap();
    // The expected root: the busybox layer extracted.
    let root = dir.join("aci-root");
    fs::create_dir_all(&root).unwrap();
    let t = dir.join("bb.tar");
    fs::write(&t, &layer).unwrap();
    host(Command::new("tar").args(["--numeric-owner", "-xpf"]).arg(&t).arg("-C").arg(&root));
    host(Command::new("chmod").arg("0755").arg(&root));
    let stage = dir.join("aci-stage");
    fs::create_dir_all(stage.join("rootfs")).unwrap();
    host(Command::new("cp").arg("-a").arg(format!("{}/.", root.display())).arg(stage.join("rootfs")));
    fs::write(stage.join("manifest"), ACI_MANIFEST).unwrap();
    let file = dir.join("app.aci");
    host(Command::new("sh").arg("-c").arg(format!("tar -C {} -cf - manifest rootfs | gzip > {}", q(&stage), q(&file))));
    (file, root)
}

#[test]
fn aci_manifest_becomes_the_image_config() {
    let berth = Berth::new();
    let (file, root) = aci(berth.dir());
    let run = berth.run(["import".as_ref(), file.as_os_str(), "aciapp".as_ref()]).success();
    let id = printed_id(&run);
    assert_eq!(image_id(&berth, "aciapp"), id);
    assert_same(&image_tree(&berth, "aciapp"), &tree::snapshot(&root), &[], "ACI rootfs");
    let v = berth.inspect("aciapp");
    let c = &v["config"]["config"];
    assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo aci"]), "exec → Cmd: {v}");
    let env: Vec<String> = c["Env"]
        .as_array()
        .unwrap_or_else(|| panic!("Env: {v}"))
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    assert!(env.contains(&"FOO=bar".to_string()), "environment → Env: {env:?}");
    assert_eq!(c["WorkingDir"], "/tmp", "workingDirectory → WorkingDir: {v}");
    let user = c["User"].as_str().unwrap_or("");
    assert!(user == "0:0" || user == "0", "user/group → User: {v}");
    assert_eq!(v["config"]["architecture"], "amd64", "{v}");
    assert_eq!(v["config"]["os"], "linux", "{v}");

    // And `run` uses it: the default command, the env and the workdir.
    let o = berth.run(["run", "aciapp"]).success();
    assert_eq!(o.stdout, "aci\n", "{o:?}");
    let o = berth.run(["run", "aciapp", "/bin/sh", "-c", "echo $FOO; pwd; id -u"]).success();
    assert_eq!(o.stdout, "bar\n/tmp\n0\n", "{o:?}");
}

#[test]
fn aci_without_a_name_gets_one_and_forced_format_works() {
    let berth = Berth::new();
    let (file, root) = aci(berth.dir());
    berth.run(["import".as_ref(), file.as_os_str(), "--format".as_ref(), "aci".as_ref()]).success();
    let names = image_names(&berth);
    assert!(
        names == ["example.com/app:latest"] || names == ["localhost/app:latest"],
        "an ACI is named after its manifest's name (or file): {names:?}"
    );
    assert_same(&image_tree(&berth, &names[0]), &tree::snapshot(&root), &[], "ACI with --format aci");
    // The manifest is config, not content.
    let o = berth.run([
        "run",
        names[0].as_str(),
        "/bin/sh",
        "-c",
        "test -e /manifest && echo leaked; test -e /rootfs && echo nested; true",
    ]);
    assert_eq!(o.success().stdout, "", "manifest or rootfs/ leaked into the root");
}
