/*
 * rvcount: a QEMU TCG plugin that counts the RISC-V instructions a guest executes, by class, between marker
 * system calls, with an optional set-associative LRU cache model. Stage: simulated measurement
 * (guest ELF under qemu-user -> JSON counts).
 *
 * Instruction classes are decoded once per translation block (RVC included); executing a block adds its
 * per-class totals with one inline add per class, so counting costs almost nothing at run time.
 *
 * Vector instructions are also counted weighted by LMUL (the number of vector registers each one touches),
 * because a core with a datapath narrower than VLEN needs LMUL * VLEN / DLEN beats per instruction. LMUL is
 * a run-time state set by vsetvli/vsetivli: inside a block it is known statically after the block's own
 * vset; before it, the state left by the previous block applies. Blocks with vector instructions therefore
 * also get an exec callback that adds the weighted count and carries the LMUL state forward.
 *
 * Marker system calls (a7 = number; qemu answers -ENOSYS, the plugin sees them first):
 *   0x5A5A0 begin a measured region     0x5A5A1 end it (its counts are recorded)
 *   0x5A5A2 begin task a0 of launch a1  0x5A5A3 end that task (per-task counts: one task = one core)
 *
 * Options (-plugin librvcount.so,out=FILE[,cache=1,l1=BYTES,l1_assoc=N,line=BYTES,l2=BYTES,l2_assoc=N,
 *          cores=N,l1_shared=0|1]):
 *   the cache model runs only inside regions and starts cold at each region; with cores > 1 each task's core
 *   has its own L1 (unless l1_shared=1, the shared TCDM of a PULP cluster) and the L2 is shared.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_plugin_api.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

enum {
    C_INSNS,
    C_RVC,
    C_ALU,
    C_MUL,
    C_DIV,
    C_LOAD,
    C_STORE,
    C_FLOAD,
    C_FSTORE,
    C_FP,
    C_FMA,
    C_FDIV,
    C_BRANCH,
    C_SYS,
    C_VSET,
    C_VLOAD,
    C_VSTORE,
    C_VMEM_SI,
    C_VARITH,
    C_VFMA,
    C_VLMUL, /* vector instructions (vset excluded) weighted by LMUL */
    C_MEM_READS,
    C_MEM_WRITES,
    C_L1_MISSES,
    C_L2_MISSES,
    C_N
};

static const char *const NAMES[C_N] = {
    "insns", "rvc", "alu", "mul", "div", "load", "store", "fload", "fstore", "fp", "fma", "fdiv", "branch",
    "sys", "vset", "vload", "vstore", "vmem_strided_indexed", "varith", "vfma", "v_lmul_weighted",
    "mem_reads", "mem_writes", "l1_misses", "l2_misses",
};

#define MARK_BEGIN 0x5A5A0
#define MARK_END 0x5A5A1
#define MARK_TASK_BEGIN 0x5A5A2
#define MARK_TASK_END 0x5A5A3
#define MAX_CORES 64

static uint64_t counters[C_N];
static int xlen = 64;
static const char *out_path = "rvcount.json";

/* -- LMUL state ------------------------------------------------------------------------------------------- */

static uint64_t cur_lmul = 1; /* LMUL of the vtype in force (fractional LMUL counts as 1) */

struct tb_vec {
    uint64_t known_weight; /* sum of LMUL weights of vector insns after the block's first vset */
    uint32_t unknown;      /* vector insns before the first vset: weighted with the incoming LMUL */
    uint32_t last_lmul;    /* LMUL set by the block's last vset; 0 = no vset (state carries through) */
};

static void tb_vec_exec(unsigned int vcpu, void *udata)
{
    const struct tb_vec *t = udata;
    (void)vcpu;
    counters[C_VLMUL] += t->known_weight + (uint64_t)t->unknown * cur_lmul;
    if (t->last_lmul)
        cur_lmul = t->last_lmul;
}

static uint32_t lmul_of_vtype(uint32_t vtype)
{
    switch (vtype & 7) {
    case 1: return 2;
    case 2: return 4;
    case 3: return 8;
    default: return 1; /* m1 and the fractional settings mf2/mf4/mf8 occupy one register */
    }
}

