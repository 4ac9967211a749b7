//! Traces in mooncake's JSONL (`timestamp` ms, `input_length`, `output_length`, `hash_ids`),
//! which `workload.trace` replays: the shapes of Dynamo's `sin_synth` (a request rate and a mix
//! of two ISL/OSL pairs that follow sinusoids, below), and BurstGPT's CSV logs converted
//! ([`BurstGpt`]).
//!
//! Both sinusoids start at their minimum: `value(t) = (min + max) / 2 + (max − min) / 2 ·
//! sin(2π t / period − π / 2)`. Time goes in steps of `time_step` seconds; within a step the
//! rate is constant and arrivals are Poisson (exponential gaps, seeded), so a rerun with the same
//! seed writes the same file. A request takes the second ISL/OSL pair with the probability the
//! mix ratio gives at its arrival, and `ceil(isl / block_size)` hash ids drawn from
//! `0..total_blocks` (no prefix is shared on purpose).

use crate::LoadError;
use std::io::Write;

use crate::rng::Rng;

/// `sweep-runner trace sin`'s settings; the defaults are `sin_synth`'s.
#[derive(Debug, Clone, PartialEq)]
pub struct Sin {
    pub block_size: u32,
    pub total_blocks: u64,
    /// Seconds of trace.
    pub duration: f64,
    /// Seconds per step of the sinusoids.
    pub time_step: f64,
    pub rate_min: f64,
    pub rate_max: f64,
    pub rate_period: f64,
    pub isl1: u32,
    pub osl1: u32,
    pub isl2: u32,
    pub osl2: u32,
    /// The share of requests that take the second pair.
    pub ratio_min: f64,
    pub ratio_max: f64,
    pub ratio_period: f64,
    pub seed: u64,
}

impl Default for Sin {
    fn default() -> Self {
        Sin {
            block_size: 512,
            total_blocks: 10_000,
            duration: 100.0,
            time_step: 1.0,
            rate_min: 5.0,
            rate_max: 10.0,
            rate_period: 10.0,
            isl1: 100,
            osl1: 2000,
            isl2: 5000,
            osl2: 100,
            ratio_min: 0.2,
            ratio_max: 0.8,
            ratio_period: 10.0,
            seed: 0,
        }
    }
}

/// A sinusoid from `min` at `t = 0` up to `max` at half a period.
pub fn sinusoid(min: f64, max: f64, period: f64, t: f64) -> f64 {
    (min + max) / 2.0
        + (max - min) / 2.0 * (2.0 * std::f64::consts::PI / period * t - std::f64::consts::FRAC_PI_2).sin()
}

impl Sin {
    /// What cannot make a trace, said with the flag's name.
    pub fn check(&self) -> Result<(), LoadError> {
        let bad = |setting: &'static str, problem: &str| LoadError::Setting {
            setting,
            problem: problem.to_owned(),
        };
        let positive = [
            ("--time-duration", self.duration),
            ("--process-interval", self.time_step),
            ("--request-rate-period", self.rate_period),
            ("--isl-osl-ratio-period", self.ratio_period),
        ];
        for (flag, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(bad(flag, &format!("{flag} must be a number > 0")));
            }
        }
        if !(self.rate_min >= 0.0 && self.rate_max >= self.rate_min && self.rate_max.is_finite()) {
            return Err(bad(
                "--request-rate-min",
                "--request-rate-min and --request-rate-max: 0 ≤ min ≤ max",
            ));
        }
        if !(0.0..=1.0).contains(&self.ratio_min) || !(self.ratio_min..=1.0).contains(&self.ratio_max) {
            return Err(bad(
                "--isl-osl-ratio-min",
                "--isl-osl-ratio-min and --isl-osl-ratio-max: 0 ≤ min ≤ max ≤ 1",
            ));
        }
        if self.block_size == 0 || self.total_blocks == 0 {
            return Err(bad("--block-size", "--block-size and --total-blocks must be at least 1"));
        }
        if [self.isl1, self.osl1, self.isl2, self.osl2].contains(&0) {
            return Err(bad("--isl", "every ISL and OSL must be at least 1"));
        }
        Ok(())
    }

    /// Writes the trace to `out`, a line per request in time order; returns how many.
    pub fn write(&self, out: &mut impl Write) -> std::io::Result<u64> {
        let mut rng = Rng::new(self.seed);
        let mut written = 0u64;
        let mut line = String::with_capacity(256);
        let steps = (self.duration / self.time_step).ceil() as u64;
        for step in 0..steps {
            let start = step as f64 * self.time_step;
            let end = (start + self.time_step).min(self.duration);
            let rate = sinusoid(self.rate_min, self.rate_max, self.rate_period, start);
            let ratio = sinusoid(self.ratio_min, self.ratio_max, self.ratio_period, start);
            if rate <= 0.0 {
                continue;
            }
            let mut t = start + rng.exponential(1.0 / rate);
            while t < end {
                let (isl, osl) =
                    if rng.uniform() < ratio { (self.isl2, self.osl2) } else { (self.isl1, self.osl1) };
                mooncake_line(&mut line, &mut rng, t * 1000.0, isl, osl, self.block_size, self.total_blocks);
                out.write_all(line.as_bytes())?;
                written += 1;
                t += rng.exponential(1.0 / rate);
            }
        }
        Ok(written)
    }
}

