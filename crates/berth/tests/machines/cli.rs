//! Shell completions and man pages generated from the clap definitions.

use std::fs;

use crate::harness::Berth;

#[test]
fn bash_completions_know_the_verbs() {
    let berth = Berth::new();
    let out = berth.run(["completions", "bash"]).success().stdout;
    assert!(
        out.contains("complete ") && out.contains("berth"),
        "not a bash completion script:\n{}",
        &out[..out.len().min(500)]
    );
    for verb in ["pull", "import", "export", "machines", "clone", "commit", "push", "bootstrap"] {
        assert!(out.contains(verb), "bash completions do not mention `{verb}`");
    }
    // bash itself accepts it.
    let script = berth.dir().join("berth.bash");
    fs::write(&script, &out).unwrap();
    let st = std::process::Command::new("bash").arg("-n").arg(&script).status().unwrap();
    assert!(st.success(), "bash -n rejects the completion script");
}

#[test]
fn generate_man_writes_roff_pages_for_berth_and_its_verbs() {
    let berth = Berth::new();
    let dir = berth.new_dir("man");
    berth.run(["generate-man".as_ref(), dir.as_os_str()]).success();
    for page in ["berth.1", "berth-pull.1", "berth-import.1", "berth-machines.1", "berth-export.1"] {
        let text = fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(!text.trim().is_empty(), "{page} is empty");
        assert!(text.contains(".TH"), "{page} is not roff (no .TH):\n{}", &text[..text.len().min(300)]);
    }
    let main = fs::read_to_string(dir.join("berth.1")).unwrap();
    assert!(main.contains("pull"), "berth.1 does not list `pull`");
    // man can render it, if installed.
    if std::path::Path::new("/usr/bin/man").exists() {
        let out = std::process::Command::new("man")
            .arg("-l")
            .arg(dir.join("berth-pull.1"))
            .env("MANPAGER", "cat")
            .output()
            .unwrap();
        assert!(out.status.success(), "man -l berth-pull.1 failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}
