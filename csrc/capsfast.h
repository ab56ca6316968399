/*
 * capsfast C core: the interface Python sees.
 *
 * build_ffi.py hands this file to cffi's cdef as it is, so it holds only
 * declarations cffi can parse (no #include, no #if, integer #defines only;
 * include <stdint.h> first).  The same interface
 * compiles on every architecture; CPUID is reported unavailable off x86.
 *
 * Every result is data: 0 or -errno, never an abort.  C allocates nothing:
 * Python owns every struct and buffer and passes them in.
 */

/* Bumped whenever a struct below changes; checked at import. */
#define CAPSFAST_ABI 2

/* What struct capsfast_file.op asks for. */
#define CAPSFAST_OP_STAT 0        /* stat(): err and mode only */
#define CAPSFAST_OP_READ 1        /* a small regular file, up to cap bytes */
#define CAPSFAST_OP_READ_BLOCK 2  /* read until the first blank line (one /proc/cpuinfo block) */
#define CAPSFAST_OP_MSR 3         /* 8 bytes little-endian at offset msr, as the msr driver serves them */

struct capsfast_regs {
    uint32_t eax, ebx, ecx, edx;
};

struct capsfast_cpu {
    int available;                /* 1 if CPUID ran */
    struct capsfast_regs basic0;  /* leaf 0x00000000: max basic leaf, vendor */
    struct capsfast_regs basic1;  /* leaf 0x00000001: signature, feature bits */
    struct capsfast_regs ext0;    /* leaf 0x80000000: max extended leaf (zero if invalid) */
    struct capsfast_regs ext1;    /* leaf 0x80000001, only if ext0 allows it, else zero */
    struct capsfast_regs hv0;     /* leaf 0x40000000, only with the hypervisor bit, else zero */
};

struct capsfast_kvm {
    int stat_err;      /* 0 or -errno of stat() */
    uint32_t mode;     /* st_mode */
    int access_err;    /* read-write access for this process: 0 or -errno; 1 if not tried */
    int open_err;      /* 0 or -errno; 1 if not tried (not a character device);
                          -ENODEV, not opened: a character device other than 10:232 */
    int api_version;   /* KVM_GET_API_VERSION, or -errno; -1000 if not tried */
    int create_vm;     /* 1 created, 0 not tried, -errno failed */
};

struct capsfast_file {
    const char *path;  /* in: full path, root prefix included */
    int op;            /* in: CAPSFAST_OP_* */
    uint32_t msr;      /* in: MSR number for CAPSFAST_OP_MSR */
    char *buf;         /* in: buffer for the READ ops, owned by the caller */
    uint32_t cap;      /* in: its size */
    int err;           /* out: 0 or -errno; -EISDIR a directory, -EINVAL neither a
                          regular file nor (MSR op) the msr driver's node: never
                          opened; -ENODATA fewer than 8 bytes at the MSR offset */
    uint32_t mode;     /* out: st_mode when known */
    uint32_t len;      /* out: bytes placed in buf */
    int truncated;     /* out: 1 if the file held more than fitted */
    uint64_t value;    /* out: the MSR value */
    int after;         /* in: a dependency on entry k of the same array, stored as
                          k+1 so that 0, what a zeroed struct holds, means none.
                          With k+1, run only if entry k found its file (its err is
                          0); else err = -ENOENT with no system call (a nested
                          parameter of a module that is not loaded).  A value that
                          names no earlier entry (negative, or k not below this
                          entry's index) gives err = -EINVAL */
};

/*
 * One probe, one call: CPUID (if want_cpu), the KVM device at kvm_path (if
 * not NULL; KVM_CREATE_VM only if deep), then each file in order.
 * Returns 0, or -EINVAL for arguments that make no sense.
 */
int capsfast_probe(int want_cpu, struct capsfast_cpu *cpu,
                   const char *kvm_path, int deep, struct capsfast_kvm *kvm,
                   struct capsfast_file *files, int nfiles);

/* 1 when this build can execute CPUID (x86), else 0. */
int capsfast_has_cpuid(void);

/* CPUID instructions this process has executed through capsfast (each
 * one a VM exit under a hypervisor); counted in every build. */
uint64_t capsfast_cpuid_executed(void);

/* The most threads seen inside capsfast_probe at once (since load or the
 * last reset); reset != 0 also sets it back to zero.  Tests use it to show
 * the GIL is released around the call.  Counted only in a build with
 * CAPSFAST_TEST_COUNTERS defined (it costs atomics on every probe);
 * otherwise it returns -1.  Declared in every build: the cdef is this file. */
int capsfast_peak_concurrency(int reset);
