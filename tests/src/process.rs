//! Starting the gateway's binaries as child processes.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Directory holding the workspace's binaries, built once per test run with the same profile
/// as the tests (so `cargo test` alone is enough).
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/<test> -> target/<profile>
        let dir = exe.parent().and_then(Path::parent).expect("target dir").to_path_buf();
        let release = dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "dataplane", "-p", "controlplane", "-p", "bench", "--bins"]);
        if release {
            cmd.arg("--release");
        }
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
        let status = cmd.status().expect("running cargo build for the binaries");
        assert!(status.success(), "building the binaries failed");
        dir
    })
}

pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// The io driver the data plane runs under in this test run: `GATEWAY_IO_DRIVER` (auto,
/// uring or epoll), so CI can run the suite once per driver.
pub fn io_driver() -> String {
    std::env::var("GATEWAY_IO_DRIVER").unwrap_or_else(|_| "auto".into())
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("gw-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `controlctl` with arguments; returns (exit code, stdout, stderr).
/// Runs controlctl with no configuration file (never the user's own).
pub fn controlctl(args: &[&str]) -> (i32, String, String) {
    controlctl_as(Path::new("/nonexistent/controlctl-config"), args)
}

/// Runs controlctl with this configuration file (a control plane's `admin.conf`, say).
pub fn controlctl_as(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin("controlctl"))
        .env("CONTROLCTL_CONFIG", config)
        .env_remove("CONTROLCTL_TOKEN")
        .env_remove("CONTROLCTL_SERVER")
        .args(args)
        .output()
        .expect("running controlctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Compiles manifest text into a table file inside `dir`.
pub fn compile_table(dir: &Path, manifest: &str) -> PathBuf {
    let (code, stderr, table) = compile_result(dir, manifest);
    assert_eq!(code, 0, "controlctl compile failed: {stderr}");
    table
}

/// Runs `controlctl compile` on manifest text written to `dir/m.yaml`: (exit code, stderr, the
/// table's path, which exists only if it compiled).
pub fn compile_result(dir: &Path, manifest: &str) -> (i32, String, PathBuf) {
    let yaml = dir.join("m.yaml");
    std::fs::write(&yaml, manifest).expect("writing manifest");
    let table = dir.join("table.bin");
    let (code, _, stderr) =
        controlctl(&["compile", "-f", yaml.to_str().unwrap_or(""), "-o", table.to_str().unwrap_or("")]);
    (code, stderr, table)
}

#[derive(Debug, Clone)]
pub struct DataplaneOptions {
    pub shards: usize,
    pub extra_args: Vec<String>,
    /// Start without a table.
    pub no_table: bool,
    /// Follow this control plane (with this state dir) instead of a table file.
    pub control_plane: Option<(ControlPlaneLink, PathBuf)>,
    /// Run under this open-file limit (soft and hard, set by util-linux `prlimit`).
    pub fd_limit: Option<u64>,
    /// Also serve HTTPS (`--listen-tls` on port 0); its address is [`Dataplane::https`].
    pub https: bool,
}

impl Default for DataplaneOptions {
    fn default() -> Self {
        DataplaneOptions {
            shards: 2,
            extra_args: Vec::new(),
            no_table: false,
            control_plane: None,
            fd_limit: None,
            https: false,
        }
    }
}

/// Reads lines from a child's pipe into a channel.
fn forward_lines(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Waits for a line starting with `prefix` and returns the rest.
fn wait_line(rx: &mpsc::Receiver<String>, prefix: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).ok()?;
        if let Some(rest) = line.strip_prefix(prefix) {
            return Some(rest.to_string());
        }
    }
}

/// How a data plane reaches a control plane: its URL, the CA to verify it with and the token
/// to present (a control plane writes both into its data dir on its first start).
#[derive(Debug, Clone)]
pub struct ControlPlaneLink {
    pub url: String,
    pub ca: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    /// A client certificate and key instead of (or beside) the token.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// A running control plane, killed on drop.
pub struct ControlPlane {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr: mpsc::Receiver<String>,
    pub data_dir: PathBuf,
}

impl ControlPlane {
    pub fn start(data_dir: &Path) -> ControlPlane {
        ControlPlane::start_at(data_dir, "127.0.0.1:0")
    }

    /// On a given address: a restart where the data planes expect it.
    pub fn start_at(data_dir: &Path, listen: &str) -> ControlPlane {
        ControlPlane::start_with(data_dir, listen, &[])
    }

    /// With more command-line flags.
    pub fn start_with(data_dir: &Path, listen: &str, extra: &[&str]) -> ControlPlane {
        let mut child = Command::new(bin("controlplane"))
            .args(["--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting controlplane");
        let stdout = forward_lines(child.stdout.take().expect("stdout"));
        let stderr = forward_lines(child.stderr.take().expect("stderr"));
        let Some(addr) = wait_line(&stdout, "control plane on ", Duration::from_secs(20)) else {
            let _ = child.kill();
            let errors: Vec<String> = stderr.try_iter().collect();
            panic!("controlplane did not start: {}", errors.join("\n"));
        };
        ControlPlane { child, addr: addr.parse().expect("address"), stderr, data_dir: data_dir.to_path_buf() }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The admin's controlctl configuration the control plane wrote on its first start.
    pub fn admin_config(&self) -> PathBuf {
        self.data_dir.join("admin.conf")
    }

    /// What a data plane needs to follow this control plane.
    pub fn link(&self) -> ControlPlaneLink {
        ControlPlaneLink {
            url: self.url(),
            ca: Some(self.data_dir.join("pki/ca.pem")),
            token_file: Some(self.data_dir.join("dataplane.token")),
            client_cert: None,
        }
    }

    /// Runs controlctl as the admin against this control plane; returns (exit code, stdout,
    /// stderr).
    pub fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["--server".to_string(), self.url()];
        all.extend(args.iter().map(|a| a.to_string()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        controlctl_as(&self.admin_config(), &refs)
    }

    /// Writes manifest text to a file and applies it with `--wait`; panics unless it succeeds.
    pub fn apply(&self, dir: &Path, manifest: &str) -> String {
        let (code, out, err) = self.apply_result(dir, manifest, true);
        assert_eq!(code, 0, "apply failed: {err}");
        out
    }

    pub fn apply_result(&self, dir: &Path, manifest: &str, wait: bool) -> (i32, String, String) {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = dir.join(format!("apply-{n}.yaml"));
        std::fs::write(&file, manifest).expect("writing manifest");
        let path = file.display().to_string();
        let mut args = vec!["apply", "-f", path.as_str()];
        if wait {
            args.push("--wait");
        }
        self.ctl(&args)
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running data plane, killed on drop.
pub struct Dataplane {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// The HTTPS address, when started with [`DataplaneOptions::https`].
    pub https: Option<SocketAddr>,
    pub stderr: mpsc::Receiver<String>,
    _dir: TempDir,
}

impl Dataplane {
    pub fn start(manifest: &str) -> Dataplane {
        Dataplane::start_with(manifest, DataplaneOptions::default())
    }

    pub fn start_with(manifest: &str, options: DataplaneOptions) -> Dataplane {
        let dir = TempDir::new("dp");
        let mut args: Vec<String> = vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--admin".into(),
            "127.0.0.1:0".into(),
            "--shards".into(),
            options.shards.to_string(),
            "--io-driver".into(),
            io_driver(),
        ];
        if let Some((link, state_dir)) = &options.control_plane {
            args.extend([
                "--control-plane".into(),
                link.url.clone(),
                "--state-dir".into(),
                state_dir.display().to_string(),
            ]);
            if let Some(ca) = &link.ca {
                args.extend(["--control-plane-ca".into(), ca.display().to_string()]);
            }
            if let Some(token) = &link.token_file {
                args.extend(["--control-plane-token-file".into(), token.display().to_string()]);
            }
            if let Some((cert, key)) = &link.client_cert {
                args.extend(["--control-plane-cert".into(), cert.display().to_string()]);
                args.extend(["--control-plane-key".into(), key.display().to_string()]);
            }
        } else if !options.no_table {
            let table = compile_table(&dir.0, manifest);
            args.push("--table".into());
            args.push(table.display().to_string());
        }
        if options.https {
            args.extend(["--listen-tls".into(), "127.0.0.1:0".into()]);
        }
        args.extend(options.extra_args.iter().cloned());
        let mut command = match options.fd_limit {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg("--").arg(bin("dataplane"));
                c
            }
            None => Command::new(bin("dataplane")),
        };
        let mut child = command
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting dataplane");
        let rx = forward_lines(child.stdout.take().expect("stdout"));
        let err_rx = forward_lines(child.stderr.take().expect("stderr"));
        let mut addr = None;
        let mut admin = None;
        let mut https = None;
        let deadline = Instant::now() + Duration::from_secs(20);
        while addr.is_none() || (options.https && https.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("listening on ") {
                        addr = a.parse().ok();
                    } else if let Some(a) = line.strip_prefix("listening (https) on ") {
                        https = a.parse().ok();
                    } else if let Some(a) = line.strip_prefix("admin on ") {
                        admin = a.parse().ok();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let errors: Vec<String> = err_rx.try_iter().collect();
                    panic!("dataplane did not start: {}", errors.join("\n"));
                }
            }
        }
        Dataplane {
            child,
            addr: addr.expect("listen address"),
            admin: admin.expect("admin address"),
            https,
            stderr: err_rx,
            _dir: dir,
        }
    }

    pub fn client(&self) -> crate::Client {
        crate::Client::connect(self.addr)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    pub fn signal(&self, sig: libc::c_int) {
        // Our own child: its pid cannot be reused while `child` is not yet reaped.
        let rc = unsafe_kill(self.child.id() as libc::pid_t, sig);
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }

    /// GET on the admin port; returns (status, body).
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        let mut c = crate::Client::connect(self.admin);
        let r = c.request(&format!("GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n"));
        (r.status, r.text())
    }
}

fn unsafe_kill(pid: libc::pid_t, sig: libc::c_int) -> libc::c_int {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
