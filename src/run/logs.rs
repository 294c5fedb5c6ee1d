//! The two append-only logs of a run: `metrics.jsonl` (one evaluation a line) and `steps.csv`
//! (`step,epoch,loss,lr,seconds`, one step a line; logs written before the `seconds` column existed
//! are read without it).
//!
//! A process killed while appending can leave its last line torn. Every record is written with one
//! `write` call of the whole line, so only the final line can be torn; readers skip such a line and
//! say so (`Log::torn_tail`) instead of refusing the whole file. A bad line anywhere else is corruption
//! and an error.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::files::{RunError, io_error};
use super::snapshot::EvalMetrics;

pub const METRICS_FILE: &str = "metrics.jsonl";
pub const STEPS_FILE: &str = "steps.csv";
pub const STEPS_HEADER: &str = "step,epoch,loss,lr,seconds,accuracy";

/// One line of `steps.csv`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepRecord {
    /// Steps done (1 after the first).
    pub step: u64,
    pub epoch: usize,
    pub loss: f64,
    pub lr: f64,
    /// Wall-clock seconds since the run began when the step ended, not counting the time the run
    /// was stopped between a checkpoint and its resume (empty in logs of runs resumed from before
    /// the column existed).
    pub seconds: Option<f64>,
    /// Few-shot runs: the accuracy of the step's training episode on its queries (single
    /// inference); empty for standard runs, whose steps are batches without a test of their own.
    pub accuracy: Option<f64>,
}

impl StepRecord {
    fn line(&self) -> String {
        let seconds = self.seconds.map_or(String::new(), |s| format!("{s:.3}"));
        let accuracy = self.accuracy.map_or(String::new(), |a| a.to_string());
        format!(
            "{},{},{},{},{seconds},{accuracy}\n",
            self.step, self.epoch, self.loss, self.lr
        )
    }
}

/// The records of a log, and the torn final line that was skipped, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct Log<T> {
    pub records: Vec<T>,
    pub torn_tail: Option<TornTail>,
}

/// A final line cut short by a writer that was stopped mid-line.
#[derive(Clone, Debug, PartialEq)]
pub struct TornTail {
    pub path: PathBuf,
    pub line: usize,
}

impl fmt::Display for TornTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: line {} is incomplete (its writer was stopped mid-line) and was skipped",
            self.path.display(),
            self.line
        )
    }
}

/// Parse a log's text: `skip` leading lines (a header), then one record a line. The final line is
/// torn when it has no newline or does not parse.
fn parse_log<T>(
    path: &Path,
    text: &str,
    skip: usize,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Log<T>, RunError> {
    let complete = text.ends_with('\n');
    // The final line without its newline may be cut anywhere, even where it still parses.
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::new();
    let mut torn_tail = None;
    for (i, line) in lines.iter().enumerate().skip(skip) {
        let last = i + 1 == lines.len();
        if line.trim().is_empty() {
            continue;
        }
        match parse(line) {
            Ok(record) if !last || complete => records.push(record),
            Ok(_) => torn_tail = Some(i + 1),
            Err(_) if last => torn_tail = Some(i + 1),
            Err(message) => {
                return Err(RunError::format(path, format!("line {}: {message}", i + 1)));
            }
        }
    }
    Ok(Log {
        records,
        torn_tail: torn_tail.map(|line| TornTail {
            path: path.to_path_buf(),
            line,
        }),
    })
}

fn read_text(path: &Path) -> Result<String, RunError> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    String::from_utf8(bytes).map_err(|_| RunError::format(path, "not UTF-8 text"))
}

/// Every evaluation of the run in `run`, in order.
pub fn read_metrics(run: &Path) -> Result<Log<EvalMetrics>, RunError> {
    let path = run.join(METRICS_FILE);
    parse_metrics(&path, &read_text(&path)?)
}

/// `metrics.jsonl`'s text parsed (public for the fuzzer and tests).
pub fn parse_metrics(path: &Path, text: &str) -> Result<Log<EvalMetrics>, RunError> {
    parse_log(path, text, 0, |line| {
        serde_json::from_str(line).map_err(|e| e.to_string())
    })
}

