//! The top-losses gallery: the evaluation images the run's headline inference got most wrong,
//! untransformed, with the true and predicted class and their probabilities (fastai's
//! `plot_top_losses`). The evaluation keeps them (`TrainingSnapshot::top_losses`); this draws them.

use eframe::egui;

use crate::data::Dataset;
use crate::run::{ImageLoss, SampleGrid};

/// Images shown at most, eight to a row.
pub const SHOWN: usize = 16;
const COLUMNS: usize = 8;

/// The first `SHOWN` images of `losses` as one grid for the gallery renderer, or `None` when
/// there are none or an index lies outside `test`.
pub fn grid(losses: &[ImageLoss], test: &Dataset) -> Option<SampleGrid> {
    let shown = &losses[..losses.len().min(SHOWN)];
    if shown.is_empty() || shown.iter().any(|l| l.image >= test.len()) {
        return None;
    }
    let pixels: Vec<u8> = shown
        .iter()
        .flat_map(|l| test.image(l.image).iter().copied())
        .collect();
    Some(SampleGrid::gallery(
        test.shape,
        pixels,
        shown.len(),
        COLUMNS,
    ))
}

/// One line per shown image, in gallery order (left to right, top to bottom).
pub fn captions(losses: &[ImageLoss], class_names: &[String]) -> Vec<String> {
    let name = |class: u32| {
        class_names
            .get(class as usize)
            .cloned()
            .unwrap_or_else(|| class.to_string())
    };
    losses
        .iter()
        .take(SHOWN)
        .enumerate()
        .map(|(rank, l)| {
            format!(
                "{}. true {}, predicted {} {:.0}% (true class {:.1}%), loss {:.2}",
                rank + 1,
                name(l.label),
                name(l.predicted),
                100.0 * l.p_predicted,
                100.0 * l.p_true,
                l.loss
            )
        })
        .collect()
}

/// The captions under the gallery, small.
pub fn show_captions(ui: &mut egui::Ui, captions: &[String]) {
    for caption in captions {
        ui.label(egui::RichText::new(caption).small());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageShape;

    #[test]
    fn the_gallery_holds_the_images_in_loss_order_with_their_captions() {
        let shape = ImageShape {
            channels: 1,
            height: 1,
            width: 2,
        };
        let test = Dataset {
            shape,
            images: vec![10, 11, 20, 21, 30, 31],
            labels: vec![0, 1, 1],
            class_names: vec!["shirt".into(), "coat".into()],
        };
        let losses = [
            ImageLoss {
                image: 2,
                label: 1,
                predicted: 0,
                p_predicted: 0.9,
                p_true: 0.05,
                loss: 2.995_732,
            },
            ImageLoss {
                image: 0,
                label: 0,
                predicted: 1,
                p_predicted: 0.6,
                p_true: 0.4,
                loss: 0.916_291,
            },
        ];
        let grid = grid(&losses, &test).expect("a grid");
        assert_eq!((grid.samples, grid.num_transforms), (1, 2));
        assert_eq!(grid.pixels, [30, 31, 10, 11]);
        assert_eq!(
            captions(&losses, &test.class_names),
            [
                "1. true coat, predicted shirt 90% (true class 5.0%), loss 3.00",
                "2. true shirt, predicted coat 60% (true class 40.0%), loss 0.92"
            ]
        );
        let outside = [ImageLoss {
            image: 3,
            ..losses[0]
        }];
        assert!(super::grid(&outside, &test).is_none());
    }
}
