//! Curves: per-pixel-column min/max of each polyline (`reduce`), then anti-aliased lines over grid and axes (`draw`).

// Keep in sync with `CurvesParams` in src/gpu/gpu_data.rs.
struct CurvesParams {
    out_width: u32,
    out_height: u32,
    plot_left: u32,
    plot_top: u32,
    plot_width: u32,
    plot_height: u32,
    series_count: u32,
    log_y: u32,
    x_origin: f32,
    x_step: f32,
    y_top: f32,
    y_scale: f32,
    half_width: f32,
    background: u32,
    grid_colour: u32,
    axis_colour: u32,
    x_ticks: array<vec4<i32>, 4>,
    y_ticks: array<vec4<i32>, 4>,
}

// Keep in sync with `SeriesInfo` in src/gpu/gpu_data.rs.
struct SeriesInfo {
    y_offset: u32,
    x_offset: u32,
    len: u32,
    colour: u32,
    low_offset: u32,
}

const IMPLICIT_X: u32 = 0xffffffffu;
const NO_BAND: u32 = 0xffffffffu;
// Inputs at or above this are missing points; the CPU replaces non-finite values with it.
const MISSING: f32 = 3.0e38;
const LOG10_2: f32 = 0.30102999566398120;

@group(0) @binding(0) var<uniform> params: CurvesParams;
@group(0) @binding(1) var<storage, read> ys: array<f32>;
@group(0) @binding(2) var<storage, read> xs: array<f32>;
@group(0) @binding(3) var<storage, read> series: array<SeriesInfo>;
// Per series and plot column: (top, bottom) in texture pixels of what the polyline covers; top > bottom = nothing.
@group(0) @binding(4) var<storage, read_write> spans_out: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read> spans: array<vec2<f32>>;
@group(0) @binding(6) var output: texture_storage_2d<rgba8unorm, write>;

fn x_at(s: SeriesInfo, i: u32) -> f32 {
    if s.x_offset == IMPLICIT_X {
        return f32(i);
    }
    return xs[s.x_offset + i];
}

// The plotted y of point i of the line starting at `offset` in `ys` (log10 on a log axis), or MISSING.
fn y_at(offset: u32, i: u32) -> f32 {
    let y = ys[offset + i];
    if y >= MISSING {
        return MISSING;
    }
    if params.log_y != 0u {
        if y <= 0.0 {
            return MISSING;
        }
        return log2(y) * LOG10_2;
    }
    return y;
}

