//! The `sla` binary's global allocator: the system's, with every large block on a cache-line
//! boundary and offered to the kernel for 2 MB pages.
//!
//! **Cache lines.** glibc's `malloc` returns 16-byte boundaries. A channels-last activation of 16
//! channels has one 64-byte vector per pixel, so in three buffers out of four every vector the
//! kernels load or store straddled two cache lines. Large blocks (4 KB and up: the activations,
//! the padded frames, the Winograd buffers) start on a 64-byte boundary instead, placed inside a
//! system block one cache line longer (see [`system_layout`] for why not `posix_memalign`): the
//! ResNet-20 SLA step was faster in each of five alternating rounds of 10 steps, median 374.7 →
//! 367.0 ms (per round 3.9–28.4 ms), the convolutions' backward passes most (median 234.7 →
//! 224.9 ms; 2-core Zen 4).
//!
//! **Huge pages.** Where transparent huge pages are on only for the memory that asks for them
//! (`madvise`, the default of many distributions, Debian's included), a process that does not ask
//! gets 4 KB pages only. A training step streams every activation (25.7 MB for a 28×28×16 map of
//! ResNet-20's 512 images) through memory several times; on 4 KB pages that is a page-table walk
//! every 64 cache lines, and the hardware prefetchers stop at every page's end. Large blocks are
//! offered for huge pages right after they are allocated, before anything writes them, so their
//! pages are 2 MB from the first fault; with [`super::keep_freed_memory`] the heap keeps them from
//! step to step. In the ResNet-20 SLA step 481 of its 598 MB lay on 2 MB pages, and the step's
//! median over six alternating rounds went from 387.3 to 379.0 ms (the convolutions' forward
//! passes 113.1 → 108.8 ms), peak memory 582 → 584 MB. glibc's own switch
//! (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, its whole heap) did as much, 383.5 → 376.8 ms over
//! four rounds, but only from the environment at start-up.

use std::alloc::{GlobalAlloc, Layout, System};

/// The system allocator, with blocks of [`LARGE`] bytes and more on cache-line boundaries and
/// offered for 2 MB pages where they span one.
pub struct LargeBlockAllocator;

/// Blocks from this size on are large: a few pixels' worth of channels and up.
const LARGE: usize = 4096;

/// A cache line on x86-64 and on most arm64 cores.
const CACHE_LINE: usize = 64;

/// The size of a transparent huge page on x86-64 and on 4 KB-page arm64 kernels.
const HUGE_PAGE: usize = 2 << 20;

/// Whether a block is allocated as a large one: [`LARGE`] bytes or more, asking for no more than
/// a cache line's alignment (a larger one goes to the system allocator as it is).
fn is_large(layout: Layout) -> bool {
    layout.size() >= LARGE && layout.align() <= CACHE_LINE
}

/// What a large block of `size` bytes takes from the system allocator: a cache line more, at
/// `malloc`'s own alignment. Aligned by `malloc` itself (`posix_memalign`), the blocks left the
/// alignment's slack between them as free fragments: the ResNet-20 step's peak memory went from
/// 581 to 641–672 MB, ResNet-32's from 1.11 to 1.24–1.26 GB.
/// `None` where that is more than any block can hold.
fn system_layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(CACHE_LINE)?, 16).ok()
}

/// The cache-line boundary inside the system's block `raw` where a large block starts, with the
/// distance back to `raw` written in the word before it. The system layout asks for 16-byte
/// alignment, so the boundary lies 16 to 64 bytes in: room for the word, and the block's bytes
/// end inside the extra cache line.
///
/// # Safety
/// `raw` must be a live block of [`system_layout`]`(size)` for some size.
unsafe fn place(raw: *mut u8) -> *mut u8 {
    let offset = offset(raw);
    // SAFETY: offset ≤ CACHE_LINE lies inside the block, and the word before it (offset ≥ 16,
    // as the block is 16-byte aligned) too, at a word boundary.
    unsafe {
        let block = raw.add(offset);
        block.cast::<usize>().sub(1).write(offset);
        block
    }
}

