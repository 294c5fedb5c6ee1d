//! Labelled axes, title and legend of a headless chart figure, drawn on the CPU onto the read-back
//! picture around the plot its [`Axes`] describe, never inside it.
//!
//! The app draws the same text with egui over the GPU texture (`gui::views`); a PNG has no egui, so
//! the text is rasterised here with `ab_glyph` in egui's own fonts (Hack for tick labels, as the
//! app's monospace ticks, Ubuntu Light for the rest) and the labels are the app's own
//! ([`Axes::y_tick_labels`], [`Axes::x_tick_labels`]), so a figure reads like the window. Layout
//! ([`Annotator::layout`]) and painting ([`Annotator::draw`]) are separate so the placement can be
//! tested without pixels.

use ab_glyph::{Font, FontRef, GlyphId, PxScale, ScaleFont, point};

use super::GpuError;
use super::curves::{Axes, Margins};
use super::style::ViewStyle;

/// Text heights (ascent to descent) in pixels: about 12 px em for the ticks, 13 for the legend and
/// the axis name, 16 for the title, sized for figures about 1000 pixels wide shown in a document.
const TICK_SCALE: f32 = 14.0;
const LABEL_SCALE: f32 = 15.0;
const TITLE_SCALE: f32 = 18.0;

/// Space between the picture's edges and any text.
const EDGE: f32 = 8.0;
/// Space between an axis line and its tick labels.
const TICK_GAP: f32 = 5.0;
/// Space between the x tick labels and the x-axis name, and between the legend and the plot.
const BLOCK_GAP: f32 = 6.0;
/// Space between the title and the legend, and between legend entries.
const TITLE_GAP: f32 = 28.0;
const ENTRY_GAP: f32 = 20.0;
/// A legend swatch: a short thick stroke of the series' colour, like the line it names.
const SWATCH_WIDTH: u32 = 18;
const SWATCH_HEIGHT: u32 = 4;
const SWATCH_GAP: f32 = 6.0;
/// Right margin of the plot: half of a last x tick label ("1500" is about 30 pixels wide) plus air.
const RIGHT_MARGIN: u32 = 24;
/// The narrowest left margin, for a chart whose y axis has no ticks.
const MIN_LEFT: u32 = 40;

/// What a figure's text says: its title, its x axis and the names of its series.
#[derive(Clone, Debug, PartialEq)]
pub struct FigureText {
    pub title: String,
    pub x_name: String,
    /// In the order the series are drawn.
    pub legend: Vec<LegendEntry>,
}

/// One named series: the legend shows a swatch of `colour` and then `name`.
#[derive(Clone, Debug, PartialEq)]
pub struct LegendEntry {
    pub name: String,
    /// Gamma-space RGBA, as the series is drawn (a faded line gets a faded swatch).
    pub colour: [u8; 4],
}

/// What a text item labels; it picks the font and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Title,
    Legend,
    XTick,
    YTick,
    XName,
}

/// Which point of a text's box sits on its anchor, across: its left end, centre or right end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Start,
    Centre,
    End,
}

/// Which point of a text's box sits on its anchor, down: the top of its capitals (and digits),
/// their middle, or the baseline. Capitals rather than the font's ascent, so digits centre on a
/// tick's grid line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VAlign {
    CapTop,
    CapCentre,
    Baseline,
}

/// One string placed on the picture.
#[derive(Clone, Debug, PartialEq)]
pub struct TextItem {
    pub role: Role,
    pub text: String,
    /// Picture pixels (x right, y down); `align` and `v_align` say which point of the text it is.
    pub anchor: [f32; 2],
    pub align: Align,
    pub v_align: VAlign,
}

/// A legend swatch: left, top, width, height in picture pixels, and its colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Swatch {
    pub rect: [u32; 4],
    pub colour: [u8; 4],
}

/// Everything drawn around one chart: the title first, then the legend in series order, the y and
/// the x tick labels in tick order, and the x-axis name.
#[derive(Clone, Debug, PartialEq)]
pub struct FigureLayout {
    pub texts: Vec<TextItem>,
    /// One per legend entry, in order.
    pub swatches: Vec<Swatch>,
}

