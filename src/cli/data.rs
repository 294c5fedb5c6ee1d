//! `sla data list|get|import`: the dataset manager on the command line, with a progress bar.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressStyle};

use crate::download::{self, DatasetSpec, Manager, Presence, Progress, Stage};

/// Arguments of `sla data`.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// Dataset folder [default: $SLA_DATA_DIR, else the platform cache folder + sla/datasets]
    #[arg(long, global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum DataCommand {
    /// Show every known dataset: whether it is here, where, and its size
    List,
    /// Download a dataset (resuming an interrupted download), verify it and install it
    Get {
        /// Dataset name, as `sla data list` shows it (cifar10, cifar100, mnist, fashion-mnist, kmnist,
        /// tiny-imagenet)
        name: String,
        /// Download again even if the set is already present
        #[arg(long)]
        force: bool,
    },
    /// Show a dataset's training images per class, with an imbalance applied (no training)
    Counts(super::data_counts::CountsArgs),
    /// Install a dataset from an archive or folder you already downloaded
    Import {
        /// Dataset name, as `sla data list` shows it
        name: String,
        /// The archive (e.g. cifar-10-binary.tar.gz, tiny-imagenet-200.zip), a folder holding the
        /// downloaded files, or the extracted folder (e.g. cifar-10-batches-bin, tiny-imagenet-200)
        /// or its parent
        source: PathBuf,
        /// Accept files whose checksums differ from the published ones (e.g. re-compressed copies)
        #[arg(long)]
        no_verify: bool,
    },
}

/// Runs one `sla data` command.
pub fn run(args: DataArgs) -> anyhow::Result<()> {
    let manager = Manager::new(args.dir.as_deref())?;
    match args.command {
        DataCommand::List => list(&manager),
        DataCommand::Get { name, force } => get(&manager, &name, force),
        DataCommand::Counts(counts) => super::data_counts::run(counts),
        DataCommand::Import {
            name,
            source,
            no_verify,
        } => import(&manager, &name, &source, !no_verify),
    }
}

fn list(manager: &Manager) -> anyhow::Result<()> {
    println!("dataset folder: {}", manager.root().display());
    println!("{:<15} {:<10} {:>11}  WHERE", "NAME", "STATE", "SIZE");
    for spec in download::catalogue::catalogue() {
        println!("{}", list_line(&spec, &manager.presence(&spec)));
    }
    Ok(())
}

/// One row of `sla data list`.
pub fn list_line(spec: &DatasetSpec, presence: &Presence) -> String {
    let download = spec
        .download_size()
        .map(|b| HumanBytes(b).to_string())
        .unwrap_or_else(|| "?".to_owned());
    let (state, size, place) = match presence {
        Presence::Installed { path, bytes } => (
            "present",
            HumanBytes(*bytes).to_string(),
            path.display().to_string(),
        ),
        Presence::System { path, bytes } => (
            "system",
            HumanBytes(*bytes).to_string(),
            path.display().to_string(),
        ),
        Presence::Partial { bytes } => (
            "partial",
            download,
            format!(
                "{} downloaded; `sla data get {}` resumes",
                HumanBytes(*bytes),
                spec.name
            ),
        ),
        Presence::Missing => (
            "missing",
            download,
            format!("`sla data get {}` downloads it", spec.name),
        ),
    };
    format!("{:<15} {state:<10} {size:>11}  {place}", spec.name)
}

pub fn get(manager: &Manager, name: &str, force: bool) -> anyhow::Result<()> {
    let spec = download::spec(name)?;
    if !force && let Some(path) = manager.locate(&spec) {
        println!("{} is already present in {}", spec.title, path.display());
        return Ok(());
    }
    let mut bar = Bar::new();
    let result = manager.fetch(&spec, &mut |p| bar.show(p));
    bar.finish();
    let path = result.with_context(|| format!("could not get {}", spec.title))?;
    println!("{} ready in {}", spec.title, path.display());
    Ok(())
}

