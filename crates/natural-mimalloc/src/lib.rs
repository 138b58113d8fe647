//! mimalloc as Rust's global allocator, asked for a plain block wherever the block's natural
//! alignment already satisfies the layout.
//!
//! The `mimalloc` crate hands every allocation to `mi_malloc_aligned`. mimalloc v3 serves that
//! from its fast path while the size class's page has free blocks; when the page runs out, it
//! takes the plain path only for power-of-two block sizes and otherwise over-allocates
//! (`size + align - 1`), often from the next, larger size class, so a request of such a size may
//! never refill its own class and take the slow path every time. mimalloc's plain blocks are
//! aligned as C's `malloc` promises, to 16 bytes or to their size when smaller (the rule std's
//! own `System` allocator relies on), so only larger alignments need the aligned calls.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};

/// The largest alignment every mimalloc block of at least that size has (`MI_MAX_ALIGN_SIZE`).
const PLAIN_ALIGN: usize = 16;

/// mimalloc, through its plain calls whenever they give the alignment asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct NaturalMimalloc;

/// Whether a plain block of `size` bytes is aligned to `align`.
#[inline]
fn plain_suffices(size: usize, align: usize) -> bool {
    align <= PLAIN_ALIGN && align <= size
}

// SAFETY: every block comes from mimalloc and goes back to it through `mi_free` or the
// `mi_realloc*` calls, which take blocks of either kind; a plain block is only used where
// `plain_suffices` holds, i.e. where mimalloc guarantees the layout's alignment.
unsafe impl GlobalAlloc for NaturalMimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        // SAFETY: mimalloc's allocation calls accept any size and power-of-two alignment.
        unsafe {
            if plain_suffices(size, align) {
                mi_malloc(size).cast()
            } else {
                mi_malloc_aligned(size, align).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        // SAFETY: as for `alloc`.
        unsafe {
            if plain_suffices(size, align) {
                mi_zalloc(size).cast()
            } else {
                mi_zalloc_aligned(size, align).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller passes a block this allocator returned and does not use it again.
        unsafe { mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        // SAFETY: the caller passes a live block of this allocator; the new block keeps
        // `layout`'s alignment by the same rule as `alloc`.
        unsafe {
            if plain_suffices(new_size, align) {
                mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi_realloc_aligned(ptr.cast::<c_void>(), new_size, align).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allocates, writes, grows, shrinks and frees blocks of every size up to a few pages and
    /// every alignment up to 4 KiB, checking each pointer's alignment and that contents survive.
    #[test]
    fn every_block_has_its_alignment_and_keeps_its_contents() {
        let allocator = NaturalMimalloc;
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in (1..=600).chain([1000, 4095, 4096, 20_000, 70_000]) {
                let layout = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: the layout has a non-zero size; every block is freed once below.
                unsafe {
                    let block = allocator.alloc(layout);
                    assert!(!block.is_null(), "size {size} align {align}");
                    assert_eq!(block as usize % align, 0, "size {size} align {align}");
                    block.write_bytes(0xA5, size);
                    let grown = allocator.realloc(block, layout, size * 3);
                    assert_eq!(grown as usize % align, 0, "grown {size} align {align}");
                    assert!((0..size).all(|i| *grown.add(i) == 0xA5), "grown {size}");
                    let grown_layout = Layout::from_size_align(size * 3, align).expect("layout");
                    let shrunk = allocator.realloc(grown, grown_layout, size.div_ceil(2));
                    assert_eq!(shrunk as usize % align, 0, "shrunk {size} align {align}");
                    assert!((0..size.div_ceil(2)).all(|i| *shrunk.add(i) == 0xA5));
                    let shrunk_layout =
                        Layout::from_size_align(size.div_ceil(2), align).expect("layout");
                    allocator.dealloc(shrunk, shrunk_layout);

                    let zeroed = allocator.alloc_zeroed(layout);
                    assert_eq!(zeroed as usize % align, 0, "zeroed {size} align {align}");
                    assert!((0..size).all(|i| *zeroed.add(i) == 0), "zeroed {size}");
                    allocator.dealloc(zeroed, layout);
                }
            }
        }
    }

    #[test]
    fn plain_blocks_only_where_their_natural_alignment_suffices() {
        assert!(plain_suffices(48, 8));
        assert!(plain_suffices(16, 16));
        assert!(plain_suffices(4, 4));
        assert!(!plain_suffices(4, 8), "smaller than its alignment");
        assert!(!plain_suffices(64, 32));
        assert!(!plain_suffices(256, 128), "tokio's task cells");
    }
}
