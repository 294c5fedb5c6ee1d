//! Transformation sets (rotations, colour-channel permutations and their products) and the ×M batch expansion.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// One input transformation: rotate by `quarter_turns` × 90° counter-clockwise (as `torch.rot90`),
/// then permute the colour channels so that new channel c = old channel `permutation[c]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transform {
    pub quarter_turns: u8,
    pub permutation: [u8; 3],
}

pub const IDENTITY_PERMUTATION: [u8; 3] = [0, 1, 2];

/// The six channel permutations in the reference implementation's `color_perm` order.
pub const ALL_PERMUTATIONS: [[u8; 3]; 6] = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
];

/// The three cyclic shifts, the reference's `color_perm3` order.
const CYCLIC_PERMUTATIONS: [[u8; 3]; 3] = [[0, 1, 2], [1, 2, 0], [2, 0, 1]];

impl Transform {
    pub const IDENTITY: Transform = Transform {
        quarter_turns: 0,
        permutation: IDENTITY_PERMUTATION,
    };

    pub fn is_colour_permutation(&self) -> bool {
        self.permutation != IDENTITY_PERMUTATION
    }

    /// A short human name, e.g. `rot90`, `GBR`, `rot180·BRG`.
    pub fn name(&self) -> String {
        let rotation = format!("rot{}", 90 * u32::from(self.quarter_turns));
        let letters: String = self
            .permutation
            .iter()
            .map(|&c| ['R', 'G', 'B'][usize::from(c)])
            .collect();
        match (self.quarter_turns, self.is_colour_permutation()) {
            (0, false) => "identity".to_string(),
            (_, false) => rotation,
            (0, true) => letters,
            (_, true) => format!("{rotation}·{letters}"),
        }
    }

    /// Where output pixel (c, r, col) of a C×H×W image comes from, as a flat CHW index of the input.
    /// Rotation by one quarter turn maps output (r, col) to input (col, W−1−r), as `np.rot90`.
    fn source_index(&self, channel: usize, row: usize, col: usize, side: usize) -> usize {
        let (mut r, mut c) = (row, col);
        for _ in 0..self.quarter_turns {
            (r, c) = (c, side - 1 - r);
        }
        (self.source_channel(channel) * side + r) * side + c
    }

    /// Channels beyond an RGB triple (or grey images) are never permuted: `check_image_shape`
    /// refuses colour permutations there.
    fn source_channel(&self, channel: usize) -> usize {
        match self.permutation.get(channel) {
            Some(&source) if self.is_colour_permutation() => usize::from(source),
            _ => channel,
        }
    }
}

/// The presets of the reference implementation, with its exact orders of j.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TransformPreset {
    /// Identity only (M = 1): SLA reduces to the baseline.
    None,
    /// 0°, 90°, 180°, 270° (M = 4).
    Rotation,
    /// 0°, 180° (M = 2).
    Rotation2,
    /// The 6 colour-channel permutations.
    ColorPerm,
    /// The 3 cyclic colour shifts.
    ColorPerm3,
    /// {0°, 180°} × cyclic shifts (M = 6).
    RotColor6,
    /// 4 rotations × cyclic shifts (M = 12).
    RotColor12,
    /// 4 rotations × 6 permutations (M = 24).
    RotColor24,
}

impl TransformPreset {
    pub const ALL: [TransformPreset; 8] = [
        TransformPreset::None,
        TransformPreset::Rotation,
        TransformPreset::Rotation2,
        TransformPreset::ColorPerm,
        TransformPreset::ColorPerm3,
        TransformPreset::RotColor6,
        TransformPreset::RotColor12,
        TransformPreset::RotColor24,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            TransformPreset::None => "none",
            TransformPreset::Rotation => "rotation",
            TransformPreset::Rotation2 => "rotation2",
            TransformPreset::ColorPerm => "color-perm",
            TransformPreset::ColorPerm3 => "color-perm3",
            TransformPreset::RotColor6 => "rot-color6",
            TransformPreset::RotColor12 => "rot-color12",
            TransformPreset::RotColor24 => "rot-color24",
        }
    }

    /// Rotations (quarter turns) and permutations whose product, rotation-major, is the preset.
    fn factors(self) -> (Vec<u8>, Vec<[u8; 3]>) {
        let identity = vec![IDENTITY_PERMUTATION];
        match self {
            TransformPreset::None => (vec![0], identity),
            TransformPreset::Rotation => (vec![0, 1, 2, 3], identity),
            TransformPreset::Rotation2 => (vec![0, 2], identity),
            TransformPreset::ColorPerm => (vec![0], ALL_PERMUTATIONS.to_vec()),
            TransformPreset::ColorPerm3 => (vec![0], CYCLIC_PERMUTATIONS.to_vec()),
            TransformPreset::RotColor6 => (vec![0, 2], CYCLIC_PERMUTATIONS.to_vec()),
            TransformPreset::RotColor12 => (vec![0, 1, 2, 3], CYCLIC_PERMUTATIONS.to_vec()),
            TransformPreset::RotColor24 => (vec![0, 1, 2, 3], ALL_PERMUTATIONS.to_vec()),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TransformError {
    #[error(
        "colour permutations need 3-channel (RGB) images, but this dataset has {channels} channel(s); choose rotations instead"
    )]
    ColourOnGrey { channels: usize },
    #[error(
        "rotations by 90° or 270° need square images, but these are {height}×{width}; use rotation2 or colour permutations"
    )]
    NotSquare { height: usize, width: usize },
    #[error("a transformation set needs at least one rotation and one channel order")]
    Empty,
    #[error("rotation {0}° is not a multiple of 90° below 360°")]
    BadRotation(u32),
    #[error("{0:?} is not a permutation of the three channels")]
    BadPermutation([u8; 3]),
}

