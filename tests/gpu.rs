//! GPU views: every shader validated by naga, and every renderer's read-back compared with its CPU
//! reference (and with hand-computed pixels) on the adapter found: lavapipe in CI.
//!
//! Tolerances: the input grid only moves bytes and must match exactly. The confusion heatmap and the
//! curves may differ by 1 per channel: the GPU's division, `log`, `log2`, `sqrt` and `mix` are not
//! bit-identical to Rust's, and a value a hair either side of a rounding boundary stores the
//! neighbouring byte (with 0 instead, 1 to 160 channels per picture fail, each off by exactly 1, on
//! lavapipe and on llvmpipe GL alike). Every test that uses the tolerance also shows that a wrong
//! picture exceeds it.

use std::path::Path;
use std::sync::OnceLock;

use eframe::wgpu;
use eframe::wgpu::naga;
use sla::gpu::annotate::{Annotator, FigureText, LegendEntry};
use sla::gpu::style::{category_colour, diverging_table, viridis_table};
use sla::gpu::{
    BorderMode, ConfusionInput, ConfusionRenderer, ConfusionView, CurvesInput, CurvesRenderer,
    CurvesView, GpuContext, GpuError, GridInput, GridLayout, InputGridRenderer, Margins,
    RenderTarget, Series, ViewStyle, confusion, curves, fit_margins, input_grid, pack_rgba,
    read_back, render_chart, render_run, shader_sources,
};
use sla::train::{EvalMetrics, SampleGrid, TrainingSnapshot};

const CONFUSION_TOLERANCE: u8 = 1;
const CURVES_TOLERANCE: u8 = 1;

/// One device for all tests; a machine without one fails every GPU test with what to install.
fn ctx() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| {
        GpuContext::headless()
            .unwrap_or_else(|e| panic!("the GPU view tests need a wgpu adapter: {e}"))
    })
}

fn render_with(
    width: u32,
    height: u32,
    record: impl FnOnce(&GpuContext, &mut wgpu::CommandEncoder, &RenderTarget) -> Result<(), GpuError>,
) -> Vec<u8> {
    let ctx = ctx();
    let target = RenderTarget::new(&ctx.device, width, height).expect("target");
    ctx.submit(|encoder| record(ctx, encoder, &target))
        .expect("render");
    read_back(ctx, &target).expect("read back")
}

/// Channels that differ by more than `tolerance`.
fn mismatches(a: &[u8], b: &[u8], tolerance: u8) -> usize {
    assert_eq!(a.len(), b.len(), "pictures of different sizes");
    a.iter()
        .zip(b)
        .filter(|(x, y)| x.abs_diff(**y) > tolerance)
        .count()
}

fn assert_matches(name: &str, gpu: &[u8], cpu: &[u8], width: u32, tolerance: u8) {
    let bad = mismatches(gpu, cpu, tolerance);
    if bad > 0 {
        let first = gpu
            .iter()
            .zip(cpu)
            .position(|(x, y)| x.abs_diff(*y) > tolerance)
            .unwrap_or(0)
            / 4;
        let (x, y) = (first as u32 % width, first as u32 / width);
        let dir = std::env::temp_dir();
        let height = (gpu.len() / 4) as u32 / width;
        for (suffix, pixels) in [("gpu", gpu), ("cpu", cpu)] {
            let path = dir.join(format!("sla-{name}-{suffix}.png"));
            let _ =
                image::RgbaImage::from_raw(width, height, pixels.to_vec()).map(|i| i.save(&path));
        }
        panic!(
            "{name}: {bad} channels differ by more than {tolerance}; first at ({x}, {y}): gpu {:?} cpu {:?} \
             (both pictures saved in {})",
            &gpu[first * 4..first * 4 + 4],
            &cpu[first * 4..first * 4 + 4],
            dir.display()
        );
    }
}

fn pixel(image: &[u8], width: u32, x: u32, y: u32) -> [u8; 4] {
    let i = (y * width + x) as usize * 4;
    [image[i], image[i + 1], image[i + 2], image[i + 3]]
}

/// Deterministic test data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 32) as u32
    }

    fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }

    fn unit(&mut self) -> f32 {
        self.next() as f32 / u32::MAX as f32
    }
}

// ---- shaders ---------------------------------------------------------------------------------

fn validate(source: &str) -> Result<naga::Module, String> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .map_err(|e| format!("{e:?}"))?;
    Ok(module)
}

#[test]
fn every_shader_passes_naga_validation_with_the_shared_workgroup_size() {
    let sources = shader_sources();
    for shader in &sources {
        let module = validate(&shader.source)
            .unwrap_or_else(|e| panic!("shaders/{}.wgsl: {e}", shader.name));
        assert!(
            !module.entry_points.is_empty(),
            "{} has no entry point",
            shader.name
        );
        for entry in &module.entry_points {
            let size = entry.workgroup_size;
            let expected = if size[1] == 1 {
                [sla::gpu::LINEAR_WORKGROUP_SIZE, 1, 1]
            } else {
                [sla::gpu::WORKGROUP_SIZE, sla::gpu::WORKGROUP_SIZE, 1]
            };
            assert_eq!(size, expected, "{}::{}", shader.name, entry.name);
        }
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("src/gpu/{}.rs", shader.name))
                .exists(),
            "shaders/{}.wgsl has no src/gpu/{0}.rs",
            shader.name
        );
    }
    let names: Vec<&str> = sources.iter().map(|s| s.name).collect();
    assert_eq!(names, ["input_grid", "confusion", "curves"]);
    // Every view shader on disk is compiled by some renderer (common.wgsl is prepended to all of them).
    for file in
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders")).expect("shaders/")
    {
        let name = file
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .replace(".wgsl", "");
        assert!(
            name == "common" || names.contains(&name.as_str()),
            "shaders/{name}.wgsl is unused"
        );
    }
    // The check can fail: a misspelt binding is rejected.
    let broken = sources[0]
        .source
        .replace("textureStore(output,", "textureStore(outputs,");
    assert!(
        validate(&broken).is_err(),
        "naga accepted a shader with an unknown identifier"
    );
}

#[test]
fn a_headless_adapter_is_found_and_can_write_storage_textures() {
    let ctx = ctx();
    eprintln!("GPU view tests run on {}", ctx.describe());
    assert!(!ctx.adapter_info.name.is_empty());
    assert!(ctx.device.limits().max_storage_textures_per_shader_stage >= 1);
    assert!(ctx.device.limits().max_texture_dimension_2d >= 4096);
    let message = GpuError::NoAdapter("none".into()).to_string();
    assert!(message.contains("mesa-vulkan-drivers"), "{message}");
}

