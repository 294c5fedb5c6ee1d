//! Colours of the views: theme colours, the perceptual colour map and the categorical palette.

use super::pack_rgba;

/// The fixed colours every view uses, gamma-space RGBA.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViewStyle {
    pub background: [u8; 4],
    /// Plot grid lines and the lines between transformation blocks of the confusion matrix.
    pub grid_line: [u8; 4],
    pub axis: [u8; 4],
    /// The hovered confusion cell.
    pub highlight: [u8; 4],
    /// Tile border of a correctly classified input.
    pub correct: [u8; 4],
    /// Tile border of a misclassified input.
    pub wrong: [u8; 4],
    /// Titles, tick labels and legends of the headless figures: egui's normal text colour of the
    /// same theme, so a figure reads like the app's chart.
    pub text: [u8; 4],
}

impl ViewStyle {
    pub fn dark() -> Self {
        Self {
            background: [27, 27, 30, 255],
            grid_line: [58, 58, 64, 255],
            axis: [150, 150, 158, 255],
            highlight: [255, 40, 150, 255],
            correct: [46, 170, 80, 255],
            wrong: [225, 50, 45, 255],
            // egui's dark `Visuals`: `widgets.noninteractive.fg_stroke`, gray 140.
            text: [140, 140, 140, 255],
        }
    }

    pub fn light() -> Self {
        Self {
            background: [250, 250, 250, 255],
            grid_line: [222, 222, 226, 255],
            axis: [90, 90, 96, 255],
            highlight: [230, 0, 120, 255],
            correct: [30, 150, 60, 255],
            wrong: [210, 35, 30, 255],
            // egui's light `Visuals`: `widgets.noninteractive.fg_stroke`, gray 80.
            text: [80, 80, 80, 255],
        }
    }
}

impl Default for ViewStyle {
    fn default() -> Self {
        Self::dark()
    }
}

/// Entries of the colour-map table the confusion shader interpolates.
pub const COLORMAP_LEN: usize = 256;

/// Viridis as 256 packed gamma-space colours (perceptually uniform, readable by colour-blind users).
pub fn viridis_table() -> Vec<u32> {
    (0..COLORMAP_LEN)
        .map(|i| {
            let [r, g, b] = colorous::VIRIDIS
                .eval_rational(i, COLORMAP_LEN)
                .into_array();
            pack_rgba([r, g, b, 255])
        })
        .collect()
}

/// Blue through white to red, 256 packed gamma-space colours (ColorBrewer's RdBu, reversed): the
/// diverging half of the confusion colour table, for differences: below zero blue, above it red,
/// zero at the middle, where the two middle entries average to RdBu's own white.
pub fn diverging_table() -> Vec<u32> {
    (0..COLORMAP_LEN)
        .map(|i| {
            let [r, g, b] = colorous::RED_BLUE
                .eval_rational(COLORMAP_LEN - 1 - i, COLORMAP_LEN - 1)
                .into_array();
            pack_rgba([r, g, b, 255])
        })
        .collect()
}

/// The i-th categorical colour (Tableau 10, repeating): series of a chart, transformations of a grid.
pub fn category_colour(i: usize) -> [u8; 4] {
    let [r, g, b] = colorous::TABLEAU10[i % colorous::TABLEAU10.len()].into_array();
    [r, g, b, 255]
}
