//! The few-shot setting end to end: a tiny episodic run on the embedded set writes a complete run
//! folder and beats chance on novel classes, `sla fewshot eval` reports its confidence intervals, a
//! resumed run ends bit for bit where an uninterrupted one does, and shapes the data cannot fill
//! are explained.

use sla::config::{TrainConfig, TransformChoice};
use sla::fewshot::{FewShotConfig, Method};
use sla::model::ModelKind;
use sla::run;
use sla::sla::{Mode, TransformPreset};
use sla::train::{RunStart, TrainerCommand, TrainerEvent, trainer};

use crate::support::{sla, train, weight_bits};

fn tiny(mode: Mode, method: Method, episodes: u64) -> TrainConfig {
    TrainConfig {
        model: ModelKind::Conv4,
        mode,
        transforms: TransformChoice::Preset(TransformPreset::Rotation),
        lr: 0.05,
        nesterov: true,
        weight_decay: 5e-4,
        seed: 3,
        fewshot: Some(FewShotConfig {
            method,
            ways: 5,
            shots: 1,
            queries: 3,
            test_ways: 5,
            test_shots: 1,
            test_queries: 5,
            episodes,
            eval_every: 15,
            eval_episodes: 20,
            ..FewShotConfig::default()
        }),
        ..TrainConfig::default()
    }
}

#[test]
fn a_tiny_sla_protonet_run_beats_chance_on_novel_classes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = dir.path().join("run");
    let metrics = train(RunStart::New {
        config: Box::new(tiny(Mode::Sla, Method::Protonet, 30)),
        run_dir: run_dir.clone(),
    });
    assert_eq!(metrics.len(), 2, "evaluations after episodes 15 and 30");
    let last = &metrics[1];
    assert_eq!(last.step, 30);
    let episodes = last.episodes.expect("episode statistics");
    assert_eq!(
        (
            episodes.episodes,
            episodes.ways,
            episodes.shots,
            episodes.queries
        ),
        (20, 5, 1, 5)
    );
    // Chance is 20 % in 5-way episodes.
    assert!(last.single_acc > 0.3, "single {}", last.single_acc);
    let aggregated = last.agg_acc.expect("SLA aggregates");
    assert!(aggregated > 0.3, "aggregated {aggregated}");
    assert!(episodes.single_ci95 > 0.0 && episodes.single_ci95 < 0.2);
    assert!(episodes.agg_ci95.is_some());
    assert_eq!(last.per_transform_acc.len(), 4);
    assert!(last.joint_acc.is_some());
    for file in [
        "config.json",
        "metrics.jsonl",
        "steps.csv",
        "snapshot.json",
        "checkpoint.json",
        "confusion_joint.csv",
        "confusion_classes.csv",
    ] {
        assert!(run_dir.join(file).exists(), "{file} missing");
    }
    let steps = run::read_steps(&run_dir).expect("steps").records;
    assert_eq!(steps.len(), 30);
    // Every training episode's query accuracy is logged: 15 queries, so a multiple of 1/15.
    for step in &steps {
        let accuracy = step.accuracy.expect("an episode accuracy");
        let hits = accuracy * 15.0;
        assert!((hits - hits.round()).abs() < 1e-9, "{accuracy}");
    }
    assert_eq!(
        run::read_config(&run_dir).expect("config"),
        tiny(Mode::Sla, Method::Protonet, 30)
    );
    // The joint confusion counts every view of every query of every test episode once.
    let snapshot = run::read_snapshot(&run_dir).expect("snapshot");
    assert_eq!(snapshot.class_names.len(), 5);
    assert_eq!(snapshot.joint_confusion.len(), 20 * 20);
    assert_eq!(snapshot.joint_confusion.iter().sum::<u32>(), 20 * 25 * 4);
    assert_eq!(snapshot.class_confusion.iter().sum::<u32>(), 20 * 25);
    let diagonal: u32 = (0..5).map(|w| snapshot.class_confusion[w * 5 + w]).sum();
    assert!(
        (f64::from(diagonal) / 500.0 - aggregated).abs() < 1e-9,
        "the class confusion is the aggregated inference's"
    );
    assert_eq!(
        snapshot.samples.samples, 10,
        "a support image and a query of each way"
    );
    assert_eq!(snapshot.samples.support_samples, 5);
    assert_eq!(snapshot.samples.pixels.len(), 10 * 4 * 28 * 28);
    // Support images are labelled with their joint labels and never judged.
    assert_eq!(snapshot.samples.true_labels[4..8], [4, 5, 6, 7]);
    assert_eq!(
        snapshot.samples.predicted_labels[..20],
        snapshot.samples.true_labels[..20]
    );

    // `sla fewshot eval` on more episodes, with its JSON.
    let json = dir.path().join("eval.json");
    let run_arg = run_dir.to_str().expect("utf-8 path");
    let (ok, out, err) = sla(&[
        "fewshot",
        "eval",
        "--run",
        run_arg,
        "--episodes",
        "40",
        "--json",
        json.to_str().expect("utf-8 path"),
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("40 test episodes (5-way 1-shot, 5 queries): single"),
        "{out}"
    );
    assert!(out.contains("aggregated"), "{out}");
    let evaluated: sla::run::EvalMetrics =
        serde_json::from_slice(&std::fs::read(&json).expect("json")).expect("metrics");
    assert_eq!(evaluated.episodes.expect("episodes").episodes, 40);
    assert_eq!(evaluated.step, 30);
    // The first 20 of those 40 episodes are the ones the run's last evaluation saw.
    let (ok, _, err) = sla(&[
        "fewshot",
        "eval",
        "--run",
        run_arg,
        "--episodes",
        "20",
        "--json",
        json.to_str().expect("utf-8 path"),
    ]);
    assert!(ok, "{err}");
    let again: sla::run::EvalMetrics =
        serde_json::from_slice(&std::fs::read(&json).expect("json")).expect("metrics");
    assert_eq!(again.single_acc, last.single_acc);
    assert_eq!(again.agg_acc, last.agg_acc);

    // `sla eval` is for standard runs and says which command to use.
    let (ok, _, err) = sla(&["eval", "--run", run_arg]);
    assert!(!ok);
    assert!(
        err.contains("is a few-shot run: evaluate it on test episodes with `sla fewshot eval"),
        "{err}"
    );

    // `sla fewshot table` over the folder: the run's last evaluation, to two decimals.
    let (ok, out, err) = sla(&["fewshot", "table", dir.path().to_str().expect("utf-8 path")]);
    assert!(ok, "{err}");
    let cell = |v: f64| format!("{:.2} ± 0.00", 100.0 * v);
    assert!(
        out.contains(&format!(
            "| protonet | conv4 | 5-way 1-shot | 30 | {} | {} | 1 |",
            cell(last.single_acc),
            cell(aggregated)
        )),
        "{out}"
    );
}

