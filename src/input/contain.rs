//! Third-party pixel decoders that panic on malformed data are contained: the panic becomes an input
//! error, printed as one line like every other, instead of aborting a batch.
//!
//! Why: fuzzing found that dicom-transfer-syntax-registry 0.10.1's RLE Lossless decoder indexes past
//! a segment that decodes short (`rle_lossless.rs:223`, also `read_rle_header` on a fragment under 64
//! bytes). Such bugs live in code we do not own and cannot pre-validate completely, so the decode call
//! runs under `catch_unwind`. A process-wide panic hook, installed once, stays silent for panics caught
//! here and hands every other panic to the hook that was there before.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Whether this thread is inside `contain` (its panics are reported as errors, not printed).
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

fn install_quiet_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !CONTAINED.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Runs `f`; a panic inside it is returned as `Err(message)`. The caller's state touched by `f` must
/// be discarded on error (it may be half-updated).
pub(crate) fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_quiet_hook();
    let was = CONTAINED.with(|c| c.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(was));
    result.map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_string());
        format!("the decoder failed on malformed data ({message})")
    })
}
