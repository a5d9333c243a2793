//! The remote's configuration: parsed from a URL
//! (`s3://bucket/prefix?endpoint=http://127.0.0.1:8333&region=us-east-1&mode=rw`), with
//! credentials and the signing secret from the environment.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;

/// The environment variable holding the remote URL (the CLI's `--remote`).
pub const REMOTE_ENV: &str = "JITCACHE_REMOTE";
/// The environment variable holding the shared signing secret.
pub const SECRET_ENV: &str = "JITCACHE_REMOTE_SECRET";
/// The environment variable naming a file that holds the shared signing secret.
pub const SECRET_FILE_ENV: &str = "JITCACHE_REMOTE_SECRET_FILE";

/// The query parameters a remote URL may carry.
const KNOWN: &str = "endpoint, region, mode, style, timeout_ms, connect_timeout_ms";

/// Whether this machine only reads the remote, or also uploads what it compiles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Read only (`mode=ro`, the default): developer machines.
    #[default]
    ReadOnly,
    /// Read and upload (`mode=rw`): CI machines that fill the remote.
    ReadWrite,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::ReadOnly => "ro",
            Mode::ReadWrite => "rw",
        })
    }
}

/// How the bucket appears in request URLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addressing {
    /// `http://endpoint/bucket/key` (`style=path`): the default with an explicit
    /// endpoint, what self-hosted servers (SeaweedFS, MinIO, Garage) expect.
    Path,
    /// `https://bucket.endpoint/key` (`style=virtual`): the default on AWS S3.
    VirtualHost,
}

/// Static credentials (from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// A session token, for temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The shared secret that signs remote objects. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret made of these bytes (at least one).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Option<Secret> {
        let bytes = bytes.into();
        (!bytes.is_empty()).then_some(Secret(bytes))
    }

    /// The secret's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Bounds on every remote call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Time to open a TCP connection (default 200 ms).
    pub connect_timeout: Duration,
    /// Time for one attempt of one operation, body included (default 1 s).
    pub op_timeout: Duration,
    /// Retries after a failed attempt that may succeed if tried again (default 1).
    pub retries: usize,
    /// Wait before the first retry (default 50 ms; the client library's default made a
    /// closed port take 1.6 s to fail).
    pub min_backoff: Duration,
    /// Longest wait between attempts (default 100 ms).
    pub max_backoff: Duration,
}

impl Limits {
    /// The longest one operation may take, all attempts and waits included: past this it
    /// is abandoned and counted as a timeout.
    pub fn deadline(&self) -> Duration {
        let attempts = u32::try_from(self.retries.saturating_add(1)).unwrap_or(u32::MAX);
        self.op_timeout
            .saturating_add(self.connect_timeout)
            .saturating_mul(attempts)
            .saturating_add(self.max_backoff.saturating_mul(attempts))
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connect_timeout: Duration::from_millis(200),
            op_timeout: Duration::from_secs(1),
            retries: 1,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(100),
        }
    }
}

/// When the circuit breaker opens, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Failures in a row (errors or timeouts; not misses) that open it (default 3).
    pub threshold: u32,
    /// How long the remote is skipped once it opened (default 30 s), by every process
    /// using the same local cache.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> BreakerConfig {
        BreakerConfig {
            threshold: 3,
            cooldown: Duration::from_secs(30),
        }
    }
}

/// Everything the remote tier needs to know.
///
/// ```
/// use jitcache_remote::{Mode, RemoteConfig};
///
/// let config = RemoteConfig::parse("s3://ci-cache/jit?endpoint=http://127.0.0.1:8333&mode=rw")?;
/// assert_eq!(config.bucket, "ci-cache");
/// assert_eq!(config.prefix, "jit");
/// assert_eq!(config.mode, Mode::ReadWrite);
/// # Ok::<(), jitcache_remote::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteConfig {
    /// The URL it was parsed from.
    pub url: String,
    /// The bucket.
    pub bucket: String,
    /// The key prefix inside the bucket (no leading or trailing `/`; may be empty).
    pub prefix: String,
    /// The S3 endpoint (`http://127.0.0.1:8333`); `None` for AWS S3 in `region`.
    pub endpoint: Option<String>,
    /// The signing region (`region=`, else `AWS_REGION`, else `AWS_DEFAULT_REGION`,
    /// else `us-east-1`).
    pub region: String,
    /// Read-only or read-write.
    pub mode: Mode,
    /// Path-style or virtual-host-style requests.
    pub addressing: Addressing,
    /// Static credentials; `None` uses the AWS profile files, else anonymous requests.
    pub credentials: Option<Credentials>,
    /// The shared signing secret: with it, objects are signed on upload and unsigned or
    /// wrongly signed objects are rejected on download.
    pub secret: Option<Secret>,
    /// Bounds on each call.
    pub limits: Limits,
    /// The circuit breaker.
    pub breaker: BreakerConfig,
    /// Uploads that may wait in the background queue; more are dropped (and counted).
    pub upload_queue: usize,
    /// How long dropping the remote waits for queued uploads (default 2 s).
    pub drain_timeout: Duration,
    /// Largest object accepted from the remote, uncompressed (default 256 MiB).
    pub max_object_size: u64,
}

