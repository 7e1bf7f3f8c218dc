/*
 * wp_runtime: the TVM backend entry points a compiled kernel object calls, without a TVM runtime.
 *
 * TVM's LLVM code reaches the runtime through function-pointer globals (__TVMBackendAllocWorkspace,
 * __TVMBackendFreeWorkspace, __TVMBackendParallelLaunch) that the TVM module loader normally fills in; the
 * object only declares them weak and NULL, so a kernel that needs a workspace or a parallel loop would jump
 * to address 0. They are defined here, initialised to the implementations below.
 *
 * Parallel loops run their tasks one after another on the one simulated hart; each task is bracketed by
 * task markers so the counting plugin reports what every core of the modelled cluster would execute.
 */
#include "wp_runtime.h"

#ifndef WP_WORKSPACE_BYTES
#define WP_WORKSPACE_BYTES (8u << 20) /* scratch for kernels' intermediate buffers (cache_write, padding) */
#endif
#define WP_MAX_LIVE_WORKSPACES 256

int wp_num_cores = 1;
int wp_error_raised;

/* -- system calls ------------------------------------------------------------------------------------- */

static inline long wp_ecall3(long n, long a0, long a1, long a2)
{
    register long r0 __asm__("a0") = a0;
    register long r1 __asm__("a1") = a1;
    register long r2 __asm__("a2") = a2;
    register long r7 __asm__("a7") = n;
    __asm__ volatile("ecall" : "+r"(r0) : "r"(r1), "r"(r2), "r"(r7) : "memory");
    return r0;
}

long wp_write(int fd, const void *buf, size_t n) { return wp_ecall3(64, fd, (long)buf, (long)n); }

void wp_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        long k = wp_write(fd, p, n);
        if (k <= 0)
            wp_exit(3); /* stdout closed: the caller cannot get the outputs anyway */
        p += k;
        n -= (size_t)k;
    }
}

void wp_puts(int fd, const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    wp_write_all(fd, s, n);
}

void wp_exit(int code)
{
    wp_ecall3(94, code, 0, 0); /* exit_group */
    for (;;) {
    }
}

#ifdef WP_NO_MARKERS
void wp_region_begin(void) {}
void wp_region_end(void) {}
void wp_task_begin(uint32_t task, uint32_t launch) { (void)task; (void)launch; }
void wp_task_end(void) {}
#else
void wp_region_begin(void) { wp_ecall3(0x5A5A0, 0, 0, 0); }
void wp_region_end(void) { wp_ecall3(0x5A5A1, 0, 0, 0); }
void wp_task_begin(uint32_t task, uint32_t launch) { wp_ecall3(0x5A5A2, (long)task, (long)launch, 0); }
void wp_task_end(void) { wp_ecall3(0x5A5A3, 0, 0, 0); }
#endif

/* -- memory functions LLVM may call (no libc is linked) ------------------------------------------------ */

__attribute__((weak)) void *memcpy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

__attribute__((weak)) void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (d < s) {
        while (n--)
            *d++ = *s++;
    } else {
        while (n--)
            d[n] = s[n];
    }
    return dst;
}

__attribute__((weak)) void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;
    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}

/* -- workspace: a stack allocator (TVM frees workspaces in reverse order of allocation) ---------------- */

static unsigned char wp_pool[WP_WORKSPACE_BYTES] __attribute__((aligned(64)));
static size_t wp_live_end[WP_MAX_LIVE_WORKSPACES];
static void *wp_live_ptr[WP_MAX_LIVE_WORKSPACES];
static int wp_n_live;

static void *wp_alloc_workspace(int device_type, int device_id, uint64_t nbytes, int code_hint, int bits_hint)
{
    (void)device_type; (void)device_id; (void)code_hint; (void)bits_hint;
    size_t top = wp_n_live ? wp_live_end[wp_n_live - 1] : 0;
    size_t start = (top + 63) & ~(size_t)63;
    if (wp_n_live == WP_MAX_LIVE_WORKSPACES || nbytes > WP_WORKSPACE_BYTES - start) {
        wp_puts(2, "wp_runtime: workspace pool exhausted (raise WP_WORKSPACE_BYTES)\n");
        return 0;
    }
    wp_live_ptr[wp_n_live] = wp_pool + start;
    wp_live_end[wp_n_live] = start + (size_t)nbytes;
    return wp_live_ptr[wp_n_live++];
}

static int wp_free_workspace(int device_type, int device_id, void *ptr)
{
    (void)device_type; (void)device_id;
    for (int i = wp_n_live - 1; i >= 0; i--) {
        if (wp_live_ptr[i] == ptr) {
            for (int j = i; j + 1 < wp_n_live; j++) { /* out-of-order free: keep the rest, in order */
                wp_live_ptr[j] = wp_live_ptr[j + 1];
                wp_live_end[j] = wp_live_end[j + 1];
            }
            wp_n_live--;
            return 0;
        }
    }
    return -1;
}

/* -- parallel launch: tasks in sequence, each bracketed for per-core counts ---------------------------- */

typedef struct {
    void *sync_handle;
    int32_t num_task;
} WpParallelGroupEnv;

typedef int (*WpParallelLambda)(int task_id, WpParallelGroupEnv *penv, void *cdata);

static uint32_t wp_launches;

static int wp_parallel_launch(WpParallelLambda flambda, void *cdata, int num_task)
{
    int n = num_task > 0 ? num_task : wp_num_cores;
    WpParallelGroupEnv env = {0, n};
    uint32_t launch = wp_launches++;
    for (int i = 0; i < n; i++) {
        wp_task_begin((uint32_t)i, launch);
        int rc = flambda(i, &env, cdata);
        wp_task_end();
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Tasks run one after another, so by the time a task reaches a barrier every earlier task has passed it;
 * a later task's work before the barrier has not run yet, which a barrier-using kernel would notice.
 * TVM's CPU schedules used by woodpecker never emit barriers; report one instead of computing wrong data. */
static int wp_parallel_barrier(int task_id, WpParallelGroupEnv *penv)
{
    (void)task_id; (void)penv;
    wp_puts(2, "wp_runtime: TVMBackendParallelBarrier is not supported by the sequential task runner\n");
    return -1;
}

void *(*__TVMBackendAllocWorkspace)(int, int, uint64_t, int, int) = wp_alloc_workspace;
int (*__TVMBackendFreeWorkspace)(int, int, void *) = wp_free_workspace;
int (*__TVMBackendParallelLaunch)(WpParallelLambda, void *, int) = wp_parallel_launch;
int (*__TVMBackendParallelBarrier)(int, WpParallelGroupEnv *) = wp_parallel_barrier;

/* -- errors raised by a kernel (argument checks) ------------------------------------------------------- */

void TVMFFIErrorSetRaisedFromCStrParts(const char *kind, const char **parts, int32_t n_parts)
{
    wp_error_raised = 1;
    wp_puts(2, kind ? kind : "Error");
    wp_puts(2, ": ");
    for (int32_t i = 0; i < n_parts; i++)
        if (parts[i])
            wp_puts(2, parts[i]);
    wp_puts(2, "\n");
}