/* -- cache model ------------------------------------------------------------------------------------------ */

struct cache {
    uint32_t sets, assoc;
    uint64_t *tags;  /* sets * assoc line numbers, UINT64_MAX = empty */
    uint64_t *stamp; /* last use, for LRU */
    uint64_t clock;
};

static int cache_on;
static uint32_t line_shift = 6;
static uint64_t l1_bytes = 32768, l2_bytes;
static uint32_t l1_assoc = 4, l2_assoc = 8;
static int n_cores = 1, l1_shared;
static struct cache l1[MAX_CORES], l2;
static int cur_core;
static int in_region;

static void cache_init(struct cache *c, uint64_t bytes, uint32_t assoc)
{
    uint64_t lines = bytes >> line_shift;
    if (assoc == 0 || lines == 0) {
        c->sets = 0;
        return;
    }
    if (assoc > lines)
        assoc = (uint32_t)lines;
    c->assoc = assoc;
    c->sets = (uint32_t)(lines / assoc);
    free(c->tags);
    free(c->stamp);
    c->tags = malloc(sizeof(uint64_t) * c->sets * assoc);
    c->stamp = calloc((size_t)c->sets * assoc, sizeof(uint64_t));
    memset(c->tags, 0xff, sizeof(uint64_t) * c->sets * assoc);
    c->clock = 0;
}

static void cache_reset(struct cache *c)
{
    if (!c->sets)
        return;
    memset(c->tags, 0xff, sizeof(uint64_t) * c->sets * c->assoc);
    memset(c->stamp, 0, sizeof(uint64_t) * c->sets * c->assoc);
    c->clock = 0;
}

/* Returns 1 on a hit; on a miss the least recently used way of the set is replaced (write-allocate). */
static int cache_access(struct cache *c, uint64_t line)
{
    uint64_t *tags = c->tags + (size_t)(line % c->sets) * c->assoc;
    uint64_t *stamp = c->stamp + (size_t)(line % c->sets) * c->assoc;
    uint32_t victim = 0;
    c->clock++;
    for (uint32_t w = 0; w < c->assoc; w++) {
        if (tags[w] == line) {
            stamp[w] = c->clock;
            return 1;
        }
        if (stamp[w] < stamp[victim])
            victim = w;
    }
    tags[victim] = line;
    stamp[victim] = c->clock;
    return 0;
}

static void mem_access(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
    (void)vcpu;
    (void)udata;
    if (!in_region)
        return;
    counters[qemu_plugin_mem_is_store(info) ? C_MEM_WRITES : C_MEM_READS]++;
    uint64_t size = 1ull << qemu_plugin_mem_size_shift(info);
    uint64_t first = vaddr >> line_shift, last = (vaddr + size - 1) >> line_shift;
    struct cache *c1 = &l1[l1_shared ? 0 : cur_core];
    for (uint64_t line = first; line <= last; line++) {
        if (c1->sets && cache_access(c1, line))
            continue;
        counters[C_L1_MISSES]++;
        if (l2.sets && !cache_access(&l2, line))
            counters[C_L2_MISSES]++;
    }
}

/* -- regions and tasks ------------------------------------------------------------------------------------ */

struct task_rec {
    uint32_t region, launch, task;
    uint64_t counts[C_N];
};

static uint64_t region_start[C_N], task_start[C_N];
static uint64_t (*regions)[C_N];
static size_t n_regions, cap_regions;
static struct task_rec *tasks;
static size_t n_tasks, cap_tasks;
static uint32_t task_launch, task_id;

