//! The GPU views inside egui: each renderer draws into its own texture, registered once with egui
//! and redrawn only when its data or settings change.

use eframe::egui_wgpu::RenderState;
use eframe::{egui, wgpu};

use crate::gpu::confusion::{ConfusionInput, ConfusionRenderer, ConfusionView};
use crate::gpu::curves::{Axes, CurvesRenderer, CurvesView, Series};
use crate::gpu::input_grid::{BorderMode, GridInput, GridLayout, InputGridRenderer};
use crate::gpu::{GpuContext, GpuError, RenderTarget, ViewStyle};
use crate::run::{Chart, ChartSeries};
use crate::train::SampleGrid;

/// A render target shown in egui under a fixed texture id.
struct Texture {
    target: RenderTarget,
    id: egui::TextureId,
}

impl Texture {
    /// Make sure the texture is `width`×`height`, re-pointing the same egui id at a new target on resize.
    fn ensure<'a>(
        slot: &'a mut Option<Texture>,
        rs: &RenderState,
        width: u32,
        height: u32,
    ) -> Result<&'a Texture, GpuError> {
        let resized = slot
            .as_ref()
            .is_none_or(|t| t.target.width() != width || t.target.height() != height);
        if resized {
            let target = RenderTarget::new(&rs.device, width, height)?;
            let mut renderer = rs.renderer.write();
            let id = match slot.take() {
                Some(old) => {
                    renderer.update_egui_texture_from_wgpu_texture(
                        &rs.device,
                        &target.view,
                        wgpu::FilterMode::Nearest,
                        old.id,
                    );
                    old.id
                }
                None => renderer.register_native_texture(
                    &rs.device,
                    &target.view,
                    wgpu::FilterMode::Nearest,
                ),
            };
            *slot = Some(Texture { target, id });
        }
        slot.as_ref()
            .ok_or(GpuError::InvalidInput("no texture".into()))
    }
}

/// The confusion matrix settings a user changes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConfusionSettings {
    pub view: ConfusionView,
    pub normalise_rows: bool,
    pub log_scale: bool,
    pub highlight: Option<(usize, usize)>,
}

impl Default for ConfusionSettings {
    fn default() -> Self {
        Self {
            view: ConfusionView::Full,
            normalise_rows: true,
            log_scale: false,
            highlight: None,
        }
    }
}

pub struct GpuViews {
    ctx: GpuContext,
    render_state: RenderState,
    grid: InputGridRenderer,
    galleries: [InputGridRenderer; GALLERIES],
    confusions: [ConfusionRenderer; CONFUSIONS],
    curves: Vec<CurvesRenderer>,
    grid_texture: Option<Texture>,
    gallery_textures: [Option<Texture>; GALLERIES],
    confusion_textures: [Option<Texture>; CONFUSIONS],
    curve_textures: Vec<Option<Texture>>,
    drawn: DrawnState,
    /// Colours of the views, following the app's theme.
    style: ViewStyle,
    pub error: Option<String>,
}

/// What each texture currently shows, to skip redundant draws.
#[derive(Default, PartialEq)]
struct DrawnState {
    grid: Option<(u64, BorderMode)>,
    galleries: [Option<u64>; GALLERIES],
    confusions: [Option<(u64, ConfusionSettings, usize)>; CONFUSIONS],
    curves: Vec<Option<CurveKey>>,
    uploaded: Vec<Option<(u64, u32)>>,
}

/// What a chart texture shows: revision, size, log y, smoothing, x range.
type CurveKey = (u64, u32, u32, bool, u32, Option<(u64, u64)>);

/// The image galleries shown at once, each with its own texture.
#[derive(Clone, Copy, Debug)]
pub enum Gallery {
    /// The images behind the selected confusion cell.
    Cell = 0,
    /// The highest-loss evaluation images.
    TopLosses = 1,
}
const GALLERIES: usize = 2;

