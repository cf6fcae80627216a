/* A timing shim for ONNX Runtime's C API, used to measure the decode loop's overhead outside ONNX Runtime
 * (docs/PERFORMANCE.md) without changing the runtime: point ORT_DYLIB_PATH at this library (built as
 * .cache/ortshim/libonnxruntime.so.1.31.1 by benches/ortshim/build) and ORT_SHIM_REAL at the real one.
 *
 * It exports OrtGetApiBase, hands out a copy of the real OrtApi table in which Run and RunWithBinding are
 * wrapped, and records each call's CLOCK_MONOTONIC start and end. At process exit the records are written to
 * ORT_SHIM_OUT as text lines "kind start_ns end_ns" (kind: run | run_binding). `unimed bench --token-trace`
 * writes its per-token timestamps on the same clock; export/unimed_export/bench/overhead.py joins the two.
 * The wrapper costs two clock_gettime calls per run (~50 ns).
 *
 * Field positions (0-based) in struct OrtApi, from ort-sys 2.0.0-rc.15 (API 31; its wasm-only cfg variants of
 * CreateSession / CreateSessionFromArray / RunAsync are one C field each): Run 9, RunWithBinding 133,
 * 428 fields in all. Only this many pointers are copied; the copy is what `ort` calls through. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { API_FIELDS = 428, RUN_FIELD = 9, RUN_BINDING_FIELD = 133, MAX_RECORDS = 1 << 20 };

typedef struct {
    const void *(*GetApi)(uint32_t version);
    const char *(*GetVersionString)(void);
} OrtApiBase;

typedef void *(*RunFn)(void *session, const void *run_options, const char *const *input_names,
                       const void *const *inputs, size_t input_len, const char *const *output_names,
                       size_t output_names_len, void **outputs);
typedef void *(*RunBindingFn)(void *session, const void *run_options, const void *binding);

static const OrtApiBase *real_base;
static OrtApiBase shim_base;
static void *api_copy[API_FIELDS];
static int api_ready;
static RunFn real_run;
static RunBindingFn real_run_binding;

static struct {
    uint64_t start, end;
    uint8_t kind;
} *records;
static size_t n_records;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void record(uint8_t kind, uint64_t start, uint64_t end) {
    if (!records) records = calloc(MAX_RECORDS, sizeof(*records));
    if (!records || n_records >= MAX_RECORDS) return;
    records[n_records].kind = kind;
    records[n_records].start = start;
    records[n_records].end = end;
    n_records++;
}

static void *shim_run(void *session, const void *run_options, const char *const *input_names,
                      const void *const *inputs, size_t input_len, const char *const *output_names,
                      size_t output_names_len, void **outputs) {
    uint64_t t0 = now_ns();
    void *status = real_run(session, run_options, input_names, inputs, input_len, output_names, output_names_len, outputs);
    record(0, t0, now_ns());
    return status;
}

static void *shim_run_binding(void *session, const void *run_options, const void *binding) {
    uint64_t t0 = now_ns();
    void *status = real_run_binding(session, run_options, binding);
    record(1, t0, now_ns());
    return status;
}

static const void *shim_get_api(uint32_t version) {
    const void *real = real_base->GetApi(version);
    if (!real) return NULL;
    if (!api_ready) {
        memcpy(api_copy, real, sizeof(api_copy));
        real_run = (RunFn)api_copy[RUN_FIELD];
        real_run_binding = (RunBindingFn)api_copy[RUN_BINDING_FIELD];
        api_copy[RUN_FIELD] = (void *)shim_run;
        api_copy[RUN_BINDING_FIELD] = (void *)shim_run_binding;
        api_ready = 1;
    }
    return api_copy;
}

const OrtApiBase *OrtGetApiBase(void) {
    if (!real_base) {
        const char *path = getenv("ORT_SHIM_REAL");
        if (!path || !*path) {
            fprintf(stderr, "ortshim: ORT_SHIM_REAL is not set (expected the path of the real libonnxruntime)\n");
            return NULL;
        }
        void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!lib) {
            fprintf(stderr, "ortshim: cannot load ORT_SHIM_REAL=%s: %s\n", path, dlerror());
            return NULL;
        }
        const OrtApiBase *(*get_base)(void) = (const OrtApiBase *(*)(void))dlsym(lib, "OrtGetApiBase");
        if (!get_base) {
            fprintf(stderr, "ortshim: %s has no OrtGetApiBase\n", path);
            return NULL;
        }
        real_base = get_base();
        shim_base.GetApi = shim_get_api;
        shim_base.GetVersionString = real_base->GetVersionString;
    }
    return &shim_base;
}

__attribute__((destructor)) static void write_records(void) {
    const char *out = getenv("ORT_SHIM_OUT");
    if (!out || !*out || !records) return;
    FILE *f = fopen(out, "w");
    if (!f) {
        fprintf(stderr, "ortshim: cannot write ORT_SHIM_OUT=%s\n", out);
        return;
    }
    for (size_t i = 0; i < n_records; i++)
        fprintf(f, "%s %llu %llu\n", records[i].kind ? "run_binding" : "run", (unsigned long long)records[i].start,
                (unsigned long long)records[i].end);
    fclose(f);
}
