//! The component's allocator: dlmalloc, handed the free end of the initial
//! linear memory before it grows memory.
//!
//! The `dlmalloc` crate's own wasm `System` donates that region only on
//! `wasm32-unknown-unknown`; on wasip2 it calls `memory.grow` for its first
//! byte. Under `serve --fresh-instance-per-request` (and Spin) every instance
//! then grew its memory, and the pooling allocator paid an `mprotect` to open
//! the pages and another, with a TLB shootdown on every core, to close them for
//! the slot's next instance: ~7 % of a fresh instance's secret request in the
//! profile. `build.rs` links the component with room for the heap in its
//! initial memory, so a request normally never grows it.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::{Cell, UnsafeCell};
use core::ptr;

use dlmalloc::{Allocator, Dlmalloc};

extern "C" {
    /// Set by `wasm-ld`: the first byte after the data and the stack, and the
    /// end of the initial memory.
    static __heap_base: u8;
    static __heap_end: u8;
}

const PAGE: usize = 64 * 1024;

/// Memory for dlmalloc: the initial memory's free end once, then `memory.grow`.
struct InitialMemoryFirst {
    donated: Cell<bool>,
}

// SAFETY: wasm32-wasip2 components are single-threaded.
unsafe impl Send for InitialMemoryFirst {}

// SAFETY: regions handed out are never handed out twice: the initial region
// once (`donated`), grown pages are new memory.
unsafe impl Allocator for InitialMemoryFirst {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        if !self.donated.get() {
            // Only the addresses of the linker's symbols are taken (no read).
            let (base, end) = (ptr::addr_of!(__heap_base) as usize, ptr::addr_of!(__heap_end) as usize);
            let base = base.next_multiple_of(16);
            // Too small for this request: keep it for a later, smaller one.
            if end > base && end - base >= size {
                self.donated.set(true);
                return (base as *mut u8, end - base, 0);
            }
        }
        let pages = size.div_ceil(PAGE);
        let previous = wasm32::memory_grow(0, pages);
        if previous == usize::MAX {
            return (ptr::null_mut(), 0, 0);
        }
        ((previous * PAGE) as *mut u8, pages * PAGE, 0)
    }

    fn remap(&self, _ptr: *mut u8, _old: usize, _new: usize, _can_move: bool) -> *mut u8 {
        ptr::null_mut()
    }

    fn free_part(&self, _ptr: *mut u8, _old: usize, _new: usize) -> bool {
        false
    }

    fn free(&self, _ptr: *mut u8, _size: usize) -> bool {
        false
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        false
    }

    /// Fresh memory is zeroed: grown pages, and the initial memory's end, which
    /// no data segment covers.
    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        PAGE
    }
}

/// The global allocator over one dlmalloc.
pub struct GuestAllocator(UnsafeCell<Dlmalloc<InitialMemoryFirst>>);

// SAFETY: wasm32-wasip2 components are single-threaded and the allocator is
// never re-entered (dlmalloc does not allocate).
unsafe impl Sync for GuestAllocator {}

impl GuestAllocator {
    pub const fn new() -> GuestAllocator {
        GuestAllocator(UnsafeCell::new(Dlmalloc::new_with_allocator(InitialMemoryFirst { donated: Cell::new(false) })))
    }
}

// SAFETY: forwards to dlmalloc, which upholds `GlobalAlloc`'s contract; access
// is exclusive (see `Sync` above).
unsafe impl GlobalAlloc for GuestAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        (*self.0.get()).malloc(layout.size(), layout.align())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        (*self.0.get()).free(ptr, layout.size(), layout.align())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        (*self.0.get()).calloc(layout.size(), layout.align())
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        (*self.0.get()).realloc(ptr, layout.size(), layout.align(), new_size)
    }
}
