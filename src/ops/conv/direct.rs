//! Direct f32 convolution kernels on channels-last images, written once over `pulp`'s SIMD types and
//! compiled for each instruction set (see [`crate::ops::simd`]).
//!
//! Both kernels keep a register tile of accumulators and stream the operands past it, with no
//! im2col matrix in between:
//! - [`SlidingConv`]: `out[oy, ox0..ox0+P, chunk] = Σ_{ky, kx, ci} x[oy·s+ky, (ox0+p)·s+kx, ci] ·
//!   W[ky, kx, ci, chunk]`: P output pixels × V vectors of output channels. For one kernel row ky the
//!   (kx, ci) pairs are contiguous in a channels-last image, so the inner loop runs over k·Cin values.
//!   It is the forward pass, and (on the flipped, transposed kernel) the stride-1 input gradient.
//!   For stride 1 it runs as [`sliding_shared`], which broadcasts each input value once for the
//!   k taps of a kernel row that read it.
//! - [`WeightGrad`]: `dW[ky, kx, ci0..ci0+R, chunk] += Σ_{oy, ox} x[oy·s+ky, ox·s+kx, ci] ·
//!   dY[oy, ox, chunk]`: R input channels × V vectors of output channels, summed over the pixels.
//!
//! The images are padded copies (zeros around, plus a tail) so the tiles never test bounds: a tile
//! that runs past the row end computes a few throw-away pixels, which are not stored.

use std::mem::MaybeUninit;

use pulp::{Simd, WithSimd};

use crate::ops::batch_norm::{InputGradient, MOMENTS_PER_CHANNEL, Normalization};
use crate::ops::simd::{self, Isa};

/// Floats after a padded image, so a weight-gradient tile may read R channels past the last pixel.
const TAIL: usize = 64;

/// Call `kernel::<S, V, P>(simd, op)` with the constant tile shape of `op.tile`: one arm per shape
/// [`Tile::for_channels`] gives, so each kernel is compiled for exactly those. Returns `false` from
/// the enclosing function for any other shape.
macro_rules! with_tile_shape {
    ($kernel:ident, $simd_type:ty, $simd:expr, $op:expr) => {
        match ($op.tile.vectors, $op.tile.pixels) {
            (1, 16) => $kernel::<$simd_type, 1, 16>($simd, $op),
            (2, 8) => $kernel::<$simd_type, 2, 8>($simd, $op),
            (1, 8) => $kernel::<$simd_type, 1, 8>($simd, $op),
            (2, 4) => $kernel::<$simd_type, 2, 4>($simd, $op),
            _ => return false,
        }
    };
}

/// The sliding kernel's (vectors, pixels) shapes for rows of 28, 14 and 7 pixels, besides those of
/// [`Tile::for_channels`]: see [`Tile::for_row`]. Two vectors of 7 pixels come before one of 14,
/// which compute a 14-pixel row as well: each input value broadcast serves two multiply-adds, not
/// one, and the input is read once for 32 output channels, not twice. The 28×28 16→32 stride-2
/// forward pass went from 6.57–6.65 to 6.19–6.32 ms (medians, 2-core Zen 4, batch 512, three
/// alternating runs).
const ROW_TILES: [(usize, usize); 3] = [(2, 7), (1, 14), (1, 7)];

/// A register tile: `vectors` SIMD vectors of output channels by `pixels` pixels (or input channels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Tile {
    pub lanes: usize,
    pub vectors: usize,
    pub pixels: usize,
}

impl Tile {
    /// The tile for `channels` output channels on `isa`, or `None` when they are not a multiple of
    /// its vector width. 16 accumulators where there are 32 registers, 8 where there are 16, in at
    /// most two vectors of channels: with four (4 pixels), each weight vector served 4 pixels, and
    /// a 64-channel layer's 147 KB of weights per chunk streamed from L2 for every tile; with two
    /// (8 pixels) it serves 8 and the chunk's weights are half as many. ResNet-32's 8×8 64→64
    /// forward pass went from 6.7 to 5.1 ms per 256 images (180 → 236 GFLOP/s).
    pub fn for_channels(isa: Isa, channels: usize) -> Option<Tile> {
        let (lanes, registers) = match isa {
            Isa::Scalar => (1, 16),
            Isa::Avx2 => (8, 16),
            Isa::Avx512 => (16, 32),
            Isa::Neon => (4, 32),
        };
        if channels == 0 || !channels.is_multiple_of(lanes) {
            return None;
        }
        let vectors_total = channels / lanes;
        let vectors = [2, 1]
            .into_iter()
            .find(|v| vectors_total.is_multiple_of(*v))
            .unwrap_or(1);
        let accumulators = if registers >= 32 { 16 } else { 8 };
        Some(Tile {
            lanes,
            vectors,
            pixels: accumulators / vectors,
        })
    }

    /// The sliding kernel's tile for `channels` output channels and rows of `wo` output pixels:
    /// [`Tile::for_channels`], or one of [`ROW_TILES`] when its pixels split the row into whole
    /// tiles with fewer throw-away pixels. A 28-pixel row (the MNIST sets' first stage) took two
    /// 16-pixel tiles, 4 of their 32 pixels computed for nothing: 12.5 % of the multiply-adds;
    /// as two 14-pixel tiles, none.
    pub fn for_row(isa: Isa, channels: usize, wo: usize) -> Option<Tile> {
        let tile = Self::for_channels(isa, channels)?;
        let accumulators = tile.vectors * tile.pixels;
        let vectors_total = channels / tile.lanes;
        let computed = |pixels: usize| wo.div_ceil(pixels) * pixels;
        let (vectors, pixels) = std::iter::once((tile.vectors, tile.pixels))
            .chain(ROW_TILES)
            .filter(|&(v, p)| {
                v <= tile.vectors && vectors_total.is_multiple_of(v) && v * p <= accumulators
            })
            .min_by_key(|&(_, p)| computed(p))?;
        Some(Tile {
            vectors,
            pixels,
            ..tile
        })
    }