impl RemoteConfig {
    /// Parses a remote URL, `s3://bucket[/prefix][?param=value&...]`, without looking at
    /// the environment (see [`RemoteConfig::from_env`]). Parameters: `endpoint` (an
    /// `http://` or `https://` URL), `region`, `mode` (`ro` or `rw`), `style` (`path` or
    /// `virtual`), `timeout_ms` and `connect_timeout_ms`.
    pub fn parse(url: &str) -> Result<RemoteConfig, Error> {
        let bad = |reason: &str| Error::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("expected it to start with s3://"))?;
        let (location, query) = match rest.split_once('?') {
            Some((location, query)) => (location, Some(query)),
            None => (rest, None),
        };
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket name after s3://"));
        }
        if bucket.contains('@') {
            return Err(bad(
                "credentials do not belong in the URL: use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ));
        }
        if !valid_bucket(bucket) {
            return Err(bad(&format!(
                "bucket name {bucket:?} must be 3 to 63 lowercase letters, digits, dots and hyphens"
            )));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|part| part == ".." || part == ".") {
            return Err(bad("the prefix may not contain . or .. segments"));
        }
        let mut config = RemoteConfig {
            url: url.to_owned(),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: None,
            region: String::new(),
            mode: Mode::default(),
            addressing: Addressing::VirtualHost,
            credentials: None,
            secret: None,
            limits: Limits::default(),
            breaker: BreakerConfig::default(),
            upload_queue: 256,
            drain_timeout: Duration::from_secs(2),
            max_object_size: 256 << 20,
        };
        let mut style = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value)
                .ok_or_else(|| bad(&format!("parameter {name:?} has a malformed %-escape")))?;
            let invalid = |reason: &str| Error::InvalidParameter {
                url: url.to_owned(),
                name: name.to_owned(),
                value: value.clone(),
                reason: reason.to_owned(),
            };
            match name {
                "endpoint" => {
                    let rest = value
                        .strip_prefix("http://")
                        .or_else(|| value.strip_prefix("https://"))
                        .ok_or_else(|| invalid("expected an http:// or https:// URL"))?;
                    if rest.trim_end_matches('/').is_empty() {
                        return Err(invalid("no host"));
                    }
                    config.endpoint = Some(value.trim_end_matches('/').to_owned());
                }
                "region" => {
                    if value.is_empty() {
                        return Err(invalid("empty"));
                    }
                    config.region = value.clone();
                }
                "mode" => {
                    config.mode = match value.as_str() {
                        "ro" | "read-only" | "readonly" => Mode::ReadOnly,
                        "rw" | "read-write" | "readwrite" => Mode::ReadWrite,
                        _ => return Err(invalid("expected ro or rw")),
                    }
                }
                "style" => {
                    style = Some(match value.as_str() {
                        "path" => Addressing::Path,
                        "virtual" => Addressing::VirtualHost,
                        _ => return Err(invalid("expected path or virtual")),
                    })
                }
                "timeout_ms" | "connect_timeout_ms" => {
                    let ms: u64 = value
                        .parse()
                        .ok()
                        .filter(|ms| (1..=600_000).contains(ms))
                        .ok_or_else(|| invalid("expected milliseconds, 1 to 600000"))?;
                    let slot = if name == "timeout_ms" {
                        &mut config.limits.op_timeout
                    } else {
                        &mut config.limits.connect_timeout
                    };
                    *slot = Duration::from_millis(ms);
                }
                _ => {
                    return Err(Error::UnknownParameter {
                        url: url.to_owned(),
                        name: name.to_owned(),
                        known: KNOWN,
                    });
                }
            }
        }
        config.addressing = style.unwrap_or(if config.endpoint.is_some() {
            Addressing::Path
        } else {
            Addressing::VirtualHost
        });
        Ok(config)
    }

    /// [`RemoteConfig::parse`], then the environment: the region from `AWS_REGION` or
    /// `AWS_DEFAULT_REGION` when the URL has none (else `us-east-1`), credentials from
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, and the
    /// signing secret from `JITCACHE_REMOTE_SECRET` or the file named by
    /// `JITCACHE_REMOTE_SECRET_FILE`.
    pub fn from_env(url: &str) -> Result<RemoteConfig, Error> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut config = RemoteConfig::parse(url)?;
        if config.region.is_empty() {
            config.region = env("AWS_REGION")
                .or_else(|| env("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".to_owned());
        }
        if let (Some(access_key_id), Some(secret_access_key)) =
            (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
        {
            config.credentials = Some(Credentials {
                access_key_id,
                secret_access_key,
                session_token: env("AWS_SESSION_TOKEN"),
            });
        }
        if let Some(text) = std::env::var_os(SECRET_ENV) {
            let secret = Secret::new(text.into_encoded_bytes()).ok_or(Error::EmptySecret {
                origin: SECRET_ENV.to_owned(),
            })?;
            config.secret = Some(secret);
        } else if let Some(path) = std::env::var_os(SECRET_FILE_ENV) {
            let path = PathBuf::from(path);
            let bytes = std::fs::read(&path).map_err(|source| Error::SecretFile {
                path: path.clone(),
                source,
            })?;
            let trimmed = bytes.trim_ascii_end().to_vec();
            config.secret = Some(Secret::new(trimmed).ok_or(Error::EmptySecret {
                origin: path.display().to_string(),
            })?);
        }
        Ok(config)
    }

    /// A short, stable name for this remote (bucket, prefix and endpoint), used to keep
    /// the state of different remotes apart in one local cache.
    pub fn id(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        for part in [
            self.endpoint.as_deref().unwrap_or(""),
            &self.bucket,
            &self.prefix,
        ] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        hasher.finalize().to_hex()[..16].to_owned()
    }
}