/// An ordered set of M transformations whose index 0 is always the identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformSet {
    transforms: Vec<Transform>,
}

impl TransformSet {
    pub fn preset(preset: TransformPreset) -> Self {
        let (rotations, permutations) = preset.factors();
        Self::product_unchecked(&rotations, &permutations)
    }

    /// A custom product of rotations (in quarter turns) and channel permutations, rotation-major
    /// (j = rotation index · |permutations| + permutation index), as the reference's rot×colour sets.
    /// The identity is moved to the front so that j = 0 is always the untransformed image.
    pub fn product(quarter_turns: &[u8], permutations: &[[u8; 3]]) -> Result<Self, TransformError> {
        if quarter_turns.is_empty() || permutations.is_empty() {
            return Err(TransformError::Empty);
        }
        if let Some(&bad) = quarter_turns.iter().find(|&&q| q > 3) {
            return Err(TransformError::BadRotation(90 * u32::from(bad)));
        }
        if let Some(bad) = permutations.iter().find(|p| !ALL_PERMUTATIONS.contains(p)) {
            return Err(TransformError::BadPermutation(*bad));
        }
        Ok(Self::product_unchecked(quarter_turns, permutations))
    }

    fn product_unchecked(quarter_turns: &[u8], permutations: &[[u8; 3]]) -> Self {
        let mut transforms: Vec<Transform> = Vec::new();
        for &quarter_turns in quarter_turns {
            for &permutation in permutations {
                let t = Transform {
                    quarter_turns,
                    permutation,
                };
                if !transforms.contains(&t) {
                    transforms.push(t);
                }
            }
        }
        match transforms.iter().position(|t| *t == Transform::IDENTITY) {
            Some(0) => {}
            Some(position) => {
                let identity = transforms.remove(position);
                transforms.insert(0, identity);
            }
            None => transforms.insert(0, Transform::IDENTITY),
        }
        Self { transforms }
    }

    pub fn len(&self) -> usize {
        self.transforms.len()
    }

    /// Never true: the identity is always in the set.
    pub fn is_empty(&self) -> bool {
        self.transforms.is_empty()
    }

    pub fn transforms(&self) -> &[Transform] {
        &self.transforms
    }

    pub fn names(&self) -> Vec<String> {
        self.transforms.iter().map(Transform::name).collect()
    }

