//! A PostgreSQL cluster of a test's own, so the test can stop and start it: `initdb` into a
//! temporary directory, `pg_ctl` on a free loopback port with its socket in that directory.
//! Removed on drop, also when the test panics.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    /// PostgreSQL refuses to run as root: then its tools run as the `postgres` user.
    as_postgres: bool,
}

impl Cluster {
    /// A new cluster, started, with a trusted superuser `root`; `None` (after a loud skip,
    /// or a failure under `SESSIONWARE_REQUIRE_SERVICES=1`) without the PostgreSQL server
    /// binaries. Blocks: call it in `block_in_place`.
    pub fn start(test: &str) -> Option<Self> {
        let as_postgres = is_root();
        let Some(bin) = bin_dir().filter(|_| !as_postgres || user_exists("postgres")) else {
            sessionware_test_support::skip(
                "the PostgreSQL server binaries",
                &format!("{test}: the PostgreSQL server binaries (initdb, pg_ctl) are not found"),
                "apt-get install postgresql, or set PG_BIN to their directory",
            );
            return None;
        };
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("sessionware-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let cluster = Self {
            bin,
            dir,
            port,
            as_postgres,
        };
        if as_postgres {
            run(Command::new("chown").arg("postgres").arg(&cluster.dir));
        }
        // No fsync while creating the catalog: it is thrown away with the test. The server
        // itself syncs every commit (the default), which is what the tests rely on.
        run(cluster.tool("initdb").arg("-D").arg(cluster.data()).args([
            "-U",
            "root",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]));
        cluster.start_again();
        Some(cluster)
    }

    pub fn url(&self) -> String {
        format!("postgres://root@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server the way a crash would (`-m immediate`: no checkpoint, clients cut
    /// off); committed transactions come back from the WAL at the next start.
    pub fn stop(&self) {
        run(self.tool("pg_ctl").arg("-D").arg(self.data()).args([
            "stop",
            "-m",
            "immediate",
            "-w",
            "-t",
            "60",
        ]));
    }

    /// Starts the server on its port and waits (60 s at most) until it takes connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        run(self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["start", "-w", "-t", "60", "-o", &options]));
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn tool(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["stop", "-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `command`; panics with its output when it fails.
fn run(command: &mut Command) {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{command:?} does not run: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin` (Debian keeps the server
/// tools off `PATH`), else a directory on `PATH` that has them.
fn bin_dir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Some(PathBuf::from(dir)).filter(|d| has_tools(d));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .collect();
    versions.sort();
    let newest = versions.into_iter().map(|(_, bin)| bin).rev();
    let path = std::env::var_os("PATH").unwrap_or_default();
    newest
        .chain(std::env::split_paths(&path))
        .find(|d| has_tools(d))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Uid:"))?.to_owned();
            Some(line.split_whitespace().nth(2)? == "0")
        })
        .unwrap_or(false)
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}
