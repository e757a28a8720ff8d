//! What a run watches in the background while it sends: the services'
//! outbox backlogs and consumer lags (`/metrics`) and the processes' resident
//! memory (`/proc`) once a second, and its progress on stderr.

use std::{
    collections::BTreeMap,
    io::IsTerminal,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tokio::{task::JoinHandle, time::Instant};

use super::{follower::Sagas, sender::Answers, Rss, RunOptions, Target};
use crate::probe;

/// The largest backlogs and the memory a run's sampler saw.
#[derive(Clone)]
pub(super) struct Samples {
    /// Per process, in MiB: at the start, at the last sample, the largest.
    pub(super) rss: Arc<Mutex<BTreeMap<String, Rss>>>,
    /// Largest outbox backlog and largest consumer lag, summed over the services.
    pub(super) maxima: Arc<Mutex<(f64, f64)>>,
    /// Per service: (largest outbox backlog, largest consumer lag).
    pub(super) by_service: Arc<Mutex<BTreeMap<String, (f64, f64)>>>,
}

impl Samples {
    /// Reads every process's memory now, as the run's start.
    pub(super) fn new(processes: &[(String, u32)]) -> Self {
        let rss = processes
            .iter()
            .filter_map(|(n, pid)| {
                let mib = probe::rss_bytes(*pid)? as f64 / 1048576.0;
                Some((
                    n.clone(),
                    Rss {
                        start: mib,
                        end: mib,
                        max: mib,
                    },
                ))
            })
            .collect();
        Self {
            rss: Arc::new(Mutex::new(rss)),
            maxima: Arc::new(Mutex::new((0.0f64, 0.0f64))),
            by_service: Arc::default(),
        }
    }
}

/// The run's background tasks: the sampler and the progress line.
pub(super) struct Watch {
    finished: Arc<AtomicBool>,
    sampler: JoinHandle<()>,
    progress: JoinHandle<()>,
}

impl Watch {
    /// Starts sampling into `samples` and showing the progress of the run
    /// that started sending at `start`.
    pub(super) fn start(
        target: &Target,
        samples: &Samples,
        answers: &Arc<Answers>,
        sagas: &Sagas,
        options: &RunOptions,
        start: Instant,
    ) -> Self {
        let finished = Arc::new(AtomicBool::new(false));
        let sampler = tokio::spawn(sample(
            target.http.clone(),
            target.service_urls.clone(),
            target.processes.clone(),
            samples.clone(),
            target.service_names.clone(),
            finished.clone(),
        ));
        let progress = tokio::spawn(show_progress(
            answers.clone(),
            sagas.clone(),
            finished.clone(),
            options.label.clone(),
            options.duration,
            start,
        ));
        Self {
            finished,
            sampler,
            progress,
        }
    }

    /// Stops both: the progress line after its last update, the sampler at once.
    pub(super) async fn stop(self) {
        self.finished.store(true, Ordering::Relaxed);
        let _ = self.progress.await;
        self.sampler.abort();
    }
}

/// Once a second until `finished`: backlogs from every service's `/metrics`
/// and memory from `/proc`.
async fn sample(
    http: reqwest::Client,
    urls: Vec<String>,
    processes: Vec<(String, u32)>,
    samples: Samples,
    names: Vec<String>,
    finished: Arc<AtomicBool>,
) {
    while !finished.load(Ordering::Relaxed) {
        let each = probe::scrape_each(
            &http,
            &urls,
            &["omnisaga_outbox_backlog", "omnisaga_consumer_lag"],
        )
        .await;
        {
            let mut per = samples.by_service.lock().unwrap_or_else(|e| e.into_inner());
            for (name, v) in names.iter().zip(&each) {
                let entry = per.entry(name.clone()).or_default();
                entry.0 = entry.0.max(v[0]);
                entry.1 = entry.1.max(v[1]);
            }
            let mut m = samples.maxima.lock().unwrap_or_else(|e| e.into_inner());
            m.0 = m.0.max(each.iter().map(|v| v[0]).sum());
            m.1 = m.1.max(each.iter().map(|v| v[1]).sum());
        }
        {
            let mut r = samples.rss.lock().unwrap_or_else(|e| e.into_inner());
            for (name, pid) in &processes {
                if let (Some(bytes), Some(entry)) = (probe::rss_bytes(*pid), r.get_mut(name)) {
                    let mib = bytes as f64 / 1048576.0;
                    entry.end = mib;
                    entry.max = entry.max.max(mib);
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The run's progress until `finished`: on one line on a terminal, every 5 s in a log.
async fn show_progress(
    answers: Arc<Answers>,
    sagas: Sagas,
    finished: Arc<AtomicBool>,
    label: String,
    duration: Duration,
    start: Instant,
) {
    let counters = &answers.counters;
    let tty = std::io::stderr().is_terminal();
    let tick = if tty {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(5)
    };
    while !finished.load(Ordering::Relaxed) {
        tokio::time::sleep(tick).await;
        let elapsed = start.elapsed().min(duration);
        let share = elapsed.as_secs_f64() / duration.as_secs_f64();
        let width = 24;
        let filled = (share * width as f64).round() as usize;
        let (done, cancelled) = sagas.progress();
        let line = format!(
            "  {label:<14} [{}{}] {:>5.1}/{:.0} s  sent {}  201 {}  ready {}  cancelled {}  errors {}  in flight {}",
            "#".repeat(filled),
            "-".repeat(width - filled),
            elapsed.as_secs_f64(),
            duration.as_secs_f64(),
            counters.sent.load(Ordering::Relaxed),
            counters.accepted.load(Ordering::Relaxed),
            done,
            cancelled,
            counters.errors.load(Ordering::Relaxed),
            counters.in_flight.load(Ordering::Relaxed),
        );
        if tty {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
    }
    if tty {
        eprint!("\r\x1b[K");
    }
}
