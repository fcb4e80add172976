/* dispatch.c — probes the CPU once and picks the kernel set; the only place that decides which ISA runs. */
#include "cpu/kernels.h"
#include "common/error.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

enum { SET_SCALAR, SET_AVX2, SET_AVX512, SET_COUNT };

static ps_kernels resolved[SET_COUNT];
static int runnable[SET_COUNT];
static const ps_kernels *active;
static char available_list[64];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t force_lock = PTHREAD_MUTEX_INITIALIZER;

#if defined(__x86_64__) || defined(__i386__)
static uint64_t read_xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void probe_x86(int *avx2, int *avx512)
{
    unsigned a, b, c, d;
    *avx2 = *avx512 = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    int popcnt = (c >> 23) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx || !popcnt)
        return;
    uint64_t xcr0 = read_xcr0();
    int os_ymm = (xcr0 & 0x6) == 0x6;     /* SSE and AVX state saved by the OS */
    int os_zmm = (xcr0 & 0xE6) == 0xE6;   /* plus opmask and the upper ZMM registers */
    if (__get_cpuid_max(0, NULL) < 7)
        return;
    __cpuid_count(7, 0, a, b, c, d);
    int has_avx2 = (b >> 5) & 1;
    int f = (b >> 16) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1, vpopcntdq = (c >> 14) & 1;
    *avx2 = has_avx2 && os_ymm;
    *avx512 = *avx2 && os_zmm && f && bw && vl && vpopcntdq;
}
#endif

#if defined(PROVSCAN_HAVE_AVX2) || defined(PROVSCAN_HAVE_AVX512)
/* A set only overrides the kernels it improves; the rest come from the set below it. */
static void overlay(ps_kernels *dst, const ps_kernels *src)
{
#define TAKE(field) if (src->field) dst->field = src->field
    TAKE(luma_from_rgb);
    TAKE(float_from_grey);
    TAKE(box_rows);
    TAKE(box_cols);
    TAKE(dct16);
    TAKE(hamming256);
    TAKE(hamming64);
    TAKE(hamming256_radius);
    TAKE(hamming256_gather);
    TAKE(fast9_row);
    TAKE(hamming256_top2);
    TAKE(geo_gate);
#undef TAKE
    dst->name = src->name;
}
#endif

static int set_by_name(const char *name)
{
    static const char *const names[SET_COUNT] = {"scalar", "avx2", "avx512"};
    for (int i = 0; i < SET_COUNT; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

static void init_once(void)
{
    resolved[SET_SCALAR] = ps_kernels_scalar;
    runnable[SET_SCALAR] = 1;
#if defined(PROVSCAN_HAVE_AVX2) || defined(PROVSCAN_HAVE_AVX512)
    int avx2 = 0, avx512 = 0;
    probe_x86(&avx2, &avx512);
#endif
#if defined(PROVSCAN_HAVE_AVX2)
    resolved[SET_AVX2] = resolved[SET_SCALAR];
    overlay(&resolved[SET_AVX2], &ps_kernels_avx2);
    runnable[SET_AVX2] = avx2;
#endif
#if defined(PROVSCAN_HAVE_AVX512)
    resolved[SET_AVX512] = resolved[SET_AVX2];
    overlay(&resolved[SET_AVX512], &ps_kernels_avx512);
    runnable[SET_AVX512] = avx512;
#endif
    int best = SET_SCALAR;
    available_list[0] = '\0';
    for (int i = 0; i < SET_COUNT; i++) {
        if (!runnable[i])
            continue;
        best = i;
        if (available_list[0])
            strcat(available_list, " ");
        strcat(available_list, resolved[i].name);
    }
    const char *env = getenv("PROVSCAN_SIMD");
    if (env && *env) {
        int want = set_by_name(env);
        if (want >= 0 && runnable[want])
            best = want;
        else
            fprintf(stderr, "provscan: PROVSCAN_SIMD=%s is not available here (have: %s); using %s\n", env,
                    available_list, resolved[best].name);
    }
    active = &resolved[best];
}

const ps_kernels *ps_kernels_get(void)
{
    pthread_once(&once, init_once);
    return __atomic_load_n(&active, __ATOMIC_ACQUIRE);
}

const ps_kernels *ps_kernels_by_name(const char *name)
{
    pthread_once(&once, init_once);
    int i = set_by_name(name);
    return (i >= 0 && runnable[i]) ? &resolved[i] : NULL;
}

const char *provscan_simd_path(void)
{
    return ps_kernels_get()->name;
}

const char *provscan_simd_available(void)
{
    pthread_once(&once, init_once);
    return available_list;
}

provscan_status provscan_simd_force(const char *name)
{
    const ps_kernels *k = name ? ps_kernels_by_name(name) : NULL;
    if (!k)
        return PROVSCAN_E_UNSUPPORTED;
    pthread_mutex_lock(&force_lock);
    __atomic_store_n(&active, k, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&force_lock);
    return PROVSCAN_OK;
}
