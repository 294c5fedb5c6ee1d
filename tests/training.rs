//! Training end to end: loss at initialisation, gradients against finite differences, a real short
//! run on the embedded set, and exact resumption.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sla::config::{TrainConfig, TransformChoice};
use sla::data::{self, Augmentation, DatasetKind, DatasetSource, Normalization};
use sla::model::{ModelKind, Network, seeded_var_builder};
use sla::run;
use sla::sla::{Mode, Objective, TransformPreset, TransformSet, transform::Expander};
use sla::train::prefetch::{BatchPlan, Prefetcher};
use sla::train::{RunStart, TrainerCommand, TrainerEvent, TrainerHandle, trainer};

use crate::support::{embedded_train, train, weight_bits};

fn objective(mode: Mode, n: usize, m: usize) -> Objective {
    Objective {
        mode,
        num_classes: n,
        num_transforms: m,
        temperature: 2.0,
        beta: 0.7,
        large_loss: false,
        class_weights: None,
    }
}

/// Loss of `mode` for a fixed batch, as a function of the network's current parameters.
fn loss_of(
    net: &Network,
    obj: &Objective,
    expander: &Expander,
    images: &Tensor,
    labels: &Tensor,
) -> candle_core::Result<Tensor> {
    let inputs = if obj.mode.expands_batches() {
        expander.expand(images)?
    } else {
        images.clone()
    };
    let features = net.features(&inputs, true)?;
    obj.loss(&obj.outputs(net.heads(), &features)?, labels)
}

/// The SLA+SD loss with the aggregated teacher frozen at `teacher`: the function whose derivative
/// the stop-gradient loss computes (its teacher does not move with the parameters).
fn sd_loss_with_fixed_teacher(
    net: &Network,
    obj: &Objective,
    expander: &Expander,
    images: &Tensor,
    labels: &Tensor,
    teacher: &Tensor,
) -> candle_core::Result<Tensor> {
    let features = net.features(&expander.expand(images)?, true)?;
    let outputs = obj.outputs(net.heads(), &features)?;
    // The objective's own (class-weighted when it has weights) cross-entropies: what this checks is
    // the teacher, fixed here and detached inside the loss.
    let joint = obj.joint_loss(&outputs.primary, labels)?;
    let student = outputs.secondary.expect("SD head");
    let hard = (obj.class_loss(&student, labels)? * obj.beta)?;
    let t = obj.temperature;
    let kd = sla::sla::objective::distillation_loss(teacher, &student, t)?;
    joint + hard + (kd * (t * t))?
}

/// The loss whose gradient `Objective::loss` back-propagates.
fn differentiated_loss(
    net: &Network,
    obj: &Objective,
    expander: &Expander,
    images: &Tensor,
    labels: &Tensor,
    teacher: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    match teacher {
        Some(teacher) => sd_loss_with_fixed_teacher(net, obj, expander, images, labels, teacher),
        None => loss_of(net, obj, expander, images, labels),
    }
}