/// Every logged step of the run in `run`.
pub fn read_steps(run: &Path) -> Result<Log<StepRecord>, RunError> {
    let path = run.join(STEPS_FILE);
    parse_steps(&path, &read_text(&path)?)
}

/// `steps.csv`'s text parsed; columns are found by the header's names.
pub fn parse_steps(path: &Path, text: &str) -> Result<Log<StepRecord>, RunError> {
    let header = text
        .lines()
        .next()
        .ok_or_else(|| RunError::format(path, "no header line"))?;
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let column = |name: &str| {
        names
            .iter()
            .position(|&n| n == name)
            .ok_or_else(|| RunError::format(path, format!("no `{name}` column in `{header}`")))
    };
    let columns = [
        column("step")?,
        column("epoch")?,
        column("loss")?,
        column("lr")?,
    ];
    // Optional columns: logs written before they existed lack them.
    let seconds_column = names.iter().position(|&n| n == "seconds");
    let accuracy_column = names.iter().position(|&n| n == "accuracy");
    parse_log(path, text, 1, |line| {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != names.len() {
            return Err(format!("{} fields, expected {}", fields.len(), names.len()));
        }
        let [step, epoch, loss, lr] = columns.map(|c| fields[c]);
        let bad = |e: &dyn fmt::Display| e.to_string();
        let optional = |column: Option<usize>| -> Result<Option<f64>, String> {
            match column.map(|c| fields[c]) {
                None | Some("") => Ok(None),
                Some(text) => Ok(Some(text.parse().map_err(|e| bad(&e))?)),
            }
        };
        let seconds = optional(seconds_column)?;
        let accuracy = optional(accuracy_column)?;
        Ok(StepRecord {
            step: step.parse().map_err(|e| bad(&e))?,
            epoch: epoch.parse().map_err(|e| bad(&e))?,
            loss: loss.parse().map_err(|e| bad(&e))?,
            lr: lr.parse().map_err(|e| bad(&e))?,
            seconds,
            accuracy,
        })
    })
}

/// Rewrite both logs to hold only what happened up to `step` (a resume recomputes the rest).
pub fn truncate_logs(run: &Path, step: u64) -> Result<(), RunError> {
    let steps = read_steps(run)?;
    let mut text = format!("{STEPS_HEADER}\n");
    for record in steps.records.iter().filter(|r| r.step <= step) {
        text += &record.line();
    }
    super::files::write_atomically(&run.join(STEPS_FILE), text.as_bytes())?;
    let metrics = read_metrics(run)?;
    let mut text = String::new();
    for record in metrics.records.iter().filter(|m| m.step <= step) {
        text += &metrics_line(&run.join(METRICS_FILE), record)?;
    }
    super::files::write_atomically(&run.join(METRICS_FILE), text.as_bytes())
}

fn metrics_line(path: &Path, metrics: &EvalMetrics) -> Result<String, RunError> {
    let mut line = serde_json::to_string(metrics).map_err(|e| RunError::format(path, e))?;
    line.push('\n');
    Ok(line)
}

/// Start both logs empty (the steps log with its header).
pub fn create_logs(run: &Path) -> Result<(), RunError> {
    super::files::write_atomically(
        &run.join(STEPS_FILE),
        format!("{STEPS_HEADER}\n").as_bytes(),
    )?;
    super::files::write_atomically(&run.join(METRICS_FILE), b"")
}

/// The appending side of both logs.
pub struct LogWriter {
    steps_path: PathBuf,
    steps: BufWriter<File>,
    metrics_path: PathBuf,
    metrics: File,
}

impl LogWriter {
    pub fn open(run: &Path) -> Result<Self, RunError> {
        let append = |path: &Path| {
            OpenOptions::new()
                .append(true)
                .open(path)
                .map_err(io_error(path))
        };
        let steps_path = run.join(STEPS_FILE);
        let metrics_path = run.join(METRICS_FILE);
        Ok(Self {
            steps: BufWriter::new(append(&steps_path)?),
            metrics: append(&metrics_path)?,
            steps_path,
            metrics_path,
        })
    }