    /// Output channels per chunk (one pass of the tile).
    pub fn width(&self) -> usize {
        self.lanes * self.vectors
    }
}

/// A padded channels-last image in a reusable buffer.
pub(super) struct Padded {
    pub data: Vec<f32>,
    /// Padded width in pixels.
    pub width: usize,
}

impl Padded {
    pub fn new() -> Self {
        Self {
            data: Vec::new(),
            width: 0,
        }
    }

    /// Copy the image `source` (`[h, w, c]`) into a `rows × width` frame of zeros at offset
    /// (pad, pad), with the loops compiled for `isa`.
    ///
    /// Each value of the frame is written once, the zeros around the image included: clearing the
    /// whole frame first, then copying the image over it, wrote the image's area twice (2.5 % of
    /// an SLA step's samples were that memset under `perf`). Compiled for the baseline x86-64
    /// instead, a fused batch norm's arithmetic ran 4 floats wide with scalar tails (7.5 % of an
    /// SLA step's samples, under `perf annotate`).
    pub fn fill(
        &mut self,
        source: Source,
        dims: (usize, usize, usize),
        pad: usize,
        frame: (usize, usize),
        isa: Isa,
    ) {
        let fill = Fill {
            padded: &mut *self,
            source,
            dims,
            pad,
            frame,
        };
        if simd::dispatch(isa, fill).is_none() {
            self.fill_inline(pulp::Scalar::new(), source, dims, pad, frame);
        }
    }

    #[inline(always)]
    fn fill_inline<S: Simd>(
        &mut self,
        simd: S,
        source: Source,
        (h, w, c): (usize, usize, usize),
        pad: usize,
        (rows, width): (usize, usize),
    ) {
        self.width = width;
        let row_len = width * c;
        self.data.resize(rows * row_len + TAIL, 0.0);
        let (frame, tail) = self.data.split_at_mut(rows * row_len);
        tail.fill(0.0);
        // Only the part of the image inside the frame: a kernel never reads beyond it.
        let copied = w.min(width.saturating_sub(pad)) * c;
        let left = (pad * c).min(row_len);
        for (r, row) in frame.chunks_exact_mut(row_len.max(1)).enumerate() {
            match r.checked_sub(pad).filter(|&y| y < h) {
                Some(y) if copied > 0 => {
                    let (before, rest) = row.split_at_mut(left);
                    let (image, after) = rest.split_at_mut(copied);
                    before.fill(0.0);
                    source.row(simd, y * w * c, c, image);
                    after.fill(0.0);
                }
                _ => row.fill(0.0),
            }
        }
    }

    /// Rows of the frame.
    pub fn rows(&self, channels: usize) -> usize {
        (self.data.len() - TAIL) / (self.width * channels).max(1)
    }
}

/// An image as a kernel reads it: the values themselves, or values still to be computed as they
/// are copied into the padded frame (a batch norm fused into the convolution's load, so its output
/// is never written out whole).
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    Values(&'a [f32]),
    /// Batch norm's normalisation (+ ReLU) of these values.
    Normalized(&'a [f32], &'a Normalization<f32>),
    /// Batch norm's input gradient, from its input `x` and output gradient `dy`.
    BatchNormGradient {
        x: &'a [f32],
        dy: &'a [f32],
        gradient: &'a InputGradient<f32>,
    },
}

