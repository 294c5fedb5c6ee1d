//! The `sla` binary's global allocator: the system's, with every large block offered to the
//! kernel for 2 MB pages.
//!
//! Where transparent huge pages are on only for the memory that asks for them (`madvise`, the
//! default of many distributions, Debian's included), a process that does not ask gets 4 KB pages
//! only. A training step streams every activation (25.7 MB for a 28×28×16 map of ResNet-20's 512
//! images) through memory several times; on 4 KB pages that is a page-table walk every 64 cache
//! lines, and the hardware prefetchers stop at every page's end. This allocator asks for the
//! blocks that matter, the large ones, right after it gets them and before anything writes them,
//! so their pages are 2 MB from the first fault; with [`super::keep_freed_memory`] the heap keeps
//! them from step to step. In the ResNet-20 SLA step 481 of its 598 MB lay on 2 MB pages, and
//! the step's median over six alternating rounds went from 387.3 to 379.0 ms (the convolutions'
//! forward passes 113.1 → 108.8 ms), peak memory 582 → 584 MB (2-core Zen 4). glibc's own switch
//! (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, its whole heap) did as much, 383.5 → 376.8 ms over
//! four rounds, but only from the environment at start-up.

use std::alloc::{GlobalAlloc, Layout, System};

/// The system allocator, asking for 2 MB pages for the blocks that span at least one.
pub struct HugePageAllocator;

/// The size of a transparent huge page on x86-64 and on 4 KB-page arm64 kernels.
const HUGE_PAGE: usize = 2 << 20;

// SAFETY: every block comes from `System`, as it allocated it; the advice changes neither its
// address nor its contents.
unsafe impl GlobalAlloc for HugePageAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let block = unsafe { System.alloc(layout) };
        advise_huge_pages(block, layout.size());
        block
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let block = unsafe { System.alloc_zeroed(layout) };
        advise_huge_pages(block, layout.size());
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(block, layout) }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let block = unsafe { System.realloc(block, layout, new_size) };
        advise_huge_pages(block, new_size);
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

    #[test]
    fn large_blocks_keep_their_values_through_growth() {
        let allocator = HugePageAllocator;
        let layout = Layout::from_size_align(3 * HUGE_PAGE, 64).unwrap();
        // SAFETY: a non-zero layout; the block is written within its size and freed with it.
        unsafe {
            let block = allocator.alloc(layout);
            assert!(!block.is_null());
            let values = std::slice::from_raw_parts_mut(block.cast::<u32>(), layout.size() / 4);
            for (i, value) in values.iter_mut().enumerate() {
                *value = i as u32;
            }
            let grown = allocator.realloc(block, layout, 5 * HUGE_PAGE);
            assert!(!grown.is_null());
            let values = std::slice::from_raw_parts(grown.cast::<u32>(), layout.size() / 4);
            assert!(values.iter().enumerate().all(|(i, &v)| v == i as u32));
            allocator.dealloc(grown, Layout::from_size_align(5 * HUGE_PAGE, 64).unwrap());
            let zeroed = allocator.alloc_zeroed(layout);
            let values = std::slice::from_raw_parts(zeroed.cast::<u32>(), layout.size() / 4);
            assert!(values.iter().all(|&v| v == 0));
            allocator.dealloc(zeroed, layout);
        }
    }
}
