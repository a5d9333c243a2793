//! Rows of the bench report: a figure, its baseline, the ratio between them and the
//! target that ratio must meet; the table and the JSON made of them, and which rows
//! count as missed (the report exits non-zero when any does).
//!
//! A row is met, missed, or not run. A row with no figure on one side is not run, and
//! says why; it counts as missed when the side that could not run is the project's own
//! and the bench runs under CI (`CI` set, as the project's CI sets it), so a peer that
//! is not installed here never fails the report, and the project's own figures always
//! do. A ratio with nothing measured (`0 / 0`, no errors out of no operations) is not a
//! number, so it never meets a target.

use serde_json::{Value, json};

/// Which way the ratio of a row is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ratio {
    /// `value / baseline`: how many times the baseline the figure is (a slowdown, a
    /// share, a gain in throughput).
    ValueOverBaseline,
    /// `baseline / value`: how many times faster than the baseline the figure is.
    BaselineOverValue,
}

/// What the ratio of a row must be.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// At most this.
    AtMost(f64),
    /// At least this.
    AtLeast(f64),
    /// No target: the ratio is reported for the reader (a peer's figure beside ours).
    Report,
}

impl Target {
    /// Whether `ratio` meets the target (a ratio that is not a number never does).
    pub fn met_by(self, ratio: f64) -> bool {
        match self {
            _ if ratio.is_nan() => false,
            Target::AtMost(limit) => ratio <= limit,
            Target::AtLeast(limit) => ratio >= limit,
            Target::Report => true,
        }
    }

    fn bound(self) -> f64 {
        match self {
            Target::AtMost(x) | Target::AtLeast(x) => x,
            Target::Report => f64::NAN,
        }
    }

    fn op(self) -> &'static str {
        match self {
            Target::AtMost(_) => "<=",
            Target::AtLeast(_) => ">=",
            Target::Report => "none",
        }
    }

    /// The target as the table shows it: `≤ 1.5×`.
    pub fn text(self) -> String {
        let sign = match self {
            Target::AtMost(_) => "≤",
            Target::AtLeast(_) => "≥",
            Target::Report => return "-".to_owned(),
        };
        format!("{sign} {}×", fmt_ratio(self.bound()))
    }
}

/// Which side of a comparison could not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// jitcache's own figure (or the whole comparison): missed under CI.
    Project,
    /// A peer (another tool, e.g. ccache): reported, never missed.
    Peer,
}

/// A comparison, or one side of it, that could not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotRun {
    /// Whose side it is.
    pub side: Side,
    /// Why it could not run.
    pub why: String,
}

/// What a row's comparison came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Both figures measured, the ratio meets the target.
    Met,
    /// Both figures measured, the ratio misses the target.
    Missed,
    /// A figure is missing (see [`Row::not_run`]).
    NotRun,
    /// Both figures measured, no target ([`Target::Report`]).
    Reported,
}

/// One comparison of the report.
#[derive(Clone, Debug)]
pub struct Row {
    /// What is compared, e.g. `hit vs floor`.
    pub name: String,
    /// Which target of the issue (1 to 5) the row belongs to.
    pub group: u8,
    /// The figure measured; `None` when the comparison could not be run.
    pub value: Option<f64>,
    /// What the figure is compared with, measured in the same run.
    pub baseline: Option<f64>,
    /// What the baseline is, e.g. `floor: read_exact + zstd + copy`.
    pub baseline_name: String,
    /// Unit of `value` and `baseline` (`µs`, `ms`, `s`, `bytes`, `ops/s`, `errors`).
    pub unit: &'static str,
    /// Which way the ratio is taken.
    pub ratio_kind: Ratio,
    /// What the ratio must be.
    pub target: Target,
    /// What was measured, and anything else a reader needs to judge the figure.
    pub notes: String,
    /// The sizes of the work both sides did (files, entries, bytes), e.g. `200 files`.
    pub sizes: String,
    /// Repetitions behind [`Row::value`] (the median's sample count), if counted.
    pub value_runs: Option<usize>,
    /// Repetitions behind [`Row::baseline`], if counted.
    pub baseline_runs: Option<usize>,
    /// Set when a side could not run, saying whose and why.
    pub not_run: Option<NotRun>,
}