// First index whose x is not below `x` (x ascending).
fn lower_bound(s: SeriesInfo, x: f32) -> u32 {
    var lo = 0u;
    var hi = s.len;
    while lo < hi {
        let mid = (lo + hi) / 2u;
        if x_at(s, mid) < x {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

// The polyline's y where it crosses x, between points i - 1 and i; MISSING if either is.
fn crossing(s: SeriesInfo, offset: u32, i: u32, x: f32) -> f32 {
    if i == 0u || i >= s.len {
        return MISSING;
    }
    let ya = y_at(offset, i - 1u);
    let yb = y_at(offset, i);
    if ya >= MISSING || yb >= MISSING {
        return MISSING;
    }
    let xa = x_at(s, i - 1u);
    let xb = x_at(s, i);
    if xb <= xa {
        return yb;
    }
    return ya + (x - xa) / (xb - xa) * (yb - ya);
}

fn to_pixel(y: f32) -> f32 {
    let top = f32(params.plot_top);
    // Far-off values are clamped just outside the plot, where they can no longer touch a plot pixel.
    let margin = params.half_width + 2.0;
    return clamp(top + (params.y_top - y) * params.y_scale, top - margin, top + f32(params.plot_height) + margin);
}

// The (min, max) of the line at `offset` over points first..end and where it enters at x0 and leaves
// at x1; (MISSING, -MISSING) when it has nothing there.
fn column_range(s: SeriesInfo, offset: u32, first: u32, end: u32, x0: f32, x1: f32) -> vec2<f32> {
    var lo = MISSING;
    var hi = -MISSING;
    for (var i = first; i < end; i++) {
        let y = y_at(offset, i);
        if y < MISSING {
            lo = min(lo, y);
            hi = max(hi, y);
        }
    }
    let enter = crossing(s, offset, first, x0);
    if enter < MISSING {
        lo = min(lo, enter);
        hi = max(hi, enter);
    }
    let leave = crossing(s, offset, end, x1);
    if leave < MISSING {
        lo = min(lo, leave);
        hi = max(hi, leave);
    }
    return vec2<f32>(lo, hi);
}

// One invocation per (plot column, series): the min and max of the polyline over the column's x interval,
// i.e. of the points inside it and of the line where it enters and leaves, so no spike is ever dropped.
// A band covers everything from its low line's min to its high line's max, so the column is filled.
@compute @workgroup_size(LINEAR_WORKGROUP_SIZE)
fn reduce(@builtin(global_invocation_id) id: vec3<u32>) {
    let column = id.x;
    let index = id.y;
    if column >= params.plot_width || index >= params.series_count {
        return;
    }
    let s = series[index];
    let x0 = params.x_origin + f32(column) * params.x_step;
    let x1 = params.x_origin + f32(column + 1u) * params.x_step;
    let first = lower_bound(s, x0);
    let end = lower_bound(s, x1);
    var range = column_range(s, s.y_offset, first, end, x0, x1);
    if s.low_offset != NO_BAND {
        let low = column_range(s, s.low_offset, first, end, x0, x1);
        range = vec2<f32>(min(range.x, low.x), max(range.y, low.y));
    }
    let lo = range.x;
    let hi = range.y;
    var span = vec2<f32>(1.0, -1.0);
    if lo <= hi {
        span = vec2<f32>(to_pixel(hi), to_pixel(lo));
    }
    spans_out[index * params.plot_width + column] = span;
}

fn is_tick(px: i32, py: i32) -> bool {
    for (var i = 0u; i < 4u; i++) {
        if any(params.x_ticks[i] == vec4<i32>(px)) || any(params.y_ticks[i] == vec4<i32>(py)) {
            return true;
        }
    }
    return false;
}

fn plot_colour(x: u32, y: u32) -> vec4<f32> {
    var colour = unpack_rgba(params.background);
    let px = i32(x);
    let py = i32(y);
    let left = i32(params.plot_left);
    let top = i32(params.plot_top);
    let right = left + i32(params.plot_width);
    let bottom = top + i32(params.plot_height);
    // Axes sit just outside the plot so they never cover data: left of it and below it.
    let on_y_axis = px == left - 1 && py >= top && py <= bottom;
    let on_x_axis = py == bottom && px >= left - 1 && px < right;
    if on_y_axis || on_x_axis {
        return unpack_rgba(params.axis_colour);
    }
    if px < left || px >= right || py < top || py >= bottom {
        return colour;
    }
    if is_tick(px, py) {
        colour = unpack_rgba(params.grid_colour);
    }
    let column = px - left;
    let centre = f32(y) + 0.5;
    for (var index = 0u; index < params.series_count; index++) {
        var coverage = 0.0;
        // The line through this pixel is the union of the vertical spans of this and the adjacent columns,
        // each at its column's centre; coverage falls off with the distance to the nearest of them.
        for (var dc = -1; dc <= 1; dc++) {
            let c = column + dc;
            if c < 0 || c >= i32(params.plot_width) {
                continue;
            }
            let span = spans[index * params.plot_width + u32(c)];
            if span.x > span.y {
                continue;
            }
            let dy = max(max(span.x - centre, centre - span.y), 0.0);
            let dx = f32(abs(dc));
            let distance = sqrt(dx * dx + dy * dy);
            coverage = max(coverage, clamp(params.half_width + 0.5 - distance, 0.0, 1.0));
        }
        let line = unpack_rgba(series[index].colour);
        colour = vec4<f32>(mix(colour.rgb, line.rgb, coverage * line.a), 1.0);
    }
    return colour;
}

@compute @workgroup_size(WORKGROUP_SIZE, WORKGROUP_SIZE)
fn draw(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= params.out_width || id.y >= params.out_height {
        return;
    }
    textureStore(output, vec2<i32>(id.xy), plot_colour(id.x, id.y));
}
