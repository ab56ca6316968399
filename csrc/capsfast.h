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
#define CAPSFAST_ABI 8

/* What struct capsfast_file.op asks for. */
#define CAPSFAST_OP_STAT 0        /* stat(): err and mode only */
#define CAPSFAST_OP_READ 1        /* a small regular file, up to cap bytes, read to its end;
                                     looked at first (stat, open, fstat): for a file that is
                                     often absent, where a failed stat costs less than a
                                     failed open */
#define CAPSFAST_OP_READ_BLOCK 2  /* read until the first blank line (one /proc/cpuinfo block) */
#define CAPSFAST_OP_MSR 3         /* 8 bytes little-endian at offset msr, as the msr driver serves them */
#define CAPSFAST_OP_LIST 4        /* a directory's entry names, each ended by a NUL byte,
                                     "." and ".." left out, in the order the kernel gives */
#define CAPSFAST_OP_READ_ONCE 5   /* a file known to be there (a listing named it): as READ,
                                     but a short read is the end: for a sysfs attribute (the
                                     kernel writes it whole in the first read) or a file in a
                                     directory tree; not for a procfs file of many records,
                                     served a page at a time */

/* READ_BLOCK and READ_ONCE open, read and close: a file that reads as one
 * is never stat()ed.  A symbolic link is looked at before it is opened; a
 * directory, FIFO or device is named by one fstat() once it reads empty,
 * fails or fills the buffer, and gives the results it would have had if
 * looked at first (a FIFO whose writer already wrote reads as written).
 * Only a device node itself (never in sysfs or procfs; making one takes
 * privilege) is opened, without blocking, before it is refused. */

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
                          opened; -ENODATA fewer than 8 bytes at the MSR offset;
                          LIST op: -ENOTDIR for anything but a directory */
    uint32_t mode;     /* out: st_mode when known: STAT, READ and MSR ops, a
                          LIST that opened (S_IFDIR) or failed, a READ_BLOCK or
                          READ_ONCE refused, empty or truncated */
    uint32_t len;      /* out: bytes placed in buf */
    int truncated;     /* out: 1 if the file held more than fitted (LIST op: more
                          names than fitted; only whole names are placed) */
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

/*
 * The full CPUID walk, as libvirt's x86 host CPU probe walks it (cpuidSet()
 * in src/cpu/cpu_x86.c), for recordings; never part of a probe.  Subleaf
 * 0 of every basic leaf 0..max (leaf 0 EAX), with these subleaves:
 *   0x4   1, 2, ... until the cache type (EAX[4:0]) is 0, that one included
 *   0x7   1..EAX of subleaf 0                0x14  likewise
 *   0xb   0, 1, ... while ECX[15:8] is not 0; the first with 0 is dropped
 *   0xd   1, and n (2..63) for each bit n set in subleaf 0 EAX|EDX<<32 or
 *         subleaf 1 ECX|EDX<<32
 *   0xf   n (1..31) for each bit n of subleaf 0 EDX; 0x10 likewise of EBX
 *   0x12  only with SGX (leaf 7 subleaf 0 EBX bit 2), else dropped: 1, then
 *         2, 3, ... while EAX[3:0] is not 0; the first with 0 is dropped
 *   0x17  only when its EAX >= 3, else dropped: 1..EAX
 * then 0x80000000..max (its EAX), then, with the hypervisor bit (leaf 1 ECX
 * bit 31), 0x40000000..max (its EAX), subleaf 0 each.  A range's base leaf
 * is always kept, even when its EAX is below the base (no more leaves).
 * Unlike libvirt, leaf 0 and 0x80000000 each run once.
 *
 * Bounds, whatever the CPU or hypervisor claims (libvirt has none, and a
 * maximum leaf of 0xffffffff never ends its loop): CAPSFAST_WALK_LEAVES
 * leaves per range (base..base+255), CAPSFAST_WALK_SUBLEAVES subleaves per
 * leaf (0..63); a walk never holds more than CAPSFAST_WALK_MAX entries.
 */
#define CAPSFAST_WALK_LEAVES 256
#define CAPSFAST_WALK_SUBLEAVES 64
/* 3 ranges x 256 leaves, + 63 more subleaves each for 0x4, 0x7, 0xb, 0xd,
 * 0x12, 0x14, 0x17, + 31 each for 0xf and 0x10 */
#define CAPSFAST_WALK_MAX 1271

struct capsfast_leaf {
    uint32_t leaf, subleaf;
    uint32_t eax, ebx, ecx, edx;
};