impl Source<'_> {
    /// The `out.len()` values from `start` (whole pixels of `c` channels) into `out`: a whole
    /// vector of channels at a time when `c` is a multiple of the vector width.
    ///
    /// Left to the compiler, the loop over a pixel's `c` channels (a run-time count) was
    /// vectorised 32 floats wide, so a 16-channel pixel ran through its 8- or 4-float remainder
    /// loops; a constant `c` made it gather across pixels instead. The fills were 6.4 % of a
    /// ResNet-32 SLA step's samples under `perf`.
    #[inline(always)]
    fn row<S: Simd>(&self, simd: S, start: usize, c: usize, out: &mut [f32]) {
        let lanes = S::F32_LANES;
        let len = out.len();
        if c == 0 || !c.is_multiple_of(lanes) || !len.is_multiple_of(c) {
            return self.row_any(start, c, out);
        }
        let zero = simd.splat_f32s(0.0);
        match *self {
            Source::Values(x) => out.copy_from_slice(&x[start..][..len]),
            Source::Normalized(x, n) => {
                let x = &x[start..][..len];
                if n.scale.len() < c || n.shift.len() < c {
                    return self.row_any(start, c, out);
                }
                for pixel in (0..len).step_by(c) {
                    for channel in (0..c).step_by(lanes) {
                        let at = pixel + channel;
                        // SAFETY: `at + lanes` ≤ len (len and c are multiples of lanes) and
                        // `channel + lanes` ≤ c ≤ the coefficients' length, checked above.
                        let (v, scale, shift) = unsafe {
                            (
                                load::<S>(x.as_ptr().add(at)),
                                load::<S>(n.scale.as_ptr().add(channel)),
                                load::<S>(n.shift.as_ptr().add(channel)),
                            )
                        };
                        // `Normalization::value`'s operations: a product, then a sum (no fused
                        // multiply-add), and y where y > 0, else 0.
                        let y = simd.add_f32s(simd.mul_f32s(v, scale), shift);
                        let y = if n.relu {
                            simd.select_f32s(simd.greater_than_f32s(y, zero), y, zero)
                        } else {
                            y
                        };
                        // SAFETY: `at + lanes` ≤ len = out.len(), as for the loads.
                        unsafe { store::<S>(out.as_mut_ptr().add(at), y) };
                    }
                }
            }
            Source::BatchNormGradient { x, dy, gradient } => {
                let (x, dy) = (&x[start..][..len], &dy[start..][..len]);
                let InputGradient {
                    mask_scale,
                    mask_shift,
                    a,
                    b,
                    c: offset,
                } = gradient;
                if [mask_scale, mask_shift, a, b, offset]
                    .iter()
                    .any(|values| values.len() < c)
                {
                    return self.row_any(start, c, out);
                }
                for pixel in (0..len).step_by(c) {
                    for channel in (0..c).step_by(lanes) {
                        let at = pixel + channel;
                        // SAFETY: as above; the five coefficient vectors hold c values each.
                        let coefficient =
                            |values: &[f32]| unsafe { load::<S>(values.as_ptr().add(channel)) };
                        // SAFETY: `at + lanes` ≤ len, the length of both images' slices.
                        let (xv, g) = unsafe {
                            (
                                load::<S>(x.as_ptr().add(at)),
                                load::<S>(dy.as_ptr().add(at)),
                            )
                        };
                        // `InputGradient::pixel`'s operations in its order: g where
                        // x·scale + shift > 0, else 0; then (a·g + b·x) + c.
                        let y = simd.add_f32s(
                            simd.mul_f32s(xv, coefficient(mask_scale)),
                            coefficient(mask_shift),
                        );
                        let g = simd.select_f32s(simd.greater_than_f32s(y, zero), g, zero);
                        let value = simd.add_f32s(
                            simd.add_f32s(
                                simd.mul_f32s(coefficient(a), g),
                                simd.mul_f32s(coefficient(b), xv),
                            ),
                            coefficient(offset),
                        );
                        // SAFETY: `at + lanes` ≤ len = out.len(), as for the loads.
                        unsafe { store::<S>(out.as_mut_ptr().add(at), value) };
                    }
                }
            }
        }
    }

    /// [`Self::row`] a value at a time, for channel counts that are not whole vectors.
    #[inline(always)]
    fn row_any(&self, start: usize, c: usize, out: &mut [f32]) {
        let len = out.len();
        match *self {
            Source::Values(x) => out.copy_from_slice(&x[start..][..len]),
            Source::Normalized(x, n) => {
                for (out, pixel) in out
                    .chunks_exact_mut(c)
                    .zip(x[start..][..len].chunks_exact(c))
                {
                    for (o, v) in out.iter_mut().zip(n.pixel(pixel, 0)) {
                        *o = v;
                    }
                }
            }
            Source::BatchNormGradient { x, dy, gradient } => {
                let pixels = x[start..][..len]
                    .chunks_exact(c)
                    .zip(dy[start..][..len].chunks_exact(c));
                for (out, (x, g)) in out.chunks_exact_mut(c).zip(pixels) {
                    for (o, v) in out.iter_mut().zip(gradient.pixel(x, g)) {
                        *o = v;
                    }
                }
            }
        }
    }
}

/// [`Padded::fill`] as an op compiled once per instruction set.
struct Fill<'a> {
    padded: &'a mut Padded,
    source: Source<'a>,
    dims: (usize, usize, usize),
    pad: usize,
    frame: (usize, usize),
}

impl WithSimd for Fill<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        self.padded
            .fill_inline(simd, self.source, self.dims, self.pad, self.frame);
    }
}

/// The frame (rows, width) a kernel with this tile needs to read for a `k`×`k` stride-`s` output of
/// `ho`×`wo` pixels without bounds checks.
pub(super) fn frame(
    tile: &Tile,
    (ho, wo): (usize, usize),
    k: usize,
    stride: usize,
) -> (usize, usize) {
    let computed = wo.div_ceil(tile.pixels) * tile.pixels;
    ((ho - 1) * stride + k, (computed - 1) * stride + k)
}

/// Pack OIHW-indexed weights, given by `weight(co, ci, ky, kx)`, into
/// `[Cout / width][ky][kx][ci][width]` for [`SlidingConv`].
pub(super) fn pack_sliding(
    tile: &Tile,
    (cout, cin, k): (usize, usize, usize),
    weight: impl Fn(usize, usize, usize, usize) -> f32,
) -> Vec<f32> {
    let width = tile.width();
    let mut packed = Vec::with_capacity(cout * cin * k * k);
    for chunk in 0..cout / width {
        for ky in 0..k {
            for kx in 0..k {
                for ci in 0..cin {
                    for lane in 0..width {
                        packed.push(weight(chunk * width + lane, ci, ky, kx));
                    }
                }
            }
        }
    }
    packed
}

/// One image of a sliding-window convolution: see the module documentation.
pub(super) struct SlidingConv<'a> {
    pub tile: Tile,
    pub input: &'a Padded,
    pub cin: usize,
    pub k: usize,
    pub stride: usize,
    pub ho: usize,
    pub wo: usize,
    /// From [`pack_sliding`].
    pub weights: &'a [f32],
    pub cout: usize,
    /// `[ho, wo, cout]`, written whole (left uninitialised only when the kernel refuses).
    pub out: &'a mut [MaybeUninit<f32>],
    pub epilogue: Epilogue<'a>,
    /// When given (zeros, `MOMENTS_PER_CHANNEL`·cout values), the image's moments of the stored
    /// values for batch norm's statistics, gathered as they are stored: `[shift; cout]` (the
    /// image's first pixel), `[Σ(y − shift); cout]`, `[Σ(y − shift)²; cout]`, over the pixels in
    /// row order, as `batch_norm` sums them, so the statistics agree bit for bit and the batch
    /// norm need not read the output again.
    pub moments: Option<&'a mut [f32]>,
}

