/*
 * Kernel harness: run one TVM kernel on the inputs a generated data.S provides, inside a measured region,
 * and write the outputs raw to stdout. Stage: simulated measurement (kernel object + data.S -> ELF).
 *
 * data.S (woodpecker/sim/riscv/harness.py) defines, per argument (inputs first, outputs last): the data
 * pointer, rank, dtype and shape; plus the kernel's packed function, the number of outputs and the cores.
 */
#include "wp_runtime.h"

#define WP_MAX_ARGS 64

extern const uint32_t wp_nargs, wp_noutputs, wp_ncores;
extern const uint32_t wp_arg_ndim[], wp_arg_dtype[], wp_arg_shape_off[];
extern const int64_t wp_shapes[];
extern const uint64_t wp_arg_nbytes[];
extern void *const wp_arg_data[];
extern const WpPackedFunc wp_kernel;

static WpDLTensor tensors[WP_MAX_ARGS];
static WpFFIAny args[WP_MAX_ARGS];

void wp_main(void)
{
    uint32_t n = wp_nargs;
    if (n > WP_MAX_ARGS) {
        wp_puts(2, "harness: too many kernel arguments\n");
        wp_exit(2);
    }
    wp_num_cores = (int)wp_ncores;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t dt = wp_arg_dtype[i];
        tensors[i].data = wp_arg_data[i];
        tensors[i].device.device_type = 1;
        tensors[i].device.device_id = 0;
        tensors[i].ndim = (int32_t)wp_arg_ndim[i];
        tensors[i].dtype.code = (uint8_t)(dt & 0xff);
        tensors[i].dtype.bits = (uint8_t)((dt >> 8) & 0xff);
        tensors[i].dtype.lanes = (uint16_t)(dt >> 16);
        tensors[i].shape = (int64_t *)&wp_shapes[wp_arg_shape_off[i]];
        tensors[i].strides = 0;
        tensors[i].byte_offset = 0;
        args[i].type_index = WP_FFI_DLTENSOR_PTR;
        args[i].zero_padding = 0;
        args[i].v_int64 = 0;
        args[i].v_ptr = &tensors[i];
    }
    WpFFIAny result;
    result.type_index = WP_FFI_NONE;
    result.zero_padding = 0;
    result.v_int64 = 0;
    wp_region_begin();
    int rc = wp_kernel(0, args, (int32_t)n, &result);
    wp_region_end();
    if (rc != 0 || wp_error_raised) {
        wp_puts(2, "harness: the kernel returned an error\n");
        wp_exit(2);
    }
    for (uint32_t i = n - wp_noutputs; i < n; i++)
        wp_write_all(1, wp_arg_data[i], (size_t)wp_arg_nbytes[i]);
    wp_exit(0);
}
