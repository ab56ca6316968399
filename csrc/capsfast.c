/*
 * capsfast C core: CPUID and the device and file checks of one probe, and
 * the full CPUID walk a recording keeps (never part of a probe).
 * See capsfast.h for the contract.  Python decides what the facts mean.
 */
#define _GNU_SOURCE
/* 64-bit offsets on i686 too: the AMD MSR number 0xc0010114 is an offset. */
#define _FILE_OFFSET_BITS 64
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "capsfast.h"

/* _IO(KVMIO, 0x00) and _IO(KVMIO, 0x01) from <linux/kvm.h>, spelled out so
 * the build needs no kernel headers. */
#define KVM_GET_API_VERSION_IOCTL 0xAE00
#define KVM_CREATE_VM_IOCTL 0xAE01
/* _IO(KVMIO, 0x03), <linux/kvm.h> */
#define KVM_CHECK_EXTENSION_IOCTL 0xAE03
#define API_VERSION_NOT_TRIED (-1000)
/* _IO(KVMIO, 0x41), _IO(KVMIO, 0xa3), _IOWR(KVMIO, 0x88, struct kvm_msrs)
 * and KVM_CAP_TSC_CONTROL, <linux/kvm.h> */
#define KVM_CREATE_VCPU_IOCTL 0xAE41
#define KVM_GET_TSC_KHZ_IOCTL 0xAEA3
#define KVM_GET_MSRS_IOCTL 0xC008AE88
#define KVM_CAP_TSC_CONTROL_NUMBER 60

/* Fixed device numbers (<linux/miscdevice.h> KVM_MINOR, <asm/msr.h>
 * MSR_MAJOR): a fake root may hold a symlink or node to any other device
 * (a watchdog, a tape), and merely opening such a device acts on it. */
#define KVM_MAJOR_NUMBER 10
#define KVM_MINOR_NUMBER 232
#define MSR_MAJOR_NUMBER 202

/* Always counted: capsfast bench reports it, as each CPUID is a VM exit
 * under a hypervisor.  One relaxed add per probe or walk, not one per
 * leaf. */
static uint64_t cpuid_executed;

/* CAPSFAST_NO_CPUID builds the non-x86 branch on x86, for tests;
 * CAPSFAST_FAKE_CPUID has the test program answer every CPUID (through
 * capsfast_fake_cpuid), so that the sanitizer driver can play a hostile
 * CPU to the walk. */
#if defined(CAPSFAST_FAKE_CPUID)
#define HAVE_CPUID 1
void capsfast_fake_cpuid(uint32_t leaf, uint32_t subleaf, struct capsfast_regs *r);

static void cpuid_raw(uint32_t leaf, uint32_t subleaf, struct capsfast_regs *r)
{
    capsfast_fake_cpuid(leaf, subleaf, r);
}

static int cpuid_exists(unsigned *executed)
{
    (void)executed;
    return 1;
}
#elif (defined(__x86_64__) || defined(__i386__)) && !defined(CAPSFAST_NO_CPUID)
#define HAVE_CPUID 1
#include <cpuid.h>

static void cpuid_raw(uint32_t leaf, uint32_t subleaf, struct capsfast_regs *r)
{
    __cpuid_count(leaf, subleaf, r->eax, r->ebx, r->ecx, r->edx);
}

static int cpuid_exists(unsigned *executed)
{
#if defined(__i386__)
    /* A 486 without the ID flag has no CPUID at all; with it, this ran
     * leaf 0 once. */
    if (__get_cpuid_max(0, NULL) == 0)
        return 0;
    (*executed)++;
#else
    (void)executed;
#endif
    return 1;
}
#else
#define HAVE_CPUID 0
#endif

#if HAVE_CPUID
int capsfast_has_cpuid(void) { return 1; }

static void cpuid(uint32_t leaf, struct capsfast_regs *r, unsigned *executed)
{
    cpuid_raw(leaf, 0, r);
    (*executed)++;
}

