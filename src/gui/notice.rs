//! The banner that says how a run ended, and the window's request for attention that goes with it:
//! a run of an hour finishes, stops on a diverged loss or fails while the user looks elsewhere.

use eframe::egui;

use crate::run::EvalMetrics;

use super::run_state::Phase;

/// How the last run ended, in words.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub text: String,
    pub failed: bool,
}

impl Notice {
    /// The notice for a run that has just reached `phase` (`None` while it still runs), with its
    /// last evaluation.
    pub fn for_end(phase: &Phase, last: Option<&EvalMetrics>) -> Option<Self> {
        let accuracies = last.map(accuracies).unwrap_or_default();
        match phase {
            Phase::Finished {
                stopped_early: false,
            } => Some(Self {
                text: format!("Run finished{accuracies}"),
                failed: false,
            }),
            Phase::Finished {
                stopped_early: true,
            } => Some(Self {
                text: format!(
                    "Run stopped{accuracies}; its checkpoint resumes it (Open run, Resume)"
                ),
                failed: false,
            }),
            Phase::Failed(error) => Some(Self {
                text: format!("Run failed: {error}"),
                failed: true,
            }),
            Phase::Idle | Phase::Loading | Phase::Training | Phase::Paused => None,
        }
    }

    /// Ask the window system to draw the user's eye to the window (a flashing task-bar entry or a
    /// bouncing dock icon, depending on the platform).
    pub fn request_attention(&self, ctx: &egui::Context) {
        let kind = if self.failed {
            egui::UserAttentionType::Critical
        } else {
            egui::UserAttentionType::Informational
        };
        ctx.send_viewport_cmd(egui::ViewportCommand::RequestUserAttention(kind));
    }

    /// Draw the banner; returns whether the user dismissed it.
    pub fn show(&self, ui: &mut egui::Ui) -> bool {
        let (fill, text) = if self.failed {
            (
                egui::Color32::from_rgb(120, 30, 30),
                egui::Color32::from_rgb(255, 225, 220),
            )
        } else {
            (
                egui::Color32::from_rgb(25, 80, 45),
                egui::Color32::from_rgb(220, 250, 225),
            )
        };
        let mut dismissed = false;
        egui::Frame::new()
            .fill(fill)
            .inner_margin(6.0)
            .corner_radius(4.0)
            .show(ui, |ui| {
                ui.horizontal_wrapped(|ui| {
                    ui.colored_label(text, egui::RichText::new(&self.text).strong());
                    dismissed = ui.button("Dismiss").clicked();
                });
            });
        dismissed
    }
}

fn accuracies(metrics: &EvalMetrics) -> String {
    let mut text = format!(": single {:.1}%", 100.0 * metrics.single_acc);
    for (name, value) in [
        ("aggregated", metrics.agg_acc),
        ("self-distilled", metrics.sd_acc),
    ] {
        if let Some(value) = value {
            text.push_str(&format!(", {name} {:.1}%", 100.0 * value));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ending_says_what_happened() {
        let metrics = EvalMetrics {
            single_acc: 0.887,
            agg_acc: Some(0.8953),
            ..Default::default()
        };
        let finished = Notice::for_end(
            &Phase::Finished {
                stopped_early: false,
            },
            Some(&metrics),
        )
        .expect("a notice");
        assert_eq!(
            finished.text,
            "Run finished: single 88.7%, aggregated 89.5%"
        );
        assert!(!finished.failed);
        let failed =
            Notice::for_end(&Phase::Failed("the loss diverged".into()), None).expect("a notice");
        assert_eq!(failed.text, "Run failed: the loss diverged");
        assert!(failed.failed);
        assert_eq!(Notice::for_end(&Phase::Training, Some(&metrics)), None);
    }
}