/// What the sliding kernel does to each output value as it stores it: add a per-channel bias
/// (`cout` values), add the value of `residual` at the same place (an image's `[ho, wo, cout]`),
/// and clamp at zero, in that order. An evaluation folds batch norm into the weights and this
/// bias, so the convolution writes the normalised, rectified activation in its one pass; a
/// residual block's second convolution adds its shortcut there too.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Epilogue<'a> {
    pub bias: Option<&'a [f32]>,
    pub residual: Option<&'a [f32]>,
    pub relu: bool,
    /// Where the values go: the output image `[ho, wo, cout]` when `None`; for the stride-2 input
    /// gradient's four pixel parities (`cout` = 4·cin, see `input_grad_stride2_direct`), the
    /// interleaved `[h, w, cin]` image they make, given as `Parities { cin, h, w }`.
    pub parities: Option<Parities>,
}

impl<'a> Epilogue<'a> {
    /// Whether the bias and residual it reads cover an output of `len` values of `cout` channels.
    pub fn covers(&self, len: usize, cout: usize) -> bool {
        self.bias.is_none_or(|bias| bias.len() >= cout)
            && self.residual.is_none_or(|residual| residual.len() >= len)
    }

    /// This epilogue for image `index` of a batch: its part of the residual, given for the
    /// batch (`image_len` values per image).
    pub fn for_image(self, index: usize, image_len: usize) -> Self {
        Epilogue {
            residual: self
                .residual
                .map(|residual| &residual[index * image_len..][..image_len]),
            ..self
        }
    }

    /// The epilogue of one vector of output values, from image value `at` and output channel
    /// `channel` on: the bias, the residual, the ReLU, in that order (the one place of those
    /// steps, for the sliding and the Winograd kernels).
    ///
    /// # Safety
    /// The bias, when given, must hold `channel` + F32_LANES values, and the residual `at` +
    /// F32_LANES.
    #[inline(always)]
    pub(super) unsafe fn apply<S: Simd>(
        &self,
        simd: S,
        (at, channel): (usize, usize),
        mut value: S::f32s,
    ) -> S::f32s {
        if let Some(bias) = self.bias {
            // SAFETY: the caller's contract.
            value = simd.add_f32s(value, unsafe { load::<S>(bias.as_ptr().add(channel)) });
        }
        if let Some(residual) = self.residual {
            // SAFETY: the caller's contract.
            value = simd.add_f32s(value, unsafe { load::<S>(residual.as_ptr().add(at)) });
        }
        if self.relu {
            value = simd.max_f32s(value, simd.splat_f32s(0.0));
        }
        value
    }
}

/// The image a parity convolution's outputs interleave into: output (oy, ox) and channel
/// `parity·cin + ci` is pixel (2·oy + parity / 2, 2·ox + parity % 2), channel ci, of an `h`×`w`
/// image of `cin` channels (pixels past an odd edge are not stored).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Parities {
    pub cin: usize,
    pub h: usize,
    pub w: usize,
}

impl SlidingConv<'_> {
    /// Whether every read and write of [`sliding`] stays inside the slices.
    fn fits(&self) -> bool {
        let (rows, width) = frame(&self.tile, (self.ho, self.wo), self.k, self.stride);
        let out_len = match self.epilogue.parities {
            None => self.ho * self.wo * self.cout,
            Some(Parities { cin, h, w }) => h * w * cin,
        };
        self.input.width >= width
            && self.input.rows(self.cin) >= rows
            && self.weights.len() >= self.cout * self.cin * self.k * self.k
            && self.out.len() >= out_len
            && self.cout.is_multiple_of(self.tile.width())
            && self.epilogue.parities.is_none_or(|Parities { cin, h, w }| {
                // Only plain values are interleaved, at most 16 lanes spilled per vector.
                self.cout == 4 * cin
                    && self.tile.lanes <= 16
                    && h <= 2 * self.ho
                    && w <= 2 * self.wo
                    && self.epilogue.residual.is_none()
                    && self.moments.is_none()
            })
            && self
                .epilogue
                .covers(self.ho * self.wo * self.cout, self.cout)
            && self
                .moments
                .as_ref()
                .is_none_or(|moments| moments.len() >= MOMENTS_PER_CHANNEL * self.cout)
    }

    /// The moments' first value, or null when they are not gathered.
    fn moments_ptr(&mut self) -> *mut f32 {
        self.moments
            .as_mut()
            .map_or(std::ptr::null_mut(), |moments| moments.as_mut_ptr())
    }
}