static void probe_cpu(struct capsfast_cpu *cpu)
{
    unsigned executed = 0;

    if (!cpuid_exists(&executed))
        return;
    cpu->available = 1;
    cpuid(0x00000000, &cpu->basic0, &executed);
    if (cpu->basic0.eax >= 1)
        cpuid(0x00000001, &cpu->basic1, &executed);
    cpuid(0x80000000, &cpu->ext0, &executed);
    /* CPUs without extended leaves echo other data here: keep only a
     * maximum that lies in the extended range. */
    if ((cpu->ext0.eax & 0xffff0000u) != 0x80000000u)
        memset(&cpu->ext0, 0, sizeof cpu->ext0);
    else if (cpu->ext0.eax >= 0x80000001u)
        cpuid(0x80000001, &cpu->ext1, &executed);
    /* Leaf 0x40000000 means something only under a hypervisor (ECX bit 31). */
    if (cpu->basic1.ecx & (1u << 31))
        cpuid(0x40000000, &cpu->hv0, &executed);
    __atomic_fetch_add(&cpuid_executed, executed, __ATOMIC_RELAXED);
}

/* The walk's bounds (capsfast.h) add up to its longest walk. */
_Static_assert(CAPSFAST_WALK_MAX == 3 * CAPSFAST_WALK_LEAVES + 7 * (CAPSFAST_WALK_SUBLEAVES - 1) + 2 * 31,
               "CAPSFAST_WALK_MAX is not the sum of the walk's bounds");

struct walk {
    struct capsfast_leaf *out;
    int cap, n;
    unsigned executed;
    int sgx;         /* leaf 7 subleaf 0 EBX bit 2, once seen */
    int hypervisor;  /* leaf 1 ECX bit 31, once seen */
};

static void run(struct walk *w, uint32_t leaf, uint32_t subleaf, struct capsfast_regs *r)
{
    cpuid_raw(leaf, subleaf, r);
    w->executed++;
}

/* The one place an entry is written: never at or past cap. */
static int put(struct walk *w, uint32_t leaf, uint32_t subleaf, const struct capsfast_regs *r)
{
    struct capsfast_leaf *e;

    if (w->n >= w->cap)
        return -ENOSPC;
    e = &w->out[w->n++];
    e->leaf = leaf;
    e->subleaf = subleaf;
    e->eax = r->eax;
    e->ebx = r->ebx;
    e->ecx = r->ecx;
    e->edx = r->edx;
    return 0;
}

static int keep(struct walk *w, uint32_t leaf, uint32_t subleaf, struct capsfast_regs *r)
{
    run(w, leaf, subleaf, r);
    return put(w, leaf, subleaf, r);
}

/* Subleaf 0 (in r0, already run), then 1..last, last cut to the bound. */
static int walk_upto(struct walk *w, uint32_t leaf, const struct capsfast_regs *r0, uint32_t last)
{
    struct capsfast_regs r;
    uint32_t sub;
    int rc = put(w, leaf, 0, r0);

    if (last > CAPSFAST_WALK_SUBLEAVES - 1)
        last = CAPSFAST_WALK_SUBLEAVES - 1;
    for (sub = 1; rc == 0 && sub <= last; sub++)
        rc = keep(w, leaf, sub, &r);
    return rc;
}

/* Subleaf n, for n from first to 63, when bit n of mask is set. */
static int walk_mask(struct walk *w, uint32_t leaf, uint32_t first, uint64_t mask)
{
    struct capsfast_regs r;
    uint32_t sub;
    int rc = 0;

    for (sub = first; rc == 0 && sub < 64; sub++)
        if (mask >> sub & 1)
            rc = keep(w, leaf, sub, &r);
    return rc;
}

/* One basic leaf, its subleaf 0 already run (r0), with the subleaves
 * libvirt's cpuidSet() takes for it (see capsfast.h). */
