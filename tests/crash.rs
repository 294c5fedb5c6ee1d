//! Runs that survive: `sla train` killed at random moments (SIGKILL), interrupted (SIGINT, once and
//! twice), resumed each time, ends with the weights of an uninterrupted run, bit for bit; and the
//! run folder refuses what would corrupt it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use candle_core::Device;
use rand::{Rng, SeedableRng};
use sla::run;
use sla::train::checkpoint;

/// A short real run on the embedded set: 10 steps an epoch, 3 epochs, a checkpoint every step, so
/// that kills land in steps, evaluations and checkpoint writes alike.
const TRAIN: &[&str] = &[
    "train",
    "--model",
    "cnn",
    "--mode",
    "sla",
    "--epochs",
    "3",
    "--limit-train",
    "320",
    "--limit-test",
    "64",
    "--batch-size",
    "32",
    "--seed",
    "5",
    "--checkpoint-every",
    "1",
    "--lr",
    "0.1",
];

fn sla() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sla"));
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

fn train_new(out: &Path) -> Command {
    train_with(out, &[])
}

/// `TRAIN` with some flags' values replaced, e.g. `[("--epochs", "1")]`.
fn train_with(out: &Path, changes: &[(&str, &str)]) -> Command {
    let mut args: Vec<&str> = TRAIN.to_vec();
    for (flag, value) in changes {
        let at = args
            .iter()
            .position(|a| a == flag)
            .expect("a flag of TRAIN");
        args[at + 1] = value;
    }
    let mut command = sla();
    command.args(args).arg("--out").arg(out);
    command
}

fn resume(out: &Path) -> Command {
    let mut command = sla();
    command.arg("train").arg("--resume").arg(out);
    command
}