impl Row {
    /// A row with both figures measured.
    pub fn new(
        group: u8,
        name: impl Into<String>,
        unit: &'static str,
        (value, baseline): (f64, f64),
        baseline_name: impl Into<String>,
        ratio_kind: Ratio,
        target: Target,
    ) -> Row {
        Row {
            name: name.into(),
            group,
            value: Some(value),
            baseline: Some(baseline),
            baseline_name: baseline_name.into(),
            unit,
            ratio_kind,
            target,
            notes: String::new(),
            sizes: String::new(),
            value_runs: None,
            baseline_runs: None,
            not_run: None,
        }
    }

    /// A row whose comparison could not be run, saying why: the project's own side
    /// (see [`Row::by_peer`] for a peer's).
    pub fn skipped(
        group: u8,
        name: impl Into<String>,
        unit: &'static str,
        ratio_kind: Ratio,
        target: Target,
        why: impl Into<String>,
    ) -> Row {
        Row {
            name: name.into(),
            group,
            value: None,
            baseline: None,
            baseline_name: String::new(),
            unit,
            ratio_kind,
            target,
            notes: String::new(),
            sizes: String::new(),
            value_runs: None,
            baseline_runs: None,
            not_run: Some(NotRun {
                side: Side::Project,
                why: why.into(),
            }),
        }
    }

    /// A row whose baseline, a peer, could not run: the figure measured, the peer's
    /// side empty, and why (reported, never missed).
    pub fn peer_not_run(mut self, why: impl Into<String>) -> Row {
        self.baseline = None;
        self.not_run = Some(NotRun {
            side: Side::Peer,
            why: why.into(),
        });
        self
    }

    /// This row as it is when the peer's measurement `baseline` succeeded, else
    /// [`Row::peer_not_run`] with its error.
    pub fn peer_outcome<T>(self, baseline: &anyhow::Result<T>) -> Row {
        match baseline {
            Ok(_) => self,
            Err(err) => self.peer_not_run(format!("{err:#}")),
        }
    }

    /// Marks a [`Row::skipped`] row as a peer's: the side that could not run is
    /// another tool, not the project's.
    pub fn by_peer(mut self) -> Row {
        if let Some(not_run) = &mut self.not_run {
            not_run.side = Side::Peer;
        }
        self
    }

    /// Adds notes.
    pub fn with_notes(mut self, notes: impl Into<String>) -> Row {
        self.notes = notes.into();
        self
    }

    /// Says the sizes of the work both sides did.
    pub fn with_sizes(mut self, sizes: impl Into<String>) -> Row {
        self.sizes = sizes.into();
        self
    }

    /// Says how many repetitions each side's figure is the median of.
    pub fn with_runs(mut self, value_runs: usize, baseline_runs: usize) -> Row {
        self.value_runs = Some(value_runs);
        self.baseline_runs = Some(baseline_runs);
        self
    }

    /// Moves the row to target group `group` (the report numbers groups as the
    /// targets of the issue they measure).
    pub fn in_group(mut self, group: u8) -> Row {
        self.group = group;
        self
    }

    /// The ratio, as [`Row::ratio_kind`] says; NaN when a figure is missing or nothing
    /// was measured (`0 / 0`: no errors out of no operations).
    pub fn ratio(&self) -> f64 {
        let (Some(value), Some(baseline)) = (self.value, self.baseline) else {
            return f64::NAN;
        };
        let (num, den) = match self.ratio_kind {
            Ratio::ValueOverBaseline => (value, baseline),
            Ratio::BaselineOverValue => (baseline, value),
        };
        if num == 0.0 && den == 0.0 {
            f64::NAN
        } else if den == 0.0 {
            f64::INFINITY
        } else {
            num / den
        }
    }

    /// Whether the target is met.
    pub fn met(&self) -> bool {
        self.not_run.is_none() && self.target.met_by(self.ratio())
    }

    /// What the comparison came to.
    pub fn verdict(&self) -> Verdict {
        if self.not_run.is_some() || self.value.is_none() || self.baseline.is_none() {
            Verdict::NotRun
        } else if self.target == Target::Report {
            Verdict::Reported
        } else if self.met() {
            Verdict::Met
        } else {
            Verdict::Missed
        }
    }

