//! What the benchmark reads from outside the servers: their CPU time from `/proc`, and the
//! commands Redis executed and the CPU it used from `INFO` (through `redis-cli`).

use std::process::Command;

/// CPU time the process `pid` has used so far, in microseconds: the sum over its threads of
/// the scheduler's nanosecond count (`/proc/<pid>/task/*/schedstat`), far finer than the
/// 10 ms ticks of `/proc/<pid>/stat`.
pub(crate) fn cpu_us(pid: u32) -> Result<f64, String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| e.to_string())?;
    let mut ns = 0u64;
    for task in tasks.flatten() {
        // A thread may end between the listing and the read; it then counts no more.
        let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        ns += stat
            .split_whitespace()
            .next()
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or("bad schedstat")?;
    }
    Ok(ns as f64 / 1e3)
}

/// Commands Redis has executed so far, other than the `INFO` calls that read this: all of
/// them, and those of `top_level` (the ones a client sends; `None` for all, when the client
/// runs no scripts, whose inner commands Redis counts too).
pub(crate) fn redis_commands(
    host: &str,
    port: u16,
    top_level: Option<&[&str]>,
) -> Result<(u64, u64), String> {
    let text = redis_info(host, port, "commandstats")?;
    let counts: Vec<(&str, u64)> = text
        .lines()
        .filter_map(|line| line.strip_prefix("cmdstat_"))
        .filter(|line| !line.starts_with("info:"))
        .filter_map(|line| {
            let (name, stats) = line.split_once(':')?;
            let calls = stats.split_once("calls=")?.1;
            Some((name, calls.split(',').next()?.parse::<u64>().ok()?))
        })
        .collect();
    let all = counts.iter().map(|(_, n)| n).sum();
    let sent = match top_level {
        None => all,
        Some(names) => counts
            .iter()
            .filter(|(name, _)| names.contains(name))
            .map(|(_, n)| n)
            .sum(),
    };
    Ok((all, sent))
}

/// CPU time the Redis server has used so far, in microseconds (`INFO cpu`: its user and
/// system seconds, main thread and background threads together).
pub(crate) fn redis_cpu_us(host: &str, port: u16) -> Result<f64, String> {
    let text = redis_info(host, port, "cpu")?;
    let seconds: f64 = text
        .lines()
        .filter_map(|line| {
            let (name, value) = line.trim().split_once(':')?;
            matches!(name, "used_cpu_sys" | "used_cpu_user").then(|| value.parse::<f64>().ok())?
        })
        .sum();
    Ok(seconds * 1e6)
}

/// One section of the server's `INFO`.
fn redis_info(host: &str, port: u16, section: &str) -> Result<String, String> {
    let output = Command::new("redis-cli")
        .args(["-h", host, "-p", &port.to_string(), "info", section])
        .output()
        .map_err(|e| format!("redis-cli: {e}"))?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Resident memory of this process, in bytes.
pub(crate) fn rss_bytes() -> Result<u64, String> {
    let statm = std::fs::read_to_string("/proc/self/statm").map_err(|e| e.to_string())?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .ok_or("bad /proc/self/statm")?;
    Ok(pages * 4096)
}