/// How far into the system's block `raw` a large block starts: at its first cache-line boundary
/// past the offset word ([`place`]).
fn offset(raw: *const u8) -> usize {
    CACHE_LINE - raw.addr() % CACHE_LINE
}

/// The system's block a large block was placed in (see [`place`]).
///
/// # Safety
/// `block` must come from [`place`] and be live.
unsafe fn system_block(block: *mut u8) -> (*mut u8, usize) {
    // SAFETY: `place` wrote the offset in the word before the block, inside the system's block.
    unsafe {
        let offset = block.cast::<usize>().sub(1).read();
        (block.sub(offset), offset)
    }
}

// SAFETY: a small block (or one asking for more than a cache line's alignment) is the system
// allocator's, as asked. A large one is placed at the first cache line inside a system block one
// cache line longer, which records where it is, and goes back to the system whole; a
// reallocation moves the bytes to the new block's boundary, or copies them to a new block when
// it crosses between small and large. The huge-page advice changes neither a block's address nor
// its contents.
unsafe impl GlobalAlloc for LargeBlockAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract.
        unsafe { allocate(layout, System::alloc) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract; the offset word lies before the block, whose bytes stay
        // zero.
        unsafe { allocate(layout, System::alloc_zeroed) }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: the block was allocated for this layout: by the system as it is when small, else
        // placed in a system block of the system layout (which existed, or `alloc` had failed).
        unsafe {
            match (is_large(layout), system_layout(layout.size())) {
                (true, Some(system)) => System.dealloc(system_block(block).0, system),
                _ => System.dealloc(block, layout),
            }
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract: new_size, rounded up to the alignment, does not overflow.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (is_large(layout), is_large(new_layout)) {
            // SAFETY: a small block is the system's, for this layout.
            (false, false) => unsafe { System.realloc(block, layout, new_size) },
            // SAFETY: the system block is live and of the system layout for the old size; the new
            // one holds new_size + a cache line bytes, so the bytes kept (the smaller size, from
            // the old offset, at most a cache line in) lie inside it, and `copy` may overlap.
            (true, true) => unsafe {
                let (Some(system), Some(new_system)) =
                    (system_layout(layout.size()), system_layout(new_size))
                else {
                    return std::ptr::null_mut();
                };
                let (raw, old_offset) = system_block(block);
                let kept = layout.size().min(new_size);
                let raw = System.realloc(raw, system, new_system.size());
                if raw.is_null() {
                    return raw;
                }
                // The bytes first, then the offset word: it may lie among the bytes moved.
                let moved = raw.add(old_offset);
                let boundary = raw.add(offset(raw));
                if boundary != moved {
                    std::ptr::copy(moved, boundary, kept);
                }
                let block = place(raw);
                advise_huge_pages(block, new_size);
                block
            },
            // Crossing between small and large: a new block, the values copied.
            // SAFETY: non-zero sizes (the caller's contract); both blocks hold the copied bytes.
            _ => unsafe {
                let new = self.alloc(new_layout);
                if !new.is_null() {
                    std::ptr::copy_nonoverlapping(block, new, layout.size().min(new_size));
                    self.dealloc(block, layout);
                }
                new
            },
        }
    }
}

/// A block for `layout` from the system allocator's `system_alloc` (`alloc` or `alloc_zeroed`):
/// as it is when small, else placed on a cache line inside a system block of the system layout
/// and offered for huge pages.
///
/// # Safety
/// `layout` must have a non-zero size.
unsafe fn allocate(layout: Layout, system_alloc: unsafe fn(&System, Layout) -> *mut u8) -> *mut u8 {
    if !is_large(layout) {
        // SAFETY: the caller's contract.
        return unsafe { system_alloc(&System, layout) };
    }
    let Some(system) = system_layout(layout.size()) else {
        return std::ptr::null_mut();
    };
    // SAFETY: a non-zero layout; `place` takes a live block of the system layout.
    unsafe {
        let raw = system_alloc(&System, system);
        if raw.is_null() {
            return raw;
        }
        let block = place(raw);
        advise_huge_pages(block, layout.size());
        block
    }
}

