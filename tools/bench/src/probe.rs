//! What the benchmark reads off the running processes: CPU time and resident
//! memory from `/proc`, and gauges from the services' Prometheus `/metrics`.

use std::collections::BTreeMap;

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ).
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User plus system CPU seconds a process has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / ticks_per_second())
}

/// Resident set size in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The pids of every PostgreSQL server process on this machine.
fn postgres_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres")
        })
        .collect()
}

/// CPU seconds per process at one instant; the difference of two is the
/// CPU a run cost. PostgreSQL counts as one component, all its processes summed.
#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot {
    named: BTreeMap<String, f64>,
    postgres: BTreeMap<u32, f64>,
}

impl CpuSnapshot {
    pub fn take(processes: &[(String, u32)]) -> Self {
        Self {
            named: processes
                .iter()
                .filter_map(|(name, pid)| Some((name.clone(), cpu_seconds(*pid)?)))
                .collect(),
            postgres: postgres_pids()
                .into_iter()
                .filter_map(|pid| Some((pid, cpu_seconds(pid)?)))
                .collect(),
        }
    }

    /// CPU seconds used per component since `earlier` (processes that
    /// started in between count from zero, those that exited are lost).
    pub fn since(&self, earlier: &Self) -> BTreeMap<String, f64> {
        let mut out: BTreeMap<String, f64> = self
            .named
            .iter()
            .map(|(name, s)| (name.clone(), s - earlier.named.get(name).copied().unwrap_or(0.0)))
            .collect();
        let pg = self
            .postgres
            .iter()
            .map(|(pid, s)| s - earlier.postgres.get(pid).copied().unwrap_or(0.0))
            .sum();
        out.insert("postgres".to_owned(), pg);
        out
    }
}

/// Sum of every sample of `metric` (all label sets) in a Prometheus text exposition.
pub fn metric_sum(exposition: &str, metric: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Scrapes every URL's `/metrics` and sums `metrics` over all of them.
pub async fn scrape(http: &reqwest::Client, urls: &[String], metrics: &[&str]) -> Vec<f64> {
    let mut sums = vec![0.0; metrics.len()];
    for per_url in scrape_each(http, urls, metrics).await {
        for (sum, v) in sums.iter_mut().zip(per_url) {
            *sum += v;
        }
    }
    sums
}

/// Scrapes every URL's `/metrics`: per URL, the sum of each of `metrics`
/// (zeros for a URL that did not answer).
pub async fn scrape_each(http: &reqwest::Client, urls: &[String], metrics: &[&str]) -> Vec<Vec<f64>> {
    let mut out = Vec::with_capacity(urls.len());
    for url in urls {
        let text = match http.get(format!("{url}/metrics")).send().await {
            Ok(resp) => resp.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        out.push(metrics.iter().map(|m| metric_sum(&text, m)).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_label_set_of_one_metric_only() {
        let text = "# HELP omnisaga_consumer_lag lag\n\
                    omnisaga_consumer_lag{topic=\"a\",partition=\"0\"} 3\n\
                    omnisaga_consumer_lag{topic=\"a\",partition=\"1\"} 4\n\
                    omnisaga_consumer_lag_other 100\n\
                    omnisaga_outbox_backlog 2\n";
        assert_eq!(metric_sum(text, "omnisaga_consumer_lag"), 7.0);
        assert_eq!(metric_sum(text, "omnisaga_outbox_backlog"), 2.0);
        assert_eq!(metric_sum(text, "omnisaga_missing"), 0.0);
    }

    #[test]
    fn reads_its_own_cpu_and_memory() {
        let pid = std::process::id();
        let before = cpu_seconds(pid).expect("own stat is readable");
        // Burn CPU until the counter moves (its tick is 10 ms of CPU, which
        // a loaded machine may take long to give), for 10 s at most.
        let mut x = 0u64;
        let start = std::time::Instant::now();
        let mut after = before;
        while after <= before && start.elapsed() < std::time::Duration::from_secs(10) {
            for _ in 0..100_000 {
                x = x.wrapping_mul(31).wrapping_add(7);
            }
            after = cpu_seconds(pid).expect("own stat is readable");
        }
        std::hint::black_box(x);
        assert!(
            after > before,
            "cpu time did not grow in 10 s: {before} -> {after}"
        );
        assert!(rss_bytes(pid).expect("own status is readable") > 1_000_000);
    }
}