impl WithSimd for SlidingConv<'_> {
    type Output = bool;

    #[inline(always)]
    fn with_simd<S: Simd>(mut self, simd: S) -> bool {
        if S::F32_LANES != self.tile.lanes || !self.fits() {
            return false;
        }
        // SAFETY: `fits` checked the frame, weight and output sizes the loops index.
        unsafe {
            // The 16-pixel tile reads 16 pixels `step` floats apart: with a run-time step each
            // needs its own address register and five were spilled to the stack, five extra loads
            // per 16 multiply-adds in the hottest loop (seen under `perf annotate` on AVX-512).
            // With the step a constant, the offsets are immediates from one register.
            if self.stride == 1 && sliding_shared_dispatch(simd, &mut self) {
                return true;
            }
            match (self.tile.vectors, self.tile.pixels, self.stride * self.cin) {
                (1, 16, 16) => sliding::<S, 1, 16, 16>(simd, self),
                (1, 16, 32) => sliding::<S, 1, 16, 32>(simd, self),
                (1, 16, 64) => sliding::<S, 1, 16, 64>(simd, self),
                (1, 14, 16) => sliding::<S, 1, 14, 16>(simd, self),
                (1, 14, _) => sliding::<S, 1, 14, 0>(simd, self),
                (2, 7, _) => sliding::<S, 2, 7, 0>(simd, self),
                (1, 7, _) => sliding::<S, 1, 7, 0>(simd, self),
                _ => with_tile_shape!(sliding_any_step, S, simd, self),
            }
        }
        true
    }
}

#[inline(always)]
pub(super) unsafe fn load<S: Simd>(ptr: *const f32) -> S::f32s {
    // SAFETY: the caller keeps F32_LANES floats from `ptr` inside one slice.
    unsafe { ptr.cast::<S::f32s>().read_unaligned() }
}

#[inline(always)]
pub(super) unsafe fn store<S: Simd>(ptr: *mut f32, value: S::f32s) {
    // SAFETY: the caller keeps F32_LANES floats from `ptr` inside one slice.
    unsafe { ptr.cast::<S::f32s>().write_unaligned(value) }
}

/// [`sliding`] with the pixel step known only at run time.
///
/// # Safety
/// `c.fits()` must hold.
#[inline(always)]
unsafe fn sliding_any_step<S: Simd, const V: usize, const P: usize>(simd: S, c: SlidingConv<'_>) {
    // SAFETY: the caller's contract.
    unsafe { sliding::<S, V, P, 0>(simd, c) }
}

/// # Safety
/// `c.fits()` must hold, and `STEP` must be 0 or `c.stride · c.cin`.
#[inline(always)]
unsafe fn sliding<S: Simd, const V: usize, const P: usize, const STEP: usize>(
    simd: S,
    mut c: SlidingConv<'_>,
) {
    let moments = c.moments_ptr();
    let lanes = S::F32_LANES;
    let width = V * lanes;
    let span = c.k * c.cin;
    let pitch = c.input.width * c.cin;
    // Floats between the tile's pixels: a compile-time constant when STEP is given.
    let step = if STEP == 0 { c.stride * c.cin } else { STEP };
    let input = c.input.data.as_ptr();
    let out = c.out.as_mut_ptr().cast::<f32>();
    let zero = simd.splat_f32s(0.0);
    for oy in 0..c.ho {
        for chunk in 0..c.cout / width {
            let weights = unsafe { c.weights.as_ptr().add(chunk * c.k * span * width) };
            for ox0 in (0..c.wo).step_by(P) {
                let mut acc = [[zero; V]; P];
                for ky in 0..c.k {
                    // SAFETY (all offsets below): the frame holds rows (ho−1)·s + k and columns
                    // (⌈wo/P⌉·P − 1)·s + k, the packed weights k·k·Cin·width per chunk.
                    let row = unsafe { input.add((oy * c.stride + ky) * pitch + ox0 * step) };
                    let wrow = unsafe { weights.add(ky * span * width) };
                    for j in 0..span {
                        let mut w = [zero; V];
                        for (v, w) in w.iter_mut().enumerate() {
                            *w = unsafe { load::<S>(wrow.add(j * width + v * lanes)) };
                        }
                        for (p, acc) in acc.iter_mut().enumerate() {
                            let a = simd.splat_f32s(unsafe { *row.add(p * step + j) });
                            for v in 0..V {
                                acc[v] = simd.mul_add_e_f32s(a, w[v], acc[v]);
                            }
                        }
                    }
                }
                // SAFETY: the caller's contract.
                unsafe { finish_tile(simd, (out, moments), &c, acc, (oy, ox0, chunk)) };
            }
        }
    }
}

/// Apply the epilogue to one tile's accumulators, P pixels from (oy, ox0) by V vectors of output
/// channels of `chunk`, store the pixels inside the row, and add them to the image's moments when
/// `moments` is not null.
///
/// # Safety
/// `c.fits()` must hold, the tile must lie in the output: oy < ho, ox0 < wo, chunk < cout / width,
/// and `moments` must be null or [`SlidingConv::moments`]' first value, the tiles finished in
/// (oy, chunk, ox0) order.
#[inline(always)]
unsafe fn finish_tile<S: Simd, const V: usize, const P: usize>(
    simd: S,
    (out, moments): (*mut f32, *mut f32),
    c: &SlidingConv<'_>,
    mut acc: [[S::f32s; V]; P],
    (oy, ox0, chunk): (usize, usize, usize),
) {
    let lanes = S::F32_LANES;
    let width = V * lanes;
    let valid = P.min(c.wo - ox0);
    for (p, acc) in acc.iter_mut().enumerate().take(valid) {
        for (v, value) in acc.iter_mut().enumerate() {
            let channel = chunk * width + v * lanes;
            let at = (oy * c.wo + ox0 + p) * c.cout + channel;
            // SAFETY: `fits` checked the bias holds cout values and the residual the image's
            // ho·wo·cout.
            *value = unsafe { c.epilogue.apply(simd, (at, channel), *value) };
        }
    }
    for (p, acc) in acc.iter().enumerate().take(valid) {
        for (v, &value) in acc.iter().enumerate() {
            let channel = chunk * width + v * lanes;
            // SAFETY: `fits` checked the output holds the image's values.
            match c.epilogue.parities {
                None => unsafe {
                    store::<S>(out.add((oy * c.wo + ox0 + p) * c.cout + channel), value)
                },
                Some(parities) => unsafe {
                    store_interleaved::<S>(out, parities, (oy, ox0 + p, channel), value)
                },
            }
        }
    }
    if moments.is_null() {
        return;
    }
    for v in 0..V {
        let channel = chunk * width + v * lanes;
        // SAFETY: `fits` checked the moments hold MOMENTS_PER_CHANNEL·cout values.
        let (shift, sum, square) = unsafe {
            (
                moments.add(channel),
                moments.add(c.cout + channel),
                moments.add(2 * c.cout + channel),
            )
        };
        if oy == 0 && ox0 == 0 {
            // The image's first pixel: the first value of these channels stored.
            unsafe { store::<S>(shift, acc[0][v]) };
        }
        let centre = unsafe { load::<S>(shift) };
        let (mut s, mut q) = unsafe { (load::<S>(sum), load::<S>(square)) };
        // Per channel, the pixels in row order and `batch_norm`'s very operations: a sum of
        // d = y − shift, and of d·d multiplied, then added (no fused multiply-add).
        for acc in acc.iter().take(valid) {
            let d = simd.sub_f32s(acc[v], centre);
            s = simd.add_f32s(s, d);
            q = simd.add_f32s(q, simd.mul_f32s(d, d));
        }
        unsafe {
            store::<S>(sum, s);
            store::<S>(square, q);
        }
    }
}

