//! The most confused (true, predicted) pairs of the confusion matrix shown (joint, class or
//! transformation level), largest count first; choosing one opens its images like a click on its
//! cell does.

use eframe::egui;

/// How many pairs the list shows.
pub const SHOWN: usize = 8;

/// One off-diagonal cell: true row, predicted column, and its count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Confusion {
    pub row: usize,
    pub col: usize,
    pub count: u32,
}

/// The off-diagonal cells of the `side`×`side` row-major `matrix` with a count, largest first
/// (ties in reading order), at most `limit` of them.
pub fn most_confused(matrix: &[u32], side: usize, limit: usize) -> Vec<Confusion> {
    let mut cells: Vec<Confusion> = matrix
        .iter()
        .take(side * side)
        .enumerate()
        .map(|(index, &count)| Confusion {
            row: index / side,
            col: index % side,
            count,
        })
        .filter(|c| c.row != c.col && c.count > 0)
        .collect();
    // A stable sort keeps reading order among equal counts.
    cells.sort_by_key(|c| std::cmp::Reverse(c.count));
    cells.truncate(limit);
    cells
}

/// Draw the list under a folding header; returns the pair the user chose.
pub fn show(
    ui: &mut egui::Ui,
    pairs: &[Confusion],
    selected: Option<(usize, usize)>,
    label: impl Fn(usize) -> String,
) -> Option<(usize, usize)> {
    let mut chosen = None;
    egui::CollapsingHeader::new("Most confused")
        .id_salt("most-confused")
        .default_open(true)
        .show(ui, |ui| {
            if pairs.is_empty() {
                ui.label("No mistakes at this level.");
            }
            for pair in pairs {
                let text = format!(
                    "{} × true {}, predicted {}",
                    pair.count,
                    label(pair.row),
                    label(pair.col)
                );
                let is_selected = selected == Some((pair.row, pair.col));
                if ui
                    .selectable_label(is_selected, text)
                    .on_hover_text("Show these test images")
                    .clicked()
                {
                    chosen = Some((pair.row, pair.col));
                }
            }
        });
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_come_largest_first_without_the_diagonal_or_empty_cells() {
        // true \ predicted
        let matrix = [
            50, 3, 7, //
            9, 40, 0, //
            3, 12, 30,
        ];
        let pairs: Vec<(usize, usize, u32)> = most_confused(&matrix, 3, 10)
            .iter()
            .map(|c| (c.row, c.col, c.count))
            .collect();
        assert_eq!(
            pairs,
            [(2, 1, 12), (1, 0, 9), (0, 2, 7), (0, 1, 3), (2, 0, 3)]
        );
        assert_eq!(most_confused(&matrix, 3, 2).len(), 2);
        assert!(most_confused(&[5, 0, 0, 5], 2, 10).is_empty());
    }
}
