//! `registries.toml` (`registry::config`): a config file that may be
//! hand-edited, half-written or from another tool.

use crate::mutate::{apply, edits};
use crate::support::{bounded, config, PARSER_BUDGET};
use berth_oci::registry::RegistriesConfig;
use proptest::prelude::*;
use std::path::Path;

const VALID: &str = r#"
[[registry]]
location = "example.com"
insecure = false
[[registry]]
location = "example.com/team"
insecure = true
[[registry.mirror]]
location = "127.0.0.1:5001/cache"
insecure = true
"#;

fn check(text: &str, registry: &str, repository: &str) {
    if let Ok(cfg) = bounded(PARSER_BUDGET, || RegistriesConfig::parse(text, Path::new("registries.toml"))) {
        if let Some(e) = bounded(PARSER_BUDGET, || cfg.entry_for(registry, repository)) {
            let _ = (e.insecure, e.mirror.len());
        }
    }
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn any_text(text in any::<String>(), reg in ".{0,12}") {
        check(&text, &reg, "x/y");
    }

    #[test]
    fn toml_shaped(
        lines in prop::collection::vec(
            prop_oneof![
                Just("[[registry]]".to_string()),
                Just("[[registry.mirror]]".to_string()),
                Just("[registry]".to_string()),
                "location = \"[a-z0-9.:/\\[\\]-]{0,20}\"",
                "insecure = (true|false|1|\"yes\")",
                "[a-z.]{1,10} = .{0,10}",
                ".{0,20}",
            ],
            0..12,
        ),
        reg in prop_oneof![Just("example.com".to_string()), ".{0,12}"],
    ) {
        check(&lines.join("\n"), &reg, "team/app");
    }

    #[test]
    fn bytes_of_a_valid_file_edited(e in edits(8), reg in prop_oneof![Just("example.com".to_string()), ".{0,12}"]) {
        let mut b = VALID.as_bytes().to_vec();
        apply(&mut b, &e);
        check(&String::from_utf8_lossy(&b), &reg, "team/app");
    }
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    for (open, close) in [("[", "]"), ("{a=", "}")] {
        let text = format!("x = {}1{}", open.repeat(50_000), close.repeat(50_000));
        assert!(RegistriesConfig::parse(&text, Path::new("r.toml")).is_err());
    }
}