    /// Whether the row fails the report: missed, or not run on the project's own side
    /// when `ci` (the bench runs under CI).
    pub fn fails(&self, ci: bool) -> bool {
        match self.verdict() {
            Verdict::Met | Verdict::Reported => false,
            Verdict::Missed => true,
            Verdict::NotRun => {
                ci && self
                    .not_run
                    .as_ref()
                    .is_none_or(|not_run| not_run.side == Side::Project)
            }
        }
    }

    /// The verdict as the table shows it.
    fn verdict_text(&self) -> &'static str {
        match (self.verdict(), self.not_run.as_ref().map(|n| n.side)) {
            (Verdict::Met, _) => "yes",
            (Verdict::Reported, _) => "(figure)",
            (Verdict::Missed, _) => "NO",
            (Verdict::NotRun, Some(Side::Peer)) => "not run (peer)",
            (Verdict::NotRun, _) => "not run",
        }
    }

    /// The row as a JSON object: `name`, `value`, `baseline`, `ratio`, `target`, `met`,
    /// and `group`, `unit`, `baseline_name`, `ratio_is`, `target_op`, `verdict` (`met`,
    /// `missed`, `not run`), `sizes`, `value_runs`, `baseline_runs`, `not_run` (`null`,
    /// or `side` (`project`, `peer`) and `why`), `notes`. A ratio that is not finite is
    /// `null`.
    pub fn to_json(&self) -> Value {
        let ratio = self.ratio();
        json!({
            "name": self.name,
            "group": self.group,
            "value": self.value,
            "baseline": self.baseline,
            "ratio": ratio.is_finite().then_some(ratio),
            "target": Some(self.target.bound()).filter(|b| b.is_finite()),
            "target_op": self.target.op(),
            "met": self.met(),
            "unit": self.unit,
            "baseline_name": self.baseline_name,
            "ratio_is": match self.ratio_kind {
                Ratio::ValueOverBaseline => "value/baseline",
                Ratio::BaselineOverValue => "baseline/value",
            },
            "verdict": match self.verdict() {
                Verdict::Met => "met",
                Verdict::Reported => "reported",
                Verdict::Missed => "missed",
                Verdict::NotRun => "not run",
            },
            "sizes": self.sizes,
            "value_runs": self.value_runs,
            "baseline_runs": self.baseline_runs,
            "not_run": self.not_run.as_ref().map(|n| json!({
                "side": match n.side {
                    Side::Project => "project",
                    Side::Peer => "peer",
                },
                "why": n.why,
            })),
            "notes": self.notes,
        })
    }
}

/// The rows that fail the report (see [`Row::fails`]).
pub fn failures(rows: &[Row], ci: bool) -> Vec<&Row> {
    rows.iter().filter(|r| r.fails(ci)).collect()
}

/// Whether the bench runs under CI: `CI` set to anything but empty, `0` or `false`.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The report as a JSON array, one object per row.
pub fn to_json(rows: &[Row]) -> Value {
    Value::Array(rows.iter().map(Row::to_json).collect())
}

/// A figure in `unit`, with as many digits as it deserves.
pub fn fmt_value(value: Option<f64>, unit: &str) -> String {
    let Some(v) = value else {
        return "-".to_owned();
    };
    let digits = if v == 0.0 || v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else if v.abs() >= 1.0 {
        2
    } else {
        3
    };
    let number = if v.abs() >= 1e6 && unit != "bytes" {
        format!("{:.2}M", v / 1e6)
    } else {
        format!("{v:.digits$}")
    };
    format!("{number} {unit}")
}

/// A ratio: `2.7`, `0.93`, `1240`.
pub fn fmt_ratio(r: f64) -> String {
    if !r.is_finite() {
        return if r.is_nan() {
            "-".to_owned()
        } else {
            "∞".to_owned()
        };
    }
    if r >= 100.0 {
        format!("{r:.0}")
    } else if r >= 10.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.2}")
    }
}