static int walk_basic_leaf(struct walk *w, uint32_t leaf, const struct capsfast_regs *r0)
{
    struct capsfast_regs r = *r0;
    uint32_t sub;
    int rc;

    switch (leaf) {
    case 0x1:
        w->hypervisor = (r0->ecx >> 31 & 1) != 0;
        return put(w, leaf, 0, r0);
    case 0x4:
        /* The subleaf whose cache type is 0 ends the list and is kept. */
        rc = put(w, leaf, 0, r0);
        for (sub = 1; rc == 0 && (r.eax & 0x1f) && sub < CAPSFAST_WALK_SUBLEAVES; sub++)
            rc = keep(w, leaf, sub, &r);
        return rc;
    case 0x7:
        w->sgx = (r0->ebx >> 2 & 1) != 0;
        return walk_upto(w, leaf, r0, r0->eax);
    case 0xb:
        /* A level type of 0 ends the list and is dropped, even at subleaf 0. */
        for (sub = 0; r.ecx & 0xff00;) {
            if ((rc = put(w, leaf, sub, &r)) < 0)
                return rc;
            if (++sub == CAPSFAST_WALK_SUBLEAVES)
                break;
            run(w, leaf, sub, &r);
        }
        return 0;
    case 0xd:
        /* r is subleaf 1 after keep(): both subleaves' masks count. */
        if ((rc = put(w, leaf, 0, r0)) < 0 || (rc = keep(w, leaf, 1, &r)) < 0)
            return rc;
        return walk_mask(w, leaf, 2, (r0->eax | (uint64_t)r0->edx << 32) | (r.ecx | (uint64_t)r.edx << 32));
    case 0xf:
    case 0x10:
        /* Bit n of the resource bitmap: resource n has subleaf n. */
        if ((rc = put(w, leaf, 0, r0)) < 0)
            return rc;
        return walk_mask(w, leaf, 1, leaf == 0xf ? r0->edx : r0->ebx);
    case 0x12:
        /* Without SGX subleaf 0 is dropped; with it, an EPC section type
         * (EAX[3:0]) of 0 ends the list from subleaf 2 on and is dropped. */
        if (!w->sgx)
            return 0;
        if ((rc = put(w, leaf, 0, r0)) < 0 || (rc = keep(w, leaf, 1, &r)) < 0)
            return rc;
        for (sub = 2; sub < CAPSFAST_WALK_SUBLEAVES; sub++) {
            run(w, leaf, sub, &r);
            if (!(r.eax & 0xf))
                break;
            if ((rc = put(w, leaf, sub, &r)) < 0)
                return rc;
        }
        return 0;
    case 0x14:
        return walk_upto(w, leaf, r0, r0->eax);
    case 0x17:
        /* Valid only from EAX 3 on; otherwise subleaf 0 is dropped. */
        return r0->eax < 3 ? 0 : walk_upto(w, leaf, r0, r0->eax);
    default:
        return put(w, leaf, 0, r0);
    }
}

/* base..max, max being base's EAX: below base it means base alone, past
 * the bound it is cut.  Only the basic range has subleaves. */
static int walk_range(struct walk *w, uint32_t base)
{
    struct capsfast_regs r;
    uint32_t leaf, last;
    int rc;

    run(w, base, 0, &r);
    last = r.eax;
    if (last < base)
        last = base;
    else if (last - base > CAPSFAST_WALK_LEAVES - 1)
        last = base + CAPSFAST_WALK_LEAVES - 1;
    for (leaf = base;; leaf++) {
        if (leaf != base)
            run(w, leaf, 0, &r);
        rc = base == 0 ? walk_basic_leaf(w, leaf, &r) : put(w, leaf, 0, &r);
        if (rc < 0 || leaf == last)
            return rc;
    }
}

static int walk_all(struct walk *w)
{
    int rc;

    if (!cpuid_exists(&w->executed))
        return 0;
    rc = walk_range(w, 0x00000000u);
    if (rc == 0)
        rc = walk_range(w, 0x80000000u);
    /* Leaves 0x40000000 and up mean something only under a hypervisor. */
    if (rc == 0 && w->hypervisor)
        rc = walk_range(w, 0x40000000u);
    return rc;
}

