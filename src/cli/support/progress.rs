//! Progress of a bulk action from a terminal.

/// Progress of a bulk action on stderr: a bar on a terminal, a plain line every few
/// seconds otherwise (a log file or a pipe gets lines it can keep).
pub(super) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    verb: &'static str,
    last_line: std::cell::Cell<std::time::Instant>,
}

impl Progress {
    pub(super) fn new(total: u64, verb: &'static str) -> Self {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} ({eta} left)")
            {
                bar.set_style(style);
            }
            bar.set_message(verb);
            bar
        });
        if bar.is_none() {
            eprintln!("{verb} 0/{total}");
        }
        Progress {
            bar,
            total,
            verb,
            last_line: std::cell::Cell::new(std::time::Instant::now()),
        }
    }

    pub(super) fn set(&self, done: u64) {
        match &self.bar {
            Some(bar) => bar.set_position(done),
            None if self.last_line.get().elapsed() >= std::time::Duration::from_secs(2) => {
                self.last_line.set(std::time::Instant::now());
                eprintln!("{} {done}/{}", self.verb, self.total);
            }
            None => {}
        }
    }

    pub(super) fn finish(&self) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => eprintln!("{} done", self.verb),
        }
    }
}