/// The report as a table: one line per row, then the notes.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "target", "figure", "value", "baseline", "ratio", "needed", "met",
    ];
    let lines: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.group.to_string(),
                r.name.clone(),
                fmt_value(r.value, r.unit),
                format!("{} ({})", fmt_value(r.baseline, r.unit), r.baseline_name),
                format!("{}×", fmt_ratio(r.ratio())),
                r.target.text(),
                r.verdict_text().to_owned(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push = |cells: &[String]| {
        let mut line = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w - cell.chars().count();
            if i > 0 {
                line.push_str("  ");
            }
            // Numbers right-aligned, text left-aligned.
            if matches!(i, 2 | 4) {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push(&header.map(str::to_owned));
    push(&widths.map(|w| "-".repeat(w)));
    for line in &lines {
        push(line);
    }
    let noted: Vec<&Row> = rows
        .iter()
        .filter(|r| !r.notes.is_empty() || r.not_run.is_some() || !r.sizes.is_empty())
        .collect();
    if !noted.is_empty() {
        out.push_str("\nNotes:\n");
        for r in noted {
            out.push_str(&format!("- {}: {}\n", r.name, note_text(r)));
        }
    }
    out
}

/// A row's notes line: not run and why, the sizes, the repetitions, the notes.
fn note_text(r: &Row) -> String {
    let mut parts = Vec::new();
    if let Some(not_run) = &r.not_run {
        let whose = match not_run.side {
            Side::Project => "",
            Side::Peer => " (the peer)",
        };
        parts.push(format!("not run{whose}: {}", not_run.why));
    }
    if !r.sizes.is_empty() {
        parts.push(format!("sizes: {}", r.sizes));
    }
    if let (Some(v), Some(b)) = (r.value_runs, r.baseline_runs) {
        parts.push(format!("medians of {v} and {b} runs"));
    }
    if !r.notes.is_empty() {
        parts.push(r.notes.clone());
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(value: f64, baseline: f64, kind: Ratio, target: Target) -> Row {
        Row::new(1, "x", "µs", (value, baseline), "base", kind, target)
    }

    #[test]
    fn ratio_follows_its_kind() {
        let slow = row(15.0, 10.0, Ratio::ValueOverBaseline, Target::AtMost(1.5));
        assert_eq!(slow.ratio(), 1.5);
        assert!(slow.met(), "the bound itself meets an at-most target");
        let fast = row(10.0, 30.0, Ratio::BaselineOverValue, Target::AtLeast(2.5));
        assert_eq!(fast.ratio(), 3.0);
        assert!(fast.met());
        let too_slow = row(16.0, 10.0, Ratio::ValueOverBaseline, Target::AtMost(1.5));
        assert!(!too_slow.met());
        let not_fast_enough = row(20.0, 30.0, Ratio::BaselineOverValue, Target::AtLeast(2.5));
        assert!(!not_fast_enough.met());
    }

    #[test]
    fn zero_errors_meet_a_zero_target() {
        let none = row(0.0, 5000.0, Ratio::ValueOverBaseline, Target::AtMost(0.0));
        assert!(none.met());
        let one = row(1.0, 5000.0, Ratio::ValueOverBaseline, Target::AtMost(0.0));
        assert!(!one.met());
        let nothing_done = row(0.0, 0.0, Ratio::ValueOverBaseline, Target::AtMost(0.0));
        assert!(!nothing_done.met(), "0 errors of 0 operations is not met");
        assert!(nothing_done.fails(false));
        let undefined = row(3.0, 0.0, Ratio::ValueOverBaseline, Target::AtMost(1.0));
        assert!(undefined.ratio().is_infinite());
        assert!(!undefined.met());
    }

    #[test]
    fn a_skipped_row_is_not_met_and_has_null_figures() {
        let r = Row::skipped(
            1,
            "dlopen",
            "µs",
            Ratio::BaselineOverValue,
            Target::AtLeast(2.5),
            "no C compiler",
        );
        assert!(r.ratio().is_nan());
        assert!(!r.met());
        let j = r.to_json();
        assert!(j["value"].is_null() && j["baseline"].is_null() && j["ratio"].is_null());
        assert_eq!(j["met"], false);
        assert_eq!(j["not_run"]["why"], "no C compiler");
        assert!(table(std::slice::from_ref(&r)).contains("not run"));
        assert_eq!(j["not_run"]["side"], "project");
        assert_eq!(j["verdict"], "not run");
        assert!(
            r.fails(true),
            "the project's own row not run fails under CI"
        );
        assert!(!r.fails(false));
    }

    #[test]
    fn a_peer_that_cannot_run_is_reported_and_never_fails() {
        let r = row(2.0, 1.0, Ratio::ValueOverBaseline, Target::AtMost(2.0))
            .peer_not_run("ccache is not installed");
        assert_eq!(r.value, Some(2.0), "the project's figure is kept");
        assert_eq!(r.verdict(), Verdict::NotRun);
        assert!(!r.fails(true) && !r.fails(false));
        let j = r.to_json();
        assert!(j["baseline"].is_null());
        assert_eq!(j["not_run"]["side"], "peer");
        assert_eq!(j["not_run"]["why"], "ccache is not installed");
        let text = table(&[r]);
        assert!(text.contains("not run (peer)"), "{text}");
        assert!(
            text.contains("not run (the peer): ccache is not installed"),
            "{text}"
        );
        let skipped = Row::skipped(
            2,
            "x",
            "ms",
            Ratio::BaselineOverValue,
            Target::AtLeast(2.0),
            "no C compiler",
        )
        .by_peer();
        assert!(!skipped.fails(true));
    }

    #[test]
    fn missed_rows_fail_the_report() {
        let rows = [
            row(12.0, 10.0, Ratio::ValueOverBaseline, Target::AtMost(1.5)),
            row(20.0, 10.0, Ratio::ValueOverBaseline, Target::AtMost(1.5)),
        ];
        let failing = failures(&rows, false);
        assert_eq!(failing.len(), 1);
        assert_eq!(failing[0].value, Some(20.0));
        assert!(failures(&rows[..1], true).is_empty());
    }

    #[test]
    fn json_has_one_object_per_row_with_the_required_fields() {
        let rows = [
            row(12.0, 10.0, Ratio::ValueOverBaseline, Target::AtMost(1.5)),
            row(5.0, 60.0, Ratio::BaselineOverValue, Target::AtLeast(10.0)),
        ];
        let j = to_json(&rows);
        let objects = j.as_array().expect("an array");
        assert_eq!(objects.len(), 2);
        for o in objects {
            for field in ["name", "value", "baseline", "ratio", "target", "met"] {
                assert!(o.get(field).is_some(), "missing {field} in {o}");
            }
        }
        assert_eq!(objects[0]["ratio"], 1.2);
        assert_eq!(objects[0]["target"], 1.5);
        assert_eq!(objects[0]["target_op"], "<=");
        assert_eq!(objects[0]["met"], true);
        assert_eq!(objects[1]["ratio"], 12.0);
        assert_eq!(objects[1]["target_op"], ">=");
        assert_eq!(objects[1]["met"], true);
        let sized = rows[0]
            .clone()
            .with_sizes("200 files")
            .with_runs(9, 3)
            .to_json();
        assert_eq!(sized["sizes"], "200 files");
        assert_eq!(sized["value_runs"], 9);
        assert_eq!(sized["baseline_runs"], 3);
        assert_eq!(sized["verdict"], "met");
        assert!(sized["not_run"].is_null());
    }

    #[test]
    fn table_lists_every_row_and_its_verdict() {
        let rows = [
            row(12.0, 10.0, Ratio::ValueOverBaseline, Target::AtMost(1.5)),
            row(20.0, 10.0, Ratio::ValueOverBaseline, Target::AtMost(1.5))
                .with_notes("slower than needed"),
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("target"));
        assert!(lines[2].ends_with("yes"), "{text}");
        assert!(lines[3].ends_with("NO"), "{text}");
        assert!(text.contains("≤ 1.50×"));
        assert!(text.contains("- x: slower than needed"));
    }

    #[test]
    fn figures_are_formatted_by_magnitude() {
        assert_eq!(fmt_value(Some(13.456), "µs"), "13.5 µs");
        assert_eq!(fmt_value(Some(2.5), "ms"), "2.50 ms");
        assert_eq!(fmt_value(Some(0.25), "s"), "0.250 s");
        assert_eq!(fmt_value(Some(2_500_000.0), "ops/s"), "2.50M ops/s");
        assert_eq!(fmt_value(Some(2_500_000.0), "bytes"), "2500000 bytes");
        assert_eq!(fmt_value(None, "µs"), "-");
        assert_eq!(fmt_ratio(1234.4), "1234");
        assert_eq!(fmt_ratio(12.34), "12.3");
        assert_eq!(fmt_ratio(f64::INFINITY), "∞");
    }
}
