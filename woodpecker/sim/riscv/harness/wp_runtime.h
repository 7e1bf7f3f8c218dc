/*
 * wp_runtime: what a TVM-compiled kernel object needs from its host when there is no TVM runtime, plus the
 * few raw Linux system calls and the measurement markers the simulation harness uses.
 *
 * Works freestanding (no libc) on rv64 Linux-user and rv32 bare-metal-style images run under qemu-user. A
 * firmware project links wp_runtime.c with model.c and the kernel objects; on real silicon it replaces
 * wp_write/wp_exit (the only system calls) and may leave the markers in place (they cost one ecall each, or
 * define WP_NO_MARKERS to drop them).
 */
#ifndef WOODPECKER_WP_RUNTIME_H
#define WOODPECKER_WP_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

/* -- the TVM / DLPack binary interface a kernel's packed function takes -------------------------------- */

typedef struct {
    int32_t device_type; /* 1 = kDLCPU */
    int32_t device_id;
} WpDLDevice;

typedef struct {
    uint8_t code; /* 0 int, 1 uint, 2 float, 4 bfloat, 6 bool */
    uint8_t bits;
    uint16_t lanes;
} WpDLDataType;

typedef struct {
    void *data;
    WpDLDevice device;
    int32_t ndim;
    WpDLDataType dtype;
    int64_t *shape;
    int64_t *strides; /* NULL: compact row-major */
    uint64_t byte_offset;
} WpDLTensor;

typedef struct {
    int32_t type_index; /* 7 = kTVMFFIDLTensorPtr, 0 = None */
    uint32_t zero_padding;
    union {
        int64_t v_int64;
        double v_float64;
        void *v_ptr;
    };
} WpFFIAny;

#define WP_FFI_NONE 0
#define WP_FFI_DLTENSOR_PTR 7

/* int __tvm_ffi_<kernel>(void *self, const TVMFFIAny *args, int32_t num_args, TVMFFIAny *result) */
typedef int (*WpPackedFunc)(void *self, const WpFFIAny *args, int32_t num_args, WpFFIAny *result);

/* -- host services ------------------------------------------------------------------------------------- */

/* Cores a parallel loop is split over (TVM's num_task when the kernel passes 0). Set before running. */
extern int wp_num_cores;

long wp_write(int fd, const void *buf, size_t n);
void wp_write_all(int fd, const void *buf, size_t n);
void wp_puts(int fd, const char *s);
__attribute__((noreturn)) void wp_exit(int code);

/* Measurement markers (a7 = 0x5A5A0..3, see plugin/rvcount.c). */
void wp_region_begin(void);
void wp_region_end(void);
void wp_task_begin(uint32_t task, uint32_t launch);
void wp_task_end(void);

/* Set by TVMFFIErrorSetRaisedFromCStrParts when a kernel reports an error (kernels then return non-zero). */
extern int wp_error_raised;

#endif
