//! Uniform and storage structs shared with the shaders, byte for byte.
//!
//! Keep each struct in sync with the WGSL struct of the same name; the size asserts catch a field
//! added on one side only.

use bytemuck::{Pod, Zeroable};

/// Keep in sync with `GridParams` in `shaders/input_grid.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct GridParams {
    pub samples: u32,
    pub transforms: u32,
    pub channels: u32,
    pub src_width: u32,
    pub src_height: u32,
    pub tile_width: u32,
    pub tile_height: u32,
    pub border: u32,
    pub gap: u32,
    pub out_width: u32,
    pub out_height: u32,
    pub background: u32,
}

const _: () = assert!(size_of::<GridParams>() == 48);

/// Keep in sync with `ConfusionParams` in `shaders/confusion.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct ConfusionParams {
    /// Rows (and columns) of the matrix drawn.
    pub n: u32,
    /// Cells per block between grid lines; 1 draws none.
    pub block: u32,
    pub out_width: u32,
    pub out_height: u32,
    pub normalise_rows: u32,
    pub log_scale: u32,
    /// `NO_HIGHLIGHT` when no cell is highlighted.
    pub highlight_row: u32,
    pub highlight_col: u32,
    /// Denominator of the raw (not row-normalised) scale: the largest count.
    pub max_count: u32,
    pub grid_colour: u32,
    pub highlight_colour: u32,
    /// 1 when the cells are signed differences (i32 bits) drawn in the diverging half of the
    /// colour table; `max_count` is then the largest magnitude.
    pub signed: u32,
}

const _: () = assert!(size_of::<ConfusionParams>() == 48);

/// `highlight_row`/`highlight_col` value meaning "none".
pub const NO_HIGHLIGHT: u32 = u32::MAX;

/// Ticks (grid lines) per axis the curves shader can draw.
pub const MAX_TICKS: usize = 16;

/// Keep in sync with `CurvesParams` in `shaders/curves.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct CurvesParams {
    pub out_width: u32,
    pub out_height: u32,
    pub plot_left: u32,
    pub plot_top: u32,
    pub plot_width: u32,
    pub plot_height: u32,
    pub series_count: u32,
    pub log_y: u32,
    /// Data x at the left edge of pixel column 0 of the plot.
    pub x_origin: f32,
    /// Data x per pixel column.
    pub x_step: f32,
    /// (Transformed) y at the top edge of the plot.
    pub y_top: f32,
    /// Pixels per (transformed) y unit.
    pub y_scale: f32,
    pub half_width: f32,
    pub background: u32,
    pub grid_colour: u32,
    pub axis_colour: u32,
    /// Texture columns of vertical grid lines, -1 where unused.
    pub x_ticks: [[i32; 4]; MAX_TICKS / 4],
    /// Texture rows of horizontal grid lines, -1 where unused.
    pub y_ticks: [[i32; 4]; MAX_TICKS / 4],
}

const _: () = assert!(size_of::<CurvesParams>() == 192);

/// One series in the curves data buffers. Keep in sync with `SeriesInfo` in `shaders/curves.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct SeriesInfo {
    /// First element of the series in the y buffer.
    pub y_offset: u32,
    /// First element in the x buffer, or `IMPLICIT_X` when x is the point's index.
    pub x_offset: u32,
    pub len: u32,
    pub colour: u32,
    /// A band's low line in the y buffer (same x and length), `NO_BAND` for a plain line.
    pub low_offset: u32,
}

const _: () = assert!(size_of::<SeriesInfo>() == 20);

/// `SeriesInfo::low_offset` of a line that is not a band.
pub const NO_BAND: u32 = u32::MAX;

/// `SeriesInfo::x_offset` of a series whose x is its index.
pub const IMPLICIT_X: u32 = u32::MAX;

/// A y value at or above this is a missing point (non-finite input); the shader never sees NaN.
pub const MISSING: f32 = 3.0e38;
