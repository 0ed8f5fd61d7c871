//! A throwaway Docker registry (Debian's `docker-registry`) on 127.0.0.1.
//!
//! Each `Registry` has its own port, storage directory and (optionally)
//! htpasswd basic auth, and is killed when dropped.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    creds: Option<(String, String)>,
}

impl Registry {
    /// Starts an open registry.
    pub fn start() -> Registry {
        Registry::launch(None)
    }

    /// Starts a registry that requires basic auth as `user:pass`.
    pub fn start_with_auth(user: &str, pass: &str) -> Registry {
        Registry::launch(Some((user.to_string(), pass.to_string())))
    }

    fn launch(mut creds: Option<(String, String)>) -> Registry {
        let mut last_log = String::new();
        // A port picked from the kernel may be taken by a parallel test
        // before the registry binds it: then the registry exits and we retry.
        for _ in 0..5 {
            let dir = tempfile::Builder::new().prefix("berth-registry-").tempdir().expect("registry temp dir");
            let port = free_port();
            let config = write_config(dir.path(), port, creds.as_ref());
            let log = fs::File::create(dir.path().join("registry.log")).expect("registry log");
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log"))
                .stderr(log)
                .spawn()
                .expect("spawn docker-registry (apt-get install docker-registry)");
            let mut reg = Registry { child, dir, port, creds };
            if reg.wait_ready() {
                return reg;
            }
            last_log = fs::read_to_string(reg.dir.path().join("registry.log")).unwrap_or_default();
            creds = reg.creds.take();
        }
        panic!("docker-registry did not come up after 5 tries; last log:\n{last_log}");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(2)).build();
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            match agent.get(&self.url("/v2/")).call() {
                Ok(r) if r.status() == 200 => return true,
                Err(ureq::Error::Status(401, _)) if self.creds.is_some() => return true,
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        false
    }

    /// `127.0.0.1:PORT`, the registry part of a reference.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Full reference `127.0.0.1:PORT/repo:tag`.
    pub fn reference(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.host())
    }

    /// `http://127.0.0.1:PORT` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.host())
    }

    /// The registry's filesystem storage root.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The credentials the registry demands, if any.
    pub fn creds(&self) -> Option<(&str, &str)> {
        self.creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// `Authorization` header value for the registry's credentials.
    pub fn auth_header(&self) -> Option<String> {
        self.creds().map(|(u, p)| {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            format!("Basic {token}")
        })
    }

    /// The data file of a pushed blob, to corrupt or truncate it.
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        let p = self.storage_dir().join("docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data");
        assert!(p.is_file(), "blob {digest} is not in registry storage at {}", p.display());
        p
    }

    /// The registry's log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind an ephemeral port").port()
}

fn write_config(dir: &Path, port: u16, creds: Option<&(String, String)>) -> PathBuf {
    let storage = dir.join("storage");
    fs::create_dir_all(&storage).expect("registry storage dir");
    let mut yaml = format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n",
        storage.display()
    );
    if let Some((user, pass)) = creds {
        let out = Command::new("htpasswd")
            .args(["-Bbn", user, pass])
            .output()
            .expect("run htpasswd (apt-get install apache2-utils)");
        assert!(out.status.success(), "htpasswd failed: {out:?}");
        let file = dir.join("htpasswd");
        fs::write(&file, &out.stdout).expect("write htpasswd file");
        yaml.push_str(&format!("auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n", file.display()));
    }
    let path = dir.join("config.yml");
    fs::write(&path, yaml).expect("write registry config");
    path
}