#[test]
fn every_objective_gradient_matches_finite_differences() -> candle_core::Result<()> {
    let device = Device::Cpu;
    let (n, side) = (3, 8);
    let set = TransformSet::preset(TransformPreset::Rotation);
    let expander = Expander::new(&set, 1, side, side, &device)?;
    // Seeded: with fresh random images each run, a ±1e-5 probe now and then crosses a ReLU or
    // max-pool kink and the central difference stops being a derivative.
    let images = crate::support::random(&[4, 1, side, side], 19, DType::F64)?;
    let labels = Tensor::new(&[0u32, 2, 1, 2], &device)?;
    // Each objective plain and with class weights (the imbalanced setting's re-weighting).
    let weightings = [None, Some(vec![1.6, 0.3, 1.1])];
    for (mode, class_weights) in Mode::ALL
        .into_iter()
        .flat_map(|mode| weightings.iter().map(move |w| (mode, w.clone())))
    {
        let obj = Objective {
            class_weights,
            ..objective(mode, n, set.len())
        };
        let vars = VarMap::new();
        let vb = seeded_var_builder(&vars, 7, DType::F64, &device);
        let shape = data::ImageShape {
            channels: 1,
            height: side,
            width: side,
        };
        let net = Network::new(ModelKind::Cnn, shape, &obj.head_sizes(), vb)?;
        let grads = loss_of(&net, &obj, &expander, &images, &labels)?.backward()?;
        let teacher = if mode == Mode::SlaSd {
            let features = net.features(&expander.expand(&images)?, true)?;
            let joint_logits = obj.outputs(net.heads(), &features)?.primary;
            Some(sla::sla::joint::aggregated_logits(&joint_logits, obj.num_transforms)?.detach())
        } else {
            None
        };
        // The SD teacher must equal the one inside the loss: same parameters, same batch statistics.
        if let Some(teacher) = &teacher {
            let frozen =
                sd_loss_with_fixed_teacher(&net, &obj, &expander, &images, &labels, teacher)?;
            let full = loss_of(&net, &obj, &expander, &images, &labels)?;
            assert!((frozen.to_scalar::<f64>()? - full.to_scalar::<f64>()?).abs() < 1e-12);
        }
        let mut checked = 0;
        let mut names: Vec<(String, Var)> = vars
            .data()
            .lock()
            .expect("lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, var) in names.iter().filter(|(name, _)| !name.contains("running")) {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            let grad: Vec<f64> = grad.flatten_all()?.to_vec1()?;
            let original: Vec<f64> = var.as_tensor().flatten_all()?.to_vec1()?;
            // Probe three entries of every parameter tensor.
            for index in [0, original.len() / 2, original.len() - 1] {
                let eps = 1e-5;
                let probe = |delta: f64| -> candle_core::Result<f64> {
                    let mut values = original.clone();
                    values[index] += delta;
                    var.set(&Tensor::from_vec(values, var.shape(), &device)?)?;
                    differentiated_loss(&net, &obj, &expander, &images, &labels, teacher.as_ref())?
                        .to_scalar::<f64>()
                };
                let numeric = (probe(eps)? - probe(-eps)?) / (2.0 * eps);
                var.set(&Tensor::from_vec(original.clone(), var.shape(), &device)?)?;
                let tolerance = 1e-6 + 1e-4 * numeric.abs();
                assert!(
                    (numeric - grad[index]).abs() < tolerance,
                    "{mode:?} {name}[{index}]: analytic {} vs numeric {numeric}",
                    grad[index]
                );
                checked += 1;
            }
        }
        assert!(checked > 30, "{mode:?}: only {checked} entries checked");
    }
    Ok(())
}

#[test]
fn loss_at_initialisation_is_log_of_the_label_count() -> candle_core::Result<()> {
    let splits = data::load(&DatasetSource::default()).expect("embedded set");
    let norm = Normalization::for_kind(DatasetKind::FashionMini, 1);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
    let indices: Vec<usize> = (0..64).map(|i| i * 70).collect();
    let (images, labels) = data::make_batch(
        &splits.train,
        &indices,
        &Augmentation::none(),
        &norm,
        &mut rng,
        &Device::Cpu,
    )?;
    let set = TransformSet::preset(TransformPreset::Rotation);
    let expander = Expander::new(&set, 1, 28, 28, &Device::Cpu)?;
    for (mode, labels_count) in [(Mode::Baseline, 10.0f64), (Mode::Sla, 40.0)] {
        let obj = objective(mode, 10, 4);
        let vars = VarMap::new();
        let net = Network::new(
            ModelKind::Cnn,
            images_shape(&images)?,
            &obj.head_sizes(),
            seeded_var_builder(&vars, 3, DType::F32, &Device::Cpu),
        )?;
        let loss = loss_of(&net, &obj, &expander, &images, &labels)?.to_scalar::<f32>()? as f64;
        assert!(
            (loss - labels_count.ln()).abs() < 0.25,
            "{mode:?}: loss {loss} vs ln {labels_count} = {}",
            labels_count.ln()
        );
    }
    Ok(())
}

