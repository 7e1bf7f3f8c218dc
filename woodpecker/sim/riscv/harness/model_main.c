/*
 * Model harness: run woodpecker_model_run (the generated model.c) on the inputs a generated data.S provides
 * and write every output raw to stdout. Stage: simulated model run (model.c + kernels + data.S -> ELF).
 *
 * model.c, built with -DWOODPECKER_PROFILE_CALLS, brackets each kernel call as a measured region, so the
 * counting plugin reports the counts of every call; copying inputs in and outputs out is not measured.
 */
#include "wp_runtime.h"

int woodpecker_model_run(const void *const *inputs, void *const *outputs);

extern const uint32_t wp_model_ninputs, wp_model_noutputs, wp_ncores;
extern const uint64_t wp_model_output_nbytes[];
extern const void *const wp_model_inputs[];
extern void *const wp_model_outputs[];

void wp_main(void)
{
    wp_num_cores = (int)wp_ncores;
    int rc = woodpecker_model_run(wp_model_inputs, wp_model_outputs);
    if (rc != 0 || wp_error_raised) {
        wp_puts(2, "harness: the model returned an error\n");
        wp_exit(2);
    }
    for (uint32_t i = 0; i < wp_model_noutputs; i++)
        wp_write_all(1, wp_model_outputs[i], (size_t)wp_model_output_nbytes[i]);
    wp_exit(0);
}