#[test]
fn the_device_eframe_would_create_can_build_every_renderer_on_every_adapter() {
    let eframe::egui_wgpu::WgpuSetup::CreateNew(setup) = sla::gpu::wgpu_setup_for_compute() else {
        panic!("the compute setup should let eframe create its device");
    };
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapters = pollster::block_on(
        instance.enumerate_adapters(wgpu::Backends::VULKAN | wgpu::Backends::GL),
    );
    assert!(
        !adapters.is_empty(),
        "no Vulkan or GL adapter: install mesa-vulkan-drivers"
    );
    for adapter in adapters {
        let info = adapter.get_info();
        let descriptor = (setup.device_descriptor)(&adapter);
        // egui's own choice on GL allows no storage textures (pitfall 2); ours must.
        assert!(
            descriptor
                .required_limits
                .max_storage_textures_per_shader_stage
                >= 1,
            "{info:?}"
        );
        assert!(
            descriptor
                .required_limits
                .max_storage_buffers_per_shader_stage
                >= 4,
            "{info:?}"
        );
        let (device, _queue) = pollster::block_on(adapter.request_device(&descriptor))
            .unwrap_or_else(|e| panic!("{} ({:?}): {e}", info.name, info.backend));
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let _views = (
            InputGridRenderer::new(&device),
            ConfusionRenderer::new(&device),
            CurvesRenderer::new(&device),
        );
        let error = pollster::block_on(scope.pop());
        assert!(
            error.is_none(),
            "{} ({:?}): {error:?}",
            info.name,
            info.backend
        );
        eprintln!("renderers build on {} ({:?})", info.name, info.backend);
    }
}

// ---- input grid ------------------------------------------------------------------------------

struct GridData {
    grid: SampleGrid,
}

fn grid_data(
    samples: usize,
    transforms: usize,
    channels: usize,
    height: usize,
    width: usize,
    seed: u64,
) -> GridData {
    let mut rng = Rng(seed);
    let tiles = samples * transforms;
    let pixels = (0..tiles * channels * height * width)
        .map(|_| rng.below(256) as u8)
        .collect();
    let true_labels: Vec<u32> = (0..tiles)
        .map(|t| (t / transforms * transforms + t % transforms) as u32)
        .collect();
    let predicted_labels = true_labels
        .iter()
        .map(|&l| if rng.below(3) == 0 { l + 1 } else { l })
        .collect();
    GridData {
        grid: SampleGrid {
            samples,
            num_transforms: transforms,
            channels,
            height,
            width,
            pixels,
            true_labels,
            predicted_labels,
            support_samples: 0,
        },
    }
}

#[test]
fn input_grid_rgb_tiles_match_reference_and_hand_computed_pixels() {
    let data = grid_data(5, 4, 3, 7, 5, 7);
    let layout = GridLayout {
        tile_width: 12,
        tile_height: 15,
        border: 2,
        gap: 3,
    };
    let style = ViewStyle::dark();
    let input = GridInput::from_sample_grid(&data.grid, BorderMode::Correctness, layout, style);
    let (w, h) = input.size();
    assert_eq!((w, h), (4 * (16 + 3) + 3, 5 * (19 + 3) + 3));
    // A target larger than the grid: the rest must be background.
    let (width, height) = (w + 5, h + 3);
    let mut renderer = InputGridRenderer::new(&ctx().device);
    let gpu = render_with(width, height, |ctx, enc, t| {
        renderer.render(ctx, enc, &input, t)
    });
    let cpu = input_grid::reference_image(&input, width, height).expect("reference");
    assert_matches("input_grid_rgb", &gpu, &cpu, width, 0);

    assert_eq!(pixel(&gpu, width, 0, 0), style.background);
    assert_eq!(pixel(&gpu, width, width - 1, height - 1), style.background);
    let g = &data.grid;
    for (s, j) in [(0, 0), (1, 2), (4, 3)] {
        let (x0, y0) = (3 + j as u32 * 19, 3 + s as u32 * 22);
        let tile = s * 4 + j;
        let border = if g.true_labels[tile] == g.predicted_labels[tile] {
            style.correct
        } else {
            style.wrong
        };
        assert_eq!(
            pixel(&gpu, width, x0, y0),
            border,
            "border of tile ({s}, {j})"
        );
        assert_eq!(
            pixel(&gpu, width, x0 + 15, y0 + 18),
            border,
            "last border pixel"
        );
        assert_eq!(
            pixel(&gpu, width, x0 + 16, y0 + 19),
            style.background,
            "gap after the tile"
        );
        // Last inner pixel (11, 14) samples source (11.5 * 5 / 12, 14.5 * 7 / 15) = (4, 6).
        let plane = 7 * 5;
        let at = tile * 3 * plane + 6 * 5 + 4;
        let expected = [
            g.pixels[at],
            g.pixels[at + plane],
            g.pixels[at + 2 * plane],
            255,
        ];
        assert_eq!(
            pixel(&gpu, width, x0 + 2 + 11, y0 + 2 + 14),
            expected,
            "tile ({s}, {j})"
        );
        // First inner pixel samples source (0, 0).
        let at = tile * 3 * plane;
        let expected = [
            g.pixels[at],
            g.pixels[at + plane],
            g.pixels[at + 2 * plane],
            255,
        ];
        assert_eq!(pixel(&gpu, width, x0 + 2, y0 + 2), expected);
    }
    assert_eq!(
        layout.tile_at(5, 4, 3 + 19 + 5, 3 + 22 * 2 + 1),
        Some((2, 1))
    );
    assert_eq!(layout.tile_at(5, 4, 1, 1), None);
}

