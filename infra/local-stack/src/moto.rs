//! The AWS emulator (moto server) as a child process on 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::BoxError;

/// How long moto may take to start (first start imports a lot of Python).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running moto server; stopped when dropped.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    port: u16,
}

fn infra_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Python that has moto: `MOTO_PYTHON`, else the project's `.venv` (made by `make`),
/// else `python3`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("MOTO_PYTHON") {
        return p.into();
    }
    let venv = infra_dir().join("../.venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

impl Moto {
    /// Starts moto on `port` (0: any free port) and waits until it accepts connections.
    /// The launcher exits by itself when this process dies, so nothing is left behind.
    pub fn start(port: u16) -> Result<Self, BoxError> {
        let python = python();
        let mut child = Command::new(&python)
            .arg(infra_dir().join("moto_server.py"))
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start moto with {}: {e} (run `make dev` / `make test`, which install it)",
                    python.display()
                )
            })?;
        let stdout = child.stdout.take().ok_or("moto has no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let ready = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let port = ready
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse::<u16>().ok());
        match port {
            Some(port) => Ok(Self { child, port }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "moto did not start with {} (is moto[server] installed? `make dev` installs it)",
                    python.display()
                )
                .into())
            }
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the emulator and waits for it to exit.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}
