//! The chromedriver process behind one [`Browser`](super::Browser): spawned on a port the
//! system picks, on loopback only, and stopped by its PID on drop after its session is
//! deleted (which makes chromedriver quit the chromium it started: killing chromedriver
//! alone leaves chromium running).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Where Debian's `chromium-driver` package puts chromedriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long chromedriver may take to listen, and the session to end on drop.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running chromedriver, with the session and profile folder it is responsible for.
pub(super) struct Driver {
    child: Child,
    port: u16,
    session: Option<String>,
    profile: PathBuf,
}

impl Driver {
    /// Starts chromedriver with `--port=0` (it picks a free port and prints it, so no other
    /// process can take the port in between) and waits until it listens.
    ///
    /// `profile` is the chromium `--user-data-dir` of the session to come: it is removed
    /// on drop.
    ///
    /// # Panics
    ///
    /// When chromedriver is missing (`make browser` installs it) or does not start.
    pub(super) fn start(profile: PathBuf) -> Self {
        let mut child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{CHROMEDRIVER} does not start ({e}): `make browser` installs it")
            });
        let stdout = child.stdout.take().expect("chromedriver's stdout is piped");
        let (tx, rx) = mpsc::channel();
        // Reads chromedriver's stdout to its end, so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = started_port(&line) {
                    let _ = tx.send(port);
                }
            }
        });
        let mut driver = Self {
            child,
            port: 0,
            session: None,
            profile,
        };
        driver.port = rx
            .recv_timeout(START_TIMEOUT)
            .unwrap_or_else(|_| panic!("{CHROMEDRIVER} printed no port within {START_TIMEOUT:?}"));
        driver
    }

    /// `http://127.0.0.1:<port>`.
    pub(super) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The session to delete before chromedriver is stopped.
    pub(super) fn set_session(&mut self, id: String) {
        self.session = Some(id);
    }

    /// `DELETE /session/{id}` with blocking I/O (this runs in `drop`, with or without a
    /// runtime): chromedriver quits the browser, then answers. It keeps the connection
    /// open after its answer whatever the request says, so the answer is read up to its
    /// `Content-Length`.
    fn delete_session(&self, id: &str) -> std::io::Result<()> {
        let stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(START_TIMEOUT))?;
        stream.set_write_timeout(Some(START_TIMEOUT))?;
        write!(
            &stream,
            "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\r\n",
            self.port
        )?;
        let mut reader = BufReader::new(&stream);
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        reader.read_exact(&mut vec![0; length])
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(id) = self.session.take() {
            let _ = self.delete_session(&id);
        }
        // Only the process this driver spawned, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The port of chromedriver's "ChromeDriver was started successfully on port 41234." line.
fn started_port(line: &str) -> Option<u16> {
    line.trim()
        .strip_prefix("ChromeDriver was started successfully on port ")?
        .trim_end_matches('.')
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::started_port;

    #[test]
    fn the_port_is_read_from_the_started_line() {
        assert_eq!(
            started_port("ChromeDriver was started successfully on port 38665."),
            Some(38665)
        );
        assert_eq!(started_port("Starting ChromeDriver 156.0 on port 0"), None);
        assert_eq!(started_port("Only local connections are allowed."), None);
    }
}
