//! The app's keyboard shortcuts, in one place so the handler and the tooltips that name them
//! cannot disagree. Space pauses and resumes (when no text field has the keyboard).

use eframe::egui::{self, Key, KeyboardShortcut, Modifiers};

/// Start a run with the current settings.
pub const START: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::Enter);
/// Save a checkpoint of the running run now.
pub const SAVE_CHECKPOINT: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::S);
/// Put the keyboard in the "Open run" field.
pub const OPEN_RUN: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::O);

/// The id of the "Open run" field, which `OPEN_RUN` focuses.
pub fn open_run_field() -> egui::Id {
    egui::Id::unique("open-run-field")
}

/// A tooltip that names a control's shortcut.
pub fn hint(ctx: &egui::Context, text: &str, shortcut: &KeyboardShortcut) -> String {
    format!("{text} ({})", ctx.format_shortcut(shortcut))
}
