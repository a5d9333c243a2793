//! [`ObjectStore`] on S3-compatible storage through `opendal`, behind a synchronous API:
//! a private current-thread tokio runtime runs each call to completion, bounded by a
//! connect timeout, a per-attempt timeout, at most the configured retries with a short
//! backoff, and an overall deadline.

use std::sync::OnceLock;
use std::time::Duration;

use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::services::S3;
use opendal::{ErrorKind, HttpTransporter, Operator};
use opendal_http_transport_reqwest::ReqwestTransport;
use tokio::runtime::Runtime;

use crate::config::{Addressing, Limits, RemoteConfig};
use crate::error::Error;
use crate::object_store::{Failure, ObjectStore, Put};

/// Requests in flight at once in [`ObjectStore::get_many`].
const CONCURRENCY: usize = 16;

/// An S3 bucket (AWS S3, SeaweedFS, MinIO, Garage, Ceph RGW, ...).
///
/// The HTTP client and the runtime are made at the first request: a process whose
/// lookups are all local hits never pays for them (loading TLS roots and starting a
/// runtime cost ~10 ms).
pub struct S3Store {
    base: Operator,
    limits: Limits,
    bypass_proxy: bool,
    deadline: Duration,
    client: OnceLock<Result<Client, String>>,
}

/// The operator with its HTTP transport and layers, and the runtime that drives it.
struct Client {
    op: Operator,
    runtime: Runtime,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// Sets up the client for `config`. Makes no request: an unreachable server shows up
    /// as failed (counted) calls later, never here.
    pub fn new(config: &RemoteConfig) -> Result<S3Store, Error> {
        let client_err = |message: String| Error::Client {
            url: config.url.clone(),
            message,
        };
        let mut builder = S3::default()
            .bucket(&config.bucket)
            .root(&format!("/{}", config.prefix))
            .region(&config.region)
            // Probing EC2 instance metadata on a machine that is not an EC2 instance
            // costs a timeout per credential load.
            .disable_ec2_metadata();
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint(endpoint);
        }
        if config.addressing == Addressing::VirtualHost {
            builder = builder.enable_virtual_host_style();
        }
        if let Some(creds) = &config.credentials {
            builder = builder
                .access_key_id(&creds.access_key_id)
                .secret_access_key(&creds.secret_access_key);
            if let Some(token) = &creds.session_token {
                builder = builder.session_token(token);
            }
        }
        let base = Operator::new(builder).map_err(|e| client_err(e.to_string()))?;
        Ok(S3Store {
            base,
            limits: config.limits,
            bypass_proxy: config.endpoint.as_deref().is_some_and(is_loopback),
            deadline: config.limits.deadline(),
            client: OnceLock::new(),
        })
    }

    /// The client, made at the first call; an error if it cannot be made.
    fn client(&self) -> Result<&Client, Failure> {
        self.client
            .get_or_init(|| self.make_client())
            .as_ref()
            .map_err(|message| Failure::Other(message.clone()))
    }

    fn make_client(&self) -> Result<Client, String> {
        let limits = self.limits;
        let mut http = reqwest::Client::builder()
            .connect_timeout(limits.connect_timeout)
            .timeout(limits.op_timeout)
            .pool_idle_timeout(Duration::from_secs(30));
        if self.bypass_proxy {
            // A server on this machine is never behind the environment's HTTP proxy.
            http = http.no_proxy();
        }
        let http = http
            .build()
            .map_err(|e| format!("cannot make the HTTP client: {e}"))?;
        let context = self
            .base
            .base_context()
            .with_http_transport(HttpTransporter::new(ReqwestTransport::new(http)));
        let op = self
            .base
            .clone()
            .with_context(context)
            .layer(
                TimeoutLayer::new()
                    .with_timeout(limits.op_timeout)
                    .with_io_timeout(limits.op_timeout),
            )
            .layer(
                RetryLayer::new()
                    .with_max_times(limits.retries)
                    .with_min_delay(limits.min_backoff)
                    .with_max_delay(limits.max_backoff)
                    .with_jitter(),
            );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
        Ok(Client { op, runtime })
    }
}

