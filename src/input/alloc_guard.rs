//! A bound on single allocations while a DICOM file is parsed.
//!
//! Why: a DICOM element header declares its value length (up to 4 GiB), and the parser (dicom-parser
//! 0.10) reserves and zero-fills that many bytes before it reads them. A 7 KB file declaring a 4 GB
//! value made `unimed` touch 4 GB (found by fuzz/fuzz_targets/dicom.rs). No value can be longer than
//! the file it comes from, so while a file is parsed every single allocation is limited to a bound
//! derived from the file's size; a larger one fails, the parser's `try_reserve` reports it, and the
//! file is refused as unparseable instead of exhausting memory.
//!
//! The limit only takes effect in a program whose global allocator is [`GuardedAllocator`] (the
//! `unimed` binary declares it); elsewhere the guard is inert and parsing behaves as before.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Headroom over the file size: containers grow by doubling, and small files still need their
/// ordinary working allocations.
const SLACK_BYTES: usize = 64 << 20;

thread_local! {
    /// Largest single allocation allowed on this thread right now (`usize::MAX`: no limit). A `const`
    /// `Cell` without destructor: reading it never allocates, as the allocator requires.
    static LIMIT: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn limit() -> usize {
    LIMIT.try_with(Cell::get).unwrap_or(usize::MAX)
}

/// The system allocator, refusing single allocations above the current thread's limit.
pub struct GuardedAllocator;

// SAFETY: every call is forwarded unchanged to `System`, or refused with a null pointer, which the
// `GlobalAlloc` contract allows for any allocation.
unsafe impl GlobalAlloc for GuardedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > limit() {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > limit() {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > limit() {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
}

/// While alive, limits single allocations on this thread to what parsing a file of `file_len` bytes
/// can legitimately need; the previous limit comes back on drop.
pub(crate) struct ParseLimit {
    previous: usize,
}

impl ParseLimit {
    pub(crate) fn for_file(file_len: u64) -> Self {
        let bound = usize::try_from(file_len)
            .unwrap_or(usize::MAX)
            .saturating_mul(2)
            .saturating_add(SLACK_BYTES);
        let previous = LIMIT.with(|l| l.replace(bound.min(l.get())));
        ParseLimit { previous }
    }
}

impl Drop for ParseLimit {
    fn drop(&mut self) {
        LIMIT.with(|l| l.set(self.previous));
    }
}
