//! `redis-server` processes on free loopback ports, started by a test and killed when it ends
//! (on drop, also when the test panics). Every wait is polled with a bound, never slept out.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Settings for a server whose acknowledged writes survive a SIGKILL: an append-only file,
/// synced before each reply.
pub(crate) const DURABLE: &[&str] = &["--appendonly", "yes", "--appendfsync", "always"];

/// One `redis-server` (or sentinel) process.
pub(crate) struct Process {
    child: Child,
    pub(crate) port: u16,
    dir: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Process {
    /// `redis-cli -p <port> <args>`, its stdout trimmed.
    pub(crate) fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server, keeping its directory for a restart on the same port.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again, on the same port, after [`kill`](Self::kill).
    pub(crate) fn restart(&mut self, args: &[&str]) {
        self.child = spawn(self.port, &self.dir, args);
        wait_for(&format!("redis on port {} to restart", self.port), || {
            cli(self.port, &["ping"]) == "PONG"
        });
    }
}

/// `redis-cli -p <port> <args>`, its stdout trimmed (empty when redis-cli fails).
pub(crate) fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Polls `ready` every 50 ms for at most 30 s; panics naming `what` after that.
pub(crate) fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `redis-server` and `redis-cli` can be run. When they cannot, a test that needs them
/// skips loudly, or fails under `SESSIONWARE_REQUIRE_SERVICES=1` (as CI sets it).
pub(crate) fn available(test: &str) -> bool {
    let runs = |bin: &str| {
        Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if runs("redis-server") && runs("redis-cli") {
        return true;
    }
    sessionware_test_support::skip(
        "redis-server",
        &format!("{test}: redis-server and redis-cli are not installed"),
        "apt-get install redis-server",
    );
    false
}

/// A loopback port that is free, and (for Cluster's bus) whose port + 10000 is free too.
fn free_port() -> u16 {
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().expect("local addr").port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port pair found");
}

fn scratch_dir(port: u16) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sessionware-redis-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn spawn(port: u16, dir: &PathBuf, args: &[&str]) -> Child {
    // Later settings win: `args` may turn persistence on, but not move the server.
    Command::new("redis-server")
        .args(["--save", "", "--appendonly", "no"])
        .args(args)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts")
}

/// A `redis-server` on a free loopback port, without persistence unless `args` turn it on.
pub(crate) fn start(args: &[&str]) -> Process {
    let port = free_port();
    let dir = scratch_dir(port);
    let child = spawn(port, &dir, args);
    let process = Process { child, port, dir };
    wait_for(&format!("redis on port {port}"), || {
        cli(port, &["ping"]) == "PONG"
    });
    process
}

/// A Redis Cluster of three masters, no replicas.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Process>,
}

impl Cluster {
    pub(crate) fn start() -> Self {
        let nodes: Vec<Process> = (0..3)
            .map(|_| {
                start(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = nodes[0].cli(&args);
        assert!(
            out.contains("All 16384 slots covered"),
            "cluster create: {out}"
        );
        for node in &nodes {
            wait_for("the cluster to be ok on every node", || {
                node.cli(&["cluster", "info"]).contains("cluster_state:ok")
            });
        }
        Self { nodes }
    }

    /// The URL fred understands for this cluster.
    pub(crate) fn url(&self) -> String {
        let first = self.nodes[0].port;
        let others: Vec<String> = self.nodes[1..]
            .iter()
            .map(|n| format!("node=127.0.0.1:{}", n.port))
            .collect();
        format!("redis-cluster://127.0.0.1:{first}?{}", others.join("&"))
    }
}

/// A master, one replica and one sentinel watching them as `mymaster`.
pub(crate) struct Sentinel {
    pub(crate) master: Process,
    pub(crate) replica: Process,
    pub(crate) sentinel: Process,
}

impl Sentinel {
    pub(crate) const SERVICE: &'static str = "mymaster";

    pub(crate) fn start() -> Self {
        let master = start(&[]);
        let master_port = master.port.to_string();
        let replica = start(&["--replicaof", "127.0.0.1", &master_port]);
        wait_for("the replica to sync", || {
            replica
                .cli(&["info", "replication"])
                .contains("master_link_status:up")
        });

        let port = free_port();
        let dir = scratch_dir(port);
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor {name} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 10000\n\
                 sentinel parallel-syncs {name} 1\n",
                dir = dir.display(),
                name = Self::SERVICE,
            ),
        )
        .expect("sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel starts");
        let sentinel = Process { child, port, dir };
        wait_for("the sentinel to see the replica", || {
            sentinel
                .cli(&["sentinel", "replicas", Self::SERVICE])
                .contains(&replica.port.to_string())
        });
        Self {
            master,
            replica,
            sentinel,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!(
            "redis-sentinel://127.0.0.1:{}/0?sentinelServiceName={}",
            self.sentinel.port,
            Self::SERVICE
        )
    }

    /// The port of the master the sentinel currently names.
    pub(crate) fn master_port(&self) -> String {
        self.sentinel
            .cli(&["sentinel", "get-master-addr-by-name", Self::SERVICE])
            .lines()
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    }
}

/// A `redis-server` that speaks only TLS, on a free loopback port, with the given PEM server
/// certificate and key; clients are not asked for certificates.
pub(crate) fn start_tls(cert_pem: &str, key_pem: &str) -> Process {
    let port = free_port();
    let dir = scratch_dir(port);
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&cert, cert_pem).expect("write the certificate");
    std::fs::write(&key, key_pem).expect("write the key");
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    let process = Process { child, port, dir };
    wait_for(&format!("TLS redis on port {port}"), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    process
}