/// The confusion matrices shown, each with its own texture.
#[derive(Clone, Copy, Debug)]
pub enum ConfusionSlot {
    /// The current run's matrix (watch panel).
    Run = 0,
    /// Run B − run A in the comparison view.
    Difference = 1,
}
const CONFUSIONS: usize = 2;

/// A matrix to draw: `k`×`k` counts in blocks of `block` transformations, and for a difference the
/// counts of run A subtracted from them.
#[derive(Clone, Copy, Debug)]
pub struct ConfusionCounts<'a> {
    pub counts: &'a [u32],
    pub k: usize,
    pub block: usize,
    pub minus: Option<&'a [u32]>,
}

/// Losses, accuracies, learning rate; then the comparison view's overlay.
pub const CHARTS: usize = 4;
pub const COMPARE_CHART: usize = 3;
const CONFUSION_PIXELS: usize = 800;

impl GpuViews {
    pub fn new(render_state: &RenderState) -> Self {
        let ctx = GpuContext::from_render_state(render_state);
        Self {
            grid: InputGridRenderer::new(&ctx.device),
            galleries: [
                InputGridRenderer::new(&ctx.device),
                InputGridRenderer::new(&ctx.device),
            ],
            confusions: [
                ConfusionRenderer::new(&ctx.device),
                ConfusionRenderer::new(&ctx.device),
            ],
            curves: (0..CHARTS)
                .map(|_| CurvesRenderer::new(&ctx.device))
                .collect(),
            ctx,
            render_state: render_state.clone(),
            grid_texture: None,
            gallery_textures: [None, None],
            confusion_textures: [None, None],
            curve_textures: (0..CHARTS).map(|_| None).collect(),
            drawn: DrawnState {
                curves: vec![None; CHARTS],
                uploaded: vec![None; CHARTS],
                ..Default::default()
            },
            style: ViewStyle::dark(),
            error: None,
        }
    }

    /// Follow the app's theme; a change redraws every view.
    pub fn set_dark(&mut self, dark: bool) {
        let style = if dark {
            ViewStyle::dark()
        } else {
            ViewStyle::light()
        };
        if style != self.style {
            self.style = style;
            self.drawn = DrawnState {
                curves: vec![None; CHARTS],
                uploaded: vec![None; CHARTS],
                ..Default::default()
            };
        }
    }

    pub fn adapter(&self) -> String {
        self.ctx.describe()
    }

    fn report(&mut self, result: Result<(), GpuError>) {
        if let Err(error) = result {
            log::warn!("view rendering failed: {error}");
            self.error = Some(error.to_string());
        }
    }

    /// Draw the sample grid (if `revision` changed) and show it; returns the image response and the
    /// layout, for hover captions.
    pub fn show_grid(
        &mut self,
        ui: &mut egui::Ui,
        grid: &SampleGrid,
        border_mode: BorderMode,
        revision: u64,
    ) -> Option<(egui::Response, GridLayout)> {
        if grid.samples == 0 {
            return None;
        }
        let scale = (96 / grid.height.max(grid.width).max(1)).max(1) as u32;
        let layout = GridLayout::scaled(grid.width, grid.height, scale);
        let input = GridInput::from_sample_grid(grid, border_mode, layout, self.style);
        let (width, height) = input.size();
        let key = Some((revision, border_mode));
        let result = Texture::ensure(&mut self.grid_texture, &self.render_state, width, height)
            .map(|t| t.id);
        let id = match result {
            Ok(id) => id,
            Err(error) => {
                self.report(Err(error));
                return None;
            }
        };
        if self.drawn.grid != key {
            let result = match &self.grid_texture {
                Some(texture) => self.ctx.submit(|encoder| {
                    self.grid
                        .render(&self.ctx, encoder, &input, &texture.target)
                }),
                None => Ok(()),
            };
            self.report(result);
            self.drawn.grid = key;
        }
        let available = ui.available_width().max(64.0);
        let shown = fit(width as f32, height as f32, available, f32::INFINITY);
        let response = ui.add(
            egui::Image::new(egui::load::SizedTexture::new(id, shown)).sense(egui::Sense::hover()),
        );
        Some((response, layout))
    }

