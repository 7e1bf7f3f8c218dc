/*
 * Entry point of a simulation image (no C library): set the global pointer the linker relaxes against and
 * a thread pointer (picolibc's errno is thread-local; qemu-user starts with tp = 0), align the stack, run
 * wp_main. qemu-user has already zeroed .bss and set up the stack.
 */
    .section .text._start, "ax", @progbits
    .globl _start
_start:
    .option push
    .option norelax
    la gp, __global_pointer$
    .option pop
    la tp, wp_tls_block
    andi sp, sp, -16
    call wp_main
1:  j 1b

    .section .bss.wp_tls_block, "aw", @nobits
    .balign 64
wp_tls_block:
    .zero 1024