fn quick_config(mode: Mode, epochs: usize) -> TrainConfig {
    TrainConfig {
        limit_train: Some(1000),
        limit_test: Some(200),
        mode,
        model: ModelKind::Cnn,
        transforms: TransformChoice::Preset(TransformPreset::Rotation),
        epochs,
        batch_size: 25,
        lr: 0.1,
        schedule: sla::config::ScheduleKind::Cosine,
        seed: 11,
        ..Default::default()
    }
}

#[test]
fn sla_sd_learns_the_embedded_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("run");
    let metrics = train(RunStart::New {
        config: Box::new(quick_config(Mode::SlaSd, 2)),
        run_dir: run.clone(),
    });
    assert_eq!(metrics.len(), 2);
    let (first, last) = (&metrics[0], &metrics[1]);
    let steps = std::fs::read_to_string(run.join("steps.csv")).expect("steps");
    let losses: Vec<f64> = steps
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).expect("loss").parse().expect("number"))
        .collect();
    assert_eq!(losses.len(), 80);
    let early: f64 = losses[..10].iter().sum::<f64>() / 10.0;
    let late: f64 = losses[70..].iter().sum::<f64>() / 10.0;
    assert!(late < 0.8 * early, "loss {early} → {late}");
    assert!(last.train_loss < first.train_loss);
    // Chance is 10 %; this short run reaches about 55 % with every inference.
    assert!(last.single_acc > 0.35, "single {}", last.single_acc);
    assert!(
        last.agg_acc.expect("agg") > 0.35,
        "aggregated {:?}",
        last.agg_acc
    );
    assert!(
        last.sd_acc.expect("sd") > 0.35,
        "self-distilled {:?}",
        last.sd_acc
    );
    assert_eq!(last.per_transform_acc.len(), 4);
    // The run folder holds what the issue names.
    for file in [
        "config.json",
        "metrics.jsonl",
        "steps.csv",
        "snapshot.json",
        "checkpoint.json",
        "confusion_joint.csv",
        "confusion_classes.csv",
    ] {
        assert!(run.join(file).exists(), "{file} missing");
    }
    let checkpoint = sla::train::checkpoint::require(&run).expect("checkpoint");
    assert_eq!(checkpoint.state.step, 80);
    assert!(checkpoint.model_path().exists());
    let snapshot = run::read_snapshot(&run).expect("snapshot");
    assert_eq!(snapshot.joint_confusion.len(), 40 * 40);
    assert_eq!(snapshot.joint_confusion.iter().sum::<u32>(), 200 * 4);
    assert_eq!(snapshot.class_confusion.iter().sum::<u32>(), 200);
    assert_eq!(snapshot.samples.pixels.len(), 8 * 4 * 28 * 28);
    assert_eq!(run::read_metrics(&run).expect("metrics").records.len(), 2);
}

#[test]
fn a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = TrainConfig {
        limit_train: Some(300),
        limit_test: Some(50),
        ..quick_config(Mode::Sla, 2)
    };
    let whole = dir.path().join("whole");
    train(RunStart::New {
        config: Box::new(config.clone()),
        run_dir: whole.clone(),
    });
    // The same run stopped after step 4: the command is queued from inside the trainer's own
    // event callback, so the trainer sees it before step 5, deterministically.
    let parted = dir.path().join("parted");
    let (commands, inbox) = std::sync::mpsc::channel();
    let mut emit = |event: TrainerEvent| {
        if let TrainerEvent::Step(stats) = event
            && stats.step == 4
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
    assert!(summary.stopped_early);
    assert_eq!(summary.steps, 4);
    train(RunStart::Resume {
        run_dir: parted.clone(),
    });
    // Bit for bit: the batches, augmentation and optimiser state of a resumed run are exactly those
    // of the uninterrupted one.
    let (a, b) = (weight_bits(&whole), weight_bits(&parted));
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{name} differs");
    }
    let steps = std::fs::read_to_string(parted.join("steps.csv")).expect("steps");
    assert_eq!(
        steps.lines().count(),
        1 + 24,
        "one line per step, no duplicates after resuming"
    );
}