int capsfast_cpuid_walk(struct capsfast_leaf *out, int cap)
{
    struct walk w;
    int rc;

    if (cap < 0 || (out == NULL && cap > 0))
        return -EINVAL;
    memset(&w, 0, sizeof w);
    w.out = out;
    w.cap = cap;
    rc = walk_all(&w);
    /* One add per walk, as per probe. */
    __atomic_fetch_add(&cpuid_executed, w.executed, __ATOMIC_RELAXED);
    return rc < 0 ? rc : w.n;
}
#else
int capsfast_has_cpuid(void) { return 0; }

static void probe_cpu(struct capsfast_cpu *cpu) { (void)cpu; }

/* No CPUID: an empty walk, as capsfast_has_cpuid() says; arguments are
 * checked as on x86. */
int capsfast_cpuid_walk(struct capsfast_leaf *out, int cap)
{
    if (cap < 0 || (out == NULL && cap > 0))
        return -EINVAL;
    return 0;
}
#endif

uint64_t capsfast_cpuid_executed(void)
{
    return __atomic_load_n(&cpuid_executed, __ATOMIC_RELAXED);
}

/* Test builds only (-DCAPSFAST_TEST_COUNTERS): counting the threads inside
 * costs at least two atomic writes to one shared cache line per probe. */
#ifdef CAPSFAST_TEST_COUNTERS
static int inside, inside_peak;

int capsfast_peak_concurrency(int reset)
{
    if (reset)
        return __atomic_exchange_n(&inside_peak, 0, __ATOMIC_RELAXED);
    return __atomic_load_n(&inside_peak, __ATOMIC_RELAXED);
}

