"""The GPU device kit: everything a GPU machine without TVM's compiler needs to validate woodpecker's GPU path.

    python -m woodpecker.devicekit build KIT --profile h100     # here, no GPU needed (woodpecker.devicekit.build)
    KIT/run.sh RESULTS                                          # on the GPU machine (woodpecker.devicekit.run)
    python -m woodpecker.devicekit refit RESULTS --kit KIT      # here: fit the GPU model (woodpecker.devicekit.refit)

The kit holds the TVM runtime (no compiler library), tvm-ffi and woodpecker as wheels that install with pip's
--no-index, prebuilt artifacts with their onnxruntime reference outputs, and the calibration suite of
benchmarks/gpu_calibrate.py prebuilt as one CUDA module per candidate.
"""

KIT_FORMAT = "woodpecker-devicekit"
KIT_VERSION = 1
MAX_KIT_BYTES = 60 * 1024 * 1024  # the device machine takes 64 MiB of extra files per command
