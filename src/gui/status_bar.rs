//! The status bar: where the run is (phase, step, rate, loss, learning rate, memory, ETA,
//! device), the views' adapter, the theme, and the run's last message or error.

use eframe::egui;

use super::run_state::{Phase, RunState};
use crate::number_format;

/// What the status bar shows.
pub struct StatusInput<'a> {
    pub state: &'a RunState,
    /// The GPU adapter the views draw on (none: the views are off).
    pub adapter: Option<String>,
    /// Hide what depends on timing and the machine (rates, memory, ETA, messages), for snapshot
    /// tests.
    pub deterministic: bool,
}

pub fn show(ui: &mut egui::Ui, input: StatusInput<'_>) {
    ui.horizontal_wrapped(|ui| {
        let phase = match &input.state.phase {
            Phase::Idle => "idle".to_string(),
            Phase::Loading => "loading data and building the model…".to_string(),
            Phase::Training => "training".to_string(),
            Phase::Paused => "paused".to_string(),
            Phase::Finished {
                stopped_early: true,
            } => "stopped".to_string(),
            Phase::Finished { .. } => "finished".to_string(),
            Phase::Failed(_) => "failed".to_string(),
        };
        ui.strong(phase);
        if let (Some(info), Some(stats)) = (&input.state.info, input.state.last_step) {
            ui.separator();
            ui.label(format!(
                "epoch {}/{}  step {}/{}",
                stats.epoch + 1,
                info.total_steps / info.steps_per_epoch.max(1),
                stats.step,
                info.total_steps
            ));
            if !input.deterministic {
                ui.separator();
                ui.label(format!(
                    "{:.0} img/s ({:.0} transformed/s)",
                    stats.images_per_s, stats.transformed_per_s
                ));
            }
            ui.separator();
            ui.label(format!("loss {:.4}", stats.loss));
            ui.separator();
            ui.label(format!("lr {}", number_format::significant(stats.lr, 3)))
                .on_hover_text("The learning rate of the last step");
            // Snapshot tests hide it without reading /proc at all.
            let peak = (!input.deterministic)
                .then(crate::process_memory::lifetime_peak_rss_mb)
                .flatten();
            if let Some(peak) = peak {
                ui.separator();
                ui.label(format!("peak memory {peak:.0} MiB"))
                    .on_hover_text("The most resident memory this process has used so far");
            }
            if let Some(eta) = input.state.eta_s().filter(|_| !input.deterministic) {
                ui.separator();
                ui.label(format!("ETA {}", format_duration(eta)));
            }
            ui.separator();
            ui.label(format!("device {}", info.device));
        }
        if let Some(adapter) = input.adapter {
            ui.separator();
            ui.label(egui::RichText::new(format!("views on {adapter}")).small());
        }
        ui.separator();
        theme_choice(ui);
        if let Phase::Failed(error) = &input.state.phase {
            ui.colored_label(super::ERROR_COLOUR, error);
        } else if let Some(message) = input
            .state
            .message
            .as_ref()
            .filter(|_| !input.deterministic)
        {
            ui.separator();
            ui.label(message);
        }
    });
}

/// Follow the system's light or dark theme, or choose one. (egui's own theme buttons draw emoji
/// that its bundled fonts lack.)
fn theme_choice(ui: &mut egui::Ui) {
    let mut preference = ui.options(|o| o.theme_preference);
    let name = |p: egui::ThemePreference| match p {
        egui::ThemePreference::System => "system theme",
        egui::ThemePreference::Dark => "dark",
        egui::ThemePreference::Light => "light",
    };
    egui::ComboBox::from_id_salt("theme")
        .selected_text(name(preference))
        .show_ui(ui, |ui| {
            for choice in [
                egui::ThemePreference::System,
                egui::ThemePreference::Dark,
                egui::ThemePreference::Light,
            ] {
                ui.selectable_value(&mut preference, choice, name(choice));
            }
        })
        .response
        .on_hover_text("Theme");
    if preference != ui.options(|o| o.theme_preference) {
        ui.ctx().set_theme(preference);
    }
}

fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}