static void enter(void)
{
    int now = __atomic_add_fetch(&inside, 1, __ATOMIC_RELAXED);
    int peak = __atomic_load_n(&inside_peak, __ATOMIC_RELAXED);

    while (now > peak &&
           !__atomic_compare_exchange_n(&inside_peak, &peak, now, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

static void leave(void)
{
    __atomic_sub_fetch(&inside, 1, __ATOMIC_RELAXED);
}
#else
int capsfast_peak_concurrency(int reset)
{
    (void)reset;
    return -1;
}

static void enter(void) {}
static void leave(void) {}
#endif

static int open_nonblocking(const char *path, int flags)
{
    int fd;
    /* O_NONBLOCK: a FIFO planted where a file belongs must not hang us. */
    do
        fd = open(path, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

static int access_rw(const char *path)
{
    return faccessat(AT_FDCWD, path, R_OK | W_OK, AT_EACCESS) == 0 ? 0 : -errno;
}

/* The one reset of the KVM results: each field as "not tried". */
static void reset_kvm(struct capsfast_kvm *kvm)
{
    memset(kvm, 0, sizeof *kvm);
    kvm->access_err = 1;
    kvm->open_err = 1;
    kvm->api_version = API_VERSION_NOT_TRIED;
}

static void probe_kvm(const char *path, int deep, struct capsfast_kvm *kvm)
{
    struct stat st;
    int fd;

    if (stat(path, &st) != 0) {
        kvm->stat_err = -errno;
        return;
    }
    kvm->mode = (uint32_t)st.st_mode;
    /* A regular file stands in for the node in a fake root: never open it. */
    if (!S_ISCHR(st.st_mode))
        return;
    if (major(st.st_rdev) != KVM_MAJOR_NUMBER || minor(st.st_rdev) != KVM_MINOR_NUMBER) {
        kvm->access_err = access_rw(path);
        kvm->open_err = -ENODEV;  /* some other device: not opened */
        return;
    }
    fd = open_nonblocking(path, O_RDWR);
    kvm->open_err = fd < 0 ? fd : 0;
    /* An open for reading and writing that works answers the access
     * question too; only a failure needs access() to tell why. */
    if (fd < 0) {
        kvm->access_err = (fd == -EACCES || fd == -EPERM) ? fd : access_rw(path);
        return;
    }
    kvm->access_err = 0;
    kvm->api_version = ioctl(fd, KVM_GET_API_VERSION_IOCTL, 0);
    if (kvm->api_version < 0)
        kvm->api_version = -errno;
    else if (deep) {
        int vm = ioctl(fd, KVM_CREATE_VM_IOCTL, 0);
        kvm->create_vm = vm < 0 ? -errno : 1;
        if (vm >= 0)
            close(vm);
    }
    close(fd);
}

int capsfast_kvm_caps(const char *path, const uint32_t *caps, int32_t *values, int n)
{
    struct stat st;
    int fd, i, rc;

    if (path == NULL || n < 0 || (n > 0 && (caps == NULL || values == NULL)))
        return -EINVAL;
    if (stat(path, &st) != 0)
        rc = -errno;
    else if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != KVM_MAJOR_NUMBER ||
             minor(st.st_rdev) != KVM_MINOR_NUMBER)
        rc = -ENODEV;  /* a placeholder or another device: never opened */
    else
        rc = 0;
    fd = rc == 0 ? open_nonblocking(path, O_RDWR) : rc;
    if (fd < 0) {
        for (i = 0; i < n; i++)
            values[i] = fd;
        return fd;
    }
    for (i = 0; i < n; i++) {
        int r = ioctl(fd, KVM_CHECK_EXTENSION_IOCTL, (unsigned long)caps[i]);
        values[i] = r < 0 ? -errno : r;
    }
    close(fd);
    return 0;
}

/* struct kvm_msrs with one struct kvm_msr_entry, <linux/kvm.h> */
struct one_msr {
    uint32_t nmsrs, pad;
    uint32_t index, reserved;
    uint64_t data;
};

static int open_kvm_device(const char *path)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return -errno;
    if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != KVM_MAJOR_NUMBER ||
        minor(st.st_rdev) != KVM_MINOR_NUMBER)
        return -ENODEV;  /* a placeholder or another device: never opened */
    return open_nonblocking(path, O_RDWR);
}

static void host_tsc(int fd, struct capsfast_host_cpu *out)
{
    int vm, vcpu, r;

    vm = ioctl(fd, KVM_CREATE_VM_IOCTL, 0);
    if (vm < 0) {
        out->tsc_err = -errno;
        out->tsc_step = 1;
        return;
    }
    vcpu = ioctl(vm, KVM_CREATE_VCPU_IOCTL, 0);
    if (vcpu < 0) {
        out->tsc_err = -errno;
        out->tsc_step = 2;
        close(vm);
        return;
    }
    r = ioctl(vcpu, KVM_GET_TSC_KHZ_IOCTL, 0);
    if (r < 0) {
        out->tsc_err = -errno;
        out->tsc_step = 3;
    } else {
        out->tsc_khz = (uint32_t)r;
        r = ioctl(fd, KVM_CHECK_EXTENSION_IOCTL, (unsigned long)KVM_CAP_TSC_CONTROL_NUMBER);
        if (r < 0) {
            out->tsc_err = -errno;
            out->tsc_step = 4;
        } else {
            out->tsc_err = 0;
            out->tsc_scaling = r;
        }
    }
    close(vcpu);
    close(vm);
}

int capsfast_kvm_host_cpu(const char *path, int want_msr, int want_tsc, struct capsfast_host_cpu *out)
{
    int fd;

    if (path == NULL || out == NULL)
        return -EINVAL;
    out->msr_err = out->tsc_err = 1;
    out->msr_value = 0;
    out->tsc_step = 0;
    out->tsc_khz = 0;
    out->tsc_scaling = 0;
    fd = open_kvm_device(path);
    if (fd < 0)
        return fd;
    if (want_msr) {
        struct one_msr m;
        int r;

        memset(&m, 0, sizeof m);
        m.nmsrs = 1;
        m.index = out->msr_index;
        r = ioctl(fd, KVM_GET_MSRS_IOCTL, &m);
        if (r < 0)
            out->msr_err = -errno;
        else if (r != 1)
            out->msr_err = -ENODATA;
        else {
            out->msr_err = 0;
            out->msr_value = m.data;
        }
    }
    if (want_tsc)
        host_tsc(fd, out);
    close(fd);
    return 0;
}

/* The bytes read end a /proc/cpuinfo block once they hold a blank line. */
static int holds_blank_line(const char *buf, uint32_t len)
{
    return len >= 2 && memmem(buf, len, "\n\n", 2) != NULL;
}

/* /proc/cpuinfo renders processor blocks as they are asked for: reading in
 * small steps lets the kernel stop after the first block. */
#define BLOCK_STEP 2048u

static void read_file(struct capsfast_file *f, int fd, int block, int once)
{
    uint32_t room = f->cap;

    while (f->len < room) {
        uint32_t want = room - f->len;
        ssize_t n;
        if (block && want > BLOCK_STEP)
            want = BLOCK_STEP;
        n = read(fd, f->buf + f->len, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            f->err = -errno;
            return;
        }
        if (n == 0)
            return;
        f->len += (uint32_t)n;
        if (block && holds_blank_line(f->buf, f->len))
            return;
        /* READ_ONCE: the kernel writes a sysfs attribute whole in its first
         * read, and a regular file reads whole up to its end: a short read
         * is the end, and asking again would only hear so. */
        if (once && (uint32_t)n < want)
            return;
    }
    /* Full: one more byte tells whether the file went on. */
    for (;;) {
        char extra;
        ssize_t n = read(fd, &extra, 1);
        if (n < 0 && errno == EINTR)
            continue;
        f->truncated = n > 0;
        return;
    }
}

static void read_msr(struct capsfast_file *f, int fd)
{
    unsigned char raw[8];
    ssize_t n;
    int i;

    do
        n = pread(fd, raw, sizeof raw, (off_t)f->msr);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        f->err = -errno;
        return;
    }
    if (n != (ssize_t)sizeof raw) {
        f->err = -ENODATA;
        return;
    }
    for (i = 7; i >= 0; i--)
        f->value = (f->value << 8) | raw[i];
}

/* struct linux_dirent64, as getdents64(2) fills it. */
struct dirent_record {
    uint64_t ino;
    int64_t off;
    unsigned short reclen;
    unsigned char type;
    char name[];
};

/* The names in a directory, each followed by a NUL (a name never holds
 * one), whole names only; truncated when one did not fit.  getdents64
 * directly: fdopendir() would fstat() the descriptor that O_DIRECTORY
 * already proved a directory. */
static void list_dir(struct capsfast_file *f)
{
    struct stat st;
    union {
        char bytes[8192];
        uint64_t align;
    } chunk;
    int fd;

    /* O_NONBLOCK and O_DIRECTORY: a FIFO or device planted here is never
     * opened as one. */
    fd = open_nonblocking(f->path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        f->err = fd;
        /* What stands there instead (ENOTDIR); nothing to ask when absent. */
        if (fd != -ENOENT && stat(f->path, &st) == 0)
            f->mode = (uint32_t)st.st_mode;
        return;
    }
    f->mode = S_IFDIR;
    for (;;) {
        long got = syscall(SYS_getdents64, fd, chunk.bytes, sizeof chunk.bytes);
        long at = 0;
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            f->err = -errno;
            break;
        }
        if (got == 0)
            break;
        while (at < got) {
            const struct dirent_record *entry = (const struct dirent_record *)(chunk.bytes + at);
            size_t n = strlen(entry->name) + 1;
            at += entry->reclen;
            if (strcmp(entry->name, ".") == 0 || strcmp(entry->name, "..") == 0)
                continue;
            if (n > f->cap - f->len) {
                f->truncated = 1;
                close(fd);
                return;
            }
            memcpy(f->buf + f->len, entry->name, n);
            f->len += (uint32_t)n;
        }
    }
    close(fd);
}

