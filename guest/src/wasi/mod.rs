//! The thin WASI shell: bindings, and the adapters that give the pure core
//! its clock, randomness, configuration and HTTP transport. Compiled only for
//! wasm32; everything here is glue with no decisions of its own.

mod allocator;
// One core, two thin shells: the provider world's exports, or (feature `config-provider`) the
// same core behind an exported `wasi:config/store`. Each defines `component::Component`.
#[cfg(not(feature = "config-provider"))]
mod component;
#[cfg(feature = "config-provider")]
#[path = "config_export.rs"]
mod component;
mod keyvalue;
mod platform;
mod state;
mod stderr;
mod transport;

/// The component's allocator (no std, so none comes by default).
#[global_allocator]
static ALLOCATOR: allocator::GuestAllocator = allocator::GuestAllocator::new();

/// A panic is a bug (inputs are validated, not unwrapped): it traps the instance, and the
/// host replaces it. No message is printed, so nothing can leak through one.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

/// `memcmp`, which wasi-libc would provide under std. (memcpy/memset compile to
/// bulk-memory instructions on wasm32-wasip2; comparisons still call this.)
///
/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes, as for C's `memcmp`.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: the caller guarantees both ranges are readable for `n` bytes.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// `bcmp`: equality-only `memcmp`, which LLVM may call instead.
///
/// # Safety
/// As for [`memcmp`].
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract.
    unsafe { memcmp(a, b, n) }
}

/// The canonical ABI's allocation hook: the host calls it to place arguments
/// (strings, lists) in this component's memory. Under std, wasi-libc exports
/// it; without std the component must. A failed allocation traps: the host
/// cannot be told "no" here.
///
/// # Safety
/// Called by the host per the component model ABI: `old_ptr`/`old_len`/`align`
/// describe a block this allocator returned earlier (or `old_len == 0`).
#[no_mangle]
pub unsafe extern "C" fn cabi_realloc(old_ptr: *mut u8, old_len: usize, align: usize, new_len: usize) -> *mut u8 {
    use alloc::alloc::{alloc, dealloc, realloc, Layout};
    if new_len == 0 {
        if old_len != 0 && Layout::from_size_align(old_len, align).is_ok() {
            // SAFETY: `old_ptr` came from this allocator with this layout (ABI contract).
            unsafe { dealloc(old_ptr, Layout::from_size_align_unchecked(old_len, align)) };
        }
        return align as *mut u8;
    }
    if Layout::from_size_align(new_len, align).is_err() {
        core::arch::wasm32::unreachable()
    }
    // SAFETY: the layout is non-zero-sized; for a realloc, `old_ptr` came from
    // this allocator with `old_len` and `align` (the ABI's contract).
    let ptr = unsafe {
        if old_len == 0 {
            alloc(Layout::from_size_align_unchecked(new_len, align))
        } else {
            realloc(old_ptr, Layout::from_size_align_unchecked(old_len, align), new_len)
        }
    };
    if ptr.is_null() {
        core::arch::wasm32::unreachable()
    }
    ptr
}

#[cfg(not(feature = "config-provider"))]
wit_bindgen::generate!({
    path: "../wit",
    world: "edge:secrets/provider",
    generate_all,
});

#[cfg(feature = "config-provider")]
wit_bindgen::generate!({
    path: "../wit",
    world: "edge:secrets/config-provider",
    generate_all,
});

use component::Component;
export!(Component);