    /// Refuse sets that cannot act on images of this shape.
    pub fn check_image_shape(
        &self,
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<(), TransformError> {
        if channels != 3 && self.transforms.iter().any(Transform::is_colour_permutation) {
            return Err(TransformError::ColourOnGrey { channels });
        }
        if height != width && self.transforms.iter().any(|t| t.quarter_turns % 2 == 1) {
            return Err(TransformError::NotSquare { height, width });
        }
        Ok(())
    }

    /// For every j and every output position p of a CHW image, the input position it copies:
    /// entry `j·CHW + p`. One gather with this table expands a whole batch.
    pub fn gather_table(&self, channels: usize, side: usize) -> Vec<u32> {
        let mut table = Vec::with_capacity(self.len() * channels * side * side);
        for t in &self.transforms {
            for c in 0..channels {
                for r in 0..side {
                    for col in 0..side {
                        // Fits u32: checked by `Expander::new`.
                        table.push(t.source_index(c, r, col, side) as u32);
                    }
                }
            }
        }
        table
    }

    /// Apply transformation `j` to one u8 CHW image (CPU reference, also used for sample grids).
    pub fn apply_u8(&self, j: usize, image: &[u8], channels: usize, side: usize) -> Vec<u8> {
        let t = self.transforms[j];
        let mut out = Vec::with_capacity(image.len());
        for c in 0..channels {
            for r in 0..side {
                for col in 0..side {
                    out.push(image[t.source_index(c, r, col, side)]);
                }
            }
        }
        out
    }
}

/// Expands batches `[B, C, H, W]` into `[B·M, C, H, W]` with row `b·M + j` = t_j(x_b), using one
/// precomputed gather so the expansion is a single op on any device. Cloning shares the table.
#[derive(Clone)]
pub struct Expander {
    table: Tensor,
    num_transforms: usize,
}

impl Expander {
    pub fn new(
        set: &TransformSet,
        channels: usize,
        height: usize,
        width: usize,
        device: &Device,
    ) -> candle_core::Result<Self> {
        set.check_image_shape(channels, height, width)
            .map_err(candle_core::Error::wrap)?;
        if set.transforms.iter().all(|t| t.quarter_turns % 2 == 0) && height != width {
            // Half turns keep non-square shapes; build the table for the rectangle.
            let table = half_turn_table(set, channels, height, width);
            return Ok(Self {
                table: Tensor::from_vec(table.clone(), table.len(), device)?,
                num_transforms: set.len(),
            });
        }
        if channels * height * width >= u32::MAX as usize {
            candle_core::bail!("image too large to transform");
        }
        let table = set.gather_table(channels, height);
        let len = table.len();
        Ok(Self {
            table: Tensor::from_vec(table, len, device)?,
            num_transforms: set.len(),
        })
    }

    pub fn num_transforms(&self) -> usize {
        self.num_transforms
    }

    /// Expand `count` u8 CHW images of shape `(c, h, w)` (un-normalised, as shown to users):
    /// `count · M` images in the same row order as `expand`.
    pub fn expand_bytes(
        &self,
        images: &[u8],
        count: usize,
        (c, h, w): (usize, usize, usize),
    ) -> candle_core::Result<Vec<u8>> {
        // An evaluation that keeps no sample images asks for none. No tensor for them: CUDA
        // refuses an allocation of zero bytes (`CUDA_ERROR_INVALID_VALUE`, seen on an H200:
        // `sla eval --device cuda:0` failed after its last batch).
        if count == 0 {
            return Ok(Vec::new());
        }
        let pixels: Vec<f32> = images.iter().map(|&v| f32::from(v)).collect();
        let device = self.table.device();
        let batch = Tensor::from_vec(pixels, (count, c, h, w), device)?;
        let expanded = self.expand(&batch)?.flatten_all()?.to_vec1::<f32>()?;
        // Gathering copies values exactly, so every value is still a whole number in 0..=255.
        Ok(expanded.iter().map(|&v| v as u8).collect())
    }

