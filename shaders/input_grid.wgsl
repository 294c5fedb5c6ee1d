//! Input grid: one row per sample, one column per transformation, nearest-scaled tiles with coloured borders.

// Keep in sync with `GridParams` in src/gpu/gpu_data.rs.
struct GridParams {
    samples: u32,
    transforms: u32,
    channels: u32,
    src_width: u32,
    src_height: u32,
    tile_width: u32,
    tile_height: u32,
    border: u32,
    gap: u32,
    out_width: u32,
    out_height: u32,
    background: u32,
}

@group(0) @binding(0) var<uniform> params: GridParams;
// The u8 CHW images of all tiles, tile b*M+j after tile b*M+j-1, four bytes per word (little-endian).
@group(0) @binding(1) var<storage, read> pixels: array<u32>;
// One packed border colour per tile.
@group(0) @binding(2) var<storage, read> tile_colours: array<u32>;
@group(0) @binding(3) var output: texture_storage_2d<rgba8unorm, write>;

fn pixel_byte(i: u32) -> u32 {
    return (pixels[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
}

fn grid_colour(x: u32, y: u32) -> vec4<f32> {
    let background = unpack_rgba(params.background);
    if x < params.gap || y < params.gap {
        return background;
    }
    let outer_w = params.tile_width + 2u * params.border;
    let outer_h = params.tile_height + 2u * params.border;
    let gx = x - params.gap;
    let gy = y - params.gap;
    let col = gx / (outer_w + params.gap);
    let row = gy / (outer_h + params.gap);
    let lx = gx % (outer_w + params.gap);
    let ly = gy % (outer_h + params.gap);
    if col >= params.transforms || row >= params.samples || lx >= outer_w || ly >= outer_h {
        return background;
    }
    let tile = row * params.transforms + col;
    if lx < params.border || ly < params.border || lx >= params.border + params.tile_width
        || ly >= params.border + params.tile_height {
        return unpack_rgba(tile_colours[tile]);
    }
    // Nearest source pixel to the tile pixel's centre, in integers so the CPU reference agrees exactly.
    let sx = (2u * (lx - params.border) + 1u) * params.src_width / (2u * params.tile_width);
    let sy = (2u * (ly - params.border) + 1u) * params.src_height / (2u * params.tile_height);
    let plane = params.src_width * params.src_height;
    let at = tile * params.channels * plane + sy * params.src_width + sx;
    let r = pixel_byte(at);
    var g = r;
    var b = r;
    if params.channels == 3u {
        g = pixel_byte(at + plane);
        b = pixel_byte(at + 2u * plane);
    }
    return vec4<f32>(f32(r), f32(g), f32(b), 255.0) / 255.0;
}

@compute @workgroup_size(WORKGROUP_SIZE, WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= params.out_width || id.y >= params.out_height {
        return;
    }
    textureStore(output, vec2<i32>(id.xy), grid_colour(id.x, id.y));
}
