//! Interleaved timing and the result table.
//!
//! Every figure runs its operations in rounds: in each round every operation produces one
//! sample (one call, or the mean of `inner` calls for sub-microsecond operations), in an
//! order that alternates between rounds. Medians are taken over the samples, and ratios are
//! ratios of medians, so a disturbance (a vCPU wake-up, a checkpoint) hits both sides alike.

use std::time::Instant;

use diesel::pg::PgConnection;

/// One operation: given the connection and the round number, run and return nanoseconds per
/// call for this sample (the operation times itself, so it can exclude untimed set-up).
pub type Op<'a> = Box<dyn FnMut(&mut PgConnection, usize) -> f64 + 'a>;

/// Time `f` once, in nanoseconds.
pub fn time1<T>(f: impl FnOnce() -> T) -> f64 {
    let start = Instant::now();
    std::hint::black_box(f());
    start.elapsed().as_nanos() as f64
}

/// Mean nanoseconds per call of `inner` calls of `f(i)`.
pub fn time_n<T>(inner: usize, mut f: impl FnMut(usize) -> T) -> f64 {
    let start = Instant::now();
    for i in 0..inner {
        std::hint::black_box(f(i));
    }
    start.elapsed().as_nanos() as f64 / inner as f64
}

/// Run `ops` interleaved for `warmup + samples` rounds; the median of each op's samples.
pub fn interleave(
    conn: &mut PgConnection,
    warmup: usize,
    samples: usize,
    ops: &mut [Op<'_>],
) -> Vec<f64> {
    let n = ops.len();
    let mut out: Vec<Vec<f64>> = vec![Vec::with_capacity(samples); n];
    for round in 0..warmup + samples {
        for k in 0..n {
            let i = if round % 2 == 0 { k } else { n - 1 - k };
            let v = ops[i](conn, round);
            if round >= warmup {
                out[i].push(v);
            }
        }
    }
    out.iter_mut().map(|s| median(s)).collect()
}

pub fn median(samples: &mut [f64]) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let m = samples.len() / 2;
    if samples.len() % 2 == 1 {
        samples[m]
    } else {
        (samples[m - 1] + samples[m]) / 2.0
    }
}

/// A duration in nanoseconds, shown in microseconds.
pub fn us(ns: f64) -> String {
    let v = ns / 1000.0;
    if v < 1.0 {
        format!("{v:.3}")
    } else if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

/// How a figure is judged against its target.
#[derive(Clone, Copy)]
pub enum Target {
    /// No target: reported for information.
    None,
    /// The ratio must be at most this.
    AtMost(f64),
}

/// One line of the result table.
pub struct Row {
    pub fig: String,
    pub measured: String,
    pub value: String,
    pub baseline: String,
    pub base_value: String,
    pub ratio: Option<f64>,
    pub target: Target,
}

#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Report {
    /// A timed figure: measured and baseline medians (ns), their ratio and its target.
    pub fn timed(
        &mut self,
        fig: &str,
        measured: &str,
        value: f64,
        baseline: &str,
        base: f64,
        target: Target,
    ) {
        eprintln!(
            "[bench] {fig}: {measured} {} us vs {baseline} {} us = {:.3}x",
            us(value),
            us(base),
            value / base
        );
        self.rows.push(Row {
            fig: fig.into(),
            measured: measured.into(),
            value: us(value),
            baseline: baseline.into(),
            base_value: us(base),
            ratio: Some(value / base),
            target,
        });
    }

    /// A figure that is not a latency pair (throughput, memory).
    pub fn plain(
        &mut self,
        fig: &str,
        measured: &str,
        value: String,
        baseline: &str,
        base: String,
    ) {
        eprintln!("[bench] {fig}: {measured} = {value} ({baseline} {base})");
        self.rows.push(Row {
            fig: fig.into(),
            measured: measured.into(),
            value,
            baseline: baseline.into(),
            base_value: base,
            ratio: None,
            target: Target::None,
        });
    }

    pub fn note(&mut self, note: String) {
        eprintln!("[bench] note: {note}");
        self.notes.push(note);
    }

    pub fn print(&self) {
        println!("| # | measured | median (us) | baseline | median (us) | ratio | target | met |");
        println!("|---|---|---:|---|---:|---:|---:|:---:|");
        for r in &self.rows {
            let ratio = r.ratio.map_or_else(String::new, |x| format!("{x:.3}x"));
            let (target, met) = match (r.target, r.ratio) {
                (Target::AtMost(t), Some(x)) => {
                    (format!("<= {t:.2}x"), if x <= t { "yes" } else { "**no**" })
                }
                _ => (String::new(), ""),
            };
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.fig, r.measured, r.value, r.baseline, r.base_value, ratio, target, met
            );
        }
        if !self.notes.is_empty() {
            println!();
            for n in &self.notes {
                println!("- {n}");
            }
        }
    }
}