#[test]
fn a_resumed_ridge_run_ends_with_the_weights_of_an_uninterrupted_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = tiny(Mode::Da, Method::Ridge, 8);
    if let Some(fewshot) = config.fewshot.as_mut() {
        fewshot.eval_every = 4;
        fewshot.eval_episodes = 3;
    }
    let whole = dir.path().join("whole");
    train(RunStart::New {
        config: Box::new(config.clone()),
        run_dir: whole.clone(),
    });
    let parted = dir.path().join("parted");
    let (commands, inbox) = std::sync::mpsc::channel();
    let mut emit = |event: TrainerEvent| {
        if let TrainerEvent::Step(stats) = event
            && stats.step == 3
        {
            commands.send(TrainerCommand::Stop).expect("queue stop");
        }
        true
    };
    let summary = trainer::run(
        RunStart::New {
            config: Box::new(config),
            run_dir: parted.clone(),
        },
        &inbox,
        &mut emit,
    )
    .expect("stopped cleanly");
    assert_eq!((summary.steps, summary.stopped_early), (3, true));
    train(RunStart::Resume {
        run_dir: parted.clone(),
    });
    let (a, b) = (weight_bits(&whole), weight_bits(&parted));
    assert!(
        a.iter().any(|(name, _)| name == "head.scale"),
        "the ridge head's scale is a trained, saved parameter"
    );
    assert_eq!(a, b, "the same weights, bit for bit");
    assert_eq!(
        run::read_steps(&parted).expect("steps").records.len(),
        8,
        "one line per episode, none twice after resuming"
    );
    let (x, y) = (
        run::read_metrics(&whole).expect("metrics").records,
        run::read_metrics(&parted).expect("metrics").records,
    );
    assert_eq!(x.len(), 2);
    assert_eq!(
        x.iter().map(|m| m.single_acc).collect::<Vec<_>>(),
        y.iter().map(|m| m.single_acc).collect::<Vec<_>>()
    );
}

