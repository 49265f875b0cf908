//! What an import shows while it runs: a bar on a terminal (bytes read of the inputs,
//! rate, counts, ETA), a plain line every few seconds otherwise, nothing with `--quiet`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use super::Counts;

/// How often a plain progress line is printed when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    plain: bool,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    /// `total_bytes` of the inputs when known (not for stdin).
    pub fn new(quiet: bool, total_bytes: Option<u64>) -> Progress {
        let terminal = !quiet && std::io::stderr().is_terminal();
        let bar = terminal.then(|| {
            let bar = match total_bytes {
                Some(total) => indicatif::ProgressBar::new(total),
                None => indicatif::ProgressBar::new_spinner(),
            };
            let template = if total_bytes.is_some() {
                "{bar:30} {percent:>3}% {binary_bytes}/{binary_total_bytes} {msg} ({eta} left)"
            } else {
                "{spinner} {binary_bytes} {msg}"
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar
        });
        Progress {
            bar,
            plain: !quiet && !terminal,
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }

    pub fn update(&mut self, bytes: u64, counts: &Counts) {
        let rate = counts.rows as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        let line = format!("{} rows/s; {}", rate as u64, counts.line());
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
            bar.set_message(line);
        } else if self.plain && self.last_line.elapsed() >= LINE_EVERY {
            self.last_line = Instant::now();
            eprintln!("import: {line}");
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
