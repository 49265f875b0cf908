//! The real binary as a child process: spawned with a given environment, logs captured
//! to a file, stopped with a signal. For what only a process can show (exit codes,
//! signals, what reaches the log).

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

pub struct Bridge {
    pub child: Child,
    pub address: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// A port free right now (bound and released): the child binds it a moment later.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_webengage-bridge"));
    // Only what the test sets: nothing from the developer's shell leaks in.
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

impl Bridge {
    /// `serve` with `env` on a fresh port; waits until `/healthz` answers.
    pub async fn serve(env: &[(&str, String)]) -> Bridge {
        Bridge::start(&["serve"], "BRIDGE_LISTEN", env).await
    }

    /// `args` with `env`, its HTTP address (`listen_var`) on a fresh port; waits until
    /// `/healthz` answers there.
    pub async fn start(args: &[&str], listen_var: &str, env: &[(&str, String)]) -> Bridge {
        webengage_bridge::tls::install_crypto_provider();
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("bridge.log");
        let mut command = binary();
        command
            .args(args)
            .env(listen_var, format!("127.0.0.1:{port}"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = command.spawn().expect("the binary starts");
        let bridge = Bridge {
            child,
            address: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        bridge.wait_healthy().await;
        bridge
    }

    async fn wait_healthy(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let health = reqwest::get(format!("{}/healthz", self.address)).await;
            if health.is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the bridge never answered /healthz; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit, failing after `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if tokio::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "the bridge did not exit within {limit:?}; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