/// Lays out and draws figure text in egui's fonts. Build it once per export; it holds parsed fonts.
pub struct Annotator {
    mono: FontRef<'static>,
    sans: FontRef<'static>,
}

/// The title and legend rows above the plot.
struct TopStrip {
    texts: Vec<TextItem>,
    swatches: Vec<Swatch>,
    /// Baseline of the last row.
    last_baseline: f32,
}

impl Annotator {
    pub fn new() -> Result<Self, GpuError> {
        let font = |bytes: &'static [u8]| {
            FontRef::try_from_slice(bytes)
                .map_err(|e| GpuError::InvalidInput(format!("egui's built-in font: {e}")))
        };
        Ok(Self {
            mono: font(epaint_default_fonts::HACK_REGULAR)?,
            sans: font(epaint_default_fonts::UBUNTU_LIGHT)?,
        })
    }

    fn font(&self, role: Role) -> (&FontRef<'static>, PxScale) {
        match role {
            Role::Title => (&self.sans, PxScale::from(TITLE_SCALE)),
            Role::Legend | Role::XName => (&self.sans, PxScale::from(LABEL_SCALE)),
            Role::XTick | Role::YTick => (&self.mono, PxScale::from(TICK_SCALE)),
        }
    }

    /// Height of a capital of `role`'s font above the baseline.
    fn cap_height(&self, role: Role) -> f32 {
        let (font, scale) = self.font(role);
        let scaled = font.as_scaled(scale);
        // ab_glyph stores an outline's top (the font's y_max, y up) as `bounds.min.y`.
        font.outline(font.glyph_id('H'))
            .map_or(scaled.ascent() * 0.7, |o| {
                o.bounds.min.y * scaled.v_scale_factor()
            })
    }

    /// Depth of `role`'s descenders below the baseline (positive).
    fn descent(&self, role: Role) -> f32 {
        let (font, scale) = self.font(role);
        -font.as_scaled(scale).descent()
    }

    /// The advance width of `text` in `role`'s font, kerning included.
    pub fn text_width(&self, role: Role, text: &str) -> f32 {
        let (font, scale) = self.font(role);
        self.glyph_ids(role, text)
            .last()
            .map_or(0.0, |&(x, id)| x + font.as_scaled(scale).h_advance(id))
    }

    /// Each glyph of `text` with its pen position from the text's start.
    fn glyph_ids(&self, role: Role, text: &str) -> Vec<(f32, GlyphId)> {
        let (font, scale) = self.font(role);
        let scaled = font.as_scaled(scale);
        let mut x = 0.0;
        let mut previous: Option<GlyphId> = None;
        text.chars()
            .map(|c| {
                let id = scaled.glyph_id(c);
                if let Some(p) = previous {
                    x += scaled.kern(p, id);
                }
                let at = x;
                x += scaled.h_advance(id);
                previous = Some(id);
                (at, id)
            })
            .collect()
    }

    /// The box of `item` (left, top, right, bottom): its advance width across, from the top of its
    /// capitals to the bottom of its descenders down.
    pub fn bounds(&self, item: &TextItem) -> [f32; 4] {
        let width = self.text_width(item.role, &item.text);
        let cap = self.cap_height(item.role);
        let left = match item.align {
            Align::Start => item.anchor[0],
            Align::Centre => item.anchor[0] - width / 2.0,
            Align::End => item.anchor[0] - width,
        };
        let baseline = match item.v_align {
            VAlign::CapTop => item.anchor[1] + cap,
            VAlign::CapCentre => item.anchor[1] + cap / 2.0,
            VAlign::Baseline => item.anchor[1],
        };
        [
            left,
            baseline - cap,
            left + width,
            baseline + self.descent(item.role),
        ]
    }

    /// Margins that fit `text` around a plot in a picture `width` wide whose y ticks read
    /// `y_labels` (the y ticks depend only on the plot's height, which the left margin leaves
    /// alone, so a first resolution with any left margin gives the final labels).
    pub fn margins(&self, text: &FigureText, width: u32, y_labels: &[String]) -> Margins {
        let widest = y_labels
            .iter()
            .map(|l| self.text_width(Role::YTick, l))
            .fold(0.0f32, f32::max);
        let left = ((EDGE + widest + TICK_GAP + 1.0).ceil() as u32).max(MIN_LEFT);
        let strip = self.top_strip(text, left as f32, width);
        let top = (strip.last_baseline + self.descent(Role::Legend) + BLOCK_GAP).ceil() as u32;
        // Below the x axis line: the tick labels, then the axis name, then the edge.
        let name_top =
            1.0 + TICK_GAP + self.cap_height(Role::XTick) + self.descent(Role::XTick) + BLOCK_GAP;
        let bottom =
            (name_top + self.cap_height(Role::XName) + self.descent(Role::XName) + EDGE / 2.0)
                .ceil() as u32;
        Margins {
            left,
            right: RIGHT_MARGIN,
            top,
            bottom,
        }
    }

    /// The title at the plot's left edge, then the legend to its right, wrapping onto further rows
    /// that start under its first entry when the picture is too narrow.
    fn top_strip(&self, text: &FigureText, left: f32, width: u32) -> TopStrip {
        let first_baseline = EDGE + self.cap_height(Role::Title);
        let row_step = LABEL_SCALE + 6.0;
        let mut texts = vec![TextItem {
            role: Role::Title,
            text: text.title.clone(),
            anchor: [left, first_baseline],
            align: Align::Start,
            v_align: VAlign::Baseline,
        }];
        let legend_left = left + self.text_width(Role::Title, &text.title) + TITLE_GAP;
        let limit = width as f32 - EDGE;
        let swatch_drop = self.cap_height(Role::Legend) / 2.0 + SWATCH_HEIGHT as f32 / 2.0;
        let mut swatches = Vec::with_capacity(text.legend.len());
        let (mut x, mut baseline) = (legend_left, first_baseline);
        for entry in &text.legend {
            let span =
                SWATCH_WIDTH as f32 + SWATCH_GAP + self.text_width(Role::Legend, &entry.name);
            // An entry wider than a whole row still gets a row of its own rather than none.
            if x > legend_left && x + span > limit {
                x = legend_left;
                baseline += row_step;
            }
            swatches.push(Swatch {
                rect: [
                    x.round() as u32,
                    (baseline - swatch_drop).round().max(0.0) as u32,
                    SWATCH_WIDTH,
                    SWATCH_HEIGHT,
                ],
                colour: entry.colour,
            });
            texts.push(TextItem {
                role: Role::Legend,
                text: entry.name.clone(),
                anchor: [x + SWATCH_WIDTH as f32 + SWATCH_GAP, baseline],
                align: Align::Start,
                v_align: VAlign::Baseline,
            });
            x += span + ENTRY_GAP;
        }
        TopStrip {
            texts,
            swatches,
            last_baseline: baseline,
        }
    }

    /// Where every string and swatch of `text` goes around the plot of `axes` in a picture
    /// `width` wide: title and legend above the plot, y tick labels right-aligned left of the y
    /// axis and centred on their grid lines, x tick labels centred under theirs, the axis name
    /// centred below those.
    pub fn layout(&self, text: &FigureText, axes: &Axes, width: u32) -> FigureLayout {
        let [left, top, plot_width, plot_height] = axes.plot.map(|v| v as f32);
        let TopStrip {
            mut texts,
            swatches,
            ..
        } = self.top_strip(text, left, width);
        // The y axis line is the column left of the plot and the x axis line the row below it.
        for (tick, label) in axes.y_ticks.iter().zip(axes.y_tick_labels()) {
            texts.push(TextItem {
                role: Role::YTick,
                text: label,
                anchor: [left - 1.0 - TICK_GAP, tick.pixel as f32 + 0.5],
                align: Align::End,
                v_align: VAlign::CapCentre,
            });
        }
        let below = top + plot_height + 1.0;
        for (tick, label) in axes.x_ticks.iter().zip(axes.x_tick_labels()) {
            texts.push(TextItem {
                role: Role::XTick,
                text: label,
                anchor: [tick.pixel as f32 + 0.5, below + TICK_GAP],
                align: Align::Centre,
                v_align: VAlign::CapTop,
            });
        }
        let name_top =
            below + TICK_GAP + self.cap_height(Role::XTick) + self.descent(Role::XTick) + BLOCK_GAP;
        texts.push(TextItem {
            role: Role::XName,
            text: text.x_name.clone(),
            anchor: [left + plot_width / 2.0, name_top],
            align: Align::Centre,
            v_align: VAlign::CapTop,
        });
        FigureLayout { texts, swatches }
    }

    /// Draws `layout` onto `pixels` (RGBA rows of a `width`×`height` chart whose plot `axes`
    /// describes) in `style.text`. Nothing lands on the plot or its axis lines, so the data stays
    /// exactly as the renderer drew it; text that would leave the picture is moved back inside.
    pub fn draw(
        &self,
        pixels: &mut [u8],
        (width, height): (u32, u32),
        axes: &Axes,
        layout: &FigureLayout,
        style: &ViewStyle,
    ) -> Result<(), GpuError> {
        let mut canvas = Canvas::new(pixels, width, height, axes)?;
        for swatch in &layout.swatches {
            let [x, y, w, h] = swatch.rect;
            for py in y..y.saturating_add(h) {
                for px in x..x.saturating_add(w) {
                    canvas.blend(i64::from(px), i64::from(py), swatch.colour, 1.0);
                }
            }
        }
        for item in &layout.texts {
            self.paint(&mut canvas, item, style.text);
        }
        Ok(())
    }

    /// [`Self::layout`] then [`Self::draw`].
    pub fn annotate(
        &self,
        pixels: &mut [u8],
        size: (u32, u32),
        axes: &Axes,
        text: &FigureText,
        style: &ViewStyle,
    ) -> Result<(), GpuError> {
        let layout = self.layout(text, axes, size.0);
        self.draw(pixels, size, axes, &layout, style)
    }

    fn paint(&self, canvas: &mut Canvas<'_>, item: &TextItem, colour: [u8; 4]) {
        let [left, top, right, _] = self.bounds(item);
        // Shift a label that would run off the side (the last x tick) back into the picture.
        let shift = if left < 0.0 {
            -left
        } else {
            (canvas.width as f32 - right).min(0.0)
        };
        // Whole-pixel origins keep digit stems sharp; the rasteriser anti-aliases the rest.
        let x0 = (left + shift).round();
        let baseline = (top + self.cap_height(item.role)).round();
        let (font, scale) = self.font(item.role);
        for (x, id) in self.glyph_ids(item.role, &item.text) {
            let glyph = id.with_scale_and_position(scale, point(x0 + x, baseline));
            let Some(outline) = font.outline_glyph(glyph) else {
                continue; // a space
            };
            let origin = outline.px_bounds().min;
            let (ox, oy) = (origin.x as i64, origin.y as i64);
            outline.draw(|gx, gy, coverage| {
                canvas.blend(
                    ox + i64::from(gx),
                    oy + i64::from(gy),
                    colour,
                    coverage.min(1.0),
                );
            });
        }
    }
}