    /// Draw the images behind a confusion cell (redrawn when `key` changes) and show them.
    pub fn show_gallery(&mut self, ui: &mut egui::Ui, slot: Gallery, grid: &SampleGrid, key: u64) {
        let slot = slot as usize;
        if grid.samples == 0 {
            return;
        }
        let scale = (64 / grid.height.max(grid.width).max(1)).max(1) as u32;
        let layout = GridLayout::scaled(grid.width, grid.height, scale);
        let input = GridInput::from_sample_grid(grid, BorderMode::None, layout, self.style);
        let (width, height) = input.size();
        let id = match Texture::ensure(
            &mut self.gallery_textures[slot],
            &self.render_state,
            width,
            height,
        ) {
            Ok(texture) => texture.id,
            Err(error) => {
                self.report(Err(error));
                return;
            }
        };
        if self.drawn.galleries[slot] != Some(key) {
            let result = match &self.gallery_textures[slot] {
                Some(texture) => self.ctx.submit(|encoder| {
                    self.galleries[slot].render(&self.ctx, encoder, &input, &texture.target)
                }),
                None => Ok(()),
            };
            self.report(result);
            self.drawn.galleries[slot] = Some(key);
        }
        let shown = fit(
            width as f32,
            height as f32,
            ui.available_width().max(64.0),
            f32::INFINITY,
        );
        ui.add(egui::Image::new(egui::load::SizedTexture::new(id, shown)));
    }

    /// Draw and show a confusion matrix (redrawn when `revision` or the settings change) in a
    /// square of `side` points; returns the response and the drawn matrix size.
    pub fn show_confusion(
        &mut self,
        ui: &mut egui::Ui,
        slot: ConfusionSlot,
        matrix: ConfusionCounts<'_>,
        settings: ConfusionSettings,
        revision: u64,
        side: f32,
    ) -> Option<(egui::Response, usize)> {
        let ConfusionCounts {
            counts,
            k,
            block,
            minus,
        } = matrix;
        let input = ConfusionInput {
            k,
            counts,
            block,
            normalise_rows: settings.normalise_rows,
            log_scale: settings.log_scale,
            highlight: settings.highlight,
            view: settings.view,
            style: self.style,
            minus,
        };
        let drawn_side = match input.matrix() {
            Ok((n, _)) => n,
            Err(error) => {
                self.report(Err(error));
                return None;
            }
        };
        let pixels = (drawn_side * CONFUSION_PIXELS.div_ceil(drawn_side.max(1))) as u32;
        let slot = slot as usize;
        let id = match Texture::ensure(
            &mut self.confusion_textures[slot],
            &self.render_state,
            pixels,
            pixels,
        ) {
            Ok(texture) => texture.id,
            Err(error) => {
                self.report(Err(error));
                return None;
            }
        };
        let key = Some((revision, settings, k));
        if self.drawn.confusions[slot] != key {
            let result = match &self.confusion_textures[slot] {
                Some(texture) => self.ctx.submit(|encoder| {
                    self.confusions[slot].render(&self.ctx, encoder, &input, &texture.target)
                }),
                None => Ok(()),
            };
            self.report(result);
            self.drawn.confusions[slot] = key;
        }
        let response = ui.add(
            egui::Image::new(egui::load::SizedTexture::new(id, egui::vec2(side, side)))
                .sense(egui::Sense::click()),
        );
        Some((response, drawn_side))
    }

