/* STREAM-style memory bandwidth probe: Copy (a = b), Triad (a = b + s*c) and Read (sum of a), on arrays far
 * larger than the last-level cache, with OpenMP threads. The decode-step roofline in docs/PERFORMANCE.md
 * divides the decoder's bytes read per token by these figures.
 *
 * Bytes are counted the STREAM way (Copy: 2 arrays, Triad: 3 arrays, Read: 1 array); write-allocate traffic is
 * not counted, as in STREAM, so Copy/Triad understate what the bus moves. Read is the closest to a decode step,
 * which streams weights and writes almost nothing.
 *
 * Usage: bandwidth [--mib N] [--reps N] [--thp] [--json]
 *   --mib   size of each array in MiB (default 1024; three arrays are allocated)
 *   --reps  timed repetitions per kernel after one warm-up (default 9); median and max are printed
 *   --thp   madvise(MADV_HUGEPAGE) the arrays (transparent huge pages; see peer-measurements.md §7)
 *   --json  one JSON object on stdout instead of the table
 * Built by scripts/bandwidth: gcc -O3 -march=native -fopenmp -ffast-math (fast-math lets the Read sum
 * vectorise; the other kernels have no reductions). */
#define _GNU_SOURCE
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

enum { KERNELS = 3 };
static const char *KERNEL_NAMES[KERNELS] = {"copy", "triad", "read"};
/* Arrays touched per element, STREAM's counting. */
static const int KERNEL_ARRAYS[KERNELS] = {2, 3, 1};
/* Alignment of each array: a 2 MiB huge page, so --thp can back all of it with huge pages. */
static const size_t ARRAY_ALIGN = 2u << 20;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double *alloc_array(size_t bytes, int thp) {
    void *p = NULL;
    if (posix_memalign(&p, ARRAY_ALIGN, bytes) != 0) {
        fprintf(stderr, "bandwidth: cannot allocate %zu bytes\n", bytes);
        exit(2);
    }
    if (thp && madvise(p, bytes, MADV_HUGEPAGE) != 0) {
        perror("bandwidth: madvise(MADV_HUGEPAGE)");
    }
    return (double *)p;
}

/* Runs one kernel once; returns seconds. `sink` keeps the Read sum alive. */
static double run_kernel(int k, double *a, double *b, double *c, size_t n, double *sink) {
    const double scalar = 3.0;
    double t0 = now_s();
    if (k == 0) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) a[i] = b[i];
    } else if (k == 1) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) a[i] = b[i] + scalar * c[i];
    } else {
        double s = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : s)
        for (size_t i = 0; i < n; i++) s += a[i];
        *sink += s;
    }
    return now_s() - t0;
}

int main(int argc, char **argv) {
    size_t mib = 1024;
    int reps = 9, thp = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mib") && i + 1 < argc) {
            mib = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--thp")) {
            thp = 1;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else {
            fprintf(stderr, "bandwidth: unknown argument %s (expected --mib N, --reps N, --thp, --json)\n", argv[i]);
            return 2;
        }
    }
    if (mib == 0 || reps < 1) {
        fprintf(stderr, "bandwidth: --mib and --reps must be positive (got %zu, %d)\n", mib, reps);
        return 2;
    }
    size_t bytes = mib << 20, n = bytes / sizeof(double);
    double *a = alloc_array(bytes, thp), *b = alloc_array(bytes, thp), *c = alloc_array(bytes, thp);
    /* First touch in parallel so pages land where the threads run. */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        a[i] = 1.0;
        b[i] = 2.0;
        c[i] = 0.5;
    }
    double sink = 0.0, med[KERNELS], best[KERNELS];
    double *times = malloc(sizeof(double) * (size_t)reps);
    if (!times) return 2;
    for (int k = 0; k < KERNELS; k++) {
        run_kernel(k, a, b, c, n, &sink); /* warm-up */
        for (int r = 0; r < reps; r++) times[r] = run_kernel(k, a, b, c, n, &sink);
        qsort(times, (size_t)reps, sizeof(double), cmp_double);
        double moved = (double)KERNEL_ARRAYS[k] * (double)bytes;
        med[k] = moved / times[reps / 2] / 1e9;
        best[k] = moved / times[0] / 1e9;
    }
    if (json) {
        printf("{\"threads\": %d, \"mib_per_array\": %zu, \"reps\": %d, \"thp\": %s", omp_get_max_threads(), mib, reps,
               thp ? "true" : "false");
        for (int k = 0; k < KERNELS; k++)
            printf(", \"%s_gbs_median\": %.2f, \"%s_gbs_max\": %.2f", KERNEL_NAMES[k], med[k], KERNEL_NAMES[k], best[k]);
        printf(", \"checksum\": %.1f}\n", sink);
    } else {
        printf("threads %d, %zu MiB per array, %d reps, THP %s\n", omp_get_max_threads(), mib, reps, thp ? "on" : "off");
        printf("%-6s %12s %12s\n", "kernel", "median GB/s", "max GB/s");
        for (int k = 0; k < KERNELS; k++) printf("%-6s %12.2f %12.2f\n", KERNEL_NAMES[k], med[k], best[k]);
    }
    free(times);
    free(a);
    free(b);
    free(c);
    return sink == 0.0 ? 1 : 0;
}