/// The picture being annotated, with the plot and its axis lines fenced off.
struct Canvas<'a> {
    pixels: &'a mut [u8],
    width: u32,
    height: u32,
    /// Columns and rows (inclusive) of the plot plus its axis lines.
    fence: [i64; 4],
}

impl<'a> Canvas<'a> {
    fn new(pixels: &'a mut [u8], width: u32, height: u32, axes: &Axes) -> Result<Self, GpuError> {
        if pixels.len() as u64 != u64::from(width) * u64::from(height) * 4 {
            return Err(GpuError::InvalidInput(format!(
                "{} bytes are no {width}x{height} RGBA picture",
                pixels.len()
            )));
        }
        let [left, top, w, h] = axes.plot.map(i64::from);
        Ok(Self {
            pixels,
            width,
            height,
            // The y axis is the column left of the plot, the x axis the row under it.
            fence: [left - 1, top, left + w - 1, top + h],
        })
    }

    /// Lays `colour` over pixel (x, y) with `coverage` times its alpha, in gamma space as egui
    /// blends; outside the picture or on the plot it does nothing.
    fn blend(&mut self, x: i64, y: i64, colour: [u8; 4], coverage: f32) {
        let [x0, y0, x1, y1] = self.fence;
        let inside = x >= 0 && y >= 0 && x < i64::from(self.width) && y < i64::from(self.height);
        if !inside || (x >= x0 && x <= x1 && y >= y0 && y <= y1) {
            return;
        }
        let a = coverage * f32::from(colour[3]) / 255.0;
        if a <= 0.0 {
            return;
        }
        // In range: x and y are inside the picture, whose size matched the buffer in `new`.
        let at = (y as usize * self.width as usize + x as usize) * 4;
        for (c, &new) in self.pixels[at..at + 3].iter_mut().zip(&colour[..3]) {
            *c = blend_channel(*c, new, a);
        }
        self.pixels[at + 3] = 255;
    }
}