/// S3 bucket naming rules (the common subset every implementation accepts).
fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
}

/// Decodes `%XX` escapes (and `+` as a space would be wrong in an endpoint, so it stays).
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_url_parses() {
        let c = RemoteConfig::parse(
            "s3://jit-cache/team/a/?endpoint=http%3A%2F%2F127.0.0.1:8333/&region=eu-west-1&mode=rw&timeout_ms=1500",
        )
        .unwrap();
        assert_eq!(c.bucket, "jit-cache");
        assert_eq!(c.prefix, "team/a");
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.mode, Mode::ReadWrite);
        assert_eq!(c.addressing, Addressing::Path);
        assert_eq!(c.limits.op_timeout, Duration::from_millis(1500));
    }

    #[test]
    fn defaults_are_read_only_and_virtual_host_on_aws() {
        let c = RemoteConfig::parse("s3://bucket").unwrap();
        assert_eq!((c.prefix.as_str(), c.mode), ("", Mode::ReadOnly));
        assert_eq!(c.addressing, Addressing::VirtualHost);
        assert_eq!(c.endpoint, None);
        assert!(c.limits.deadline() <= Duration::from_secs(3));
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let cases = [
            ("http://bucket", "s3://"),
            ("s3://", "no bucket"),
            ("s3://B", "bucket name"),
            ("s3://key:secret@bucket", "credentials"),
            ("s3://bucket/../x", ".."),
            ("s3://bucket?mode=write", "ro or rw"),
            ("s3://bucket?endpoint=127.0.0.1:8333", "http://"),
            ("s3://bucket?style=dns", "path or virtual"),
            ("s3://bucket?timeout_ms=0", "milliseconds"),
            ("s3://bucket?colour=blue", "unknown parameter \"colour\""),
            ("s3://bucket?region=%zz", "%-escape"),
        ];
        for (url, needle) in cases {
            let err = RemoteConfig::parse(url).expect_err(url).to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn ids_differ_per_remote_and_secrets_never_print() {
        let a = RemoteConfig::parse("s3://bucket/a").unwrap();
        let b = RemoteConfig::parse("s3://bucket/b").unwrap();
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id(), RemoteConfig::parse("s3://bucket/a/").unwrap().id());
        let mut c = a.clone();
        c.secret = Secret::new("hunter2");
        c.credentials = Some(Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: "very-secret".into(),
            session_token: Some("token".into()),
        });
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("very-secret"));
        assert!(!shown.contains("token\""));
        assert_eq!(Secret::new(""), None);
    }
}