#[test]
fn episodes_the_novel_classes_cannot_fill_are_explained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    let (ok, _, err) = sla(&[
        "fewshot",
        "train",
        "--test-ways",
        "6",
        "--episodes",
        "1",
        "--out",
        out.to_str().expect("utf-8 path"),
    ]);
    assert!(!ok);
    assert!(
        err.contains(
            "novel classes: 6-way episodes need 6 classes with at least 6 images each (1 shots + \
             5 queries)"
        ) || err.contains("novel classes: 6-way episodes need 6 classes"),
        "{err}"
    );
    assert!(err.contains("only 5 of the 5 classes"), "{err}");
    let (ok, _, err) = sla(&[
        "fewshot",
        "train",
        "--mode",
        "mt",
        "--out",
        out.to_str().expect("utf-8 path"),
    ]);
    assert!(!ok);
    assert!(err.contains("baseline, da or sla, not mt"), "{err}");
}

#[test]
fn a_resume_may_evaluate_differently_but_never_train_other_episodes() {
    let data = sla::data::load(&sla::data::DatasetSource::default()).expect("embedded set");
    let fingerprint = |change: &dyn Fn(&mut FewShotConfig)| {
        let mut config = tiny(Mode::Sla, Method::Protonet, 30);
        if let Some(fewshot) = config.fewshot.as_mut() {
            change(fewshot);
        }
        sla::train::setup::fingerprint(&config, &data.train, None)
    };
    let stored = fingerprint(&|_| {});
    let evaluation_only = fingerprint(&|f| {
        f.eval_episodes = 500;
        f.eval_every = 7;
        f.test_shots = 5;
        f.episodes = 60;
    });
    assert_eq!(evaluation_only.differences(&stored), Vec::<String>::new());
    let other_episodes = fingerprint(&|f| f.shots = 5);
    assert_eq!(
        other_episodes.differences(&stored),
        ["fewshot.shots is now 5 but was 1"]
    );
    let other_learner = fingerprint(&|f| f.method = Method::Ridge);
    assert_eq!(
        other_learner.differences(&stored),
        ["fewshot.method is now \"ridge\" but was \"protonet\""]
    );
}

/// The episode builder hands over, in order, exactly the episodes a step would draw and make on
/// its own thread (the sampler's episode, its images augmented from the step's stream), pixel for
/// pixel and way for way, and nothing after its last.
#[test]
fn the_episode_builder_hands_over_each_episode_as_the_step_would_make_it() -> candle_core::Result<()>
{
    use candle_core::Device;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use sla::data::{Augmentation, DatasetKind, Normalization};
    use sla::fewshot::batch::{EpisodePlan, EpisodesAhead, episode_images};
    use sla::fewshot::episode::{EpisodeSampler, EpisodeShape};

    let base = crate::support::embedded_train();
    let shape = EpisodeShape {
        ways: 5,
        shots: 2,
        queries: 3,
    };
    let sampler = EpisodeSampler::new("base classes", &base.labels, base.num_classes(), shape, 7)
        .expect("the embedded set fills 5-way episodes");
    let augmentation = Augmentation {
        crop_padding: 2,
        horizontal_flip: true,
    };
    let normalization = Normalization::for_kind(DatasetKind::FashionMini, 1);
    let stream = |step: u64| {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        rng.set_stream(step);
        rng
    };
    let plan = EpisodePlan {
        data: base.clone(),
        sampler: sampler.clone(),
        augmentation,
        normalization: normalization.clone(),
        device: Device::Cpu,
    };
    let mut ahead = EpisodesAhead::spawn(plan, 2..5, stream).expect("builder thread");
    for step in 2..5 {
        let ready = ahead.next_episode()?;
        let episode = sampler.episode(step);
        assert_eq!(ready.episode, episode, "step {step}");
        let expected = episode_images(
            &base,
            &episode,
            &augmentation,
            &normalization,
            &mut stream(step),
            &Device::Cpu,
        )?;
        for (what, got, expected) in [
            ("support", &ready.images.support, &expected.support),
            ("queries", &ready.images.queries, &expected.queries),
        ] {
            assert_eq!(got.dims(), expected.dims());
            // Not `assert_eq!`: a failure would print every pixel of the episode.
            assert!(
                got.flatten_all()?.to_vec1::<f32>()? == expected.flatten_all()?.to_vec1::<f32>()?,
                "step {step}: {what} pixels differ"
            );
        }
        assert_eq!(ready.images.support_ways, expected.support_ways);
        assert_eq!(ready.images.query_ways, expected.query_ways);
    }
    let after_the_last = ahead
        .next_episode()
        .err()
        .expect("no sixth episode")
        .to_string();
    assert!(
        after_the_last.contains("no episode left"),
        "{after_the_last}"
    );
    Ok(())
}