/// One mooncake line: `hash_ids` are `ceil(isl / block_size)` ids drawn from `0..total_blocks`.
fn mooncake_line(
    line: &mut String,
    rng: &mut Rng,
    ms: f64,
    isl: u32,
    osl: u32,
    block_size: u32,
    total_blocks: u64,
) {
    use std::fmt::Write as _;
    line.clear();
    let _ =
        write!(line, "{{\"timestamp\":{ms:.3},\"input_length\":{isl},\"output_length\":{osl},\"hash_ids\":[");
    for k in 0..isl.div_ceil(block_size) {
        if k > 0 {
            line.push(',');
        }
        let _ = write!(line, "{}", rng.next_u64() % total_blocks);
    }
    line.push_str("]}\n");
}

/// `sweep-runner trace prefix`: requests at a constant rate whose first `ratio` of blocks is
/// one of `groups` shared prefixes (request *i* takes prefix *i* mod `groups`) and the rest their
/// own, as Dynamo's prefix-ratio benchmark sends them to measure KV-cache-aware routing.
#[derive(Debug, Clone, PartialEq)]
pub struct Prefix {
    pub requests: u64,
    pub rate: f64,
    pub isl: u32,
    pub osl: u32,
    pub block_size: u32,
    pub ratio: f64,
    pub groups: u32,
}

