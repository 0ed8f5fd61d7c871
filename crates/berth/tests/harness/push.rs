//! Putting images into a test registry: a small HTTP push of our own (exact
//! bytes, any media type) and `skopeo copy` from an OCI layout.

use std::process::Command;
use std::time::Duration;

use super::oci::{Blob, Image, Index};
use super::registry::Registry;

impl Registry {
    fn agent(&self) -> ureq::Agent {
        ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build()
    }

    fn with_auth(&self, req: ureq::Request) -> ureq::Request {
        match self.auth_header() {
            Some(h) => req.set("Authorization", &h),
            None => req,
        }
    }

    /// Uploads one blob to `repo` (monolithic POST + PUT).
    pub fn push_blob(&self, repo: &str, blob: &Blob) {
        let agent = self.agent();
        let start = self
            .with_auth(agent.post(&self.url(&format!("/v2/{repo}/blobs/uploads/"))))
            .call()
            .unwrap_or_else(|e| panic!("start upload of {} to {repo}: {e}", blob.digest));
        let location =
            start.header("Location").unwrap_or_else(|| panic!("upload of {} has no Location", blob.digest)).to_string();
        let mut url = if location.starts_with('/') { self.url(&location) } else { location };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest=sha256%3A{}", blob.hex()));
        self.with_auth(agent.put(&url))
            .set("Content-Type", "application/octet-stream")
            .send_bytes(&blob.data)
            .unwrap_or_else(|e| panic!("finish upload of {} to {repo}: {e}", blob.digest));
    }

    /// PUTs raw manifest bytes as `repo:reference` with `media_type`.
    pub fn push_manifest_bytes(&self, repo: &str, reference: &str, media_type: &str, data: &[u8]) {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let resp = self
            .with_auth(self.agent().put(&url))
            .set("Content-Type", media_type)
            .send_bytes(data)
            .unwrap_or_else(|e| panic!("push manifest {repo}:{reference}: {}", describe(e)));
        let want = super::oci::sha256_digest(data);
        let got = resp.header("Docker-Content-Digest").unwrap_or("");
        assert_eq!(got, want, "registry stored {repo}:{reference} under another digest");
    }

    /// PUTs a manifest blob as `repo:reference`.
    pub fn push_manifest(&self, repo: &str, reference: &str, manifest: &Blob) {
        self.push_manifest_bytes(repo, reference, &manifest.media_type, &manifest.data);
    }

    /// Pushes an image's blobs and its manifest as `repo:tag`.
    pub fn push_image(&self, repo: &str, tag: &str, image: &Image) {
        for b in image.blobs() {
            self.push_blob(repo, b);
        }
        self.push_manifest(repo, tag, &image.manifest);
    }

    /// Pushes every image of an index (by digest), then the index as `repo:tag`.
    pub fn push_index(&self, repo: &str, tag: &str, index: &Index) {
        for i in &index.images {
            let digest = i.digest().to_string();
            self.push_image(repo, &digest, i);
        }
        self.push_manifest(repo, tag, &index.index);
    }

    /// GETs a manifest and returns (content type, bytes).
    pub fn get_manifest(&self, repo: &str, reference: &str) -> (String, Vec<u8>) {
        let accept = [
            super::oci::MT_MANIFEST,
            super::oci::MT_INDEX,
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ]
        .join(", ");
        let resp = self
            .with_auth(self.agent().get(&self.url(&format!("/v2/{repo}/manifests/{reference}"))))
            .set("Accept", &accept)
            .call()
            .unwrap_or_else(|e| panic!("get manifest {repo}:{reference}: {}", describe(e)));
        let ct = resp.content_type().to_string();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).expect("read manifest");
        (ct, body)
    }

    /// `skopeo copy` of `layout:tag` to `repo:tag` here, digests preserved
    /// (`--all` copies an index with all its images).
    pub fn skopeo_push(&self, layout: &std::path::Path, tag: &str, repo: &str, all: bool) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false"]);
        if all {
            cmd.arg("--all");
        }
        if let Some((u, p)) = self.creds() {
            cmd.arg("--dest-creds").arg(format!("{u}:{p}"));
        }
        cmd.arg(format!("oci:{}:{tag}", layout.display())).arg(format!("docker://{}/{repo}:{tag}", self.host()));
        let out = cmd.output().expect("run skopeo (apt-get install skopeo)");
        assert!(out.status.success(), "skopeo copy to {repo}:{tag} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// A ureq error with the response body, which carries the registry's reason.
fn describe(e: ureq::Error) -> String {
    match e {
        ureq::Error::Status(code, resp) => {
            format!("HTTP {code}: {}", resp.into_string().unwrap_or_default())
        }
        other => other.to_string(),
    }
}