/// A few-shot episode's grid: the support samples, which have no verdict, are bordered by their
/// transformation's colour; the queries after them by their verdict.
#[test]
fn input_grid_of_an_episode_borders_support_by_transformation_and_queries_by_verdict() {
    let mut data = grid_data(4, 3, 1, 6, 6, 11);
    data.grid.support_samples = 2;
    // Support tiles carry their true label as prediction; make one query wrong and one right.
    data.grid.predicted_labels[2 * 3] = data.grid.true_labels[2 * 3] + 1;
    data.grid.predicted_labels[3 * 3 + 1] = data.grid.true_labels[3 * 3 + 1];
    let layout = GridLayout {
        tile_width: 8,
        tile_height: 8,
        border: 2,
        gap: 2,
    };
    let style = ViewStyle::dark();
    let input = GridInput::from_sample_grid(&data.grid, BorderMode::Correctness, layout, style);
    let (width, height) = input.size();
    let mut renderer = InputGridRenderer::new(&ctx().device);
    let gpu = render_with(width, height, |ctx, enc, t| {
        renderer.render(ctx, enc, &input, t)
    });
    let cpu = input_grid::reference_image(&input, width, height).expect("reference");
    assert_matches("input_grid_episode", &gpu, &cpu, width, 0);
    // Tile (sample s, view j) starts at (2 + 14 j, 2 + 14 s).
    let border = |s: u32, j: u32| pixel(&gpu, width, 2 + 14 * j, 2 + 14 * s);
    for s in 0..2 {
        for j in 0..3 {
            assert_eq!(
                border(s, j),
                category_colour(j as usize),
                "support ({s}, {j})"
            );
        }
    }
    assert_eq!(border(2, 0), style.wrong);
    assert_eq!(border(3, 1), style.correct);
    // Without support samples the same tiles are judged: a check that can fail.
    data.grid.support_samples = 0;
    let judged = GridInput::from_sample_grid(&data.grid, BorderMode::Correctness, layout, style);
    let plain = input_grid::reference_image(&judged, width, height).expect("reference");
    assert_ne!(plain, cpu);
}

#[test]
fn input_grid_of_1536_grey_tiles_with_transformation_borders() {
    let data = grid_data(64, 24, 1, 8, 8, 11);
    let layout = GridLayout::scaled(8, 8, 2);
    let input = GridInput::from_sample_grid(
        &data.grid,
        BorderMode::Transform,
        layout,
        ViewStyle::light(),
    );
    let (width, height) = input.size();
    let mut renderer = InputGridRenderer::new(&ctx().device);
    let gpu = render_with(width, height, |ctx, enc, t| {
        renderer.render(ctx, enc, &input, t)
    });
    let cpu = input_grid::reference_image(&input, width, height).expect("reference");
    assert_matches("input_grid_grey", &gpu, &cpu, width, 0);
    let pitch = 16 + 4 + 2;
    for j in [0u32, 5, 23] {
        assert_eq!(
            pixel(&gpu, width, 2 + j * pitch, 2 + 63 * pitch),
            category_colour(j as usize)
        );
        // Grey: the three channels are the same source byte (scale 2: inner pixel (3, 5) is source (1, 2)).
        let v = data.grid.pixels[(63 * 24 + j as usize) * 64 + 2 * 8 + 1];
        assert_eq!(
            pixel(&gpu, width, 2 + j * pitch + 2 + 3, 2 + 63 * pitch + 2 + 5),
            [v, v, v, 255]
        );
    }
}

#[test]
fn input_grid_rejects_inconsistent_input() {
    let data = grid_data(2, 3, 3, 4, 4, 3);
    let layout = GridLayout::scaled(4, 4, 1);
    let mut input = GridInput::from_sample_grid(
        &data.grid,
        BorderMode::Correctness,
        layout,
        ViewStyle::dark(),
    );
    input.pixels = &data.grid.pixels[1..];
    assert!(matches!(
        input_grid::reference_image(&input, 8, 8),
        Err(GpuError::InvalidInput(_))
    ));
    let mut renderer = InputGridRenderer::new(&ctx().device);
    let target = RenderTarget::new(&ctx().device, 8, 8).expect("target");
    let result = ctx().submit(|enc| renderer.render(ctx(), enc, &input, &target));
    assert!(matches!(result, Err(GpuError::InvalidInput(_))));
}

// ---- confusion -------------------------------------------------------------------------------

fn joint_counts(k: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng(seed);
    let mut counts: Vec<u32> = (0..k * k)
        .map(|_| if rng.below(4) == 0 { rng.below(20) } else { 0 })
        .collect();
    for i in 0..k {
        counts[i * k + i] += 50 + rng.below(200);
    }
    counts
}

#[test]
fn confusion_full_joint_matrix_matches_reference_with_blocks_and_highlight() {
    let (n, m) = (3, 4);
    let k = n * m;
    let mut counts = joint_counts(k, 5);
    // Row 0 perfectly classified: its diagonal is the top of the map, the rest the bottom.
    counts[..k].fill(0);
    counts[0] = 90;
    let style = ViewStyle::dark();
    let input = ConfusionInput {
        k,
        counts: &counts,
        block: m,
        normalise_rows: true,
        log_scale: false,
        highlight: Some((5, 7)),
        view: ConfusionView::Full,
        style,
        minus: None,
    };
    // 100 pixels over 12 cells: cells of 8 and 9 pixels, to exercise the integer cell mapping.
    let (width, height) = (100, 100);
    let mut renderer = ConfusionRenderer::new(&ctx().device);
    let gpu = render_with(width, height, |ctx, enc, t| {
        renderer.render(ctx, enc, &input, t)
    });
    let cpu = confusion::reference_image(&input, width, height).expect("reference");
    assert_matches("confusion_full", &gpu, &cpu, width, CONFUSION_TOLERANCE);

    let viridis = viridis_table();
    let top = viridis[255].to_le_bytes();
    let bottom = viridis[0].to_le_bytes();
    assert_eq!(top, [253, 231, 37, 255], "viridis ends in yellow");
    assert_eq!(
        pixel(&gpu, width, 4, 4),
        top,
        "perfect row 0: diagonal cell"
    );
    assert_eq!(
        pixel(&gpu, width, 12, 4),
        bottom,
        "perfect row 0: off-diagonal cell"
    );
    // Column 4 starts at ceil(4 * 100 / 12) = 34: the line between transformation blocks 0 and 1.
    assert_eq!(pixel(&gpu, width, 34, 20), style.grid_line);
    assert_ne!(pixel(&gpu, width, 33, 20), style.grid_line);
    assert_eq!(
        pixel(&gpu, width, 20, 67),
        style.grid_line,
        "row 8 starts at 67"
    );
    // Highlighted cell (5, 7) spans x 59..67, y 42..50: the ring covers one pixel either side of its edge.
    for (x, y) in [(58, 46), (59, 46), (66, 46), (67, 46), (62, 41), (62, 50)] {
        assert_eq!(
            pixel(&gpu, width, x, y),
            style.highlight,
            "ring at ({x}, {y})"
        );
    }
    assert_ne!(
        pixel(&gpu, width, 62, 46),
        style.highlight,
        "the cell itself stays visible"
    );
    assert_eq!(confusion::cell_at(k, width, height, 62, 46), Some((5, 7)));

    // The tolerance still catches a wrong picture: raw instead of row-normalised.
    let raw = confusion::reference_image(
        &ConfusionInput {
            normalise_rows: false,
            ..input
        },
        width,
        height,
    )
    .expect("reference");
    assert!(mismatches(&gpu, &raw, CONFUSION_TOLERANCE) > 1000);
}

