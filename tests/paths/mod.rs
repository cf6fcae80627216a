//! Where the integration tests find what `scripts/setup` made: the repository, the bundles under
//! `models/` and pydicom's DICOM test files in the project venv. Included by every `*_support` module
//! (`#[path = "../paths/mod.rs"]`), so each test crate names these places the same way.
//!
//! Also the tests' temporary folders (`fresh_temp_dir`): each is removed when the test process exits,
//! unless the test that made it failed; then it is kept for inspection and the failure says where.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A bundle `scripts/setup` exports under models/ (tiny, tiny-int4, tiny-fp16, tiny-int4-cuda, tiny-int8-cuda).
pub fn bundle_dir(name: &str) -> PathBuf {
    let dir = root().join("models").join(name);
    assert!(
        dir.join("unimed.json").is_file(),
        "bundle {} is missing: build it with scripts/setup (it exports models/tiny, tiny-int4, tiny-fp16, \
         tiny-int4-cuda and tiny-int8-cuda)",
        dir.display()
    );
    dir
}

/// A committed fixture `tests/fixtures/<dir>/<name>`, written by the script `made_by`.
pub fn fixture_file(dir: &str, name: &str, made_by: &str) -> PathBuf {
    let p = root().join("tests/fixtures").join(dir).join(name);
    assert!(
        p.is_file(),
        "{} is missing (written by {made_by})",
        p.display()
    );
    p
}

/// A DICOM file shipped in the pydicom wheel, inside the venv `scripts/setup` creates.
pub fn pydicom_file(name: &str) -> PathBuf {
    let p = root()
        .join(".venv/lib/python3.11/site-packages/pydicom/data/test_files")
        .join(name);
    assert!(
        p.is_file(),
        "{} is missing: the tests use the DICOM files of the pydicom wheel; run scripts/setup",
        p.display()
    );
    p
}

/// The temporary folders of this test process, each with the test (thread name) that made it, and the
/// tests that panicked.
struct Scratch {
    dirs: Vec<(Option<String>, PathBuf)>,
    failed: Vec<Option<String>>,
    /// Folders a failure message has already named (a test may panic more than once, e.g. under
    /// `catch_unwind`).
    announced: Vec<PathBuf>,
}

static SCRATCH: Mutex<Scratch> = Mutex::new(Scratch {
    dirs: Vec::new(),
    failed: Vec::new(),
    announced: Vec::new(),
});

fn scratch() -> std::sync::MutexGuard<'static, Scratch> {
    // A poisoned lock still holds a valid list: nothing panics while holding it but an allocation.
    SCRATCH.lock().unwrap_or_else(|e| e.into_inner())
}

/// The test running on this thread: libtest runs every test on a thread named after it.
fn this_test() -> Option<String> {
    std::thread::current().name().map(str::to_owned)
}

/// A fresh, empty folder `<system temp>/<prefix>-<pid>-<name>-<n>` for one test. It is removed when the
/// test process exits if the test that asked for it passed; a failed test's folders are kept, and its
/// failure message lists them.
///
/// Why at exit rather than a guard dropped at the end of each test: the helpers return plain `PathBuf`s
/// that tests pass around, store in statics (a stamp cache shared by a whole test binary) and return from
/// their own helpers, and a guard dropped too early would delete a folder still in use.
pub fn fresh_temp_dir(prefix: &str, name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    remove_at_exit(&dir);
    dir
}

/// Removes `dir` (made by the calling test) when the process exits, unless that test fails.
pub fn remove_at_exit(dir: &Path) {
    install_cleanup();
    scratch().dirs.push((this_test(), dir.to_path_buf()));
}

fn install_cleanup() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let test = this_test();
            let kept: Vec<PathBuf> = {
                let mut s = scratch();
                s.failed.push(test.clone());
                let new: Vec<PathBuf> = s
                    .dirs
                    .iter()
                    .filter(|(owner, d)| *owner == test && d.exists() && !s.announced.contains(d))
                    .map(|(_, d)| d.clone())
                    .collect();
                s.announced.extend(new.iter().cloned());
                new
            };
            previous(info);
            if !kept.is_empty() {
                let list: Vec<String> = kept.iter().map(|d| d.display().to_string()).collect();
                eprintln!(
                    "note: this test's temporary folders are kept for inspection: {}",
                    list.join(", ")
                );
            }
        }));
        // SAFETY: `cleanup` is an `extern "C" fn()` that never unwinds (it catches every panic).
        let registered = unsafe { libc::atexit(cleanup) };
        if registered != 0 {
            eprintln!(
                "note: atexit failed: this test process will leave its temporary folders behind"
            );
        }
    });
}

/// Set (to anything non-empty) to keep every test's temporary folders, e.g. to look at what a passing test
/// wrote, or to count what the suite would leave without this cleanup.
pub const KEEP_ENV: &str = "UNIMED_TEST_KEEP_TMP";

/// At process exit: removes the folders of every test that did not panic.
extern "C" fn cleanup() {
    if std::env::var_os(KEEP_ENV).is_some_and(|v| !v.is_empty()) {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        // try_lock: a test thread still running at exit may hold the lock; leaking beats hanging.
        let Ok(s) = SCRATCH.try_lock() else {
            return;
        };
        for (owner, dir) in &s.dirs {
            if !s.failed.contains(owner) {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    });
}
