//! Confusion heatmap: colour-mapped count cells (or signed differences of two runs' counts), row-normalised
//! or raw, linear or log, block grid lines, one highlighted cell.

// Keep in sync with `ConfusionParams` in src/gpu/gpu_data.rs.
struct ConfusionParams {
    n: u32,
    block: u32,
    out_width: u32,
    out_height: u32,
    normalise_rows: u32,
    log_scale: u32,
    highlight_row: u32,
    highlight_col: u32,
    max_count: u32,
    grid_colour: u32,
    highlight_colour: u32,
    // 1: cells are i32 differences, drawn in the diverging half of the table around its middle.
    signed: u32,
}

const NO_HIGHLIGHT: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> params: ConfusionParams;
// Row-major n×n counts (or the i32 bits of differences): row = true label, column = predicted label.
@group(0) @binding(1) var<storage, read> counts: array<u32>;
@group(0) @binding(2) var<storage, read> row_sums: array<u32>;
// 256 packed gamma-space colours for counts (viridis), then 256 for differences (blue, white, red);
// interpolated linearly.
@group(0) @binding(3) var<storage, read> colormap: array<u32>;
@group(0) @binding(4) var output: texture_storage_2d<rgba8unorm, write>;

// Cell under pixel p along an axis of `size` pixels; integer maths so the CPU reference agrees exactly.
fn cell_of(p: u32, size: u32) -> u32 {
    return p * params.n / size;
}

// First pixel of cell c along an axis of `size` pixels.
fn cell_start(c: u32, size: u32) -> i32 {
    return i32((c * size + params.n - 1u) / params.n);
}

fn colormap_sample(offset: u32, t: f32) -> vec4<f32> {
    let s = clamp(t, 0.0, 1.0) * 255.0;
    let i = min(u32(floor(s)), 254u);
    return mix(unpack_rgba(colormap[offset + i]), unpack_rgba(colormap[offset + i + 1u]), s - f32(i));
}

fn in_ring(p: i32, start: i32, end: i32) -> bool {
    return p >= start - 1 && p <= end;
}

fn in_core(p: i32, start: i32, end: i32) -> bool {
    return p >= start + 1 && p < end - 1;
}

fn cell_colour(x: u32, y: u32) -> vec4<f32> {
    let col = cell_of(x, params.out_width);
    let row = cell_of(y, params.out_height);
    if params.highlight_row != NO_HIGHLIGHT {
        // A two-pixel ring straddling the cell's edge stays visible even on one-pixel cells.
        let x0 = cell_start(params.highlight_col, params.out_width);
        let x1 = cell_start(params.highlight_col + 1u, params.out_width);
        let y0 = cell_start(params.highlight_row, params.out_height);
        let y1 = cell_start(params.highlight_row + 1u, params.out_height);
        let px = i32(x);
        let py = i32(y);
        if in_ring(px, x0, x1) && in_ring(py, y0, y1) && !(in_core(px, x0, x1) && in_core(py, y0, y1)) {
            return unpack_rgba(params.highlight_colour);
        }
    }
    if params.block > 1u {
        // The first pixel of each block (but the first block) is the line between blocks.
        let x_line = x > 0u && col / params.block != cell_of(x - 1u, params.out_width) / params.block;
        let y_line = y > 0u && row / params.block != cell_of(y - 1u, params.out_height) / params.block;
        if x_line || y_line {
            return unpack_rgba(params.grid_colour);
        }
    }
    var denominator = params.max_count;
    if params.normalise_rows != 0u {
        denominator = row_sums[row];
    }
    let cell = counts[row * params.n + col];
    var magnitude = cell;
    var direction = 1.0;
    var offset = 0u;
    if params.signed != 0u {
        let d = bitcast<i32>(cell);
        magnitude = u32(abs(d));
        direction = f32(sign(d));
        offset = 256u;
    }
    var scaled = 0.0;
    if denominator > 0u {
        if params.log_scale != 0u {
            scaled = log(1.0 + f32(magnitude)) / log(1.0 + f32(denominator));
        } else {
            scaled = f32(magnitude) / f32(denominator);
        }
    }
    var t = scaled;
    if params.signed != 0u {
        t = 0.5 + 0.5 * direction * scaled;
    }
    return colormap_sample(offset, t);
}

@compute @workgroup_size(WORKGROUP_SIZE, WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= params.out_width || id.y >= params.out_height {
        return;
    }
    textureStore(output, vec2<i32>(id.xy), cell_colour(id.x, id.y));
}