#[test]
fn confusion_marginals_are_block_sums_and_render_like_the_reference() {
    // N = 2 classes × M = 2 transformations; joint label y * 2 + j.
    #[rustfmt::skip]
    let counts = [
        5, 1, 0, 2,
        0, 7, 3, 0,
        1, 0, 4, 4,
        0, 2, 1, 6,
    ];
    let input = ConfusionInput {
        block: 2,
        view: ConfusionView::ClassMarginal,
        ..ConfusionInput::classes(4, &counts)
    };
    let (n, classes) = input.matrix().expect("class marginal");
    assert_eq!(
        (n, &classes[..]),
        (2, &[5 + 1 + 7, 2 + 3, 1 + 2, 4 + 4 + 1 + 6][..])
    );
    let transforms = ConfusionInput {
        view: ConfusionView::TransformMarginal,
        ..input
    };
    let (n, by_transform) = transforms.matrix().expect("transformation marginal");
    assert_eq!(
        (n, &by_transform[..]),
        (2, &[5 + 4 + 1, 1 + 2 + 4, 3 + 1, 7 + 6 + 2][..])
    );

    let big_k = 40;
    let big = joint_counts(big_k, 9);
    let mut renderer = ConfusionRenderer::new(&ctx().device);
    for (view, log_scale, normalise_rows) in [
        (ConfusionView::ClassMarginal, false, true),
        (ConfusionView::TransformMarginal, true, false),
        (ConfusionView::Full, true, true),
    ] {
        let input = ConfusionInput {
            k: big_k,
            counts: &big,
            block: 4,
            normalise_rows,
            log_scale,
            highlight: Some((1, 2)),
            view,
            style: ViewStyle::light(),
            minus: None,
        };
        let (width, height) = (160, 120);
        let gpu = render_with(width, height, |ctx, enc, t| {
            renderer.render(ctx, enc, &input, t)
        });
        let cpu = confusion::reference_image(&input, width, height).expect("reference");
        assert_matches(
            &format!("confusion_{view:?}_{log_scale}"),
            &gpu,
            &cpu,
            width,
            CONFUSION_TOLERANCE,
        );
    }
    let bad = ConfusionInput {
        block: 3,
        ..ConfusionInput::classes(4, &counts)
    };
    assert!(matches!(bad.matrix(), Err(GpuError::InvalidInput(_))));
}

