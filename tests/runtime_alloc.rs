//! Allocation accounting of one decode step (measurement, ignored by default).
//!
//! Rust-side allocations are counted by a counting global allocator in this test binary; with the
//! malloc-counting shim preloaded, every malloc of the process is counted too, so ONNX Runtime's own
//! (non-arena) allocations per step are the difference. Run:
//!
//! ```text
//! gcc -O2 -shared -fPIC -o /tmp/libcount.so count.c   # count.c: see the bottom of this file
//! LD_PRELOAD=/tmp/libcount.so cargo test --release --test runtime_alloc -- --ignored --nocapture
//! ```
//!
//! Without the shim only the Rust side is measured. The assertions that can fail: Rust allocates per
//! step only the logits row, the embedding row, the mask and bookkeeping (no copy of the KV cache),
//! and the same at step 10 as at step 200 up to the attention mask's 8 bytes per position.

// A panic in a test is a failure with its message, which is what a test wants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::{c_char, c_void};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use unimed_edge::graphs::decoder::DecoderGraph;
use unimed_edge::graphs::session::SessionOptions;
use unimed_edge::text::embed::EmbedTable;
use unimed_edge::Bundle;

struct Counting;
static RUST_ALLOCS: AtomicU64 = AtomicU64::new(0);
static RUST_BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        RUST_ALLOCS.fetch_add(1, Ordering::Relaxed);
        RUST_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        RUST_ALLOCS.fetch_add(1, Ordering::Relaxed);
        RUST_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

unsafe extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// The shim's counters, when it is preloaded (RTLD_DEFAULT = null on glibc).
fn process_counter(name: &std::ffi::CStr) -> Option<extern "C" fn() -> i64> {
    let p = unsafe { dlsym(std::ptr::null_mut(), name.as_ptr()) };
    (!p.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, extern "C" fn() -> i64>(p) })
}

#[derive(Debug, Clone, Copy)]
struct Snapshot {
    rust: (u64, u64),
    process: Option<(i64, i64)>,
}

fn snapshot(counters: &Option<(extern "C" fn() -> i64, extern "C" fn() -> i64)>) -> Snapshot {
    Snapshot {
        rust: (
            RUST_ALLOCS.load(Ordering::Relaxed),
            RUST_BYTES.load(Ordering::Relaxed),
        ),
        process: counters.map(|(n, b)| (n(), b())),
    }
}

#[test]
#[ignore = "measurement; see the module docs for how to run it with the malloc shim"]
fn allocations_per_decode_step() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny");
    let bundle = Bundle::load(&dir).expect("models/tiny (scripts/setup)");
    let m = bundle.manifest();
    let mut decoder = DecoderGraph::load(
        &bundle.path(&m.graphs.decoder.file),
        m,
        &SessionOptions::default(),
    )
    .unwrap();
    let embed = EmbedTable::open(
        &bundle.path(&m.embed_tokens.file),
        m.model.vocab_size,
        m.model.hidden_size,
    )
    .unwrap();
    let counters =
        process_counter(c"unimed_alloc_count").zip(process_counter(c"unimed_alloc_bytes"));
    let steps = 200;
    let mut cache = decoder.new_cache(8 + steps + 1).unwrap();
    let row = |id: u32| {
        let mut v = Vec::with_capacity(m.model.hidden_size);
        embed.append_rows(&[id], &mut v).unwrap();
        v
    };
    let mut prompt = Vec::new();
    embed
        .append_rows(&[1, 1, 518, 25580, 29962, 529, 25518, 29958], &mut prompt)
        .unwrap();
    decoder.step(&mut cache, prompt, 8).unwrap();
    let mut per_step = Vec::new();
    let mut token = 3u32;
    for _ in 0..steps {
        let input = row(token);
        let before = snapshot(&counters);
        let logits = decoder.step(&mut cache, input, 1).unwrap();
        let after = snapshot(&counters);
        token = unimed_edge::generate::sampler::argmax(&logits);
        per_step.push((before, after));
    }
    // What a step legitimately allocates in Rust: the last position's logits (copied out), the
    // embedding row, the attention mask (8 B per position) and small bookkeeping.
    let f32_bytes = 4u64;
    let allowed_base =
        m.model.vocab_size as u64 * f32_bytes + m.model.hidden_size as u64 * f32_bytes + 16 * 1024;
    for (i, (b, a)) in per_step.iter().enumerate() {
        let rust = (a.rust.0 - b.rust.0, a.rust.1 - b.rust.1);
        if [0, 9, 99, 199].contains(&i) {
            match (a.process, b.process) {
                (Some(pa), Some(pb)) => {
                    let (pn, pbytes) = (pa.0 - pb.0, pa.1 - pb.1);
                    eprintln!(
                        "step {:>3}: rust {} allocs / {} B; process {} allocs / {} B; onnxruntime {} allocs / {} B",
                        i + 1,
                        rust.0,
                        rust.1,
                        pn,
                        pbytes,
                        pn - rust.0 as i64,
                        pbytes - rust.1 as i64
                    );
                }
                _ => eprintln!(
                    "step {:>3}: rust {} allocs / {} B (preload the shim for ONNX Runtime's)",
                    i + 1,
                    rust.0,
                    rust.1
                ),
            }
        }
        let allowed = allowed_base + 8 * (8 + i as u64 + 1);
        assert!(
            rust.1 <= allowed,
            "step {}: Rust allocated {} B, more than logits + row + mask ({allowed} B)",
            i + 1,
            rust.1
        );
    }
    let first = per_step[9].1.rust.1 - per_step[9].0.rust.1;
    let last = per_step[199].1.rust.1 - per_step[199].0.rust.1;
    assert!(
        last - first <= 8 * 190 + 64,
        "Rust bytes per step grew from {first} to {last}: more than the mask"
    );
}

// count.c:
//
// #include <stddef.h>
// extern void *__libc_malloc(size_t); extern void *__libc_calloc(size_t, size_t);
// extern void *__libc_realloc(void *, size_t); extern void *__libc_memalign(size_t, size_t);
// static long n_alloc, n_bytes;
// static void note(size_t s) { __atomic_add_fetch(&n_alloc, 1, 0); __atomic_add_fetch(&n_bytes, (long)s, 0); }
// void *malloc(size_t s) { note(s); return __libc_malloc(s); }
// void *calloc(size_t n, size_t s) { note(n * s); return __libc_calloc(n, s); }
// void *realloc(void *p, size_t s) { note(s); return __libc_realloc(p, s); }
// int posix_memalign(void **o, size_t a, size_t s) { note(s); void *p = __libc_memalign(a, s); if (!p) return 12; *o = p; return 0; }
// void *aligned_alloc(size_t a, size_t s) { note(s); return __libc_memalign(a, s); }
// void *memalign(size_t a, size_t s) { note(s); return __libc_memalign(a, s); }
// long unimed_alloc_count(void) { return n_alloc; }
// long unimed_alloc_bytes(void) { return n_bytes; }