static void marker(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2, uint64_t a3,
                   uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    (void)id; (void)vcpu; (void)a3; (void)a4; (void)a5; (void)a6; (void)a7; (void)a8;
    switch (num) {
    case MARK_BEGIN:
        memcpy(region_start, counters, sizeof counters);
        for (int i = 0; i < n_cores; i++)
            cache_reset(&l1[i]);
        cache_reset(&l2);
        cur_core = 0;
        in_region = 1;
        break;
    case MARK_END:
        if (!in_region)
            break;
        if (n_regions == cap_regions) {
            cap_regions = cap_regions ? 2 * cap_regions : 16;
            regions = realloc(regions, cap_regions * sizeof *regions);
        }
        for (int i = 0; i < C_N; i++)
            regions[n_regions][i] = counters[i] - region_start[i];
        n_regions++;
        in_region = 0;
        break;
    case MARK_TASK_BEGIN:
        memcpy(task_start, counters, sizeof counters);
        task_id = (uint32_t)a1;
        task_launch = (uint32_t)a2;
        cur_core = (int)(task_id % (uint32_t)n_cores);
        break;
    case MARK_TASK_END:
        if (n_tasks == cap_tasks) {
            cap_tasks = cap_tasks ? 2 * cap_tasks : 64;
            tasks = realloc(tasks, cap_tasks * sizeof *tasks);
        }
        tasks[n_tasks].region = (uint32_t)n_regions; /* index of the region being recorded */
        tasks[n_tasks].launch = task_launch;
        tasks[n_tasks].task = task_id;
        for (int i = 0; i < C_N; i++)
            tasks[n_tasks].counts[i] = counters[i] - task_start[i];
        n_tasks++;
        cur_core = 0;
        break;
    default:
        break;
    }
}

/* -- decoding --------------------------------------------------------------------------------------------- */

/* Class of a 16-bit (RVC) instruction. */
static int classify_rvc(uint32_t h)
{
    uint32_t quadrant = h & 3, f3 = (h >> 13) & 7;
    if (quadrant == 0) {
        switch (f3) {
        case 0: return C_ALU;                                  /* c.addi4spn */
        case 1: return C_FLOAD;                                /* c.fld */
        case 2: return C_LOAD;                                 /* c.lw */
        case 3: return xlen == 32 ? C_FLOAD : C_LOAD;          /* c.flw / c.ld */
        case 5: return C_FSTORE;                               /* c.fsd */
        case 6: return C_STORE;                                /* c.sw */
        case 7: return xlen == 32 ? C_FSTORE : C_STORE;        /* c.fsw / c.sd */
        default: return C_ALU;
        }
    }
    if (quadrant == 1) {
        switch (f3) {
        case 1: return xlen == 32 ? C_BRANCH : C_ALU;          /* c.jal / c.addiw */
        case 5: case 6: case 7: return C_BRANCH;               /* c.j, c.beqz, c.bnez */
        default: return C_ALU;
        }
    }
    switch (f3) {                                              /* quadrant 2 */
    case 1: return C_FLOAD;                                    /* c.fldsp */
    case 2: return C_LOAD;                                     /* c.lwsp */
    case 3: return xlen == 32 ? C_FLOAD : C_LOAD;              /* c.flwsp / c.ldsp */
    case 4: {
        uint32_t rs1 = (h >> 7) & 31, rs2 = (h >> 2) & 31;
        if (rs2 == 0 && rs1 != 0)
            return C_BRANCH;                                   /* c.jr / c.jalr */
        if (rs2 == 0 && rs1 == 0)
            return C_SYS;                                      /* c.ebreak */
        return C_ALU;                                          /* c.mv / c.add */
    }
    case 5: return C_FSTORE;                                   /* c.fsdsp */
    case 6: return C_STORE;                                    /* c.swsp */
    case 7: return xlen == 32 ? C_FSTORE : C_STORE;            /* c.fswsp / c.sdsp */
    default: return C_ALU;                                     /* c.slli */
    }
}

/*
 * Class of a 32-bit instruction. For vector memory instructions *fixed_weight is set when the register count
 * does not depend on LMUL (whole-register moves); for segment accesses *nf_mult is the field count.
 */
