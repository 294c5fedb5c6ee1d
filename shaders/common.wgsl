//! Helpers every view shader shares; src/gpu/mod.rs prepends them (after the generated constants).

// Colours travel as packed gamma-space RGBA, red in the low byte (src/gpu/mod.rs `pack_rgba`).
fn unpack_rgba(c: u32) -> vec4<f32> {
    return vec4<f32>(
        f32(c & 0xffu),
        f32((c >> 8u) & 0xffu),
        f32((c >> 16u) & 0xffu),
        f32(c >> 24u),
    ) / 255.0;
}