/// Store one vector of a parity convolution's output pixel (oy, ox), its channels from `channel`,
/// at their pixels of the interleaved image (see [`Parities`]): whole when the vector lies in one
/// parity, else value by value.
///
/// # Safety
/// `out` must hold the interleaved image's h·w·cin values, and `channel` + the vector's lanes
/// must not pass 4·cin.
#[inline(always)]
pub(super) unsafe fn store_interleaved<S: Simd>(
    out: *mut f32,
    Parities { cin, h, w }: Parities,
    (oy, ox, channel): (usize, usize, usize),
    value: S::f32s,
) {
    let lanes = S::F32_LANES;
    // The value of `channel`'s place in the image, if its pixel lies inside it.
    let offset = |channel: usize| {
        let (parity, ci) = (channel / cin, channel % cin);
        let (iy, ix) = (2 * oy + parity / 2, 2 * ox + parity % 2);
        (iy < h && ix < w).then_some((iy * w + ix) * cin + ci)
    };
    if cin.is_multiple_of(lanes) {
        if let Some(offset) = offset(channel) {
            unsafe { store::<S>(out.add(offset), value) };
        }
    } else {
        // Fewer channels per parity than a vector holds (or not a multiple): rare shapes.
        let mut values = [0f32; 16];
        unsafe { store::<S>(values.as_mut_ptr(), value) };
        for (lane, &v) in values.iter().enumerate().take(lanes) {
            if let Some(offset) = offset(channel + lane) {
                unsafe { out.add(offset).write(v) };
            }
        }
    }
}

/// [`sliding_shared`] for `c`'s shape, or `false` for a shape it is not compiled for. The
/// constant shapes are the ResNets' stride-1 3×3 layers and stems, and the 2×2 parity
/// convolutions of their stride-2 input gradients, with the input channels a constant so that the
/// pixels' offsets are immediates; other 3×3 and 2×2 shapes read the channels at run time.
///
/// # Safety
/// `c.fits()` must hold, with stride 1.
#[inline(always)]
unsafe fn sliding_shared_dispatch<S: Simd>(simd: S, c: &mut SlidingConv<'_>) -> bool {
    macro_rules! shapes {
        ($(($v:literal, $p:literal, $k:literal, $cin:pat => $const_cin:literal)),* $(,)?) => {
            match (c.tile.vectors, c.tile.pixels, c.k, c.cin) {
                $(
                    ($v, $p, $k, $cin) => sliding_shared::<S, $v, $p, $k, $const_cin>(simd, c),
                )*
                _ => return false,
            }
        };
    }
    // SAFETY: the caller's contract; each arm passes the tile's V and P, K = c.k and CIN = c.cin
    // or 0.
    unsafe {
        shapes!(
            (1, 16, 3, 16 => 16),
            (1, 16, 3, 3 => 3),
            (1, 14, 3, 16 => 16),
            (1, 14, 3, 32 => 32),
            (1, 14, 3, 1 => 1),
            (2, 8, 3, 32 => 32),
            (2, 8, 3, 64 => 64),
            (2, 7, 3, 32 => 32),
            (2, 7, 3, 64 => 64),
            (2, 8, 2, 32 => 32),
            (2, 8, 2, 64 => 64),
            (2, 7, 2, 32 => 32),
            (2, 7, 2, 64 => 64),
            (1, 16, 3, _ => 0),
            (2, 8, 3, _ => 0),
            (1, 8, 3, _ => 0),
            (2, 4, 3, _ => 0),
            (1, 14, 3, _ => 0),
            (2, 7, 3, _ => 0),
            (1, 7, 3, _ => 0),
            (2, 8, 2, _ => 0),
            (2, 4, 2, _ => 0),
            (2, 7, 2, _ => 0),
        )
    }
    true
}