fn import(manager: &Manager, name: &str, source: &Path, verify: bool) -> anyhow::Result<()> {
    let spec = download::spec(name)?;
    let mut bar = Bar::new();
    let result = manager.import(&spec, source, verify, &mut |p| bar.show(p));
    bar.finish();
    let hint = match &result {
        Err(download::DownloadError::ChecksumMismatch { .. }) => {
            " (--no-verify accepts a copy that differs from the published file, e.g. re-compressed)"
        }
        _ => "",
    };
    let path = result.with_context(|| {
        format!(
            "could not import {} from {}{hint}",
            spec.title,
            source.display()
        )
    })?;
    println!("{} imported into {}", spec.title, path.display());
    Ok(())
}

/// The terminal progress bar: one bar per stage, with our own rate and ETA (which leave resumed
/// bytes out, where indicatif's estimate would count them as speed).
struct Bar {
    bar: Option<ProgressBar>,
    stage: Option<(Stage, Option<u64>)>,
}

impl Bar {
    fn new() -> Self {
        Bar {
            bar: None,
            stage: None,
        }
    }

    fn show(&mut self, p: &Progress) {
        if self.stage != Some((p.stage, p.total)) {
            self.finish();
            self.stage = Some((p.stage, p.total));
            let bar = match p.total {
                Some(total) => ProgressBar::new(total).with_style(bar_style(
                    "{prefix:>11} [{bar:30}] {bytes}/{total_bytes} {msg}",
                )),
                None => ProgressBar::new_spinner()
                    .with_style(bar_style("{prefix:>11} {spinner} {bytes} {msg}")),
            };
            bar.set_prefix(match p.stage {
                Stage::Download => "downloading",
                Stage::Verify => "verifying",
                Stage::Extract => "extracting",
            });
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(p.bytes);
            let mut msg = format!("{}/s", HumanBytes(p.rate as u64));
            if let Some(eta) = p.eta() {
                msg.push_str(&format!(", ETA {}", HumanDuration(eta)));
            }
            bar.set_message(format!("{msg}  {}", p.file));
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn bar_style(template: &str) -> ProgressStyle {
    // The templates are constants of this file; a typo would show on the first run, and falling back
    // to the default style keeps the download going meanwhile.
    ProgressStyle::with_template(template)
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Top {
        Data(DataArgs),
    }

    fn parse(args: &[&str]) -> DataArgs {
        let Top::Data(data) = Cli::try_parse_from(args).expect("arguments parse").command;
        data
    }

    #[test]
    fn the_three_commands_parse_with_the_dir_flag_anywhere() {
        let get = parse(&["sla", "data", "get", "cifar10", "--dir", "/d"]);
        assert_eq!(get.dir.as_deref(), Some(Path::new("/d")));
        assert!(
            matches!(get.command, DataCommand::Get { ref name, force: false } if name == "cifar10")
        );
        let import = parse(&[
            "sla",
            "data",
            "--dir",
            "/d",
            "import",
            "mnist",
            "/tmp/m",
            "--no-verify",
        ]);
        assert_eq!(import.dir.as_deref(), Some(Path::new("/d")));
        assert!(matches!(
            import.command,
            DataCommand::Import { ref source, no_verify: true, .. } if source == Path::new("/tmp/m")
        ));
        assert!(matches!(
            parse(&["sla", "data", "list"]).command,
            DataCommand::List
        ));
        assert!(Cli::try_parse_from(["sla", "data", "get"]).is_err());
    }

    #[test]
    fn list_lines_say_state_size_and_place() {
        let spec = download::spec("cifar10").expect("in the catalogue");
        let line = list_line(&spec, &Presence::Missing);
        assert!(line.starts_with("cifar10"), "{line}");
        assert!(line.contains("missing"), "{line}");
        assert!(line.contains("162.17 MiB"), "{line}");
        assert!(
            line.contains("`sla data get cifar10` downloads it"),
            "{line}"
        );
        let line = list_line(
            &spec,
            &Presence::Installed {
                path: PathBuf::from("/c/cifar10/cifar-10-batches-bin"),
                bytes: 2048,
            },
        );
        assert!(line.contains("present"), "{line}");
        assert!(line.contains("2.00 KiB"), "{line}");
        assert!(line.ends_with("/c/cifar10/cifar-10-batches-bin"), "{line}");
    }
}