/* What a read may open: a regular file, or for the MSR op the msr driver's
 * node.  A FIFO, socket, directory or other device is never read. */
static int openable(const struct stat *st, int msr)
{
    if (S_ISREG(st->st_mode))
        return 1;
    return msr && S_ISCHR(st->st_mode) && major(st->st_rdev) == MSR_MAJOR_NUMBER;
}

/* The one reset of an entry's results, before it is tried or skipped. */
static void reset_file(struct capsfast_file *f)
{
    f->err = 0;
    f->mode = 0;
    f->len = 0;
    f->truncated = 0;
    f->value = 0;
}

/* Found out after opening (read_without_looking): what st says, as the
 * look before opening would have said it. */
static void refuse_unless_regular(struct capsfast_file *f, const struct stat *st)
{
    f->mode = (uint32_t)st->st_mode;
    if (!S_ISREG(st->st_mode)) {
        f->err = S_ISDIR(st->st_mode) ? -EISDIR : -EINVAL;
        f->len = 0;
        f->truncated = 0;
    }
}

/* Look before opening: opening a device or a FIFO already acts on it.  The
 * fstat() after opening catches a swap between the two calls.  For the MSR
 * and READ ops, and for a path whose last component is a symbolic link. */
static void read_looking_first(struct capsfast_file *f, int msr, int block, int once)
{
    struct stat st;
    int fd;

    if (stat(f->path, &st) != 0) {
        f->err = -errno;
        return;
    }
    if (!openable(&st, msr)) {
        f->mode = (uint32_t)st.st_mode;
        f->err = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
        return;
    }
    fd = open_nonblocking(f->path, O_RDONLY);
    if (fd < 0) {
        f->err = fd;
        return;
    }
    if (fstat(fd, &st) != 0) {
        f->err = -errno;
    } else {
        f->mode = (uint32_t)st.st_mode;
        if (!openable(&st, msr))
            f->err = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
        else if (msr)
            read_msr(f, fd);
        else
            read_file(f, fd, block, once);
    }
    close(fd);
}

