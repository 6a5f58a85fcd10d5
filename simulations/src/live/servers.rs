//! The processes under test: a nats-server with Aurora's production configuration, and
//! `aurora serve` replicas; each can be killed, frozen, thawed and started again.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A free local TCP port (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Sends `signal` to `child`.
fn signal(child: &Child, signal: Signal) {
    let _ = kill(Pid::from_raw(child.id() as i32), signal);
}

/// Waits until something accepts TCP connections on `port`.
pub async fn wait_for_port(port: u16, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("nothing listens on port {port} after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// nats-server, run with `deploy/nats/nats-server.conf` (`sync_interval: always`).
pub struct Nats {
    binary: PathBuf,
    config: PathBuf,
    /// Its client port.
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Nats {
    /// Writes the production configuration with its store under `dir` and starts the server.
    pub async fn start(
        binary: &Path,
        production_config: &Path,
        dir: &Path,
    ) -> anyhow::Result<Nats> {
        let text = std::fs::read_to_string(production_config)
            .with_context(|| format!("reading {}", production_config.display()))?;
        if !text.contains("sync_interval: always") {
            bail!("{} does not sync every write", production_config.display());
        }
        let store = dir.join("jetstream");
        let text: String = text
            .lines()
            .map(|line| {
                if line.trim_start().starts_with("store_dir:") {
                    format!("  store_dir: \"{}\"", store.display())
                } else {
                    line.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let config = dir.join("nats-server.conf");
        std::fs::write(&config, text)?;
        let mut nats = Nats {
            binary: binary.to_path_buf(),
            config,
            port: free_port()?,
            child: None,
            log: dir.join("nats-server.log"),
        };
        nats.restart().await?;
        Ok(nats)
    }

    /// Starts it (again) on the same port and store.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let monitor = free_port()?;
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-m", &monitor.to_string()])
            .arg("-l")
            .arg(&self.log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(20)).await
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One `aurora serve` process and how to start it again.
pub struct Replica {
    /// Its name (`AURORA_REPLICA_ID`).
    pub name: String,
    binary: PathBuf,
    env: Vec<(String, String)>,
    /// Its HTTP port (the same across restarts).
    pub port: u16,
    child: Option<Child>,
    frozen: bool,
    log: PathBuf,
}

impl Replica {
    /// A replica of `binary` with `env`, listening on a port of its own; not started.
    pub fn new(
        name: &str,
        binary: &Path,
        env: Vec<(String, String)>,
        dir: &Path,
    ) -> anyhow::Result<Replica> {
        let data = dir.join(name);
        std::fs::create_dir_all(&data)?;
        let mut env = env;
        env.push(("AURORA_DATA_DIR".into(), data.display().to_string()));
        env.push(("AURORA_REPLICA_ID".into(), name.to_string()));
        Ok(Replica {
            name: name.to_string(),
            binary: binary.to_path_buf(),
            env,
            port: free_port()?,
            child: None,
            frozen: false,
            log: dir.join(format!("{name}.log")),
        })
    }

    /// Its base URL.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Is it running (not killed)?
    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }

    /// Starts it and waits until it listens.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut command = Command::new(&self.binary);
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AURORA_LISTEN", format!("127.0.0.1:{}", self.port))
            .stdout(log.try_clone()?)
            .stderr(log);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        self.child = Some(command.spawn().context("starting aurora serve")?);
        self.frozen = false;
        // Startup waits for the database and NATS, which the nemesis may be holding back.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    bail!(
                        "{} exited at start ({status}); see {}",
                        self.name,
                        self.log.display()
                    );
                }
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} did not listen within 120 s", self.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.frozen = false;
    }

    /// `SIGSTOP`.
    pub fn freeze(&mut self) {
        if let Some(child) = &self.child {
            signal(child, Signal::SIGSTOP);
            self.frozen = true;
        }
    }

    /// `SIGCONT`.
    pub fn thaw(&mut self) {
        if let Some(child) = &self.child {
            signal(child, Signal::SIGCONT);
        }
        self.frozen = false;
    }

    /// `SIGTERM`, then waits for it to exit (killed after `grace`).
    pub async fn stop(&mut self, grace: Duration) {
        self.thaw();
        if let Some(mut child) = self.child.take() {
            signal(&child, Signal::SIGTERM);
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}
