//! Readings from /proc: a process's CPU time and resident memory, the load average.

use std::time::Instant;

use anyhow::{anyhow, Context as _};
use serde_json::{json, Value as Json};

/// Clock ticks per second of the `utime`/`stime` fields of /proc/PID/stat.
///
/// Linux reports them in `USER_HZ`, which the kernel ABI fixes at 100 on x86-64 and arm64
/// (whatever `CONFIG_HZ` is); `getconf CLK_TCK` prints it. Assumed rather than asked via
/// `sysconf`, which would need `unsafe` or another dependency.
pub(crate) const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// The processes whose CPU time and memory a run reports (the router's, usually one PID).
#[derive(Debug, Clone, Default)]
pub(crate) struct Watched {
    pids: Vec<u32>,
}

/// CPU seconds (user + system) of a set of processes, at an instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuSample {
    at: Instant,
    router: Option<f64>,
    bench: Option<f64>,
}

impl Watched {
    pub(crate) fn new(pids: Vec<u32>) -> Watched {
        Watched { pids }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pids.is_empty()
    }

    pub(crate) fn pids(&self) -> &[u32] {
        &self.pids
    }

    /// Checks every PID is readable now, so a typo fails before a long run.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        for &pid in &self.pids {
            cpu_seconds(&pid.to_string())
                .with_context(|| format!("--router-pid {pid}: cannot read /proc/{pid}/stat"))?;
        }
        Ok(())
    }

    /// The summed CPU seconds of the watched processes and of this process.
    pub(crate) fn sample(&self) -> CpuSample {
        let router = if self.pids.is_empty() {
            None
        } else {
            self.pids
                .iter()
                .map(|p| cpu_seconds(&p.to_string()).ok())
                .sum::<Option<f64>>()
        };
        CpuSample {
            at: Instant::now(),
            router,
            bench: cpu_seconds("self").ok(),
        }
    }

    /// The summed VmRSS of the watched processes, in KiB.
    pub(crate) fn rss_kib(&self) -> Option<u64> {
        if self.pids.is_empty() {
            return None;
        }
        self.pids
            .iter()
            .map(|p| vm_rss_kib(&p.to_string()).ok())
            .sum()
    }
}

/// CPU use between two samples.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuUse {
    /// Wall-clock seconds between the samples.
    pub(crate) wall_s: f64,
    /// Router CPU seconds (user + system), if a PID was given.
    pub(crate) router_s: Option<f64>,
    /// This load generator's CPU seconds.
    pub(crate) bench_s: Option<f64>,
}

impl CpuSample {
    pub(crate) fn until(&self, later: &CpuSample) -> CpuUse {
        CpuUse {
            wall_s: later.at.duration_since(self.at).as_secs_f64(),
            router_s: self.router.zip(later.router).map(|(a, b)| b - a),
            bench_s: self.bench.zip(later.bench).map(|(a, b)| b - a),
        }
    }
}

impl CpuUse {
    /// `count` per router CPU second, when the router's CPU time is known and non-zero.
    pub(crate) fn per_router_cpu_s(&self, count: f64) -> Option<f64> {
        self.router_s.filter(|&s| s > 0.0).map(|s| count / s)
    }

    pub(crate) fn to_json(self) -> Json {
        json!({
            "wall_s": round3(self.wall_s),
            "router_cpu_s": self.router_s.map(round3),
            "router_cpu_util": self.router_s.map(|s| round3(s / self.wall_s)),
            "bench_cpu_s": self.bench_s.map(round3),
            "bench_cpu_util": self.bench_s.map(|s| round3(s / self.wall_s)),
        })
    }

    pub(crate) fn describe(&self) -> String {
        let mut s = String::new();
        if let Some(r) = self.router_s {
            s.push_str(&format!(
                "router CPU {:.2} s ({:.0}% of one core)",
                r,
                100.0 * r / self.wall_s
            ));
        } else {
            s.push_str("router CPU unknown (no --router-pid)");
        }
        if let Some(b) = self.bench_s {
            s.push_str(&format!(
                ", wamp-bench CPU {:.2} s ({:.0}%)",
                b,
                100.0 * b / self.wall_s
            ));
        }
        s
    }
}

/// Rounds to 3 decimals for the JSON line.
pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// utime + stime of /proc/`pid`/stat, in seconds (`pid` may be `self`).
fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat_cpu(&stat).map(|ticks| ticks as f64 / CLOCK_TICKS_PER_SEC)
}

/// utime + stime (fields 14 and 15) in clock ticks. The command name (field 2) is in
/// parentheses and may itself contain spaces and parentheses, so fields are counted from the
/// last `)`.
fn parse_stat_cpu(stat: &str) -> anyhow::Result<u64> {
    let rest = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| anyhow!("malformed /proc stat"))?;
    // After ")": field 3 (state) is index 0, so utime (14) is index 11, stime (15) index 12.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .ok_or_else(|| anyhow!("short /proc stat"))?
            .parse::<u64>()
            .context("non-numeric /proc stat field")
    };
    Ok(num(11)? + num(12)?)
}

/// VmRSS of /proc/`pid`/status in KiB.
fn vm_rss_kib(pid: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> anyhow::Result<u64> {
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| anyhow!("no VmRSS line"))?;
    line.trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .context("malformed VmRSS")
}

/// This process's VmRSS in KiB.
pub(crate) fn self_rss_kib() -> Option<u64> {
    vm_rss_kib("self").ok()
}

/// The 1, 5 and 15 minute load averages.
pub(crate) fn load_average() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = s.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// Raises this process's open-file soft limit to its hard limit; returns (soft, hard).
pub(crate) fn raise_nofile() -> (u64, u64) {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    rlimit::Resource::NOFILE.get().unwrap_or((0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_name() {
        let stat = "1234 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 4 0 100";
        assert_eq!(parse_stat_cpu(stat).unwrap(), 300);
    }

    #[test]
    fn own_process_is_readable() {
        assert!(cpu_seconds("self").is_ok());
        assert!(vm_rss_kib("self").unwrap() > 0);
        assert!(load_average().is_some());
    }

    #[test]
    fn rss_line() {
        let s = "Name:\tx\nVmPeak:\t  100 kB\nVmRSS:\t   5120 kB\nThreads: 2\n";
        assert_eq!(parse_vm_rss(s).unwrap(), 5120);
    }
}