impl Prefix {
    pub fn check(&self) -> Result<(), LoadError> {
        let bad = |setting: &'static str, problem: String| LoadError::Setting { setting, problem };
        if !(self.ratio >= 0.0 && self.ratio <= 1.0) {
            return Err(bad("--ratio", format!("--ratio must be between 0 and 1, not {}", self.ratio)));
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(bad(
                "--request-rate",
                format!("--request-rate must be a number > 0, not {}", self.rate),
            ));
        }
        if [self.isl, self.osl, self.block_size, self.groups].contains(&0) || self.requests == 0 {
            return Err(bad(
                "--requests",
                "--requests, --isl, --osl, --block-size and --prefix-groups must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Shared blocks per request: the ratio of its blocks, rounded.
    pub fn shared_blocks(&self) -> u64 {
        (f64::from(self.isl.div_ceil(self.block_size)) * self.ratio).round() as u64
    }

    /// Writes the trace to `out`; returns how many lines.
    pub fn write(&self, out: &mut impl Write) -> std::io::Result<u64> {
        use std::fmt::Write as _;
        let blocks = u64::from(self.isl.div_ceil(self.block_size));
        let shared = self.shared_blocks();
        // Shared ids are group × shared + k; every other block's id comes after all of them.
        let mut next_own = u64::from(self.groups) * shared;
        let mut line = String::with_capacity(256);
        for i in 0..self.requests {
            line.clear();
            let ms = i as f64 * 1000.0 / self.rate;
            let _ = write!(
                line,
                "{{\"timestamp\":{ms:.3},\"input_length\":{},\"output_length\":{},\"hash_ids\":[",
                self.isl, self.osl
            );
            let group = i % u64::from(self.groups);
            for k in 0..blocks {
                if k > 0 {
                    line.push(',');
                }
                let id = if k < shared {
                    group * shared + k
                } else {
                    next_own += 1;
                    next_own - 1
                };
                let _ = write!(line, "{id}");
            }
            line.push_str("]}\n");
            out.write_all(line.as_bytes())?;
        }
        Ok(self.requests)
    }
}

/// `sweep-runner trace burstgpt`: BurstGPT's CSV (`Timestamp` in s, `Model`, `Request tokens`,
/// `Response tokens`, `Total tokens`, `Log Type`) as mooncake lines, time-shifted to start at 0.
#[derive(Debug, Clone, PartialEq)]
pub struct BurstGpt {
    /// Keep only rows of this model (`ChatGPT`, `GPT-4`).
    pub model: Option<String>,
    /// Keep only rows of this log type (`Conversation log`, `API log`).
    pub log_type: Option<String>,
    /// Replay this many times faster: timestamps are divided by it.
    pub speed_ratio: f64,
    /// Stop after this many requests.
    pub num_requests: Option<u64>,
    pub block_size: u32,
    pub total_blocks: u64,
    pub seed: u64,
}

/// What a conversion kept and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Converted {
    pub written: u64,
    /// Rows another model's or log type's.
    pub filtered: u64,
    /// Rows of failed requests (0 response tokens), which have nothing to replay.
    pub failed: u64,
}

impl BurstGpt {
    /// Converts `csv` into `out`; an unreadable row is an error naming its line.
    pub fn convert(&self, csv: &str, out: &mut impl Write) -> Result<Converted, LoadError> {
        if !(self.speed_ratio.is_finite() && self.speed_ratio > 0.0) {
            return Err(LoadError::Setting {
                setting: "--speed-ratio",
                problem: "--speed-ratio must be a number > 0".into(),
            });
        }
        let at_line = |line: u64, problem: String| LoadError::Csv { line, problem };
        // RFC 4180 as the `csv` crate reads it: a quoted field may hold commas and quotes.
        let mut reader =
            csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(true).from_reader(csv.as_bytes());
        let header: Vec<String> =
            reader.headers().map_err(|e| at_line(1, e.to_string()))?.iter().map(str::to_owned).collect();
        if header.iter().all(String::is_empty) {
            return Err(at_line(1, "the CSV is empty".into()));
        }
        let column = |name: &str| {
            header.iter().position(|h| h == name).ok_or_else(|| {
                at_line(1, format!("no `{name}` column (the header is: {})", header.join(", ")))
            })
        };
        let (at, model, request, response, log) = (
            column("Timestamp")?,
            column("Model")?,
            column("Request tokens")?,
            column("Response tokens")?,
            column("Log Type")?,
        );
        let mut rng = Rng::new(self.seed);
        let mut line = String::with_capacity(256);
        let mut done = Converted::default();
        let mut first: Option<f64> = None;
        let mut row = csv::StringRecord::new();
        loop {
            if self.num_requests.is_some_and(|max| done.written >= max) {
                break;
            }
            let line_number = reader.position().line() + 1;
            match reader.read_record(&mut row) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(at_line(line_number, e.to_string())),
            }
            let n = row.position().map_or(line_number, |p| p.line());
            if row.iter().all(str::is_empty) {
                continue;
            }
            let field = |i: usize| row.get(i).ok_or_else(|| at_line(n, "too few columns".into()));
            let number = |i: usize| -> Result<f64, LoadError> {
                let text = field(i)?;
                text.parse::<f64>()
                    .map_err(|_| at_line(n, format!("`{}` is not a number: {text}", header[i])))
            };
            if self.model.as_deref().is_some_and(|m| field(model).ok() != Some(m))
                || self.log_type.as_deref().is_some_and(|l| field(log).ok() != Some(l))
            {
                done.filtered += 1;
                continue;
            }
            let (t, isl, osl) = (number(at)?, number(request)?, number(response)?);
            if osl < 1.0 || isl < 1.0 {
                done.failed += 1;
                continue;
            }
            let start = *first.get_or_insert(t);
            let ms = (t - start).max(0.0) * 1000.0 / self.speed_ratio;
            mooncake_line(
                &mut line,
                &mut rng,
                ms,
                isl as u32,
                osl as u32,
                self.block_size,
                self.total_blocks,
            );
            out.write_all(line.as_bytes()).map_err(LoadError::Output)?;
            done.written += 1;
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompts::TraceEntry;

    #[test]
    fn burstgpt_rows_become_mooncake_lines_filtered_scaled_and_truncated() {
        let csv = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type
5,ChatGPT,472,18,490,Conversation log
7,GPT-4,1024,100,1124,API log
9,ChatGPT,100,0,100,Conversation log
11,ChatGPT,2000,40,2040,Conversation log
13,ChatGPT,10,5,15,Conversation log
";
        let convert = |b: &BurstGpt| {
            let mut out = Vec::new();
            let done = b.convert(csv, &mut out).expect("converts");
            let entries: Vec<TraceEntry> = String::from_utf8(out)
                .expect("utf-8")
                .lines()
                .map(|l| serde_json::from_str(l).expect(l))
                .collect();
            (done, entries)
        };
        let b = BurstGpt {
            model: Some("ChatGPT".into()),
            log_type: None,
            speed_ratio: 2.0,
            num_requests: Some(2),
            block_size: 512,
            total_blocks: 100,
            seed: 0,
        };
        let (done, entries) = convert(&b);
        assert_eq!(done, Converted { written: 2, filtered: 1, failed: 1 });
        let got: Vec<(f64, u32, u32, usize)> = entries
            .iter()
            .map(|e| (e.timestamp, e.input_length, e.output_length, e.hash_ids.len()))
            .collect();
        // From t = 5 s, twice as fast: 11 s is 3,000 ms in.
        assert_eq!(got, [(0.0, 472, 18, 1), (3000.0, 2000, 40, 4)]);
        let (done, _) = convert(&BurstGpt { model: None, num_requests: None, ..b.clone() });
        assert_eq!(done, Converted { written: 4, filtered: 0, failed: 1 });
        let bad = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n5,ChatGPT,many,18,490,API log\n";
        let error = b.convert(bad, &mut Vec::new()).expect_err("bad row").to_string();
        assert!(error.contains("line 2") && error.contains("Request tokens"), "{error}");
        let error = b.convert("Time,Model\n", &mut Vec::new()).expect_err("bad header").to_string();
        assert!(error.contains("no `Timestamp` column"), "{error}");
    }

    /// Quoted fields, as spreadsheets and pandas write them: a quoted model or log type, and a
    /// comma inside quotes, are read as their text (once taken for a model named `"ChatGPT"`).
    #[test]
    fn burstgpt_rows_with_quoted_fields_are_read_as_csv() {
        let csv = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type
5,\"ChatGPT\",472,18,490,\"Conversation log\"
6,\"GPT-4, turbo\",10,5,15,API log
7,ChatGPT,\"100\",20,120,Conversation log
";
        let b = BurstGpt {
            model: Some("ChatGPT".into()),
            log_type: Some("Conversation log".into()),
            speed_ratio: 1.0,
            num_requests: None,
            block_size: 512,
            total_blocks: 100,
            seed: 0,
        };
        let mut out = Vec::new();
        let done = b.convert(csv, &mut out).expect("converts");
        assert_eq!(done, Converted { written: 2, filtered: 1, failed: 0 });
        let entries: Vec<TraceEntry> = String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect(l))
            .collect();
        let got: Vec<(f64, u32)> = entries.iter().map(|e| (e.timestamp, e.input_length)).collect();
        assert_eq!(got, [(0.0, 472), (2000.0, 100)]);
        let error = b.convert("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n5,\"ChatGPT\",x,1,1,Conversation log\n", &mut Vec::new()).expect_err("bad").to_string();
        assert!(error.contains("line 2"), "{error}");
    }

    fn entries(sin: &Sin) -> Vec<TraceEntry> {
        let mut out = Vec::new();
        sin.write(&mut out).expect("writes");
        String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    }

    #[test]
    fn the_rate_and_the_mix_follow_their_sinusoids() {
        // Long steady stretches at each end of the rate's swing: 2/s at t = 0, 20/s at half a
        // period; the mix goes from all pair 1 to all pair 2 on the same period.
        let sin = Sin {
            duration: 400.0,
            time_step: 1.0,
            rate_min: 2.0,
            rate_max: 20.0,
            rate_period: 400.0,
            ratio_min: 0.0,
            ratio_max: 1.0,
            ratio_period: 400.0,
            ..Sin::default()
        };
        let all = entries(&sin);
        let window = |from: f64, to: f64| {
            all.iter()
                .filter(|e| e.timestamp >= from * 1000.0 && e.timestamp < to * 1000.0)
                .collect::<Vec<_>>()
        };
        let low = window(0.0, 20.0);
        let high = window(190.0, 210.0);
        // Expected 20 s × ~2.1/s and 20 s × ~20/s; Poisson noise is a few tens of percent at most.
        assert!((25..=65).contains(&low.len()), "{} near the minimum", low.len());
        assert!((330..=470).contains(&high.len()), "{} near the maximum", high.len());
        assert!(low.iter().filter(|e| e.input_length == sin.isl2).count() <= 2, "the mix starts at pair 1");
        assert!(high.iter().filter(|e| e.input_length == sin.isl1).count() <= 10, "and reaches pair 2");
        // Time order, the ids each prompt needs, the same file for the same seed.
        assert!(all.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
        assert!(all.iter().all(|e| e.hash_ids.len() as u32 == e.input_length.div_ceil(512)));
        assert!(all.iter().flat_map(|e| &e.hash_ids).all(|&id| id < 10_000));
        assert_eq!(entries(&sin), all);
    }

    #[test]
    fn bad_settings_name_their_flag() {
        let bad = Sin { rate_max: 1.0, rate_min: 2.0, ..Sin::default() };
        assert!(bad.check().expect_err("min > max").to_string().contains("--request-rate-min"));
        let bad = Sin { time_step: 0.0, ..Sin::default() };
        assert!(bad.check().expect_err("zero step").to_string().contains("--process-interval"));
        assert!(Sin::default().check().is_ok());
    }

    #[test]
    fn prefix_traces_share_the_asked_blocks_within_a_group_only() {
        let prefix =
            Prefix { requests: 6, rate: 4.0, isl: 100, osl: 3, block_size: 10, ratio: 0.3, groups: 2 };
        prefix.check().expect("valid");
        let mut out = Vec::new();
        assert_eq!(prefix.write(&mut out).expect("written"), 6);
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect();
        let ids = |i: usize| -> Vec<u64> {
            lines[i]["hash_ids"].as_array().expect("ids").iter().map(|v| v.as_u64().expect("id")).collect()
        };
        assert_eq!(lines[1]["timestamp"], 250.0);
        assert_eq!(ids(0).len(), 10);
        assert_eq!(ids(0)[..3], ids(2)[..3], "requests 0 and 2 share group 0's prefix");
        assert_ne!(ids(0)[..3], ids(1)[..3], "request 1 is in group 1");
        let all: Vec<u64> = (0..6).flat_map(|i| ids(i)[3..].to_vec()).collect();
        let unique: std::collections::BTreeSet<u64> = all.iter().copied().collect();
        assert_eq!(unique.len(), all.len(), "past the prefix every block is a request's own");
        assert!(Prefix { ratio: 1.5, ..prefix.clone() }.check().is_err());
    }
}
