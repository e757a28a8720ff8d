//! The process's own series, read from `/proc/self` at each scrape, under
//! the names Prometheus' client libraries use: `process_cpu_seconds_total`
//! (user and system time of every thread; its rate is the CPU load),
//! `process_resident_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_threads` and `process_start_time_seconds`. Where `/proc` is
//! missing (not Linux) there are none.

use std::{fs, sync::Mutex};

use prometheus::{
    core::{Collector, Desc},
    proto::MetricFamily,
    Counter, Gauge, Opts,
};

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`: 100 on every
/// Linux the services run on).
const TICKS_PER_SECOND: f64 = 100.0;

pub struct ProcessCollector {
    cpu: Counter,
    resident: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    threads: Gauge,
    start_time: Gauge,
    /// Serialises scrapes: the counter is advanced by the difference.
    read: Mutex<()>,
}

impl ProcessCollector {
    pub fn new() -> Result<Self, prometheus::Error> {
        let gauge = |name: &str, help: &str| Gauge::with_opts(Opts::new(name, help));
        Ok(Self {
            cpu: Counter::with_opts(Opts::new(
                "process_cpu_seconds_total",
                "User and system CPU time spent, in seconds",
            ))?,
            resident: gauge("process_resident_memory_bytes", "Resident memory, in bytes")?,
            open_fds: gauge("process_open_fds", "Open file descriptors")?,
            max_fds: gauge("process_max_fds", "Most file descriptors the process may open")?,
            threads: gauge("process_threads", "Threads of the process")?,
            start_time: gauge(
                "process_start_time_seconds",
                "Start of the process, in seconds since the Unix epoch",
            )?,
            read: Mutex::new(()),
        })
    }

    fn parts(&self) -> [&dyn Collector; 6] {
        [
            &self.cpu,
            &self.resident,
            &self.open_fds,
            &self.max_fds,
            &self.threads,
            &self.start_time,
        ]
    }

    /// Reads `/proc/self` into the series; false without it.
    fn refresh(&self) -> bool {
        let Some(now) = read() else {
            return false;
        };
        let _one = self.read.lock().unwrap_or_else(|e| e.into_inner());
        let ahead = now.cpu_seconds - self.cpu.get();
        if ahead > 0.0 {
            self.cpu.inc_by(ahead);
        }
        self.resident.set(now.resident_bytes);
        self.open_fds.set(now.open_fds);
        self.threads.set(now.threads);
        if let Some(max) = now.max_fds {
            self.max_fds.set(max);
        }
        if let Some(start) = now.start_time {
            self.start_time.set(start);
        }
        true
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.parts().into_iter().flat_map(|c| c.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        if !self.refresh() {
            return Vec::new();
        }
        self.parts().into_iter().flat_map(|c| c.collect()).collect()
    }
}

/// One reading of `/proc/self`.
#[derive(Debug, PartialEq)]
struct Reading {
    cpu_seconds: f64,
    resident_bytes: f64,
    open_fds: f64,
    max_fds: Option<f64>,
    threads: f64,
    start_time: Option<f64>,
}

fn read() -> Option<Reading> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let (cpu_seconds, threads, started_ticks) = parse_stat(&stat)?;
    let boot = fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| field(&s, "btime").and_then(|v| v.parse::<f64>().ok()));
    Some(Reading {
        cpu_seconds,
        resident_bytes: field(&status, "VmRSS:")
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb * 1024.0),
        open_fds: fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()) as f64,
        max_fds: fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| parse_max_open_files(&l)),
        threads,
        start_time: boot.map(|b| b + started_ticks / TICKS_PER_SECOND),
    })
}

/// The first value after `key` on the line that starts with it.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
}

/// CPU seconds (user + system), threads and start (clock ticks after boot)
/// from `/proc/<pid>/stat`, whose second field (the command, in
/// parentheses) may hold spaces.
fn parse_stat(stat: &str) -> Option<(f64, f64, f64)> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (the state); utime is field 14.
    let at = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    Some(((at(14)? + at(15)?) / TICKS_PER_SECOND, at(20)?, at(22)?))
}

/// The soft limit of "Max open files" in `/proc/<pid>/limits`.
fn parse_max_open_files(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_cpu_seconds_threads_and_start_even_with_spaces_in_the_command() {
        let stat =
            "4242 (order (v2) x) S 1 4242 4242 0 -1 4194560 3000 0 0 0 250 130 0 0 20 0 9 0 7000 1000 200 0";
        assert_eq!(parse_stat(stat), Some((3.8, 9.0, 7000.0)));
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn the_soft_limit_of_open_files_is_read_from_the_limits_table() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             95864                95864                processes\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_open_files(limits), Some(1024.0));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_read_and_its_cpu_only_grows() {
        let collector = ProcessCollector::new().unwrap();
        let first = collector.collect();
        assert_eq!(first.len(), 6, "every series");
        let cpu = || collector.cpu.get();
        let before = cpu();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        collector.collect();
        assert!(cpu() >= before && cpu() > 0.0, "{before} then {}", cpu());
        assert!(collector.resident.get() > 1_000_000.0);
        assert!(collector.open_fds.get() >= 3.0);
        assert!(collector.start_time.get() > 1.6e9);
    }
}