/* open, read, close: no stat() or fstat() for a file that reads as one.
 * What could stand where a file belongs is still refused:
 *  - a symbolic link (O_NOFOLLOW fails with ELOOP): it may lead to a
 *    device (/dev/zero never ends), so it is looked at first as above;
 *  - a directory: read() says EISDIR;
 *  - a FIFO: opened without blocking, it reads empty or EAGAIN;
 *  - a device node itself (making one takes privilege; sysfs and procfs
 *    hold none): one that reads empty, fails or fills the buffer.
 * Each of those ends in one fstat() that names it; the results then are
 * as if it had been looked at first.  A device whose open acts on it is
 * opened before it is found out: under the kernel's own sysfs and procfs
 * there is none, and a root directory that holds one was made so. */
static void read_without_looking(struct capsfast_file *f, int block, int once)
{
    struct stat st;
    int fd;

    fd = open_nonblocking(f->path, O_RDONLY | O_NOFOLLOW);
    if (fd == -ELOOP) {
        read_looking_first(f, 0, block, once);
        return;
    }
    if (fd < 0) {
        f->err = fd;
        return;
    }
    read_file(f, fd, block, once);
    if (f->err != 0 || f->len == 0 || f->truncated) {
        if (fstat(fd, &st) == 0)
            refuse_unless_regular(f, &st);
        else if (f->err == 0)
            f->err = -errno;
    }
    close(fd);
}