/// The sliding kernel for stride 1, each input value broadcast once for all K taps of a kernel row
/// that read it, instead of once per tap.
///
/// In a stride-1 row, output pixel p's tap kx reads input column p + kx, so one input value
/// serves K accumulators with K different weight vectors. [`sliding`] broadcasts it once per
/// (pixel, tap): with one vector of output channels (16 channels on AVX-512) that is one load per
/// multiply-add, more than the two load ports can serve beside two FMA ports. Here, per input
/// channel and kernel row, K·V weight vectors and P + K − 1 broadcasts feed K·P·V multiply-adds.
/// Each accumulator adds its terms in (ky, ci, kx) order instead of (ky, kx, ci).
///
/// # Safety
/// `c.fits()` must hold, with `c.stride == 1`, `c.k == K` and `CIN` 0 or `c.cin`.
#[inline(always)]
unsafe fn sliding_shared<
    S: Simd,
    const V: usize,
    const P: usize,
    const K: usize,
    const CIN: usize,
>(
    simd: S,
    c: &mut SlidingConv<'_>,
) {
    let lanes = S::F32_LANES;
    let width = V * lanes;
    let cin = if CIN == 0 { c.cin } else { CIN };
    let span = K * cin;
    let pitch = c.input.width * cin;
    let input = c.input.data.as_ptr();
    let out = c.out.as_mut_ptr().cast::<f32>();
    let moments = c.moments_ptr();
    let c = &*c;
    let zero = simd.splat_f32s(0.0);
    for oy in 0..c.ho {
        for chunk in 0..c.cout / width {
            let weights = unsafe { c.weights.as_ptr().add(chunk * K * span * width) };
            for ox0 in (0..c.wo).step_by(P) {
                let mut acc = [[zero; V]; P];
                for ky in 0..K {
                    // SAFETY (all offsets below): the frame holds rows ho − 1 + K and columns
                    // ⌈wo/P⌉·P − 1 + K, the packed weights K·K·Cin·width per chunk.
                    let row = unsafe { input.add((oy + ky) * pitch + ox0 * cin) };
                    let wrow = unsafe { weights.add(ky * span * width) };
                    for ci in 0..cin {
                        let mut w = [[zero; V]; K];
                        for (kx, w) in w.iter_mut().enumerate() {
                            for (v, w) in w.iter_mut().enumerate() {
                                *w = unsafe {
                                    load::<S>(wrow.add((kx * cin + ci) * width + v * lanes))
                                };
                            }
                        }
                        // Pixel p's tap kx reads input column p + kx, which pixel p + 1's tap
                        // kx − 1 reads too. Written per (tap, pixel), the release build loads
                        // and broadcasts each column once: under `perf annotate` every broadcast
                        // feeds K·V multiply-adds. A loop over the columns instead, which named
                        // the sharing explicitly, was as fast in release but kept the
                        // accumulators on the stack at the tests' opt-level 1 (a short training
                        // run in the debug build took 14.6 s instead of 5.5), and so did, less
                        // often, the order (pixel, tap), whose unrolled body is K times longer
                        // (ResNet-20's convolutions about a quarter slower than the old kernel's).
                        for (kx, w) in w.iter().enumerate() {
                            for (p, acc) in acc.iter_mut().enumerate() {
                                let a = simd.splat_f32s(unsafe { *row.add((p + kx) * cin + ci) });
                                for (acc, &w) in acc.iter_mut().zip(w) {
                                    *acc = simd.mul_add_e_f32s(a, w, *acc);
                                }
                            }
                        }
                    }
                }
                // SAFETY: the caller's contract.
                unsafe { finish_tile(simd, (out, moments), c, acc, (oy, ox0, chunk)) };
            }
        }
    }
}

/// One image's contribution to the weight gradient: see the module documentation.
pub(super) struct WeightGrad<'a> {
    pub tile: Tile,
    pub input: &'a Padded,
    pub cin: usize,
    pub k: usize,
    pub stride: usize,
    pub ho: usize,
    pub wo: usize,
    /// `ho` rows of `wo` pixels of `cout` values, `dy_pitch` floats from row to row (`wo·cout`
    /// for a plain image, more inside a padded frame).
    pub dy: &'a [f32],
    pub dy_pitch: usize,
    pub cout: usize,
    /// `[k, k, cin, cout]`, added to.
    pub dw: &'a mut [f32],
}

impl WeightGrad<'_> {
    fn fits(&self) -> bool {
        let rows = (self.ho - 1) * self.stride + self.k;
        let width = (self.wo - 1) * self.stride + self.k;
        self.input.width >= width
            && self.input.rows(self.cin) >= rows
            && self.tile.pixels <= TAIL
            && self.dy_pitch >= self.wo * self.cout
            && self.dy.len() >= (self.ho - 1) * self.dy_pitch + self.wo * self.cout
            && self.dw.len() >= self.k * self.k * self.cin * self.cout
            && self.cout.is_multiple_of(self.tile.width())
    }
}

impl WithSimd for WeightGrad<'_> {
    type Output = bool;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> bool {
        if S::F32_LANES != self.tile.lanes || !self.fits() {
            return false;
        }
        // SAFETY: `fits` checked the frame (with its tail), dY and dW sizes the loops index.
        unsafe { with_tile_shape!(weight_grad, S, simd, self) }
        true
    }
}