fn finish(child: Child) -> Output {
    child.wait_with_output().expect("wait for sla")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every weight of the run's checkpoint, by name, as bits.
fn weight_bits(run: &Path) -> Vec<(String, Vec<u32>)> {
    let checkpoint = checkpoint::require(run).expect("a complete checkpoint");
    assert_eq!(checkpoint.state.step, 30, "the run did not reach its end");
    let tensors =
        candle_core::safetensors::load(checkpoint.model_path(), &Device::Cpu).expect("weights");
    let mut named: Vec<(String, Vec<u32>)> = tensors
        .into_iter()
        .map(|(name, t)| {
            let values: Vec<f32> = t.flatten_all().and_then(|t| t.to_vec1()).expect("values");
            (name, values.iter().map(|v| v.to_bits()).collect())
        })
        .collect();
    named.sort();
    named
}

/// How long the uninterrupted run took to start (until its first step was logged) and per step.
struct Timing {
    start_up: Duration,
    per_step: Duration,
}

/// The uninterrupted reference run, timed.
fn reference(dir: &Path) -> (PathBuf, Timing) {
    let whole = dir.join("whole");
    let started = Instant::now();
    let mut child = train_new(&whole).spawn().expect("spawn");
    let mut start_up = None;
    while child.try_wait().expect("poll").is_none() {
        if start_up.is_none() && run::read_steps(&whole).is_ok_and(|log| !log.records.is_empty()) {
            start_up = Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let output = finish(child);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let start_up = start_up.unwrap_or_default();
    let per_step = started.elapsed().saturating_sub(start_up) / 30;
    (whole, Timing { start_up, per_step })
}

/// Evidence that a kill interrupted a write: a temporary file, or checkpoint files the manifest does
/// not (yet, or any more) name.
fn interrupted_a_write(run: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(run) else {
        return false;
    };
    let names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let weights = names.iter().filter(|n| n.starts_with("model-")).count();
    names.iter().any(|n| n.ends_with(".tmp")) || weights > 1
}

#[test]
fn killed_at_random_moments_a_run_resumes_to_the_same_weights_bit_for_bit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (whole, timing) = reference(dir.path());
    let parted = dir.path().join("parted");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    let (mut kills, mut in_writes, mut attempts) = (0, 0, 0);
    // 20 kills at random moments, and more until at least three of them landed inside a write (a
    // temporary file or unreferenced checkpoint files left behind), then one run to the end.
    loop {
        attempts += 1;
        assert!(
            attempts < 400,
            "{kills} kills, {in_writes} in writes: the run never finished"
        );
        // A kill before the config landed leaves no run to resume: start it again, as a user would
        // (the folder holds only the lock or the config's temporary, which a new start reuses).
        let mut child = if run::is_run_folder(&parted) {
            resume(&parted)
        } else {
            train_new(&parted)
        }
        .spawn()
        .expect("spawn");
        let enough = kills >= 20 && in_writes >= 3;
        if !enough {
            // Uniform over the start-up and the next three steps: about 1.5 steps of progress a
            // kill, so the kills spread over the whole run, with its evaluations and checkpoints.
            let window = timing.start_up + 3 * timing.per_step;
            std::thread::sleep(window.mul_f64(rng.random_range(0.0..1.0)));
        }
        if !enough && child.try_wait().expect("poll").is_none() {
            child.kill().expect("SIGKILL");
            let output = finish(child);
            if output.status.success() {
                // It finished between the poll and the kill (a loaded machine): nothing was
                // killed; train it again from scratch for more kills.
                std::fs::remove_dir_all(&parted).expect("clear");
                continue;
            }
            kills += 1;
            in_writes += usize::from(interrupted_a_write(&parted));
            continue;
        }
        let output = finish(child);
        assert!(
            output.status.success(),
            "after {kills} kills: {}",
            text(&output.stderr)
        );
        if enough {
            break;
        }
        // It finished before the kill: train it again from scratch for more kills.
        std::fs::remove_dir_all(&parted).expect("clear");
    }
    eprintln!(
        "{kills} kills ({in_writes} inside a write) in {attempts} starts; start-up {:?}, {:?} a step",
        timing.start_up, timing.per_step
    );
    assert_eq!(weight_bits(&whole), weight_bits(&parted));
    // The logs hold each step once, and the evaluations of every epoch once.
    let steps = run::read_steps(&parted).expect("steps").records;
    assert_eq!(
        steps.iter().map(|s| s.step).collect::<Vec<_>>(),
        (1..=30).collect::<Vec<_>>()
    );
    // Wall time runs on across the kills: a resumed run counts from its checkpoint's time.
    let times: Vec<f64> = steps.iter().map(|s| s.seconds.expect("a time")).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let metrics = run::read_metrics(&parted).expect("metrics").records;
    let reference_metrics = run::read_metrics(&whole).expect("metrics").records;
    assert_eq!(metrics.len(), 3);
    for (a, b) in metrics.iter().zip(&reference_metrics) {
        assert_eq!(
            (a.step, a.single_acc, a.eval_loss),
            (b.step, b.single_acc, b.eval_loss)
        );
        assert_eq!(a.agg_acc, b.agg_acc);
        // The mean training loss is rebuilt from the logs on resume.
        assert!(
            (a.train_loss - b.train_loss).abs() < 1e-12,
            "{a:?} vs {b:?}"
        );
    }
}

/// Signals are POSIX; on Windows the Ctrl-C path is ctrlc's console handler, not tested here.
#[cfg(unix)]
fn signal(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) with a pid of our own child and a valid signal number has no memory effects.
    let sent = unsafe { libc::kill(pid, signal) };
    assert_eq!(sent, 0, "kill({pid}, {signal})");
}

/// Wait until the run has logged at least `steps` steps of this process (so it is training).
fn wait_for_steps(run: &Path, steps: u64, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let logged = run::read_steps(run).map_or(0, |log| log.records.len() as u64);
        if logged >= steps {
            return;
        }
        assert!(child.try_wait().expect("poll").is_none(), "sla ended early");
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_with_a_checkpoint_and_a_second_quits_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (whole, _) = reference(dir.path());
    let parted = dir.path().join("parted");

    // One Ctrl-C: the step finishes, a checkpoint is saved, the exit says how to resume.
    let mut child = train_new(&parted).spawn().expect("spawn");
    wait_for_steps(&parted, 4, &mut child);
    signal(&child, libc::SIGINT);
    let output = finish(child);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("stopping after this step"), "{stderr}");
    assert!(
        stderr.contains(&format!("sla train --resume {}", parted.display())),
        "{stderr}"
    );
    let stopped_at = checkpoint::require(&parted).expect("checkpoint").state.step;
    assert!((4..30).contains(&stopped_at), "stopped at {stopped_at}");

    // SIGTERM takes the same graceful path.
    let mut child = resume(&parted).spawn().expect("spawn");
    wait_for_steps(&parted, stopped_at + 2, &mut child);
    signal(&child, libc::SIGTERM);
    let output = finish(child);
    assert_eq!(output.status.code(), Some(130), "{}", text(&output.stderr));

    // Two at once: quit without waiting; the last complete checkpoint still resumes.
    let step = checkpoint::require(&parted).expect("checkpoint").state.step;
    let mut child = resume(&parted).spawn().expect("spawn");
    wait_for_steps(&parted, step + 2, &mut child);
    signal(&child, libc::SIGINT);
    signal(&child, libc::SIGINT);
    let output = finish(child);
    assert_eq!(output.status.code(), Some(130), "{}", text(&output.stderr));

    let output = finish(resume(&parted).spawn().expect("spawn"));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(weight_bits(&whole), weight_bits(&parted));
}