/// `old` covered by `new` at opacity `a` (0 to 1), rounded to the nearest byte.
fn blend_channel(old: u8, new: u8, a: f32) -> u8 {
    let a = a.clamp(0.0, 1.0);
    (f32::from(old) * (1.0 - a) + f32::from(new) * a).round() as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::curves::Tick;
    use crate::number_format::tick_labels;

    /// Axes of a plot at `plot` with ticks where the renderer would put them.
    fn axes_at(plot: [u32; 4], log_y: bool) -> Axes {
        let [left, top, width, height] = plot;
        let (y_range, y_values): ((f64, f64), &[f64]) = if log_y {
            ((0.005, 2.0), &[0.01, 0.1, 1.0])
        } else {
            ((0.0, 1.0), &[0.0, 0.25, 0.5, 0.75, 1.0])
        };
        let fraction = |v: f64| {
            if log_y {
                (v.log10() - y_range.0.log10()) / (y_range.1.log10() - y_range.0.log10())
            } else {
                v
            }
        };
        Axes {
            plot,
            x_range: (0.0, 1500.0),
            y_range,
            log_y,
            x_ticks: [0.0, 500.0, 1000.0, 1500.0]
                .iter()
                .map(|&value| Tick {
                    value,
                    pixel: left + (value / 1500.0 * f64::from(width - 1)) as u32,
                })
                .collect(),
            y_ticks: y_values
                .iter()
                .map(|&value| Tick {
                    value,
                    pixel: top + ((1.0 - fraction(value)) * f64::from(height - 1)) as u32,
                })
                .collect(),
        }
    }

    fn axes(log_y: bool) -> Axes {
        axes_at([60, 30, 900, 300], log_y)
    }

    fn text(names: &[&str]) -> FigureText {
        FigureText {
            title: "test accuracy".into(),
            x_name: "step".into(),
            legend: names
                .iter()
                .enumerate()
                .map(|(i, name)| LegendEntry {
                    name: (*name).into(),
                    colour: crate::gpu::style::category_colour(i),
                })
                .collect(),
        }
    }

    fn of(layout: &FigureLayout, role: Role) -> Vec<&TextItem> {
        layout.texts.iter().filter(|t| t.role == role).collect()
    }

    #[test]
    fn ticks_title_and_legend_are_the_apps_strings_at_the_renderers_positions() {
        let annotator = Annotator::new().expect("fonts");
        for log_y in [false, true] {
            let axes = axes(log_y);
            let layout = annotator.layout(&text(&["single", "aggregated", "joint"]), &axes, 1000);

            let y_values: Vec<f64> = axes.y_ticks.iter().map(|t| t.value).collect();
            let y = of(&layout, Role::YTick);
            let texts: Vec<&str> = y.iter().map(|t| t.text.as_str()).collect();
            assert_eq!(texts, tick_labels(&y_values, log_y));
            for (item, tick) in y.iter().zip(&axes.y_ticks) {
                assert_eq!(
                    item.anchor,
                    [60.0 - 1.0 - TICK_GAP, tick.pixel as f32 + 0.5]
                );
                assert_eq!((item.align, item.v_align), (Align::End, VAlign::CapCentre));
                // Right of the picture's edge, left of the y axis line.
                let [l, _, r, _] = annotator.bounds(item);
                assert!(l >= 0.0 && r < 59.0, "{} spans {l}..{r}", item.text);
            }

            let x_values: Vec<f64> = axes.x_ticks.iter().map(|t| t.value).collect();
            let x = of(&layout, Role::XTick);
            let texts: Vec<&str> = x.iter().map(|t| t.text.as_str()).collect();
            assert_eq!(texts, tick_labels(&x_values, false));
            assert_eq!(texts, ["0", "500", "1000", "1500"]);
            for (item, tick) in x.iter().zip(&axes.x_ticks) {
                assert_eq!(item.anchor, [tick.pixel as f32 + 0.5, 331.0 + TICK_GAP]);
                assert_eq!((item.align, item.v_align), (Align::Centre, VAlign::CapTop));
            }

            let title = of(&layout, Role::Title);
            assert_eq!(title.len(), 1);
            assert_eq!(title[0].text, "test accuracy");
            assert_eq!(
                title[0].anchor[0], 60.0,
                "the title starts at the plot's left"
            );
            assert_eq!(layout.texts[0].role, Role::Title, "the title comes first");
            // Capitals of the 18-pixel title font are about 12 pixels tall, its descenders 4.
            let [_, t, _, b] = annotator.bounds(title[0]);
            assert!((14.0..20.0).contains(&(b - t)), "title box {t}..{b}");

            let legend = of(&layout, Role::Legend);
            let names: Vec<&str> = legend.iter().map(|t| t.text.as_str()).collect();
            assert_eq!(names, ["single", "aggregated", "joint"]);
            let colours: Vec<[u8; 4]> = layout.swatches.iter().map(|s| s.colour).collect();
            assert_eq!(
                colours,
                (0..3)
                    .map(crate::gpu::style::category_colour)
                    .collect::<Vec<_>>()
            );
            // One row, right of the title, each swatch just left of its name, all above the plot.
            let title_right = annotator.bounds(title[0])[2];
            for (item, swatch) in legend.iter().zip(&layout.swatches) {
                let [l, t, _, b] = annotator.bounds(item);
                assert_eq!(item.anchor[1], title[0].anchor[1], "{}", item.text);
                assert!(l > title_right, "{} overlaps the title", item.text);
                let swatch_right = (swatch.rect[0] + swatch.rect[2]) as f32;
                assert!(swatch_right < l && swatch_right + 10.0 > l);
                assert!(t >= 0.0 && b < 30.0, "{} is not above the plot", item.text);
                assert!(swatch.rect[1] + swatch.rect[3] < 30);
            }
            for pair in legend.windows(2) {
                assert!(annotator.bounds(pair[0])[2] < pair[1].anchor[0] - SWATCH_WIDTH as f32);
            }

            let name = of(&layout, Role::XName);
            assert_eq!(name.len(), 1);
            assert_eq!(name[0].text, "step");
            assert_eq!(name[0].anchor[0], 60.0 + 450.0, "centred under the plot");
            let lowest_tick = x.iter().map(|t| annotator.bounds(t)[3]).fold(0.0, f32::max);
            assert!(
                annotator.bounds(name[0])[1] > lowest_tick,
                "under the tick labels"
            );
        }
    }

    #[test]
    fn margins_fit_every_label_and_a_long_legend_wraps_into_the_top_margin() {
        let annotator = Annotator::new().expect("fonts");
        let names = [
            "single",
            "aggregated",
            "self-distilled",
            "joint",
            "validation single",
            "view rotate 0°",
            "view rotate 90°",
            "view rotate 180°",
            "view rotate 270°",
        ];
        let wide = text(&names);
        let narrow = text(&names[..2]);
        let labels = axes(true).y_tick_labels();
        let one_row = annotator.margins(&narrow, 1000, &labels);
        let two_rows = annotator.margins(&wide, 1000, &labels);
        assert!(two_rows.top > one_row.top, "{two_rows:?} vs {one_row:?}");
        assert_eq!(two_rows.left, one_row.left);

        // Resolve a plot with those margins and check that nothing leaves the picture or its
        // margin (the renderer would put the plot exactly there).
        let (width, height) = (1000u32, 400u32);
        let m = two_rows;
        let axes = axes_at(
            [
                m.left,
                m.top,
                width - m.left - m.right,
                height - m.top - m.bottom,
            ],
            true,
        );
        let layout = annotator.layout(&wide, &axes, width);
        let rows: std::collections::BTreeSet<u32> = of(&layout, Role::Legend)
            .iter()
            .map(|t| t.anchor[1] as u32)
            .collect();
        assert!(rows.len() >= 2, "nine entries wrap: {rows:?}");
        let [left, top, w, h] = axes.plot.map(|v| v as f32);
        for item in &layout.texts {
            let [l, t, r, b] = annotator.bounds(item);
            assert!(
                l >= 0.0 && t >= 0.0,
                "{} starts outside: {l}, {t}",
                item.text
            );
            assert!(
                r <= width as f32 && b <= height as f32,
                "{} ends outside: {r}, {b}",
                item.text
            );
            let over_plot = r > left - 1.0 && l < left + w && b > top && t < top + h + 1.0;
            assert!(!over_plot, "{} lies on the plot", item.text);
        }
        // No two strings share pixels.
        for (i, a) in layout.texts.iter().enumerate() {
            for b in &layout.texts[i + 1..] {
                let [al, at, ar, ab] = annotator.bounds(a);
                let [bl, bt, br, bb] = annotator.bounds(b);
                let overlap = al < br && bl < ar && at < bb && bt < ab;
                assert!(!overlap, "{:?} overlaps {:?}", a.text, b.text);
            }
        }
    }

    #[test]
    fn text_blends_coverage_into_the_picture_and_stays_off_the_plot() {
        let annotator = Annotator::new().expect("fonts");
        let style = ViewStyle::dark();
        let (width, height) = (200u32, 120u32);
        let mut pixels: Vec<u8> = (0..width * height).flat_map(|_| style.background).collect();
        let axes = Axes {
            plot: [40, 30, 150, 60],
            x_range: (0.0, 1.0),
            y_range: (0.0, 1.0),
            log_y: false,
            x_ticks: Vec::new(),
            y_ticks: Vec::new(),
        };
        // A label anchored inside the plot must not touch it; one in the margin must be drawn.
        let layout = FigureLayout {
            texts: vec![
                TextItem {
                    role: Role::Title,
                    text: "inside".into(),
                    anchor: [60.0, 60.0],
                    align: Align::Start,
                    v_align: VAlign::CapCentre,
                },
                TextItem {
                    role: Role::Title,
                    text: "above".into(),
                    anchor: [40.0, 4.0],
                    align: Align::Start,
                    v_align: VAlign::CapTop,
                },
            ],
            swatches: Vec::new(),
        };
        annotator
            .draw(&mut pixels, (width, height), &axes, &layout, &style)
            .expect("draw");
        let at = |x: u32, y: u32| {
            let i = ((y * width + x) * 4) as usize;
            [pixels[i], pixels[i + 1], pixels[i + 2], pixels[i + 3]]
        };
        for y in 30..=90 {
            for x in 39..190 {
                assert_eq!(at(x, y), style.background, "({x}, {y}) on the plot changed");
            }
        }
        let inked: Vec<[u8; 4]> = (0..25)
            .flat_map(|y| (30..200).map(move |x| (x, y)))
            .map(|(x, y)| at(x, y))
            .filter(|p| *p != style.background)
            .collect();
        assert!(inked.len() > 30, "the title drew {} pixels", inked.len());
        // Every inked pixel lies between the background and the text colour.
        for p in inked {
            for c in 0..3 {
                assert!(
                    p[c] >= style.background[c] && p[c] <= style.text[c],
                    "{p:?}"
                );
            }
        }
        let mut short = vec![0u8; 10];
        assert!(
            annotator
                .draw(&mut short, (width, height), &axes, &layout, &style)
                .is_err()
        );
    }
}