#[test]
fn confusion_difference_is_b_minus_a_with_rows_summing_to_zero_in_the_diverging_map() {
    // Hand-made: 3 classes, 10 test images each, run B moves a few of them between cells.
    #[rustfmt::skip]
    let a = [
        8, 2, 0,
        1, 9, 0,
        0, 3, 7,
    ];
    #[rustfmt::skip]
    let b = [
        6, 4, 0,
        1, 9, 0,
        0, 1, 9,
    ];
    let input = ConfusionInput {
        normalise_rows: false,
        minus: Some(&a),
        ..ConfusionInput::classes(3, &b)
    };
    let (n, difference) = input
        .difference()
        .expect("same test set")
        .expect("a difference");
    #[rustfmt::skip]
    assert_eq!((n, difference), (3, vec![
        -2, 2, 0,
        0, 0, 0,
        0, -2, 2,
    ]));
    // 3 cells over 99 pixels: 33 each. Raw scale: the largest difference (2) reaches either end
    // of the diverging map, blue for fewer images in B, red for more; no difference is its middle.
    let diverging = diverging_table();
    let (width, height) = (99, 99);
    let mut renderer = ConfusionRenderer::new(&ctx().device);
    let gpu = render_with(width, height, |ctx, enc, t| {
        renderer.render(ctx, enc, &input, t)
    });
    let cpu = confusion::reference_image(&input, width, height).expect("reference");
    assert_matches(
        "confusion_difference",
        &gpu,
        &cpu,
        width,
        CONFUSION_TOLERANCE,
    );
    assert_eq!(pixel(&gpu, width, 16, 16), diverging[0].to_le_bytes());
    assert_eq!(pixel(&gpu, width, 49, 16), diverging[255].to_le_bytes());
    let [r, g, bl, _] = diverging[0].to_le_bytes();
    assert!(bl > r && bl > g, "fewer is blue: {r} {g} {bl}");
    let [r, g, bl, _] = diverging[255].to_le_bytes();
    assert!(r > g && r > bl, "more is red: {r} {g} {bl}");
    let zero = pixel(&gpu, width, 49, 49);
    assert!(
        zero[..3].iter().all(|&c| c > 230),
        "no difference is white: {zero:?}"
    );
    // The tolerance still catches a wrong picture: the counts of B drawn as counts.
    let counts_only = confusion::reference_image(
        &ConfusionInput {
            minus: None,
            ..input
        },
        width,
        height,
    )
    .expect("reference");
    assert!(mismatches(&gpu, &counts_only, CONFUSION_TOLERANCE) > 1000);

    // A joint matrix: B takes 7 images of each row off the diagonal into the next label. Every
    // view's difference is the two views' cell differences, every row sums to zero, and each
    // renders like its reference, per row and on a log scale too.
    let (classes, m) = (5, 4);
    let k = classes * m;
    let a = joint_counts(k, 31);
    let mut b = a.clone();
    for row in 0..k {
        b[row * k + row] -= 7;
        b[row * k + (row + 1) % k] += 7;
    }
    for (view, normalise_rows, log_scale) in [
        (ConfusionView::Full, true, false),
        (ConfusionView::ClassMarginal, false, true),
        (ConfusionView::TransformMarginal, true, true),
    ] {
        let input = ConfusionInput {
            block: m,
            view,
            normalise_rows,
            log_scale,
            highlight: Some((1, 1)),
            minus: Some(&a),
            ..ConfusionInput::classes(k, &b)
        };
        let (n, difference) = input.difference().expect("valid").expect("a difference");
        let (_, b_view) = input.matrix().expect("B");
        let (_, a_view) = ConfusionInput {
            counts: &a,
            minus: None,
            ..input
        }
        .matrix()
        .expect("A");
        for (cell, d) in difference.iter().enumerate() {
            assert_eq!(*d, i64::from(b_view[cell]) - i64::from(a_view[cell]));
        }
        for row in difference.chunks_exact(n) {
            assert_eq!(row.iter().sum::<i64>(), 0, "{view:?}: {row:?}");
        }
        assert!(difference.iter().any(|&d| d != 0), "{view:?}");
        let (width, height) = (120, 120);
        let gpu = render_with(width, height, |ctx, enc, t| {
            renderer.render(ctx, enc, &input, t)
        });
        let cpu = confusion::reference_image(&input, width, height).expect("reference");
        assert_matches(
            &format!("confusion_difference_{view:?}"),
            &gpu,
            &cpu,
            width,
            CONFUSION_TOLERANCE,
        );
    }

    // Runs evaluated on different test sets cannot be subtracted, and the error says why.
    let mut other = b.clone();
    other[0] += 1;
    let mismatched = ConfusionInput {
        block: m,
        minus: Some(&a),
        ..ConfusionInput::classes(k, &other)
    };
    match mismatched.difference() {
        Err(GpuError::InvalidInput(why)) => assert!(why.contains("same test set"), "{why}"),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn confusion_400_joint_labels_in_800_pixels() {
    let k = 400;
    let counts = joint_counts(k, 21);
    let input = ConfusionInput {
        block: 4,
        log_scale: true,
        highlight: Some((123, 321)),
        ..ConfusionInput::classes(k, &counts)
    };
    let mut renderer = ConfusionRenderer::new(&ctx().device);
    let gpu = render_with(800, 800, |ctx, enc, t| renderer.render(ctx, enc, &input, t));
    let cpu = confusion::reference_image(&input, 800, 800).expect("reference");
    assert_matches("confusion_400", &gpu, &cpu, 800, CONFUSION_TOLERANCE);
}

// ---- curves ----------------------------------------------------------------------------------

fn no_margins() -> Margins {
    Margins {
        left: 0,
        right: 0,
        top: 0,
        bottom: 0,
    }
}

#[test]
fn smoothing_is_a_debiased_moving_average_over_the_full_data() {
    let mut out = Vec::new();
    curves::smooth(&[3.0; 50], 0.9, &mut out);
    assert!(
        out.iter().all(|&v| v == 3.0),
        "a constant stays constant: {out:?}"
    );
    out.clear();
    curves::smooth(&[1.0, 0.0, f32::NAN, 1.0], 0.5, &mut out);
    // sums 0.5, 0.25, -, 0.625 over norms 0.5, 0.75, -, 0.875.
    assert_eq!(out[0], 1.0);
    assert!((out[1] - 1.0 / 3.0).abs() < 1e-6);
    assert!(out[2].is_nan());
    assert!((out[3] - 0.625 / 0.875).abs() < 1e-6);
}

#[test]
fn a_flat_line_lands_on_the_hand_computed_rows() {
    let ys = vec![0.5f32; 1000];
    let mut style = ViewStyle::dark();
    style.background = [0, 0, 0, 255];
    let input = CurvesInput {
        series: vec![Series {
            ys: &ys,
            xs: None,
            colour: [255, 255, 255, 255],
            smooth: true,
            low: None,
        }],
        smoothing: 0.0,
        raw_shadow: false,
        view: CurvesView {
            y_range: Some((0.0, 1.0)),
            margins: no_margins(),
            line_width: 1.5,
            style,
            ..CurvesView::default()
        },
    };
    let (width, height) = (64, 100);
    let mut renderer = CurvesRenderer::new(&ctx().device);
    let mut axes = None;
    let gpu = render_with(width, height, |ctx, enc, t| {
        axes = Some(renderer.render(ctx, enc, &input, t)?);
        Ok(())
    });
    // y = 0.5 is pixel 50.0: rows 49 and 50 (centres 0.5 away) get 0.75 + 0.5 - 0.5 = 75% white over
    // whatever lies below (background, or a grid line); rows 1.5 away get nothing.
    let axes = axes.expect("axes");
    let x_grid: Vec<u32> = axes.x_ticks.iter().map(|t| t.pixel).collect();
    let y_grid: Vec<u32> = axes.y_ticks.iter().map(|t| t.pixel).collect();
    assert!(!x_grid.is_empty() && y_grid.contains(&50), "{axes:?}");
    let under = |x: u32, y: u32| {
        if x_grid.contains(&x) || y_grid.contains(&y) {
            style.grid_line
        } else {
            style.background
        }
    };
    for x in [0, 31, 63] {
        for y in [49, 50] {
            let expected = under(x, y).map(|c| (f32::from(c) * 0.25 + 255.0 * 0.75).round() as u8);
            assert_eq!(pixel(&gpu, width, x, y)[..3], expected[..3], "({x}, {y})");
        }
        for y in [10, 48, 51, 90] {
            assert_eq!(pixel(&gpu, width, x, y), under(x, y), "({x}, {y})");
        }
    }
    let cpu = curves::reference_image(&input, width, height).expect("reference");
    assert_matches("curves_flat", &gpu, &cpu, width, CURVES_TOLERANCE);
}

#[test]
fn a_single_spike_in_a_million_points_survives_downsampling() {
    let mut ys = vec![1.0f32; 1_000_000];
    ys[654_321] = 9.0;
    let input = CurvesInput {
        series: vec![Series {
            ys: &ys,
            xs: None,
            colour: [255, 0, 0, 255],
            smooth: true,
            low: None,
        }],
        smoothing: 0.0,
        raw_shadow: false,
        view: CurvesView {
            y_range: Some((0.0, 10.0)),
            margins: no_margins(),
            ..CurvesView::default()
        },
    };
    let (width, height) = (200, 100);
    let mut renderer = CurvesRenderer::new(&ctx().device);
    let gpu = render_with(width, height, |ctx, enc, t| {
        renderer.render(ctx, enc, &input, t).map(|_| ())
    });
    // 999,999 x units over 200 columns: the spike is in column 130 and reaches y = 9, pixel row 10.
    let column = (654_321.0 / (999_999.0 / 200.0)) as u32;
    assert_eq!(column, 130);
    for y in 10..90 {
        assert_eq!(
            pixel(&gpu, width, column, y)[..3],
            [255, 0, 0],
            "row {y} of the spike"
        );
    }
    assert_eq!(
        pixel(&gpu, width, column - 2, 40)[..3],
        ViewStyle::dark().background[..3]
    );
    let cpu = curves::reference_image(&input, width, height).expect("reference");
    assert_matches("curves_spike", &gpu, &cpu, width, CURVES_TOLERANCE);
}

#[test]
fn a_band_fills_between_its_low_and_high_lines_and_only_there() {
    // Two evaluations: the interval 0.3–0.5 at x = 0 widening to 0.2–0.8 at x = 10, over a black
    // plot of 0..1 (row = 100 · (1 − y)).
    let (high, low) = ([0.5f32, 0.8], [0.3f32, 0.2]);
    let xs = [0.0f32, 10.0];
    let mut style = ViewStyle::dark();
    style.background = [0, 0, 0, 255];
    let band = [0, 0, 255, 255];
    let input = CurvesInput {
        series: vec![Series {
            ys: &high,
            xs: Some(&xs),
            colour: band,
            smooth: false,
            low: Some(&low),
        }],
        smoothing: 0.0,
        raw_shadow: false,
        view: CurvesView {
            y_range: Some((0.0, 1.0)),
            margins: no_margins(),
            line_width: 1.0,
            style,
            ..CurvesView::default()
        },
    };
    let (width, height) = (100, 100);
    let mut renderer = CurvesRenderer::new(&ctx().device);
    let mut axes = None;
    let gpu = render_with(width, height, |ctx, enc, t| {
        axes = Some(renderer.render(ctx, enc, &input, t)?);
        Ok(())
    });
    let axes = axes.expect("axes");
    let on_grid = |x: u32, y: u32| {
        axes.x_ticks.iter().any(|t| t.pixel == x) || axes.y_ticks.iter().any(|t| t.pixel == y)
    };
    // Column 50 is at x = 5: the band runs from y = 0.65 (row 35) down to y = 0.25 (row 75).
    let column = 50;
    let filled = |y: u32| pixel(&gpu, width, column, y)[..3] == band[..3];
    for y in (38..73).filter(|&y| !on_grid(column, y)) {
        assert!(filled(y), "row {y} inside the band is not filled");
    }
    for y in [5, 25, 85, 95].into_iter().filter(|&y| !on_grid(column, y)) {
        assert!(!filled(y), "row {y} outside the band is filled");
    }
    let cpu = curves::reference_image(&input, width, height).expect("reference");
    assert_matches("curves_band", &gpu, &cpu, width, CURVES_TOLERANCE);
    // The same high values as a plain line leave the inside empty: the fill is the band's doing.
    let line = CurvesInput {
        series: vec![Series {
            low: None,
            ..input.series[0]
        }],
        ..input.clone()
    };
    let gpu_line = render_with(width, height, |ctx, enc, t| {
        renderer.render(ctx, enc, &line, t).map(|_| ())
    });
    assert_ne!(pixel(&gpu_line, width, column, 55)[..3], band[..3]);
}

fn noisy_series(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    (0..len)
        .map(|i| 2.5 * (-(i as f32) / (len as f32 / 4.0)).exp() + 0.05 + 0.3 * rng.unit())
        .collect()
}

#[test]
fn several_series_with_gaps_sparse_x_log_y_and_smoothing_match_reference() {
    let loss = noisy_series(200_000, 1);
    let mut gappy = noisy_series(200_000, 2);
    gappy[50_000..60_000].fill(f32::NAN);
    let sparse_x: Vec<f32> = (0..25).map(|i| i as f32 * 8_000.0 + 500.0).collect();
    let sparse_y: Vec<f32> = (0..25).map(|i| 0.1 + 0.035 * i as f32).collect();
    let mut renderer = CurvesRenderer::new(&ctx().device);
    for (log_y, smoothing) in [(false, 0.0), (true, 0.95), (false, 0.6)] {
        let input = CurvesInput {
            series: vec![
                Series {
                    ys: &loss,
                    xs: None,
                    colour: category_colour(0),
                    smooth: true,
                    low: None,
                },
                Series {
                    ys: &gappy,
                    xs: None,
                    colour: [255, 127, 14, 180],
                    smooth: false,
                    low: None,
                },
                Series {
                    ys: &sparse_y,
                    xs: Some(&sparse_x),
                    colour: category_colour(2),
                    smooth: true,
                    low: None,
                },
            ],
            smoothing,
            raw_shadow: true,
            view: CurvesView {
                log_y,
                line_width: 2.0,
                ..CurvesView::default()
            },
        };
        let (width, height) = (480, 240);
        let gpu = render_with(width, height, |ctx, enc, t| {
            renderer.render(ctx, enc, &input, t).map(|_| ())
        });
        let cpu = curves::reference_image(&input, width, height).expect("reference");
        let name = format!("curves_log{log_y}_smooth{smoothing}");
        assert_matches(&name, &gpu, &cpu, width, CURVES_TOLERANCE);
        // A wrong picture exceeds the tolerance: the same data smoothed differently.
        let other = CurvesInput {
            smoothing: if smoothing > 0.0 { 0.0 } else { 0.9 },
            ..input.clone()
        };
        let wrong = curves::reference_image(&other, width, height).expect("reference");
        assert!(
            mismatches(&gpu, &wrong, CURVES_TOLERANCE) > 500,
            "{name}: smoothing makes no visible difference"
        );
    }
}

#[test]
fn curves_reject_descending_x() {
    let (xs, ys) = ([0.0f32, 2.0, 1.0], [1.0f32, 2.0, 3.0]);
    let input = CurvesInput {
        series: vec![Series {
            ys: &ys,
            xs: Some(&xs),
            colour: [255; 4],
            smooth: true,
            low: None,
        }],
        smoothing: 0.0,
        raw_shadow: false,
        view: CurvesView::default(),
    };
    assert!(matches!(
        curves::reference_image(&input, 10, 10),
        Err(GpuError::InvalidInput(_))
    ));
}

#[test]
fn renderers_reuse_and_grow_their_buffers_across_frames_and_targets() {
    let mut renderer = CurvesRenderer::new(&ctx().device);
    let long = noisy_series(300_000, 4);
    let short = noisy_series(100, 5);
    for (ys, (width, height)) in [
        (&short, (80, 60)),
        (&long, (300, 150)),
        (&short, (300, 150)),
        (&long, (90, 70)),
    ] {
        let input = CurvesInput {
            series: vec![Series {
                ys,
                xs: None,
                colour: category_colour(3),
                smooth: true,
                low: None,
            }],
            smoothing: 0.5,
            raw_shadow: false,
            view: CurvesView::default(),
        };
        let gpu = render_with(width, height, |ctx, enc, t| {
            renderer.render(ctx, enc, &input, t).map(|_| ())
        });
        let cpu = curves::reference_image(&input, width, height).expect("reference");
        assert_matches("curves_reuse", &gpu, &cpu, width, CURVES_TOLERANCE);
    }
    // The same target drawn twice: the second frame reuses the bind group and redraws the new data.
    let mut grid = InputGridRenderer::new(&ctx().device);
    let target = RenderTarget::new(&ctx().device, 64, 64).expect("target");
    for seed in [1, 2] {
        let data = grid_data(2, 2, 3, 6, 6, seed);
        let input = GridInput::from_sample_grid(
            &data.grid,
            BorderMode::None,
            GridLayout::scaled(6, 6, 3),
            ViewStyle::dark(),
        );
        ctx()
            .submit(|enc| grid.render(ctx(), enc, &input, &target))
            .expect("render");
        let gpu = read_back(ctx(), &target).expect("read back");
        let cpu = input_grid::reference_image(&input, 64, 64).expect("reference");
        assert_matches("grid_reuse", &gpu, &cpu, 64, 0);
    }
}

// ---- headless export -------------------------------------------------------------------------

/// Whether `p` is anti-aliased text: between the background and the text colour in every channel
/// and not the background itself.
fn is_text(p: [u8; 4], style: &ViewStyle) -> bool {
    p != style.background
        && (0..3).all(|c| {
            let (lo, hi) = (
                style.background[c].min(style.text[c]),
                style.background[c].max(style.text[c]),
            );
            (lo..=hi).contains(&p[c])
        })
}

/// Text pixels of `image` in columns `xs` and rows `ys`.
fn text_pixels(
    image: &[u8],
    width: u32,
    xs: std::ops::Range<u32>,
    ys: std::ops::Range<u32>,
    style: &ViewStyle,
) -> usize {
    ys.flat_map(|y| xs.clone().map(move |x| (x, y)))
        .filter(|&(x, y)| is_text(pixel(image, width, x, y), style))
        .count()
}

#[test]
fn an_annotated_chart_labels_title_ticks_and_legend_and_leaves_the_plot_untouched() {
    let style = ViewStyle::dark();
    let steps: Vec<f32> = (0..600).map(|i| i as f32 * 2.5).collect();
    let (baseline, sla) = (noisy_series(600, 4), noisy_series(600, 5));
    let input = CurvesInput {
        series: vec![
            Series {
                ys: &baseline,
                xs: Some(&steps),
                colour: category_colour(0),
                smooth: false,
                low: None,
            },
            Series {
                ys: &sla,
                xs: Some(&steps),
                colour: category_colour(1),
                smooth: false,
                low: None,
            },
        ],
        smoothing: 0.0,
        raw_shadow: false,
        view: CurvesView {
            log_y: true,
            line_width: 2.0,
            style,
            ..CurvesView::default()
        },
    };
    let text = FigureText {
        title: "train loss".into(),
        x_name: "step".into(),
        legend: vec![
            LegendEntry {
                name: "baseline".into(),
                colour: category_colour(0),
            },
            LegendEntry {
                name: "sla".into(),
                colour: category_colour(1),
            },
        ],
    };
    let (width, height) = (1000, 400);
    let annotator = Annotator::new().expect("fonts");
    let mut renderer = CurvesRenderer::new(&ctx().device);
    let margins = fit_margins(
        ctx(),
        &mut renderer,
        &annotator,
        &input,
        &text,
        (width, height),
    )
    .expect("fit_margins");
    let figure = render_chart(
        ctx(),
        &mut renderer,
        &annotator,
        (&input, &text),
        (width, height),
        margins,
    )
    .expect("render_chart");
    assert_eq!(figure.view.margins, margins);
    let [left, top, plot_width, plot_height] = figure.axes.plot;
    assert!(
        figure.view.margins.top >= 20 && figure.view.margins.left >= 40,
        "margins leave room for text: {:?}",
        figure.view.margins
    );
    assert!(figure.axes.x_ticks.len() >= 3 && figure.axes.y_ticks.len() >= 2);

    // The same chart without text, drawn by the renderer alone with the same view.
    let plain_input = CurvesInput {
        view: figure.view,
        ..input.clone()
    };
    let mut plain_renderer = CurvesRenderer::new(&ctx().device);
    let plain = render_with(width, height, |ctx, enc, t| {
        plain_renderer.render(ctx, enc, &plain_input, t).map(|_| ())
    });
    // The plot and both axis lines: identical, pixel for pixel.
    for y in top..=top + plot_height {
        for x in left - 1..left + plot_width {
            assert_eq!(
                pixel(&figure.pixels, width, x, y),
                pixel(&plain, width, x, y),
                "({x}, {y}) in the plot changed"
            );
        }
    }
    // Around the plot the renderer leaves background, so every text pixel is the annotation's.
    assert_eq!(text_pixels(&plain, width, 0..width, 0..top, &style), 0);
    assert_eq!(
        text_pixels(&plain, width, 0..left - 1, 0..height, &style),
        0
    );

    // The title, at the plot's left edge in the top margin.
    let title = text_pixels(&figure.pixels, width, left..left + 80, 0..top, &style);
    assert!(title > 60, "{title} text pixels in the title area");
    // A label left of every y tick, within a few rows of its grid line, and under every x tick.
    for tick in &figure.axes.y_ticks {
        let rows = tick.pixel.saturating_sub(4)..tick.pixel + 5;
        let n = text_pixels(&figure.pixels, width, 0..left - 1, rows, &style);
        assert!(n > 10, "{n} text pixels next to the y tick {tick:?}");
    }
    let below = top + plot_height + 1;
    for tick in &figure.axes.x_ticks {
        let columns = tick.pixel.saturating_sub(4)..(tick.pixel + 5).min(width);
        let n = text_pixels(&figure.pixels, width, columns, below..below + 20, &style);
        assert!(n > 5, "{n} text pixels under the x tick {tick:?}");
    }
    // The axis name, below the tick labels and centred under the plot.
    let centre = left + plot_width / 2;
    let name = text_pixels(
        &figure.pixels,
        width,
        centre - 30..centre + 30,
        below + 20..height,
        &style,
    );
    assert!(name > 30, "{name} text pixels in the x-axis name");

    // The legend: a swatch of each series' colour in series order, each followed by its name.
    let layout = annotator.layout(&text, &figure.axes, width);
    assert_eq!(layout.swatches.len(), 2);
    let mut previous_right = left;
    for (swatch, entry) in layout.swatches.iter().zip(&text.legend) {
        let [x, y, w, h] = swatch.rect;
        assert!(x > previous_right && y + h < top, "{swatch:?}");
        for sy in y..y + h {
            for sx in x..x + w {
                assert_eq!(
                    pixel(&figure.pixels, width, sx, sy),
                    entry.colour,
                    "swatch of {} at ({sx}, {sy})",
                    entry.name
                );
            }
        }
        let n = text_pixels(&figure.pixels, width, x + w..x + w + 30, 0..top, &style);
        assert!(n > 15, "{n} text pixels in the name of {}", entry.name);
        previous_right = x + w;
    }
}

fn fake_run(dir: &Path) -> TrainingSnapshot {
    let (n, m) = (3, 4);
    let data = grid_data(2, m, 3, 8, 8, 17);
    let snapshot = TrainingSnapshot {
        metrics: EvalMetrics::default(),
        class_names: vec!["cat".into(), "dog".into(), "ship".into()],
        transform_names: vec![
            "rot0".into(),
            "rot90".into(),
            "rot180".into(),
            "rot270".into(),
        ],
        joint_confusion: joint_counts(n * m, 3),
        class_confusion: vec![40, 3, 1, 5, 30, 2, 0, 4, 44],
        row_predictions: Vec::new(),
        samples: data.grid,
        train_class_counts: Vec::new(),
        top_losses: Vec::new(),
    };
    std::fs::write(
        dir.join("snapshot.json"),
        serde_json::to_string(&snapshot).expect("json"),
    )
    .expect("write");
    let metrics: Vec<String> = (1..=5)
        .map(|e| {
            let m = EvalMetrics {
                epoch: e,
                step: e as u64 * 40,
                train_loss: 2.0 / e as f64,
                eval_loss: 2.2 / e as f64,
                single_acc: 0.5 + 0.08 * e as f64,
                agg_acc: Some(0.55 + 0.08 * e as f64),
                sd_acc: None,
                joint_acc: Some(0.3 + 0.1 * e as f64),
                per_transform_acc: [0.5, 0.45, 0.4, 0.42]
                    .iter()
                    .map(|a| a + 0.07 * e as f64)
                    .collect(),
                validation_single_acc: None,
                elapsed_s: e as f64,
                ..Default::default()
            };
            serde_json::to_string(&m).expect("json")
        })
        .collect();
    std::fs::write(dir.join("metrics.jsonl"), metrics.join("\n") + "\n").expect("write");
    let mut csv = String::from("step,epoch,loss,lr\n");
    let loss = noisy_series(200, 8);
    for (i, l) in loss.iter().enumerate() {
        csv += &format!("{},{},{l},0.1\n", i + 1, i / 40 + 1);
    }
    std::fs::write(dir.join("steps.csv"), csv).expect("write");
    snapshot
}

#[test]
fn render_run_writes_the_four_views_of_a_run_folder() {
    let run = tempfile::tempdir().expect("tempdir");
    let out = run.path().join("pictures");
    let snapshot = fake_run(run.path());
    let written = render_run(run.path(), &out, ctx()).expect("render_run");
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "inputs.png",
            "confusion.png",
            "confusion_classes.png",
            "curves.png"
        ]
    );
    let load = |name: &str| image::open(out.join(name)).expect(name).to_rgba8();

    let inputs = load("inputs.png");
    let grid = GridInput::from_sample_grid(
        &snapshot.samples,
        BorderMode::Correctness,
        GridLayout::scaled(8, 8, 8),
        ViewStyle::dark(),
    );
    assert_eq!(inputs.dimensions(), grid.size());
    let (w, h) = grid.size();
    assert_matches(
        "run_inputs",
        inputs.as_raw(),
        &input_grid::reference_image(&grid, w, h).expect("ref"),
        w,
        0,
    );

    let classes = load("confusion_classes.png");
    assert_eq!(classes.dimensions(), (801, 801), "3 cells of 267 pixels");
    let reference = confusion::reference_image(
        &ConfusionInput::classes(3, &snapshot.class_confusion),
        801,
        801,
    )
    .expect("reference");
    assert_matches(
        "run_classes",
        classes.as_raw(),
        &reference,
        801,
        CONFUSION_TOLERANCE,
    );

    let joint = load("confusion.png");
    assert_eq!(joint.dimensions(), (804, 804), "12 cells of 67 pixels");
    let full = ConfusionInput {
        block: 4,
        ..ConfusionInput::classes(12, &snapshot.joint_confusion)
    };
    let reference = confusion::reference_image(&full, 804, 804).expect("reference");
    assert_matches(
        "run_joint",
        joint.as_raw(),
        &reference,
        804,
        CONFUSION_TOLERANCE,
    );

    let charts = load("curves.png");
    assert_eq!(
        charts.dimensions(),
        (1000, 400 + 400 + 200),
        "loss, accuracy, learning rate"
    );
    // The accuracy chart (below the loss) shows the single-view line in the first category
    // colour, over more pixels than its legend swatch (18×4) alone could cover.
    let single = category_colour(0);
    let drawn = (400..800)
        .flat_map(|y| (0..1000).map(move |x| (x, y)))
        .filter(|&(x, y)| charts.get_pixel(x, y).0 == single)
        .count();
    assert!(drawn > 200, "no single-accuracy line in the accuracy chart");
    // Each chart carries its title and legend above its plot (the top 20 rows of each chart).
    let style = ViewStyle::dark();
    for (chart, top) in [("loss", 0), ("accuracy", 400), ("learning rate", 800)] {
        let n = text_pixels(charts.as_raw(), 1000, 0..1000, top..top + 20, &style);
        assert!(n > 100, "{n} text pixels at the top of the {chart} chart");
    }
}