fn run_to_end(command: &mut Command) -> (bool, String) {
    let output = command.output().expect("run sla");
    (output.status.success(), text(&output.stderr))
}

#[test]
fn the_run_folder_refuses_what_would_corrupt_it() {
    let dir = tempfile::tempdir().expect("tempdir");

    // A folder of someone else's files is not written into.
    let other = dir.path().join("photos");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::write(other.join("steps.csv"), "my own file").expect("write");
    let (ok, stderr) = run_to_end(&mut train_new(&other));
    assert!(!ok);
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(other.join("steps.csv")).expect("read"),
        "my own file"
    );

    // What a start killed before its config landed leaves (the lock, the config's temporary) is
    // no run to resume, and a new start reuses the folder.
    let early = dir.path().join("killed-early");
    std::fs::create_dir(&early).expect("mkdir");
    std::fs::write(early.join(run::LOCK_FILE), "4242").expect("lock");
    std::fs::write(early.join("config.json.4242.tmp"), "{\"epo").expect("temporary");
    let (ok, stderr) = run_to_end(&mut resume(&early));
    assert!(!ok);
    assert!(stderr.contains("not a run folder"), "{stderr}");
    let (ok, stderr) = run_to_end(&mut train_new(&early));
    assert!(ok, "{stderr}");
    assert!(!early.join("config.json.4242.tmp").exists());

    // Two processes never train in one folder.
    let busy = dir.path().join("busy");
    let mut first = train_with(&busy, &[("--epochs", "200")])
        .spawn()
        .expect("spawn");
    wait_for_steps(&busy, 1, &mut first);
    let (ok, stderr) = run_to_end(&mut resume(&busy));
    assert!(!ok);
    assert!(
        stderr.contains(&format!("another process (pid {})", first.id())),
        "{stderr}"
    );
    first.kill().expect("kill");
    finish(first);

    // A resume whose config.json was edited in a way that changes what a step means is refused,
    // naming the change; a misspelt key is refused, naming the key.
    let config_path = busy.join(run::CONFIG_FILE);
    let original = std::fs::read_to_string(&config_path).expect("config");
    let edited = original.replace("\"batch_size\": 32", "\"batch_size\": 64");
    assert_ne!(edited, original);
    std::fs::write(&config_path, &edited).expect("edit");
    let (ok, stderr) = run_to_end(&mut resume(&busy));
    assert!(!ok);
    assert!(
        stderr.contains("batch_size is now 64 but was 32"),
        "{stderr}"
    );
    std::fs::write(&config_path, original.replace("\"seed\"", "\"sede\"")).expect("typo");
    let (ok, stderr) = run_to_end(&mut resume(&busy));
    assert!(!ok);
    assert!(stderr.contains("unknown field `sede`"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    // A torn final metrics line (a writer killed mid-line) is skipped, by resume and render alike.
    std::fs::write(&config_path, &original).expect("restore");
    let finished = dir.path().join("finished");
    let (ok, stderr) = run_to_end(&mut train_with(&finished, &[("--epochs", "1")]));
    assert!(ok, "{stderr}");
    let metrics_path = finished.join(run::METRICS_FILE);
    let mut metrics = std::fs::read_to_string(&metrics_path).expect("metrics");
    metrics += "{\"epoch\":2,\"st";
    std::fs::write(&metrics_path, metrics).expect("tear");
    let figures = dir.path().join("figures");
    let (ok, stderr) = run_to_end(
        sla()
            .arg("render")
            .arg("--run")
            .arg(&finished)
            .arg("--out")
            .arg(&figures),
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("is incomplete"), "{stderr}");
    assert!(figures.join("curves.png").exists());
}

#[test]
fn a_diverging_run_stops_with_the_checkpoint_from_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("diverged");
    // Checkpoints at epoch ends only: the one from before the divergence is step 0's.
    let (ok, stderr) = run_to_end(&mut train_with(
        &out,
        &[("--checkpoint-every", "0"), ("--lr", "1e30")],
    ));
    assert!(!ok);
    assert!(stderr.contains("became"), "{stderr}");
    assert!(stderr.contains("lower the learning rate"), "{stderr}");
    let step = checkpoint::require(&out).expect("checkpoint").state.step;
    assert!(
        stderr.contains(&format!("checkpoint at step {step}")),
        "{stderr}"
    );
    // Lowering the rate in config.json is allowed: it does not change what a step means.
    let config_path = out.join(run::CONFIG_FILE);
    let config = std::fs::read_to_string(&config_path).expect("config");
    assert!(config.contains("\"lr\": 1e+30"), "{config}");
    std::fs::write(&config_path, config.replace("1e+30", "0.05")).expect("edit");
    let (ok, stderr) = run_to_end(&mut resume(&out));
    assert!(ok, "{stderr}");
}