    /// Buffer one step's line; `BufWriter` writes whole buffered lines, never part of one.
    pub fn log_step(&mut self, record: StepRecord) -> Result<(), RunError> {
        self.steps
            .write_all(record.line().as_bytes())
            .map_err(io_error(&self.steps_path))
    }

    /// Append one evaluation in a single write.
    pub fn log_metrics(&mut self, metrics: &EvalMetrics) -> Result<(), RunError> {
        let line = metrics_line(&self.metrics_path, metrics)?;
        self.metrics
            .write_all(line.as_bytes())
            .map_err(io_error(&self.metrics_path))
    }

    /// Write buffered steps and flush both logs to disk (before a checkpoint names them complete).
    pub fn sync(&mut self) -> Result<(), RunError> {
        self.steps.flush().map_err(io_error(&self.steps_path))?;
        self.steps
            .get_ref()
            .sync_data()
            .map_err(io_error(&self.steps_path))?;
        self.metrics
            .sync_data()
            .map_err(io_error(&self.metrics_path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_final_line_is_skipped_and_reported() {
        let path = Path::new("steps.csv");
        let log = parse_steps(path, "step,epoch,loss,lr\n1,0,2.5,0.1\n2,0,2.4,0.1\n3,0,2.")
            .expect("readable");
        assert_eq!(log.records.len(), 2);
        assert_eq!(log.records[1].loss, 2.4);
        let torn = log.torn_tail.expect("reported");
        assert_eq!(torn.line, 4);
        assert!(torn.to_string().contains("line 4 is incomplete"), "{torn}");
        // A final line that parses but lost its newline is torn too: `2.` may have been `2.31`.
        let log =
            parse_steps(path, "step,epoch,loss,lr\n1,0,2.5,0.1\n2,0,2,0.1").expect("readable");
        assert_eq!(log.records.len(), 1);
        assert_eq!(log.torn_tail.map(|t| t.line), Some(3));
    }

    #[test]
    fn a_bad_line_before_the_end_is_an_error() {
        let path = Path::new("metrics.jsonl");
        let error = parse_metrics(path, "{\"epoch\":1}\n{\"ep\n{}\n").expect_err("corrupt");
        assert!(error.to_string().contains("line 1"), "{error}");
        let whole = parse_steps(Path::new("s"), "step,epoch,loss,lr\n1,0,x,0.1\n2,0,1,0.1\n");
        assert!(
            whole
                .expect_err("bad number")
                .to_string()
                .contains("line 2")
        );
    }

    #[test]
    fn columns_are_found_by_name() {
        let log = parse_steps(Path::new("s"), "lr,loss,epoch,step\n0.1,2.5,0,7\n").expect("ok");
        assert_eq!(
            log.records,
            [StepRecord {
                step: 7,
                epoch: 0,
                loss: 2.5,
                lr: 0.1,
                seconds: None,
                accuracy: None,
            }]
        );
        assert!(log.torn_tail.is_none());
    }

    #[test]
    fn the_optional_columns_round_trip_and_may_be_empty() {
        let records = [
            StepRecord {
                step: 1,
                epoch: 0,
                loss: 2.5,
                lr: 0.1,
                seconds: Some(0.75),
                accuracy: Some(0.6),
            },
            // A step logged by a resumed run whose earlier lines had no time, of a standard run.
            StepRecord {
                step: 2,
                epoch: 0,
                loss: 2.25,
                lr: 0.1,
                seconds: None,
                accuracy: None,
            },
        ];
        let mut text = format!("{STEPS_HEADER}\n");
        for record in &records {
            text += &record.line();
        }
        assert_eq!(
            text,
            "step,epoch,loss,lr,seconds,accuracy\n1,0,2.5,0.1,0.750,0.6\n2,0,2.25,0.1,,\n"
        );
        let log = parse_steps(Path::new("s"), &text).expect("readable");
        assert_eq!(log.records, records);
        // A log from before the accuracy column reads as steps without one.
        let old = parse_steps(
            Path::new("s"),
            "step,epoch,loss,lr,seconds\n1,0,2.5,0.1,0.750\n",
        )
        .expect("readable");
        assert_eq!(old.records[0].accuracy, None);
        assert_eq!(old.records[0].seconds, Some(0.75));
    }
}
