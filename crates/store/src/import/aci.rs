//! appc ACI images: a JSON `manifest` beside `rootfs/`. The app's exec,
//! environment, user, group and working directory, and the `arch` label,
//! become the image config. Pure: [`Manifest::parse`] takes the bytes an
//! archive holds, which its author chose (`tests/fuzz/aci.rs` fuzzes it).

use serde_json::Value;

/// A parsed ACI image manifest (`acKind` is `ImageManifest`).
#[derive(Debug, Clone)]
pub struct Manifest(Value);

impl Manifest {
    /// Parses a manifest's bytes; `Err` says what is wrong with them.
    pub fn parse(body: &[u8]) -> Result<Manifest, String> {
        let m: Value = serde_json::from_slice(body).map_err(|e| format!("malformed ACI manifest: {e}"))?;
        if m.get("acKind").and_then(|k| k.as_str()) != Some("ImageManifest") {
            return Err("the ACI manifest's acKind is not ImageManifest".into());
        }
        Ok(Manifest(m))
    }

    /// The image's name, when the manifest gives one.
    pub fn name(&self) -> Option<&str> {
        self.0.get("name").and_then(|n| n.as_str())
    }

    /// The value of label `k` (`arch`, `os`, `version`).
    fn label(&self, k: &str) -> Option<&str> {
        self.0
            .get("labels")
            .and_then(|l| l.as_array())
            .into_iter()
            .flatten()
            .find(|l| l.get("name").and_then(|n| n.as_str()) == Some(k))
            .and_then(|l| l.get("value"))
            .and_then(|v| v.as_str())
    }

    /// Writes the manifest's architecture and app into `config`, an OCI
    /// image config object.
    pub fn apply(&self, config: &mut serde_json::Map<String, Value>) {
        if let Some(a) = self.label("arch") {
            config.insert("architecture".into(), berth_oci::platform::normalize_arch(a).into());
        }
        let Some(app) = self.0.get("app") else { return };
        let mut c = match config.remove("config") {
            Some(Value::Object(c)) => c,
            _ => serde_json::Map::new(),
        };
        if let Some(exec) = app.get("exec").and_then(|e| e.as_array()) {
            c.insert("Cmd".into(), Value::Array(exec.clone()));
        }
        let mut env = vec![Value::from("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")];
        for e in app.get("environment").and_then(|e| e.as_array()).into_iter().flatten() {
            if let (Some(n), Some(v)) =
                (e.get("name").and_then(|x| x.as_str()), e.get("value").and_then(|x| x.as_str()))
            {
                env.push(format!("{n}={v}").into());
            }
        }
        c.insert("Env".into(), env.into());
        let user = app.get("user").and_then(|u| u.as_str()).unwrap_or("");
        let group = app.get("group").and_then(|u| u.as_str()).unwrap_or("");
        if !user.is_empty() {
            c.insert("User".into(), if group.is_empty() { user.to_string() } else { format!("{user}:{group}") }.into());
        }
        if let Some(wd) = app.get("workingDirectory").and_then(|w| w.as_str()) {
            c.insert("WorkingDir".into(), wd.into());
        }
        config.insert("config".into(), Value::Object(c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_and_arch_become_the_config() {
        let m = Manifest::parse(
            br#"{"acKind":"ImageManifest","name":"example.com/app","labels":[{"name":"arch","value":"aarch64"}],
                 "app":{"exec":["/bin/app","-v"],"user":"1000","group":"100","workingDirectory":"/srv",
                        "environment":[{"name":"A","value":"1"}]}}"#,
        )
        .unwrap();
        assert_eq!(m.name(), Some("example.com/app"));
        let mut config = serde_json::json!({ "architecture": "amd64", "config": { "Cmd": ["/bin/sh"] } });
        m.apply(config.as_object_mut().unwrap());
        assert_eq!(config["architecture"], "arm64");
        assert_eq!(config["config"]["Cmd"], serde_json::json!(["/bin/app", "-v"]));
        assert_eq!(config["config"]["User"], "1000:100");
        assert_eq!(config["config"]["WorkingDir"], "/srv");
        assert_eq!(config["config"]["Env"][1], "A=1");
        assert!(Manifest::parse(br#"{"acKind":"PodManifest"}"#).is_err());
        assert!(Manifest::parse(b"[").is_err());
    }
}