    pub fn expand(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        let (b, c, h, w) = images.dims4()?;
        if self.num_transforms == 1 {
            return Ok(images.clone());
        }
        images
            .reshape((b, c * h * w))?
            .index_select(&self.table, 1)?
            .reshape((b * self.num_transforms, c, h, w))
    }
}

/// Gather table for sets of 0°/180° rotations on non-square images.
fn half_turn_table(set: &TransformSet, channels: usize, height: usize, width: usize) -> Vec<u32> {
    let mut table = Vec::with_capacity(set.len() * channels * height * width);
    for t in &set.transforms {
        for c in 0..channels {
            let source_channel = t.source_channel(c);
            for r in 0..height {
                for col in 0..width {
                    let (sr, sc) = if t.quarter_turns == 2 {
                        (height - 1 - r, width - 1 - col)
                    } else {
                        (r, col)
                    };
                    table.push(((source_channel * height + sr) * width + sc) as u32);
                }
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2-channel-free 3×3 grey image 0..9 row-major.
    fn grey3() -> Vec<u8> {
        (0..9).collect()
    }

    #[test]
    fn rotation_preset_rotates_counter_clockwise_like_rot90() {
        let set = TransformSet::preset(TransformPreset::Rotation);
        assert_eq!(set.names(), ["identity", "rot90", "rot180", "rot270"]);
        // 0 1 2 / 3 4 5 / 6 7 8 rotated 90° CCW is 2 5 8 / 1 4 7 / 0 3 6.
        assert_eq!(set.apply_u8(1, &grey3(), 1, 3), [2, 5, 8, 1, 4, 7, 0, 3, 6]);
        assert_eq!(set.apply_u8(2, &grey3(), 1, 3), [8, 7, 6, 5, 4, 3, 2, 1, 0]);
        assert_eq!(set.apply_u8(3, &grey3(), 1, 3), [6, 3, 0, 7, 4, 1, 8, 5, 2]);
    }

    #[test]
    fn four_quarter_turns_are_the_identity() {
        let set = TransformSet::preset(TransformPreset::Rotation);
        let mut image: Vec<u8> = (0..16).collect();
        for _ in 0..4 {
            image = set.apply_u8(1, &image, 1, 4);
        }
        assert_eq!(image, (0..16).collect::<Vec<u8>>());
    }

    #[test]
    fn colour_permutation_reorders_channels() {
        let set = TransformSet::preset(TransformPreset::ColorPerm);
        assert_eq!(set.len(), 6);
        // 1×1 RGB pixel (10, 20, 30); permutation (1, 2, 0) gives (G, B, R).
        assert_eq!(set.apply_u8(3, &[10, 20, 30], 3, 1), [20, 30, 10]);
        assert_eq!(set.names()[3], "GBR");
    }

    #[test]
    fn presets_have_the_reference_sizes_and_orders() {
        let sizes: Vec<usize> = TransformPreset::ALL
            .iter()
            .map(|&p| TransformSet::preset(p).len())
            .collect();
        assert_eq!(sizes, [1, 4, 2, 6, 3, 6, 12, 24]);
        let set = TransformSet::preset(TransformPreset::RotColor12);
        // j = 3k + c.
        assert_eq!(
            set.transforms()[7],
            Transform {
                quarter_turns: 2,
                permutation: [1, 2, 0]
            }
        );
        let set = TransformSet::preset(TransformPreset::RotColor24);
        assert_eq!(
            set.transforms()[6 * 3 + 5],
            Transform {
                quarter_turns: 3,
                permutation: [2, 1, 0]
            }
        );
    }

    #[test]
    fn custom_product_puts_identity_first() {
        let set = TransformSet::product(&[2, 0], &[[2, 0, 1], [0, 1, 2]]).expect("valid set");
        assert_eq!(set.transforms()[0], Transform::IDENTITY);
        assert_eq!(set.len(), 4);
        assert_eq!(
            TransformSet::product(&[5], &[[0, 1, 2]]),
            Err(TransformError::BadRotation(450))
        );
        assert_eq!(
            TransformSet::product(&[0], &[[0, 0, 1]]),
            Err(TransformError::BadPermutation([0, 0, 1]))
        );
    }

    #[test]
    fn colour_sets_are_refused_on_grey_images() {
        let set = TransformSet::preset(TransformPreset::ColorPerm3);
        let err = set.check_image_shape(1, 28, 28).unwrap_err();
        assert!(
            err.to_string()
                .contains("colour permutations need 3-channel")
        );
        assert!(
            TransformSet::preset(TransformPreset::Rotation)
                .check_image_shape(1, 28, 28)
                .is_ok()
        );
    }

    #[test]
    fn expansion_rows_are_sample_major() -> candle_core::Result<()> {
        let set = TransformSet::preset(TransformPreset::RotColor12);
        let (b, c, s) = (2, 3, 4);
        let pixels: Vec<u8> = (0..(b * c * s * s) as u32)
            .map(|v| (v * 7 % 251) as u8)
            .collect();
        let images = Tensor::from_vec(
            pixels.iter().map(|&v| f32::from(v)).collect::<Vec<_>>(),
            (b, c, s, s),
            &Device::Cpu,
        )?;
        let expander = Expander::new(&set, c, s, s, &Device::Cpu)?;
        let out = expander.expand(&images)?;
        assert_eq!(out.dims(), [b * 12, c, s, s]);
        let len = c * s * s;
        for sample in 0..b {
            for j in 0..12 {
                let row: Vec<f32> = out.get(sample * 12 + j)?.flatten_all()?.to_vec1()?;
                let expected = set.apply_u8(j, &pixels[sample * len..(sample + 1) * len], c, s);
                let expected: Vec<f32> = expected.iter().map(|&v| f32::from(v)).collect();
                assert_eq!(row, expected, "sample {sample} view {j}");
            }
        }
        Ok(())
    }

    #[test]
    fn half_turns_work_on_rectangles() -> candle_core::Result<()> {
        let set = TransformSet::preset(TransformPreset::Rotation2);
        let images = Tensor::arange(0f32, 6., &Device::Cpu)?.reshape((1, 1, 2, 3))?;
        let out = Expander::new(&set, 1, 2, 3, &Device::Cpu)?.expand(&images)?;
        let rotated: Vec<f32> = out.get(1)?.flatten_all()?.to_vec1()?;
        assert_eq!(rotated, [5., 4., 3., 2., 1., 0.]);
        Ok(())
    }
}