#[test]
fn render_run_reports_missing_and_malformed_files() {
    let run = tempfile::tempdir().expect("tempdir");
    let out = run.path().join("out");
    let missing = render_run(run.path(), &out, ctx());
    assert!(
        matches!(missing, Err(GpuError::Run(ref e)) if e.is_not_found() && e.to_string().contains("snapshot.json")),
        "{missing:?}"
    );
    fake_run(run.path());
    std::fs::write(
        run.path().join("steps.csv"),
        "step,epoch,loss,lr\n1,1,0.5,0.1\n2,1,oops,0.1\n3,1,0.4,0.1\n",
    )
    .expect("write");
    let malformed = render_run(run.path(), &out, ctx());
    assert!(
        matches!(&malformed, Err(GpuError::Run(e)) if e.to_string().contains("line 3")),
        "{malformed:?}"
    );
    // A torn final line (a writer killed mid-line) is skipped: the run still renders.
    std::fs::write(
        run.path().join("steps.csv"),
        "step,epoch,loss,lr\n1,1,0.5,0.1\n2,1,0.4",
    )
    .expect("write");
    assert_eq!(
        render_run(run.path(), &out, ctx())
            .expect("a torn tail is skipped")
            .len(),
        4
    );
    std::fs::remove_file(run.path().join("steps.csv")).expect("remove");
    std::fs::remove_file(run.path().join("metrics.jsonl")).expect("remove");
    assert_eq!(
        render_run(run.path(), &out, ctx())
            .expect("a run without curves yet")
            .len(),
        4
    );
}

#[test]
fn packed_colours_are_little_endian_rgba() {
    assert_eq!(pack_rgba([1, 2, 3, 4]), 0x0403_0201);
}
