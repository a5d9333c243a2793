//! Rows of the bench report: a figure, its baseline, the ratio between them and the
//! target that ratio must meet; the table and the JSON made of them.

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
}

impl Target {
    /// Whether `ratio` meets the target (a ratio that is not a number never does).
    pub fn met_by(self, ratio: f64) -> bool {
        match self {
            _ if ratio.is_nan() => false,
            Target::AtMost(limit) => ratio <= limit,
            Target::AtLeast(limit) => ratio >= limit,
        }
    }

    fn bound(self) -> f64 {
        match self {
            Target::AtMost(x) | Target::AtLeast(x) => x,
        }
    }

    fn op(self) -> &'static str {
        match self {
            Target::AtMost(_) => "<=",
            Target::AtLeast(_) => ">=",
        }
    }

    /// The target as the table shows it: `≤ 1.5×`.
    pub fn text(self) -> String {
        let sign = match self {
            Target::AtMost(_) => "≤",
            Target::AtLeast(_) => "≥",
        };
        format!("{sign} {}×", fmt_ratio(self.bound()))
    }
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
        }
    }

    /// A row whose comparison could not be run, saying why.
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
            notes: format!("not measured: {}", why.into()),
        }
    }

    /// Adds notes.
    pub fn with_notes(mut self, notes: impl Into<String>) -> Row {
        self.notes = notes.into();
        self
    }

    /// The ratio, as [`Row::ratio_kind`] says; NaN when a figure is missing or the
    /// division is undefined. `0 / 0` is 0 (no errors out of no operations).
    pub fn ratio(&self) -> f64 {
        let (Some(value), Some(baseline)) = (self.value, self.baseline) else {
            return f64::NAN;
        };
        let (num, den) = match self.ratio_kind {
            Ratio::ValueOverBaseline => (value, baseline),
            Ratio::BaselineOverValue => (baseline, value),
        };
        if num == 0.0 && den == 0.0 {
            0.0
        } else if den == 0.0 {
            f64::INFINITY
        } else {
            num / den
        }
    }

    /// Whether the target is met.
    pub fn met(&self) -> bool {
        self.target.met_by(self.ratio())
    }

    /// The row as a JSON object: `name`, `value`, `baseline`, `ratio`, `target`, `met`,
    /// and `group`, `unit`, `baseline_name`, `ratio_is`, `target_op`, `notes`. A ratio
    /// that is not finite is `null`.
    pub fn to_json(&self) -> Value {
        let ratio = self.ratio();
        json!({
            "name": self.name,
            "group": self.group,
            "value": self.value,
            "baseline": self.baseline,
            "ratio": ratio.is_finite().then_some(ratio),
            "target": self.target.bound(),
            "target_op": self.target.op(),
            "met": self.met(),
            "unit": self.unit,
            "baseline_name": self.baseline_name,
            "ratio_is": match self.ratio_kind {
                Ratio::ValueOverBaseline => "value/baseline",
                Ratio::BaselineOverValue => "baseline/value",
            },
            "notes": self.notes,
        })
    }
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
                if r.value.is_none() {
                    "not run".to_owned()
                } else if r.met() {
                    "yes".to_owned()
                } else {
                    "NO".to_owned()
                },
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
    let noted: Vec<&Row> = rows.iter().filter(|r| !r.notes.is_empty()).collect();
    if !noted.is_empty() {
        out.push_str("\nNotes:\n");
        for r in noted {
            out.push_str(&format!("- {}: {}\n", r.name, r.notes));
        }
    }
    out
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
        assert!(nothing_done.met());
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
        assert!(
            j["notes"]
                .as_str()
                .is_some_and(|n| n.contains("no C compiler"))
        );
        assert!(table(&[r]).contains("not run"));
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