static int classify32(uint32_t w, uint32_t *fixed_weight, uint32_t *nf_mult)
{
    uint32_t op = w & 0x7f, f3 = (w >> 12) & 7;
    *fixed_weight = 0;
    *nf_mult = 1;
    switch (op) {
    case 0x03: return C_LOAD;
    case 0x23: return C_STORE;
    case 0x2f: return C_LOAD; /* AMO / LR / SC: a memory round trip */
    case 0x07:
    case 0x27: {
        int is_load = op == 0x07;
        if (f3 >= 1 && f3 <= 4)
            return is_load ? C_FLOAD : C_FSTORE; /* flh/flw/fld/flq and stores */
        uint32_t mop = (w >> 26) & 3, nf = (w >> 29) & 7, lumop = (w >> 20) & 31;
        if (mop == 0 && lumop == 8) { /* whole-register load/store: nf+1 registers */
            *fixed_weight = nf + 1;
            return is_load ? C_VLOAD : C_VSTORE;
        }
        if (mop == 0 && lumop == 11) { /* mask load/store: one register */
            *fixed_weight = 1;
            return is_load ? C_VLOAD : C_VSTORE;
        }
        *nf_mult = nf + 1;
        if (mop != 0)
            return C_VMEM_SI; /* strided or indexed: one element at a time on in-order cores */
        return is_load ? C_VLOAD : C_VSTORE;
    }
    case 0x33:
    case 0x3b:
        if ((w >> 25) == 1)
            return f3 < 4 ? C_MUL : C_DIV;
        return C_ALU;
    case 0x43: case 0x47: case 0x4b: case 0x4f:
        return C_FMA;
    case 0x53: {
        uint32_t f5 = w >> 27;
        return (f5 == 0x03 || f5 == 0x0b) ? C_FDIV : C_FP; /* fdiv / fsqrt */
    }
    case 0x57: {
        if (f3 == 7)
            return C_VSET;
        uint32_t f6 = w >> 26;
        if ((f3 == 1 || f3 == 5) && ((f6 >= 0x28 && f6 <= 0x2f) || (f6 >= 0x3c && f6 <= 0x3f)))
            return C_VFMA; /* vf[n]macc, vf[n]madd, vf[n]msac, vf[n]msub and the widening forms */
        return C_VARITH;
    }
    case 0x63: case 0x67: case 0x6f:
        return C_BRANCH;
    case 0x73:
        return C_SYS;
    default:
        return C_ALU;
    }
}

/* LMUL of a vsetvli / vsetivli immediate; 0 for vsetvl (vtype from a register: unknown here). */
static uint32_t vset_lmul(uint32_t w)
{
    if ((w >> 31) == 0)
        return lmul_of_vtype((w >> 20) & 0x7ff); /* vsetvli */
    if ((w >> 30) == 3)
        return lmul_of_vtype((w >> 20) & 0x3ff); /* vsetivli */
    return 0;
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    uint64_t per_class[C_N] = {0};
    size_t n = qemu_plugin_tb_n_insns(tb);
    struct tb_vec vec = {0, 0, 0};
    int has_vector = 0, seen_vset = 0;
    uint32_t lmul_here = 1;
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        const uint8_t *bytes = qemu_plugin_insn_data(insn);
        size_t size = qemu_plugin_insn_size(insn);
        uint32_t w = 0;
        memcpy(&w, bytes, size < 4 ? size : 4);
        int cls;
        uint32_t fixed = 0, nf = 1;
        if (size == 2) {
            cls = classify_rvc(w & 0xffff);
            per_class[C_RVC]++;
        } else {
            cls = classify32(w, &fixed, &nf);
        }
        per_class[cls]++;
        if (cls == C_VSET) {
            has_vector = 1;
            uint32_t l = vset_lmul(w);
            if (l) {
                seen_vset = 1;
                lmul_here = l;
                vec.last_lmul = l;
            }
        } else if (cls >= C_VLOAD && cls <= C_VFMA) {
            has_vector = 1;
            if (fixed)
                vec.known_weight += fixed;
            else if (seen_vset)
                vec.known_weight += (uint64_t)lmul_here * nf;
            else if (nf == 1)
                vec.unknown++;
            else
                vec.unknown += nf; /* segment access before any vset: nf registers per LMUL */
        }
        if (cache_on && (cls == C_LOAD || cls == C_STORE || cls == C_FLOAD || cls == C_FSTORE ||
                         cls == C_VLOAD || cls == C_VSTORE || cls == C_VMEM_SI))
            qemu_plugin_register_vcpu_mem_cb(insn, mem_access, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW, NULL);
    }
    per_class[C_INSNS] = n;
    for (int c = 0; c < C_VLMUL; c++)
        if (per_class[c])
            qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &counters[c], per_class[c]);
    if (has_vector) {
        struct tb_vec *t = malloc(sizeof *t); /* lives as long as the translated block may run */
        *t = vec;
        qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_vec_exec, QEMU_PLUGIN_CB_NO_REGS, t);
    }
}