/// # Safety
/// `c.fits()` must hold.
#[inline(always)]
unsafe fn weight_grad<S: Simd, const V: usize, const R: usize>(simd: S, c: WeightGrad<'_>) {
    if c.cin < R {
        // SAFETY: the caller's contract.
        unsafe { weight_grad_all_taps::<S, V, R>(simd, c) };
        return;
    }
    let lanes = S::F32_LANES;
    let width = V * lanes;
    let pitch = c.input.width * c.cin;
    let step = c.stride * c.cin;
    let input = c.input.data.as_ptr();
    let dy = c.dy.as_ptr();
    let dw = c.dw.as_mut_ptr();
    let zero = simd.splat_f32s(0.0);
    for ky in 0..c.k {
        for kx in 0..c.k {
            for ci0 in (0..c.cin).step_by(R) {
                for chunk in 0..c.cout / width {
                    let mut acc = [[zero; V]; R];
                    for oy in 0..c.ho {
                        // SAFETY (all offsets below): rows (ho−1)·s + k and columns (wo−1)·s + k
                        // lie in the frame; reading R channels from ci0 may run up to R floats
                        // past the last pixel, into the frame's tail.
                        let row =
                            unsafe { input.add((oy * c.stride + ky) * pitch + kx * c.cin + ci0) };
                        let grad = unsafe { dy.add(oy * c.dy_pitch + chunk * width) };
                        for ox in 0..c.wo {
                            let mut d = [zero; V];
                            for (v, d) in d.iter_mut().enumerate() {
                                *d = unsafe { load::<S>(grad.add(ox * c.cout + v * lanes)) };
                            }
                            let x = unsafe { row.add(ox * step) };
                            for (r, acc) in acc.iter_mut().enumerate() {
                                let a = simd.splat_f32s(unsafe { *x.add(r) });
                                for v in 0..V {
                                    acc[v] = simd.mul_add_e_f32s(a, d[v], acc[v]);
                                }
                            }
                        }
                    }
                    let first = (ky * c.k + kx) * c.cin + ci0;
                    let valid = R.min(c.cin - ci0);
                    // SAFETY: rows first..first + valid of dW and the chunk's columns exist.
                    let dst = unsafe { dw.add(first * c.cout + chunk * width) };
                    unsafe { add_tile(simd, &acc[..valid], (dst, c.cout)) };
                }
            }
        }
    }
}

/// [`weight_grad`] for inputs with fewer channels than the tile has rows (the stems' 1 or 3):
/// the tile's rows are all k·k·cin taps in dW's order, j = (ky·k + kx)·cin + ci, R at a time,
/// each read at its own offset from the pixel, so a pixel's dY is loaded once for all of them.
/// Swept one kernel row at a time (k·cin of the 16 rows busy), ResNet-20's 1-channel stem ran 48
/// multiply-adds per pixel where 9 are needed, and its weight gradient took 3.0 ms per 512 images
/// (17 % of the peak; 2-core Zen 4); as 9 taps of one sweep, 16. Each row's sum runs over the
/// pixels in the same order as before, so dW is the same bit for bit.
///
/// # Safety
/// `c.fits()` must hold and `c.cin < R`.
#[inline(always)]
unsafe fn weight_grad_all_taps<S: Simd, const V: usize, const R: usize>(
    simd: S,
    c: WeightGrad<'_>,
) {
    let lanes = S::F32_LANES;
    let width = V * lanes;
    let pitch = c.input.width * c.cin;
    let step = c.stride * c.cin;
    let input = c.input.data.as_ptr();
    let dy = c.dy.as_ptr();
    let dw = c.dw.as_mut_ptr();
    let zero = simd.splat_f32s(0.0);
    // A kernel row's (kx, ci) values lie side by side in a channels-last frame.
    let row_taps = c.k * c.cin;
    let taps = c.k * row_taps;
    for first in (0..taps).step_by(R) {
        // Each row's offset from its pixel; rows past the last tap read the pixel itself and are
        // not stored.
        let mut offsets = [0usize; R];
        for (j, offset) in (first..taps).zip(&mut offsets) {
            *offset = (j / row_taps) * pitch + j % row_taps;
        }
        for chunk in 0..c.cout / width {
            let mut acc = [[zero; V]; R];
            for oy in 0..c.ho {
                // SAFETY (all offsets below): rows (ho−1)·s + k and columns (wo−1)·s + k lie in
                // the frame, and each offset stays inside a pixel's k × k window.
                let row = unsafe { input.add(oy * c.stride * pitch) };
                let grad = unsafe { dy.add(oy * c.dy_pitch + chunk * width) };
                for ox in 0..c.wo {
                    let mut d = [zero; V];
                    for (v, d) in d.iter_mut().enumerate() {
                        *d = unsafe { load::<S>(grad.add(ox * c.cout + v * lanes)) };
                    }
                    let x = unsafe { row.add(ox * step) };
                    for (acc, &offset) in acc.iter_mut().zip(&offsets) {
                        let a = simd.splat_f32s(unsafe { *x.add(offset) });
                        for v in 0..V {
                            acc[v] = simd.mul_add_e_f32s(a, d[v], acc[v]);
                        }
                    }
                }
            }
            let valid = R.min(taps - first);
            // SAFETY: rows first..first + valid of dW and the chunk's columns exist.
            let dst = unsafe { dw.add(first * c.cout + chunk * width) };
            unsafe { add_tile(simd, &acc[..valid], (dst, c.cout)) };
        }
    }
}

/// dW's rows += the tile's `acc`: row r's V vectors at `dst + r·cout`.
///
/// # Safety
/// Every row's V vectors must lie inside dW.
#[inline(always)]
unsafe fn add_tile<S: Simd, const V: usize>(
    simd: S,
    acc: &[[S::f32s; V]],
    (dst, cout): (*mut f32, usize),
) {
    for (r, acc) in acc.iter().enumerate() {
        for (v, &value) in acc.iter().enumerate() {
            // SAFETY: the caller's contract.
            let ptr = unsafe { dst.add(r * cout + v * S::F32_LANES) };
            let sum = simd.add_f32s(unsafe { load::<S>(ptr) }, value);
            unsafe { store::<S>(ptr, sum) };
        }
    }
}