static void probe_file(struct capsfast_file *f)
{
    struct stat st;
    int block = 0, once = 0;

    if (f->path == NULL) {
        f->err = -EINVAL;
        return;
    }
    /* The one place the op is looked at: the code below is told what it
     * needs (msr, block, once). */
    switch (f->op) {
    case CAPSFAST_OP_STAT:
        if (stat(f->path, &st) != 0)
            f->err = -errno;
        else
            f->mode = (uint32_t)st.st_mode;
        return;
    case CAPSFAST_OP_LIST:
        if (f->buf == NULL) {
            f->err = -EINVAL;
            return;
        }
        list_dir(f);
        return;
    case CAPSFAST_OP_READ_BLOCK:
        block = 1;
        break;
    case CAPSFAST_OP_READ_ONCE:
        once = 1;
        break;
    case CAPSFAST_OP_READ:
        /* Often absent (a module's parameter, Xen's files): a stat() that
         * fails costs the kernel less than an open() that fails. */
        if (f->buf == NULL)
            f->err = -EINVAL;
        else
            read_looking_first(f, 0, 0, 0);
        return;
    case CAPSFAST_OP_MSR:
        read_looking_first(f, 1, 0, 0);
        return;
    default:
        f->err = -EINVAL;
        return;
    }
    if (f->buf == NULL) {
        f->err = -EINVAL;
        return;
    }
    read_without_looking(f, block, once);
}

int capsfast_probe(int want_cpu, struct capsfast_cpu *cpu,
                   const char *kvm_path, int deep, struct capsfast_kvm *kvm,
                   struct capsfast_file *files, int nfiles)
{
    int i;

    if ((want_cpu && cpu == NULL) || (kvm_path != NULL && kvm == NULL) ||
        nfiles < 0 || (nfiles > 0 && files == NULL))
        return -EINVAL;
    enter();
    if (want_cpu) {
        memset(cpu, 0, sizeof *cpu);
        probe_cpu(cpu);
    }
    if (kvm_path != NULL) {
        reset_kvm(kvm);
        probe_kvm(kvm_path, deep, kvm);
    }
    for (i = 0; i < nfiles; i++) {
        int after = files[i].after;
        reset_file(&files[i]);
        /* after is k+1 for entry k, 0 for none (see capsfast.h).  Not an
         * earlier entry: refuse rather than read out of bounds. */
        if (after < 0 || after > i)
            files[i].err = -EINVAL;
        else if (after > 0 && files[after - 1].err != 0)
            files[i].err = -ENOENT;
        else
            probe_file(&files[i]);
    }
    leave();
    return 0;
}

/* ---- KVM_GET_SUPPORTED_CPUID (the domain capabilities cache key) ---- */

/* _IOWR(KVMIO, 0x05, struct kvm_cpuid2), <linux/kvm.h> */
#define KVM_GET_SUPPORTED_CPUID_IOCTL 0xC008AE05

/* struct kvm_cpuid_entry2 and the head of struct kvm_cpuid2, <linux/kvm.h> */
struct kvm_cpuid_entry {
    uint32_t function, index, flags;
    uint32_t eax, ebx, ecx, edx;
    uint32_t padding[3];
};

struct kvm_cpuid_table {
    uint32_t nent, padding;
    struct kvm_cpuid_entry entries[CAPSFAST_KVM_CPUID_MAX];
};

int capsfast_kvm_supported_cpuid(const char *path, struct capsfast_leaf *out, int cap)
{
    /* 10 KiB on the stack: C allocates nothing (see capsfast.h). */
    struct kvm_cpuid_table table;
    int fd, r, i;

    if (path == NULL || out == NULL || cap < 1 || cap > CAPSFAST_KVM_CPUID_MAX)
        return -EINVAL;
    fd = open_kvm_device(path);
    if (fd < 0)
        return fd;
    memset(&table, 0, sizeof table);
    table.nent = (uint32_t)cap;
    r = ioctl(fd, KVM_GET_SUPPORTED_CPUID_IOCTL, &table);
    if (r < 0)
        r = -errno;
    close(fd);
    if (r < 0)
        return r;
    if (table.nent > (uint32_t)cap)  /* never, by the ioctl's contract */
        return -E2BIG;
    for (i = 0; i < (int)table.nent; i++) {
        out[i].leaf = table.entries[i].function;
        out[i].subleaf = table.entries[i].index;
        out[i].eax = table.entries[i].eax;
        out[i].ebx = table.entries[i].ebx;
        out[i].ecx = table.entries[i].ecx;
        out[i].edx = table.entries[i].edx;
    }
    return (int)table.nent;
}