#[test]
fn a_panic_in_the_trainer_thread_is_reported_as_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let panicked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let once = panicked.clone();
    // The front end's waker runs on the trainer thread: make it panic on the first event.
    let waker = move || {
        if !once.swap(true, std::sync::atomic::Ordering::SeqCst) {
            panic!("a waker that fails");
        }
    };
    let mut trainer = TrainerHandle::spawn(
        RunStart::New {
            config: Box::new(quick_config(Mode::Sla, 1)),
            run_dir: dir.path().join("run"),
        },
        waker,
    )
    .expect("spawn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let error = loop {
        assert!(std::time::Instant::now() < deadline, "no Finished event");
        let finished = trainer.poll().into_iter().find_map(|event| match event {
            TrainerEvent::Finished(result) => Some(result),
            _ => None,
        });
        if let Some(result) = finished {
            break result.expect_err("the panic ends the run as an error");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(panicked.load(std::sync::atomic::Ordering::SeqCst));
    let message = error.to_string();
    assert!(message.contains("a waker that fails"), "{message}");
    assert!(message.contains("failed unexpectedly"), "{message}");
}

#[test]
fn stop_during_an_evaluation_takes_effect_inside_it_and_resume_owes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("run");
    // One step per epoch, then the evaluation of the 1,000 embedded test images.
    let config = TrainConfig {
        limit_train: Some(25),
        limit_test: None,
        ..quick_config(Mode::Sla, 2)
    };
    let trainer = TrainerHandle::spawn(
        RunStart::New {
            config: Box::new(config),
            run_dir: run.clone(),
        },
        || {},
    )
    .expect("spawn");
    while let Some(event) = trainer.next_event() {
        if matches!(event, TrainerEvent::Step(_)) {
            break;
        }
    }
    // The trainer is now in the evaluation after step 1; dropping the handle stops it there.
    drop(trainer);
    let checkpoint = sla::train::checkpoint::require(&run).expect("checkpoint");
    assert_eq!(checkpoint.state.step, 1);
    assert!(
        checkpoint.state.pending_evaluation,
        "the stop waited for the whole evaluation"
    );
    assert!(run::read_metrics(&run).expect("metrics").records.is_empty());
    // Resuming runs the owed evaluation first, then trains on.
    let metrics = train(RunStart::Resume {
        run_dir: run.clone(),
    });
    assert_eq!(
        metrics
            .iter()
            .map(|m| (m.epoch, m.step))
            .collect::<Vec<_>>(),
        [(1, 1), (2, 2)]
    );
    assert_eq!(run::read_metrics(&run).expect("metrics").records.len(), 2);
}

fn images_shape(images: &Tensor) -> candle_core::Result<data::ImageShape> {
    let (_, channels, height, width) = images.dims4()?;
    Ok(data::ImageShape {
        channels,
        height,
        width,
    })
}

/// The batch builder's plan over the embedded set: crops and flips on, expanded by the rotations.
fn rotation_plan(dataset: std::sync::Arc<data::Dataset>) -> candle_core::Result<BatchPlan> {
    let set = TransformSet::preset(TransformPreset::Rotation);
    Ok(BatchPlan {
        dataset,
        augmentation: Augmentation {
            crop_padding: 2,
            horizontal_flip: true,
        },
        normalization: Normalization::for_kind(DatasetKind::FashionMini, 1),
        expander: Some(Expander::new(&set, 1, 28, 28, &Device::Cpu)?),
        device: Device::Cpu,
    })
}