/*
 * Writes the walk into out[0..cap-1] in walk order, in one call; returns
 * the number of entries, 0 where this build has no CPUID (as
 * capsfast_has_cpuid() says), -EINVAL for cap < 0 or a NULL out with
 * cap > 0, -ENOSPC when the walk needs more than cap entries (the first
 * cap are written, never more).  Every CPUID run is counted by
 * capsfast_cpuid_executed(): the entries plus those dropped above (on
 * i686 one more, the check that CPUID exists).
 */
int capsfast_cpuid_walk(struct capsfast_leaf *out, int cap);

/* CPUID instructions this process has executed through capsfast (each
 * one a VM exit under a hypervisor); counted in every build. */
uint64_t capsfast_cpuid_executed(void);

/*
 * KVM_CHECK_EXTENSION for each of caps[0..n-1] on the system fd of the KVM
 * device at path, in one call; never part of a probe.  The device is opened
 * as capsfast_probe opens it: only the character device 10:232, O_RDWR.
 * values[i] is the ioctl's answer or -errno.  Returns 0 when the device
 * opened (values written), else -errno of stat() or open(), -ENODEV for
 * anything but KVM's character device (never opened), -EINVAL for n < 0 or
 * NULL arrays with n > 0; on failure every values[i] holds that result.
 */
int capsfast_kvm_caps(const char *path, const uint32_t *caps, int32_t *values, int n);

/*
 * What libvirt's host CPU probe asks the KVM device beyond CPUID, in one
 * call; never part of a probe.  The device at path is opened as
 * capsfast_kvm_caps opens it (only the character device 10:232).
 *
 * With want_msr: KVM_GET_MSRS of the one MSR msr_index on the system fd
 * (a feature MSR such as IA32_ARCH_CAPABILITIES, as libvirt's
 * virHostCPUGetMSRFromKVM reads it).  msr_err 0 with msr_value, -errno of
 * the ioctl, -ENODATA when KVM read none (not a feature MSR it serves).
 *
 * With want_tsc: libvirt's virHostCPUGetTscInfo: KVM_CREATE_VM, then
 * KVM_CREATE_VCPU 0, then KVM_GET_TSC_KHZ on the vCPU, then
 * KVM_CHECK_EXTENSION(KVM_CAP_TSC_CONTROL) on the system fd.  tsc_err 0
 * with tsc_khz and tsc_scaling (the extension's answer), else -errno of
 * the step numbered in tsc_step (1 VM, 2 vCPU, 3 TSC kHz, 4 extension).
 *
 * Fields not asked for hold 1 ("not tried").  Returns 0 when the device
 * opened, else -errno of stat() or open(), -ENODEV for anything but KVM's
 * character device (never opened), -EINVAL for NULL arguments.
 */
struct capsfast_host_cpu {
    uint32_t msr_index;  /* in */
    int msr_err;         /* out */
    uint64_t msr_value;  /* out */
    int tsc_err;         /* out */
    int tsc_step;        /* out: 0, or the step that failed */
    uint32_t tsc_khz;    /* out */
    int tsc_scaling;     /* out */
};

int capsfast_kvm_host_cpu(const char *path, int want_msr, int want_tsc, struct capsfast_host_cpu *out);

/* The most threads seen inside capsfast_probe at once (since load or the
 * last reset); reset != 0 also sets it back to zero.  Tests use it to show
 * the GIL is released around the call.  Counted only in a build with
 * CAPSFAST_TEST_COUNTERS defined (it costs atomics on every probe);
 * otherwise it returns -1.  Declared in every build: the cdef is this file. */
int capsfast_peak_concurrency(int reset);

/*
 * KVM_GET_SUPPORTED_CPUID on the system fd of the KVM device at path (opened
 * as capsfast_kvm_caps opens it: only the character device 10:232), for
 * the domain capabilities cache key (libvirt keys its QEMU capabilities
 * cache on what KVM offers guests); never part of a probe.  Each entry's
 * function, index and registers go to out[0..cap-1] (struct capsfast_leaf:
 * leaf = function, subleaf = index), in KVM's order.  Returns the number of
 * entries, -E2BIG when KVM has more than cap (nothing written), -errno of
 * stat(), open() or the ioctl, -ENODEV for anything but KVM's character
 * device (never opened), -EINVAL for cap < 1, cap > CAPSFAST_KVM_CPUID_MAX
 * or a NULL argument.
 */
/* KVM_MAX_CPUID_ENTRIES in the kernel: KVM never has more. */
#define CAPSFAST_KVM_CPUID_MAX 256

int capsfast_kvm_supported_cpuid(const char *path, struct capsfast_leaf *out, int cap);