/* -- output ----------------------------------------------------------------------------------------------- */

static void write_counts(FILE *f, const uint64_t *c)
{
    fputc('[', f);
    for (int i = 0; i < C_N; i++)
        fprintf(f, "%s%" PRIu64, i ? "," : "", c[i]);
    fputc(']', f);
}

static void at_exit(qemu_plugin_id_t id, void *udata)
{
    (void)id;
    (void)udata;
    FILE *f = fopen(out_path, "w");
    if (!f) {
        qemu_plugin_outs("rvcount: cannot open the output file\n");
        return;
    }
    fprintf(f, "{\"version\":1,\"xlen\":%d,\"cache\":%d,\"names\":[", xlen, cache_on);
    for (int i = 0; i < C_N; i++)
        fprintf(f, "%s\"%s\"", i ? "," : "", NAMES[i]);
    fprintf(f, "],\n\"total\":");
    write_counts(f, counters);
    fprintf(f, ",\n\"regions\":[");
    for (size_t r = 0; r < n_regions; r++) {
        fprintf(f, "%s\n", r ? "," : "");
        write_counts(f, regions[r]);
    }
    fprintf(f, "],\n\"tasks\":[");
    for (size_t t = 0; t < n_tasks; t++) {
        fprintf(f, "%s\n{\"region\":%u,\"launch\":%u,\"task\":%u,\"counts\":", t ? "," : "", tasks[t].region,
                tasks[t].launch, tasks[t].task);
        write_counts(f, tasks[t].counts);
        fputc('}', f);
    }
    fprintf(f, "]}\n");
    fclose(f);
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    uint64_t line_bytes = 64, v;
    xlen = (info && info->target_name && strstr(info->target_name, "32")) ? 32 : 64;
    for (int i = 0; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            fprintf(stderr, "rvcount: option %s is not key=value\n", argv[i]);
            return -1;
        }
        *eq = '\0';
        const char *key = argv[i], *val = eq + 1;
        if (!strcmp(key, "out")) {
            out_path = val;
            continue;
        }
        if (parse_u64(val, &v)) {
            fprintf(stderr, "rvcount: option %s=%s is not a number\n", key, val);
            return -1;
        }
        if (!strcmp(key, "cache")) cache_on = v != 0;
        else if (!strcmp(key, "l1")) l1_bytes = v;
        else if (!strcmp(key, "l1_assoc")) l1_assoc = (uint32_t)v;
        else if (!strcmp(key, "l2")) l2_bytes = v;
        else if (!strcmp(key, "l2_assoc")) l2_assoc = (uint32_t)v;
        else if (!strcmp(key, "line")) line_bytes = v;
        else if (!strcmp(key, "cores")) n_cores = v < 1 ? 1 : (v > MAX_CORES ? MAX_CORES : (int)v);
        else if (!strcmp(key, "l1_shared")) l1_shared = v != 0;
        else {
            fprintf(stderr, "rvcount: unknown option %s\n", key);
            return -1;
        }
    }
    line_shift = 0;
    while ((1ull << line_shift) < line_bytes)
        line_shift++;
    if (cache_on) {
        for (int i = 0; i < (l1_shared ? 1 : n_cores); i++)
            cache_init(&l1[i], l1_bytes, l1_assoc);
        if (l2_bytes)
            cache_init(&l2, l2_bytes, l2_assoc);
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, marker);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