/// Ask the kernel to back the whole 2 MB pages inside `len` bytes from `block` with huge pages.
/// Advice only: where the kernel has none to give, or huge pages are off, the pages stay 4 KB.
fn advise_huge_pages(block: *mut u8, len: usize) {
    if block.is_null() || len < HUGE_PAGE {
        return;
    }
    let start = block.addr().next_multiple_of(HUGE_PAGE);
    let end = (block.addr() + len) / HUGE_PAGE * HUGE_PAGE;
    if end <= start {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: the range lies inside the block just allocated, and MADV_HUGEPAGE only sets a flag
    // on its mapping (an error, such as EINVAL on a kernel without huge pages, changes nothing).
    unsafe {
        libc::madvise(
            block.with_addr(start).cast(),
            end - start,
            libc::MADV_HUGEPAGE,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(len: usize) -> Layout {
        Layout::from_size_align(len, 4).unwrap()
    }

    /// Byte i of a block holds `i % 251` (a prime, so a shift by a cache line shows).
    fn value(i: usize) -> u8 {
        (i % 251) as u8
    }

    /// # Safety
    /// `block` must be live for `len` bytes.
    unsafe fn fill(block: *mut u8, len: usize) {
        for i in 0..len {
            // SAFETY: the caller's contract.
            unsafe { block.add(i).write(value(i)) };
        }
    }

    /// # Safety
    /// `block` must be live for `len` bytes.
    unsafe fn holds_values(block: *const u8, len: usize) -> bool {
        // SAFETY: the caller's contract.
        (0..len).all(|i| unsafe { block.add(i).read() } == value(i))
    }

    #[test]
    fn large_blocks_start_on_cache_lines_and_keep_their_values() {
        let allocator = LargeBlockAllocator;
        // SAFETY: non-zero layouts; every block is read and written within its size and freed
        // with the layout it has.
        unsafe {
            // Several large blocks at once, so they do not all start where one was freed.
            let blocks: Vec<_> = (0..8)
                .map(|i| {
                    let layout = bytes(LARGE + 16 * i);
                    let block = allocator.alloc(layout);
                    assert!(block.addr().is_multiple_of(CACHE_LINE));
                    fill(block, layout.size());
                    (block, layout)
                })
                .collect();
            for &(block, layout) in &blocks {
                assert!(holds_values(block, layout.size()));
            }
            for (block, layout) in blocks {
                allocator.dealloc(block, layout);
            }
            // Small to large, large to larger, to smaller but large, and back to small: the
            // values that fit are kept, and a large block starts on a cache line each time.
            let mut block = allocator.alloc(bytes(100));
            fill(block, 100);
            let mut len = 100;
            for new_len in [3 * HUGE_PAGE, 5 * HUGE_PAGE, 2 * LARGE, LARGE, 200] {
                block = allocator.realloc(block, bytes(len), new_len);
                assert!(!block.is_null());
                assert!(
                    holds_values(block, len.min(new_len)),
                    "{len} -> {new_len} bytes"
                );
                if new_len >= LARGE {
                    assert!(block.addr().is_multiple_of(CACHE_LINE));
                }
                fill(block, new_len);
                len = new_len;
            }
            allocator.dealloc(block, bytes(len));
            // Zeroed large blocks, and a large alignment passed on to the system as it is.
            let zeroed = allocator.alloc_zeroed(bytes(3 * HUGE_PAGE));
            assert!(zeroed.addr().is_multiple_of(CACHE_LINE));
            assert!((0..3 * HUGE_PAGE).all(|i| zeroed.add(i).read() == 0));
            allocator.dealloc(zeroed, bytes(3 * HUGE_PAGE));
            let page = Layout::from_size_align(3 * LARGE, 4096).unwrap();
            let aligned = allocator.alloc(page);
            assert!(aligned.addr().is_multiple_of(4096));
            fill(aligned, page.size());
            assert!(holds_values(aligned, page.size()));
            allocator.dealloc(aligned, page);
        }
    }
}
