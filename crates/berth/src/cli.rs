//! The command line, defined once: it feeds `--help`, the man page and the
//! shell completions. Verb and flag names follow ../shared/SPEC.md.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "Run Linux containers and machines without Docker",
    propagate_version = true
)]
pub struct Cli {
    /// Store directory
    #[arg(long, global = true, env = "BERTH_ROOT", default_value = "/var/lib/berth", value_name = "DIR")]
    pub root: PathBuf,
    /// Log what berth does to stderr (RUST_LOG syntax also works)
    #[arg(long, global = true, hide = true)]
    pub debug: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Pull an image from a registry into the store
    Pull(PullArgs),
    /// List images
    Images(JsonArg),
    /// Show an image's config, layers, sizes, digests and platform
    Inspect(InspectArgs),
    /// Remove image names, and images no name points at any more
    Rmi(RmiArgs),
    /// Give an image another name
    Tag { src: String, dst: String },
    /// Remove everything no image references
    Gc(JsonArg),
    /// Mount an image's root filesystem read-only at DIR
    Mount { image: String, dir: PathBuf },
    /// Unmount what `berth mount` mounted
    Unmount { dir: PathBuf },
    /// Store credentials for a registry
    Login(LoginArgs),
    /// Remove stored credentials for a registry
    Logout(LogoutArgs),
    /// Print shell completions
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// Write man pages into DIR
    #[command(hide = true, name = "generate-man")]
    GenerateMan { dir: PathBuf },
}

#[derive(Args, Debug)]
pub struct JsonArg {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Verify TLS and refuse plain http (false: allow both)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub tls_verify: Option<bool>,
    /// Credentials for the registry
    #[arg(long, value_name = "USER[:PASS]")]
    pub creds: Option<String>,
    /// Auth file to read credentials from (containers auth.json format)
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Image reference: alpine, alpine:3.20, host:5000/x/y:z, name@sha256:…
    pub reference: String,
    /// Platform to pull from a multi-platform image
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Also name the image NAME in the store
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print nothing but the image ID
    #[arg(short, long)]
    pub quiet: bool,
    /// Refuse layers that unpack to more than SIZE (e.g. 500M, 20G)
    #[arg(long, value_name = "SIZE", default_value = "64G")]
    pub max_layer_size: String,
    /// Layers downloaded at once
    #[arg(long, default_value_t = 3, hide = true)]
    pub jobs: usize,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    pub name: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Remove an image by ID even when several names point at it
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Registry host[:port]
    pub registry: String,
    #[arg(short, long)]
    pub username: Option<String>,
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    pub password_stdin: bool,
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub tls_verify: Option<bool>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// Registry host[:port]
    pub registry: String,
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
}

/// Parses `500M`, `20G`, `1048576` into bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = s[i..].to_ascii_lowercase();
            let m: u64 = match unit.trim_end_matches("ib").trim_end_matches('b') {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                "t" => 1 << 40,
                _ => return Err(format!("invalid size {s:?}: use a number with an optional K, M, G or T suffix")),
            };
            (&s[..i], m)
        }
        None => (s, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid size {s:?}: use a number with an optional K, M, G or T suffix"))?;
    n.checked_mul(mult).ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("10").unwrap(), 10);
        assert_eq!(super::parse_size("2k").unwrap(), 2048);
        assert_eq!(super::parse_size("64G").unwrap(), 64 << 30);
        assert_eq!(super::parse_size("1MiB").unwrap(), 1 << 20);
        assert!(super::parse_size("x").is_err());
        assert!(super::parse_size("5Q").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
