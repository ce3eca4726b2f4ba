//! What the benchmark process, and the machine, have used: CPU time and peak memory, from
//! `/proc`.

use std::time::Duration;

/// Peak resident memory so far, in MiB (`VmHWM` in `/proc/self/status`).
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// CPU time the process has used so far, all threads, user and system (from
/// `/proc/self/stat`, in clock ticks of 10 ms).
pub fn cpu_used() -> Duration {
    cpu_used_by("self")
}

/// CPU time process `pid` (or `self`) has used so far, as [`cpu_used`] reads it.
pub fn cpu_used_by(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are the 14th and 15th fields; the state (3rd) is the first here.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// CPU time the whole machine has spent busy and in all, every core together (from the
/// `cpu` line of `/proc/stat`, in clock ticks): the difference of two readings says how
/// busy the machine was between them.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    busy: u64,
    total: u64,
}

impl MachineCpu {
    pub fn now() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let ticks: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let total = ticks.iter().take(8).sum();
        // idle and iowait are the 4th and 5th values.
        let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
        Self {
            busy: total - idle,
            total,
        }
    }

    /// The share of the machine's CPU time spent busy since `earlier`, 0 to 1.
    pub fn busy_since(self, earlier: Self) -> f64 {
        let total = self.total.saturating_sub(earlier.total).max(1);
        self.busy.saturating_sub(earlier.busy) as f64 / total as f64
    }
}
