"""Code generation through TVM: scheduled TIR -> a native library (LLVM for CPUs)."""