/// Whether `endpoint` (`http://host:port/...`) names this machine.
fn is_loopback(endpoint: &str) -> bool {
    let rest = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Maps an `opendal` error onto a [`Failure`], with a one-line description: the kind,
/// the message and the chain of causes (the S3 error code, the refused connection).
fn failure(err: &opendal::Error) -> Failure {
    let mut text = format!("{}: {}", err.kind(), err.message());
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if text.len() > 400 {
        let mut cut = 400;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    let lower = text.to_ascii_lowercase();
    if err.kind() == ErrorKind::PermissionDenied {
        Failure::Denied(text)
    } else if lower.contains("timeout") || lower.contains("timed out") {
        Failure::Timeout(text)
    } else {
        Failure::Other(text)
    }
}

/// Reads `path`: `Ok(None)` when absent.
async fn read(op: Operator, path: String, deadline: Duration) -> Result<Option<Vec<u8>>, Failure> {
    match tokio::time::timeout(deadline, op.read(&path)).await {
        Err(_) => Err(Failure::Timeout(format!(
            "reading {path}: no answer within {deadline:?}"
        ))),
        Ok(Ok(buffer)) => Ok(Some(buffer.to_vec())),
        Ok(Err(e)) if e.kind() == ErrorKind::NotFound => Ok(None),
        Ok(Err(e)) => Err(failure(&e)),
    }
}

impl ObjectStore for S3Store {
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, Failure> {
        let c = self.client()?;
        c.runtime
            .block_on(read(c.op.clone(), path.to_owned(), self.deadline))
    }

    fn get_many(&self, paths: &[String]) -> Vec<Result<Option<Vec<u8>>, Failure>> {
        let c = match self.client() {
            Ok(c) => c,
            Err(failure) => return paths.iter().map(|_| Err(failure.clone())).collect(),
        };
        c.runtime.block_on(async {
            let mut results: Vec<Option<Result<Option<Vec<u8>>, Failure>>> =
                (0..paths.len()).map(|_| None).collect();
            let mut tasks = tokio::task::JoinSet::new();
            let mut next = 0;
            loop {
                while tasks.len() < CONCURRENCY && next < paths.len() {
                    let (op, path, deadline) = (c.op.clone(), paths[next].clone(), self.deadline);
                    let i = next;
                    tasks.spawn(async move { (i, read(op, path, deadline).await) });
                    next += 1;
                }
                match tasks.join_next().await {
                    Some(Ok((i, result))) => results[i] = Some(result),
                    // A task that panicked or was cancelled: its slot stays empty and is
                    // reported as a failure below.
                    Some(Err(_)) => {}
                    None => break,
                }
            }
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(Failure::Other("request task failed".into()))))
                .collect()
        })
    }

    fn put_if_absent(&self, path: &str, bytes: &[u8]) -> Result<Put, Failure> {
        let c = self.client()?;
        c.runtime.block_on(put(
            c.op.clone(),
            path.to_owned(),
            bytes.to_vec(),
            self.deadline,
        ))
    }

    fn put_many(&self, objects: Vec<(String, Vec<u8>)>) -> Vec<Result<Put, Failure>> {
        let c = match self.client() {
            Ok(c) => c,
            Err(failure) => return objects.iter().map(|_| Err(failure.clone())).collect(),
        };
        c.runtime.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            let count = objects.len();
            for (i, (path, bytes)) in objects.into_iter().enumerate() {
                let (op, deadline) = (c.op.clone(), self.deadline);
                tasks.spawn(async move { (i, put(op, path, bytes, deadline).await) });
            }
            let mut results: Vec<Option<Result<Put, Failure>>> = (0..count).map(|_| None).collect();
            while let Some(joined) = tasks.join_next().await {
                if let Ok((i, result)) = joined {
                    results[i] = Some(result);
                }
            }
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(Failure::Other("request task failed".into()))))
                .collect()
        })
    }
}

/// Creates `path` with `bytes` unless an object is there already.
async fn put(
    op: Operator,
    path: String,
    body: Vec<u8>,
    deadline: Duration,
) -> Result<Put, Failure> {
    let bounded =
        |what: &str| Failure::Timeout(format!("{what} {path}: no answer within {deadline:?}"));
    // A HEAD first: the common case in a fleet is that someone uploaded it already, and
    // then the body is not sent at all.
    match tokio::time::timeout(deadline, op.stat(&path)).await {
        Err(_) => return Err(bounded("checking")),
        Ok(Ok(_)) => return Ok(Put::Existed),
        Ok(Err(e)) if e.kind() == ErrorKind::NotFound => {}
        Ok(Err(e)) => return Err(failure(&e)),
    }
    // Then a create-only write (If-None-Match: *) where the service supports it, so two
    // machines racing on one key cannot replace each other's object.
    let conditional = op.info().capability().write_with_if_not_exists;
    let write = op.write_with(&path, body).if_not_exists(conditional);
    match tokio::time::timeout(deadline, write).await {
        Err(_) => Err(bounded("writing")),
        Ok(Ok(_)) => Ok(Put::Created),
        Ok(Err(e))
            if matches!(
                e.kind(),
                ErrorKind::ConditionNotMatch | ErrorKind::AlreadyExists
            ) =>
        {
            Ok(Put::Existed)
        }
        Ok(Err(e)) => Err(failure(&e)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_endpoints_are_recognised() {
        for yes in [
            "http://127.0.0.1:8333",
            "http://localhost:9000/",
            "http://[::1]:8333",
            "http://127.0.0.2",
        ] {
            assert!(super::is_loopback(yes), "{yes}");
        }
        for no in [
            "https://s3.amazonaws.com",
            "http://10.0.0.1:8333",
            "http://minio.internal:9000",
        ] {
            assert!(!super::is_loopback(no), "{no}");
        }
    }
}
