//! Progress on stderr: a bar redrawn in place on a terminal, a one-line summary every ten
//! seconds otherwise (a job's log), never on stdout.

use std::io::Write;
use std::time::{Duration, Instant};

use super::record::Phase;
use super::stats::Aggregate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Decide from whether stderr is a terminal.
    Auto,
    Bar,
    Lines,
    Off,
}

#[derive(Debug)]
pub struct Progress {
    mode: Mode,
    started: Instant,
    last: Instant,
    warmup_total: u64,
    warmup_done: u64,
    expected: Option<u64>,
    duration: Option<Duration>,
}

impl Progress {
    pub fn new(mode: Mode, warmup_total: u64, expected: Option<u64>, duration: Option<Duration>) -> Self {
        let mode = match mode {
            Mode::Auto if std::io::IsTerminal::is_terminal(&std::io::stderr()) => Mode::Bar,
            Mode::Auto => Mode::Lines,
            other => other,
        };
        let now = Instant::now();
        Progress { mode, started: now, last: now, warmup_total, warmup_done: 0, expected, duration }
    }

    pub fn count(&mut self, phase: Phase) {
        if phase == Phase::Warmup {
            self.warmup_done += 1;
        }
    }

    pub fn tick(&mut self, profiling: &Aggregate) {
        let every = match self.mode {
            Mode::Bar => Duration::from_millis(100),
            Mode::Lines => Duration::from_secs(10),
            Mode::Auto | Mode::Off => return,
        };
        if self.last.elapsed() >= every {
            self.last = Instant::now();
            self.draw(profiling, false);
        }
    }

    pub fn finish(&mut self, profiling: &Aggregate) {
        if matches!(self.mode, Mode::Bar | Mode::Lines) {
            self.draw(profiling, true);
        }
    }

    fn draw(&self, a: &Aggregate, last: bool) {
        let done = a.completed + a.error_count();
        let elapsed = self.started.elapsed().as_secs_f64();
        let fraction = if self.warmup_done < self.warmup_total {
            None
        } else if let Some(total) = self.expected.filter(|&t| t > 0) {
            Some(done as f64 / total as f64)
        } else {
            self.duration.map(|d| (elapsed / d.as_secs_f64()).min(1.0))
        };
        let tps = if a.duration_s() > 0.0 { a.output_tokens as f64 / a.duration_s() } else { 0.0 };
        let text = if self.warmup_done < self.warmup_total {
            format!("warm-up {}/{}", self.warmup_done, self.warmup_total)
        } else {
            format!(
                "{done}{} requests, {} errors, {tps:.0} tokens/s, {elapsed:.0} s",
                self.expected.map(|t| format!("/{t}")).unwrap_or_default(),
                a.error_count()
            )
        };
        let mut stderr = std::io::stderr().lock();
        match self.mode {
            Mode::Bar => {
                let width = 30;
                let filled = fraction.map_or(0, |f| (f * width as f64).round() as usize).min(width);
                let _ =
                    write!(stderr, "\r[{}{}] {text}\x1b[K", "#".repeat(filled), " ".repeat(width - filled));
                if last {
                    let _ = writeln!(stderr);
                }
            }
            _ => {
                let _ = writeln!(stderr, "sweep-runner: {text}");
            }
        }
    }
}