    /// Draw chart `index` at the size of `rect` and show it, with axis labels painted by egui;
    /// returns the image's response and where the plot landed, for the hover read-out.
    #[allow(clippy::too_many_arguments)]
    pub fn show_chart(
        &mut self,
        ui: &mut egui::Ui,
        index: usize,
        chart: &Chart,
        smoothing: f32,
        log_y: bool,
        x_range: Option<(f64, f64)>,
        revision: u64,
        size: egui::Vec2,
    ) -> Option<(egui::Response, Axes)> {
        let pixels_per_point = ui.ctx().pixels_per_point();
        let width = ((size.x * pixels_per_point) as u32).max(64);
        let height = ((size.y * pixels_per_point) as u32).max(64);
        let smoothing_key = (smoothing * 1000.0) as u32;
        let upload_key = Some((revision, smoothing_key));
        if self.drawn.uploaded[index] != upload_key {
            let series: Vec<Series<'_>> = chart.series.iter().map(ChartSeries::as_series).collect();
            let result = self.curves[index].upload(&self.ctx, &series, smoothing, true);
            self.report(result);
            self.drawn.uploaded[index] = upload_key;
        }
        let id = match Texture::ensure(
            &mut self.curve_textures[index],
            &self.render_state,
            width,
            height,
        ) {
            Ok(texture) => texture.id,
            Err(error) => {
                self.report(Err(error));
                return None;
            }
        };
        let view = CurvesView {
            log_y,
            x_range,
            style: self.style,
            ..Default::default()
        };
        let key = Some((
            revision,
            width,
            height,
            log_y,
            smoothing_key,
            x_range.map(|(lo, hi)| (lo.to_bits(), hi.to_bits())),
        ));
        let mut axes: Option<Axes> = None;
        if self.drawn.curves[index] != key {
            let renderer = &mut self.curves[index];
            let result = match &self.curve_textures[index] {
                Some(texture) => self.ctx.submit(|encoder| {
                    axes = Some(renderer.draw(&self.ctx, encoder, &view, &texture.target)?);
                    Ok(())
                }),
                None => Ok(()),
            };
            self.report(result);
            self.drawn.curves[index] = key;
        }
        let axes = axes.unwrap_or_else(|| self.curves[index].axes(&view, width, height));
        let response = ui.add(
            egui::Image::new(egui::load::SizedTexture::new(id, size))
                .sense(egui::Sense::click_and_drag()),
        );
        paint_axes(ui, &response.rect, &axes, pixels_per_point, chart);
        Some((response, axes))
    }
}

/// The largest size of aspect `width:height` inside `max_w`×`max_h`.
fn fit(width: f32, height: f32, max_w: f32, max_h: f32) -> egui::Vec2 {
    let scale = (max_w / width).min(max_h / height).min(1.0);
    egui::vec2(width * scale, height * scale)
}

fn paint_axes(ui: &egui::Ui, rect: &egui::Rect, axes: &Axes, pixels_per_point: f32, chart: &Chart) {
    let painter = ui.painter_at(*rect);
    let font = egui::FontId::monospace(10.0);
    let colour = ui.visuals().weak_text_color();
    let to_point = |px: u32| px as f32 / pixels_per_point;
    let plot_bottom = to_point(axes.plot[1] + axes.plot[3]);
    for (tick, label) in axes.x_ticks.iter().zip(axes.x_tick_labels()) {
        painter.text(
            egui::pos2(
                rect.left() + to_point(tick.pixel),
                rect.top() + plot_bottom + 2.0,
            ),
            egui::Align2::CENTER_TOP,
            label,
            font.clone(),
            colour,
        );
    }
    for (tick, label) in axes.y_ticks.iter().zip(axes.y_tick_labels()) {
        painter.text(
            egui::pos2(
                rect.left() + to_point(axes.plot[0]) - 4.0,
                rect.top() + to_point(tick.pixel),
            ),
            egui::Align2::RIGHT_CENTER,
            label,
            font.clone(),
            colour,
        );
    }
    // Legend, top right inside the plot.
    let mut y = rect.top() + to_point(axes.plot[1]) + 4.0;
    let right = rect.left() + to_point(axes.plot[0] + axes.plot[2]) - 6.0;
    for line in &chart.series {
        if line.ys.is_empty() {
            continue;
        }
        let [r, g, b, _] = line.colour;
        let colour = egui::Color32::from_rgb(r, g, b);
        painter.text(
            egui::pos2(right, y),
            egui::Align2::RIGHT_TOP,
            &line.name,
            font.clone(),
            colour,
        );
        y += 12.0;
    }
}