/// Step `step`'s images (eight, spread over the set) and augmentation stream, for the builder tests.
fn draw_step(step: u64) -> (Vec<usize>, ChaCha8Rng) {
    let indices = (0..8)
        .map(|i| (step as usize * 37 + i * 101) % 700)
        .collect();
    (indices, ChaCha8Rng::seed_from_u64(step))
}

/// The builder thread hands over, in order, exactly the batches `make_batch` and the expander
/// make on the step's own thread: pixel for pixel, label for label.
#[test]
fn the_batch_builder_hands_over_each_steps_batch_as_the_step_would_make_it()
-> candle_core::Result<()> {
    let train = embedded_train();
    let plan = rotation_plan(train.clone())?;
    let (augmentation, normalization) = (plan.augmentation, plan.normalization.clone());
    let expander = plan.expander.clone().expect("an expander");
    let mut batches = Prefetcher::spawn(plan, 3..7, draw_step).expect("builder thread");
    for step in 3..7 {
        let batch = batches.next_batch()?;
        assert_eq!(batch.step, step);
        let (indices, mut rng) = draw_step(step);
        let (images, labels) = data::make_batch(
            &train,
            &indices,
            &augmentation,
            &normalization,
            &mut rng,
            &Device::Cpu,
        )?;
        let expected = expander.expand(&images)?;
        assert_eq!(batch.inputs.dims(), [32, 1, 28, 28]);
        assert_eq!(
            batch.inputs.flatten_all()?.to_vec1::<f32>()?,
            expected.flatten_all()?.to_vec1::<f32>()?,
            "step {step}"
        );
        assert_eq!(batch.labels.to_vec1::<u32>()?, labels.to_vec1::<u32>()?);
    }
    let after_the_last = batches
        .next_batch()
        .err()
        .expect("no eighth batch")
        .to_string();
    assert!(after_the_last.contains("no batch left"), "{after_the_last}");
    Ok(())
}

/// While a step trains on its batch, the next one is drawn and built without being asked for,
/// and no further: the builder works one batch ahead, never more.
#[test]
fn the_batch_builder_works_one_batch_ahead_of_the_step() -> candle_core::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let train = embedded_train();
    let drawn = std::sync::Arc::new(AtomicU64::new(0));
    let counter = drawn.clone();
    let mut batches = Prefetcher::spawn(rotation_plan(train)?, 0..100, move |step| {
        counter.fetch_add(1, Ordering::SeqCst);
        draw_step(step)
    })
    .expect("builder thread");
    let first = batches.next_batch()?;
    assert_eq!(first.step, 0);
    // The step would train on `first` now; meanwhile the builder has drawn step 1 unasked.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while drawn.load(Ordering::SeqCst) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "step 1 was never drawn"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // Batch 1 waits to be handed over; step 2 is not drawn before it is.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(drawn.load(Ordering::SeqCst), 2);
    assert_eq!(batches.next_batch()?.step, 1);
    // Dropped with step 2's batch built and waiting: the thread ends and is joined.
    drop(batches);
    Ok(())
}

/// A batch the builder cannot make reaches the step as the error it is, and the builder stops.
#[test]
fn a_batch_the_builder_cannot_make_is_the_steps_error() -> candle_core::Result<()> {
    let train = embedded_train();
    let len = train.len();
    let mut batches = Prefetcher::spawn(rotation_plan(train)?, 0..10, move |step| {
        let (mut indices, rng) = draw_step(step);
        if step == 1 {
            indices[3] = len;
        }
        (indices, rng)
    })
    .expect("builder thread");
    assert_eq!(batches.next_batch()?.step, 0);
    let error = batches
        .next_batch()
        .err()
        .expect("step 1 fails")
        .to_string();
    assert!(
        error.contains(&format!("image index {len} is out of range")),
        "{error}"
    );
    let after = batches
        .next_batch()
        .err()
        .expect("nothing after the error")
        .to_string();
    assert!(after.contains("no batch left"), "{after}");
    Ok(())
}
