//! The `sla` binary's global allocator: the system's, with every large block on a cache-line
//! boundary and offered to the kernel for 2 MB pages.
//!
//! **Cache lines.** glibc's `malloc` returns 16-byte boundaries. A channels-last activation of 16
//! channels has one 64-byte vector per pixel, so in three buffers out of four every vector the
//! kernels load or store straddled two cache lines. Large blocks (4 KB and up: the activations,
//! the padded frames, the Winograd buffers) start on a 64-byte boundary instead: the ResNet-20
//! SLA step was faster in each of five alternating rounds of 10 steps, median 374.7 → 367.0 ms
//! (per round 3.9–28.4 ms), the convolutions' backward passes most (median 234.7 → 224.9 ms;
//! 2-core Zen 4).
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

/// The layout the system allocator is asked for: a large block's aligned to a cache line at
/// least. A function of the caller's layout alone, so a block is freed with the layout it was
/// allocated with.
fn system_layout(layout: Layout) -> Layout {
    if layout.size() >= LARGE {
        layout.align_to(CACHE_LINE).unwrap_or(layout)
    } else {
        layout
    }
}

// SAFETY: every block comes from `System` with `system_layout` of the caller's layout, and goes
// back to it with the same; a reallocation that changes that layout copies the block whole. The
// huge-page advice changes neither a block's address nor its contents.
unsafe impl GlobalAlloc for LargeBlockAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract; the system layout is no smaller.
        let block = unsafe { System.alloc(system_layout(layout)) };
        advise_huge_pages(block, layout.size());
        block
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let block = unsafe { System.alloc_zeroed(system_layout(layout)) };
        advise_huge_pages(block, layout.size());
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: the block was allocated with this system layout (see `alloc`).
        unsafe { System.dealloc(block, system_layout(layout)) }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract: new_size, rounded up to the alignment, does not overflow.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if system_layout(new_layout).align() == system_layout(layout).align() {
            // SAFETY: the block was allocated with this system layout.
            let block = unsafe { System.realloc(block, system_layout(layout), new_size) };
            advise_huge_pages(block, new_size);
            return block;
        }
        // Growing into a large block (or shrinking out of one): a new block, the values copied.
        // SAFETY: a non-zero size (the caller's contract); both blocks hold the copied bytes.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(block, new, layout.size().min(new_size));
                self.dealloc(block, layout);
            }
            new
        }
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

    /// Allocate `layout` from the allocator, check its alignment and fill it with its indices.
    unsafe fn filled(allocator: &LargeBlockAllocator, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's non-zero layout; the writes stay inside the block.
        unsafe {
            let block = allocator.alloc(layout);
            assert!(!block.is_null());
            assert!(block.addr().is_multiple_of(layout.align()));
            for i in 0..layout.size() {
                *block.add(i) = i as u8;
            }
            block
        }
    }

    fn holds_indices(block: *const u8, len: usize) -> bool {
        // SAFETY: the caller passes a live block of at least len bytes.
        (0..len).all(|i| unsafe { *block.add(i) } == i as u8)
    }

    #[test]
    fn large_blocks_start_on_cache_lines_and_keep_their_values() {
        let allocator = LargeBlockAllocator;
        let f32s = |len: usize| Layout::array::<f32>(len).unwrap();
        // SAFETY: non-zero layouts; every block is read within its size and freed with its layout.
        unsafe {
            // Large blocks, several at once (so they do not all start where one was freed).
            let blocks: Vec<_> = (0..8)
                .map(|i| (filled(&allocator, f32s(1024 + 4 * i)), f32s(1024 + 4 * i)))
                .collect();
            for &(block, layout) in &blocks {
                assert!(block.addr().is_multiple_of(CACHE_LINE));
                assert!(holds_indices(block, layout.size()));
            }
            for (block, layout) in blocks {
                allocator.dealloc(block, layout);
            }
            // Growing from small to large moves the values onto a cache line, then within large.
            let small = filled(&allocator, f32s(100));
            let grown = allocator.realloc(small, f32s(100), 3 * HUGE_PAGE);
            assert!(grown.addr().is_multiple_of(CACHE_LINE));
            assert!(holds_indices(grown, 400));
            let grown_more = allocator.realloc(
                grown,
                Layout::from_size_align(3 * HUGE_PAGE, 4).unwrap(),
                5 * HUGE_PAGE,
            );
            assert!(grown_more.addr().is_multiple_of(CACHE_LINE));
            assert!(holds_indices(grown_more, 400));
            // Shrinking back to small keeps the values that fit.
            let shrunk = allocator.realloc(
                grown_more,
                Layout::from_size_align(5 * HUGE_PAGE, 4).unwrap(),
                200,
            );
            assert!(holds_indices(shrunk, 200));
            allocator.dealloc(shrunk, f32s(50));
            let zeroed = allocator.alloc_zeroed(f32s(3 * HUGE_PAGE / 4));
            assert!(zeroed.addr().is_multiple_of(CACHE_LINE));
            assert!((0..3 * HUGE_PAGE).all(|i| *zeroed.add(i) == 0));
            allocator.dealloc(zeroed, f32s(3 * HUGE_PAGE / 4));
        }
    }
}
