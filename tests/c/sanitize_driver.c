/*
 * A C driver for csrc/capsfast.c, built with -fsanitize=address,undefined
 * (and -fsanitize=thread) by ci/sanitize.sh.  It walks every path of the C
 * module: the CPU (or, built with -DCAPSFAST_NO_CPUID, the non-x86 branch),
 * NULL and nonsense arguments, each kind of file the probe can meet (missing,
 * ENOTDIR, a directory, a FIFO, a symlink loop, devices that must not be
 * opened, short MSR files), EACCES as an unprivileged user, the real
 * /dev/kvm when there is one, and 8 threads probing at once.  Built with
 * -DCAPSFAST_TEST_COUNTERS, so the thread count is compiled in and checked.
 * The full CPUID walk runs on the real CPU with caps too small; built with
 * -DCAPSFAST_FAKE_CPUID, this file answers every CPUID and plays hostile
 * CPUs to it (maximum leaves of 0xffffffff, endless subleaves, all ones).
 *
 * Exit status 0 when every check held; each failed check prints one line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capsfast.h"

#if defined(CAPSFAST_FAKE_CPUID) && (defined(__x86_64__) || defined(__i386__))
#include <cpuid.h>
#endif

#ifndef CAPSFAST_TEST_COUNTERS
#error "build with -DCAPSFAST_TEST_COUNTERS: capsfast_peak_concurrency() is checked here"
#endif

#define NOT_TRIED (-1000)
#define UNPRIVILEGED_ID 65534 /* nobody */

static int failures, checks;
static char dir[64];
static char small_path[128], msr_path[128]; /* for the threads: at() is not thread-safe */

#define CHECK(cond) check((cond), #cond, __LINE__)

static void check(int ok, const char *what, int line)
{
    checks++;
    if (!ok) {
        failures++;
        fprintf(stderr, "sanitize_driver.c:%d: check failed: %s\n", line, what);
    }
}

static const char *at(const char *name)
{
    static char paths[8][256];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
        perror(path);
        exit(3);
    }
    close(fd);
}

/* A sparse file holding the 8 bytes of value at offset msr, as the msr
 * driver serves them; short != 0 cuts it 4 bytes into the value. */
static void write_msr(const char *path, uint32_t msr, uint64_t value, int short_by)
{
    unsigned char raw[8];
    int i, fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    for (i = 0; i < 8; i++)
        raw[i] = (unsigned char)(value >> (8 * i));
    if (fd < 0 || pwrite(fd, raw, (size_t)(8 - short_by), (off_t)msr) != 8 - short_by) {
        perror(path);
        exit(3);
    }
    close(fd);
}

/* One file operation through the public entry point. */
static struct capsfast_file run_file(const char *path, int op, uint32_t msr, char *buf, uint32_t cap)
{
    struct capsfast_file f;
    memset(&f, 0xA5, sizeof f); /* outputs must all be written */
    f.path = path;
    f.op = op;
    f.after = 0;
    f.msr = msr;
    f.buf = buf;
    f.cap = cap;
    CHECK(capsfast_probe(0, NULL, NULL, 0, NULL, &f, 1) == 0);
    return f;
}

static struct capsfast_kvm run_kvm(const char *path, int deep)
{
    struct capsfast_kvm k;
    memset(&k, 0xA5, sizeof k);
    CHECK(capsfast_probe(0, NULL, path, deep, &k, NULL, 0) == 0);
    return k;
}

static void test_arguments(void)
{
    struct capsfast_cpu cpu;
    struct capsfast_kvm kvm;
    struct capsfast_file f;

    CHECK(capsfast_probe(1, NULL, NULL, 0, NULL, NULL, 0) == -EINVAL);
    CHECK(capsfast_probe(0, NULL, "/dev/kvm", 0, NULL, NULL, 0) == -EINVAL);
    CHECK(capsfast_probe(0, NULL, NULL, 0, NULL, NULL, -1) == -EINVAL);
    CHECK(capsfast_probe(0, NULL, NULL, 0, NULL, NULL, -2147483647 - 1) == -EINVAL);
    CHECK(capsfast_probe(0, NULL, NULL, 0, NULL, NULL, 1) == -EINVAL);
    CHECK(capsfast_probe(0, NULL, NULL, 0, NULL, NULL, 0) == 0);
    /* Pointers not asked for are never touched. */
    CHECK(capsfast_probe(0, &cpu, NULL, 1, &kvm, &f, 0) == 0);

    f = run_file(NULL, CAPSFAST_OP_READ, 0, NULL, 0);
    CHECK(f.err == -EINVAL && f.len == 0 && f.truncated == 0 && f.value == 0 && f.mode == 0);
    f = run_file(at("small"), CAPSFAST_OP_READ, 0, NULL, 16);
    CHECK(f.err == -EINVAL);
    f = run_file(at("small"), CAPSFAST_OP_READ_BLOCK, 0, NULL, 16);
    CHECK(f.err == -EINVAL);
    f = run_file(at("small"), 99, 0, NULL, 0);
    CHECK(f.err == -EINVAL);
    f = run_file(at("small"), -1, 0, NULL, 0);
    CHECK(f.err == -EINVAL);
}

static void test_cpu(void)
{
    struct capsfast_cpu cpu;
    uint64_t before = capsfast_cpuid_executed();
#ifndef CAPSFAST_NO_CPUID
    uint64_t expected;
#endif

    memset(&cpu, 0xA5, sizeof cpu);
    CHECK(capsfast_probe(1, &cpu, NULL, 0, NULL, NULL, 0) == 0);
    CHECK(cpu.available == capsfast_has_cpuid());
#ifdef CAPSFAST_NO_CPUID
    {
        struct capsfast_cpu zero;
        memset(&zero, 0, sizeof zero);
        CHECK(capsfast_has_cpuid() == 0);
        CHECK(memcmp(&cpu, &zero, sizeof cpu) == 0);
        CHECK(capsfast_cpuid_executed() == before);
    }
#else
    CHECK(capsfast_has_cpuid() == 1);
    CHECK(cpu.basic0.eax >= 1 && cpu.basic0.ebx != 0);
    CHECK(cpu.ext0.eax == 0 || (cpu.ext0.eax & 0xffff0000u) == 0x80000000u);
    CHECK((cpu.basic1.ecx >> 31 & 1) || (cpu.hv0.eax | cpu.hv0.ebx | cpu.hv0.ecx | cpu.hv0.edx) == 0);
    /* Each CPUID counted once: leaves 0 and 0x80000000, and the three that
     * depend on what those said (ext0 is zero when it was invalid). */
    expected = 2 + (cpu.basic0.eax >= 1) + (cpu.ext0.eax >= 0x80000001u) + (cpu.basic1.ecx >> 31 & 1);
#if defined(__i386__)
    expected++; /* __get_cpuid_max() ran leaf 0 first */
#endif
    CHECK(capsfast_cpuid_executed() - before == expected);
#endif
}

/* -- the full CPUID walk ---------------------------------------------------- */

#define HV 0x40000000u
#define EXT 0x80000000u

/* CPUIDs the walk runs and does not keep (capsfast.h): the end of 0xb, the
 * end of 0x12 or, without SGX, its subleaf 0, and 0x17 below EAX 3; none
 * where a list ran to the subleaf bound. */
static uint64_t walk_dropped(const struct capsfast_leaf *e, int n)
{
    uint32_t max = e[0].eax > 0xff ? 0xff : e[0].eax;
    int i, count_b = 0, count_12 = 0, count_17 = 0;
    uint64_t dropped = 0;

    for (i = 0; i < n; i++) {
        count_b += e[i].leaf == 0xb;
        count_12 += e[i].leaf == 0x12;
        count_17 += e[i].leaf == 0x17;
    }
    dropped += max >= 0xb && count_b < CAPSFAST_WALK_SUBLEAVES;
    dropped += max >= 0x12 && count_12 < CAPSFAST_WALK_SUBLEAVES;
    dropped += max >= 0x17 && count_17 == 0;
    return dropped;
}

/* Entries that keep the walk's shape: leaf 0 first, each leaf within its
 * range's bound, subleaves below theirs, no (leaf, subleaf) twice in a row. */
static int walk_well_formed(const struct capsfast_leaf *e, int n)
{
    int i;

    if (n < 1 || e[0].leaf != 0 || e[0].subleaf != 0)
        return 0;
    for (i = 0; i < n; i++) {
        uint32_t base = e[i].leaf & 0xc0000000u;
        if (e[i].leaf - base >= CAPSFAST_WALK_LEAVES || e[i].subleaf >= CAPSFAST_WALK_SUBLEAVES)
            return 0;
        if (i > 0 && e[i].leaf == e[i - 1].leaf && e[i].subleaf <= e[i - 1].subleaf)
            return 0;
    }
    return 1;
}

/* One walk into an array of exactly cap entries (ASan sees a write past
 * it); returns the result, and the CPUIDs counted in *executed. */
static int walk_into(struct capsfast_leaf **out, int cap, uint64_t *executed)
{
    uint64_t before = capsfast_cpuid_executed();
    int n;

    *out = cap > 0 ? malloc((size_t)cap * sizeof **out) : NULL;
    if (cap > 0 && *out == NULL) {
        perror("malloc");
        exit(3);
    }
    if (cap > 0)
        memset(*out, 0xA5, (size_t)cap * sizeof **out);
    n = capsfast_cpuid_walk(*out, cap);
    *executed = capsfast_cpuid_executed() - before;
    return n;
}

/* The walk with a cap of every size below what it needs: -ENOSPC, and
 * (with ASan) nothing written past cap. */
static void check_small_caps(int need)
{
    struct capsfast_leaf *out;
    uint64_t executed;
    int cap, step = need > 64 ? need / 16 : 1;

    for (cap = 0; cap < need; cap += step) {
        CHECK(walk_into(&out, cap, &executed) == -ENOSPC);
        CHECK(executed >= (uint64_t)cap);
        free(out);
    }
    CHECK(walk_into(&out, need - 1, &executed) == -ENOSPC);
    free(out);
}

static void test_walk_arguments(void)
{
    struct capsfast_leaf one;

    CHECK(capsfast_cpuid_walk(NULL, -1) == -EINVAL);
    CHECK(capsfast_cpuid_walk(&one, -1) == -EINVAL);
    CHECK(capsfast_cpuid_walk(NULL, 5) == -EINVAL);
    CHECK(capsfast_cpuid_walk(NULL, 0) == (capsfast_has_cpuid() ? -ENOSPC : 0));
}

static void test_walk(void)
{
    struct capsfast_leaf *out;
    struct capsfast_cpu cpu;
    uint64_t executed;
    int i, n, has_ext = 0, has_hv = 0;

    test_walk_arguments();
    n = walk_into(&out, CAPSFAST_WALK_MAX, &executed);
#if defined(CAPSFAST_NO_CPUID)
    /* No CPUID: an empty walk, nothing written. */
    CHECK(n == 0 && executed == 0);
    CHECK(out[0].leaf == 0xA5A5A5A5u && out[0].edx == 0xA5A5A5A5u);
    free(out);
    return;
#endif
    CHECK(n > 0 && n <= CAPSFAST_WALK_MAX);
    if (n <= 0) {
        free(out);
        return;
    }
    CHECK(walk_well_formed(out, n));
    CHECK(executed == (uint64_t)n + walk_dropped(out, n));
    /* The leaves a probe reads are the walk's. */
    CHECK(capsfast_probe(1, &cpu, NULL, 0, NULL, NULL, 0) == 0);
    CHECK(out[0].eax == cpu.basic0.eax && out[0].ebx == cpu.basic0.ebx && out[0].ecx == cpu.basic0.ecx &&
          out[0].edx == cpu.basic0.edx);
    for (i = 0; i < n; i++) {
        has_ext |= out[i].leaf == EXT && out[i].subleaf == 0;
        has_hv |= out[i].leaf == HV;
    }
    CHECK(has_ext);
    CHECK(has_hv == (int)(cpu.basic1.ecx >> 31 & 1));
    fprintf(stderr, "sanitize_driver: CPUID walk: %d entries, %llu CPUIDs\n", n, (unsigned long long)executed);
    free(out);
    check_small_caps(n);
}

#ifdef CAPSFAST_FAKE_CPUID
/* The CPUs this file plays to the walk. */
enum fake {
    FAKE_REAL,       /* the machine's own CPUID */
    FAKE_ALL_ONES,   /* every register of every leaf 0xffffffff */
    FAKE_HUGE_MAX,   /* leaf 0 claims max leaf 0xffffffff; all else 0 */
    FAKE_LEAF7_HUGE, /* leaf 7 subleaf 0 claims 0xffffffff subleaves */
    FAKE_XSAVE_ALL,  /* leaf 0xd masks all ones */
    FAKE_HV_HUGE,    /* hypervisor bit, 0x40000000 claims max 0xffffffff */
    FAKE_HV_LOW,     /* hypervisor bit, 0x40000000 EAX below the range */
    FAKE_SGX,        /* SGX with four EPC subleaves, leaf 0x17 EAX 3 */
};
static enum fake fake_cpu;

void capsfast_fake_cpuid(uint32_t leaf, uint32_t subleaf, struct capsfast_regs *r)
{
    memset(r, 0, sizeof *r);
    switch (fake_cpu) {
    case FAKE_REAL:
#if defined(__x86_64__) || defined(__i386__)
        __cpuid_count(leaf, subleaf, r->eax, r->ebx, r->ecx, r->edx);
#endif
        return;
    case FAKE_ALL_ONES:
        memset(r, 0xff, sizeof *r);
        return;
    case FAKE_HUGE_MAX:
        if (leaf == 0)
            r->eax = 0xffffffffu;
        return;
    case FAKE_LEAF7_HUGE:
        if (leaf == 0)
            r->eax = 7;
        else if (leaf == 7 && subleaf == 0)
            r->eax = 0xffffffffu;
        return;
    case FAKE_XSAVE_ALL:
        if (leaf == 0)
            r->eax = 0xd;
        else if (leaf == 0xd && subleaf == 0)
            r->eax = r->edx = 0xffffffffu;
        else if (leaf == 0xd && subleaf == 1)
            r->ecx = r->edx = 0xffffffffu;
        return;
    case FAKE_HV_HUGE:
    case FAKE_HV_LOW:
        if (leaf == 0)
            r->eax = 1;
        else if (leaf == 1)
            r->ecx = 1u << 31;
        else if (leaf == HV)
            r->eax = fake_cpu == FAKE_HV_HUGE ? 0xffffffffu : 0;
        return;
    case FAKE_SGX:
        if (leaf == 0)
            r->eax = 0x17;
        else if (leaf == 7 && subleaf == 0)
            r->ebx = 1u << 2;
        else if (leaf == 0x12 && subleaf >= 2 && subleaf < 6)
            r->eax = 1;  /* an EPC section */
        else if (leaf == 0x17 && subleaf == 0)
            r->eax = 3;
        return;
    }
}

/* One hostile CPU: the walk's entries and CPUIDs, its shape and bounds,
 * and every smaller cap refused without a write past it. */
static void check_fake(enum fake which, int entries, uint64_t cpuids, uint32_t last_leaf, uint32_t last_subleaf)
{
    struct capsfast_leaf *out;
    uint64_t executed;
    int n;

    fake_cpu = which;
    n = walk_into(&out, CAPSFAST_WALK_MAX, &executed);
    if (n != entries || executed != cpuids)
        fprintf(stderr, "sanitize_driver: fake CPU %d: %d entries, %llu CPUIDs\n", (int)which, n,
                (unsigned long long)executed);
    CHECK(n == entries && executed == cpuids);
    if (n > 0) {
        CHECK(walk_well_formed(out, n));
        CHECK(executed == (uint64_t)n + walk_dropped(out, n));
        CHECK(out[n - 1].leaf == last_leaf && out[n - 1].subleaf == last_subleaf);
    }
    free(out);
    if (n > 0)
        check_small_caps(n);
    fake_cpu = FAKE_REAL;
}

static void test_walk_hostile(void)
{
    /* Every bound at once: 3 x 256 leaves, 64 subleaves for 0x4, 0x7, 0xb,
     * 0xd, 0x12, 0x14 and 0x17, 32 for 0xf and 0x10; nothing dropped. */
    check_fake(FAKE_ALL_ONES, CAPSFAST_WALK_MAX, CAPSFAST_WALK_MAX, HV + 0xff, 0);
    /* Leaves 0..0xff, less 0xb, 0x12 and 0x17 (dropped), plus 0xd subleaf 1;
     * then 0x80000000 alone. */
    check_fake(FAKE_HUGE_MAX, 256 - 3 + 1 + 1, 256 + 1 + 1, EXT, 0);
    check_fake(FAKE_LEAF7_HUGE, 7 + 64 + 1, 7 + 64 + 1, EXT, 0);
    /* 0..0xc less 0xb, 0xd's 64 subleaves, 0x80000000. */
    check_fake(FAKE_XSAVE_ALL, 12 + 64 + 1, 12 + 64 + 1 + 1, EXT, 0);
    check_fake(FAKE_HV_HUGE, 2 + 1 + 256, 2 + 1 + 256, HV + 0xff, 0);
    check_fake(FAKE_HV_LOW, 2 + 1 + 1, 2 + 1 + 1, HV, 0);
    /* 0..0x17 less 0xb, plus 0xd subleaf 1, 0x12 subleaves 1..5 (6 ends
     * them, dropped) and 0x17 subleaves 1..3. */
    check_fake(FAKE_SGX, 24 - 1 + 1 + 5 + 3 + 1, 24 - 1 + 1 + 5 + 3 + 1 + 2, EXT, 0);
}
#endif

static void test_reads(void)
{
    char buf[64], big[4096];
    struct capsfast_file f;
    int i;

    f = run_file(at("small"), CAPSFAST_OP_READ, 0, buf, sizeof buf);
    CHECK(f.err == 0 && f.len == 6 && memcmp(buf, "hello\n", 6) == 0 && !f.truncated && S_ISREG(f.mode));
    /* Open, read, close: a file that reads as one is never looked at. */
    f = run_file(at("small"), CAPSFAST_OP_READ_ONCE, 0, buf, sizeof buf);
    CHECK(f.err == 0 && f.len == 6 && memcmp(buf, "hello\n", 6) == 0 && !f.truncated && f.mode == 0);
    f = run_file(at("exact"), CAPSFAST_OP_READ_ONCE, 0, buf, 16);
    CHECK(f.err == 0 && f.len == 16 && !f.truncated);
    f = run_file(at("exact"), CAPSFAST_OP_READ_ONCE, 0, buf, 15);
    CHECK(f.err == 0 && f.len == 15 && f.truncated && S_ISREG(f.mode));
    f = run_file(at("empty"), CAPSFAST_OP_READ_ONCE, 0, buf, sizeof buf);
    CHECK(f.err == 0 && f.len == 0 && !f.truncated && S_ISREG(f.mode));
    /* Exactly the buffer's size: full, not truncated. */
    f = run_file(at("exact"), CAPSFAST_OP_READ, 0, buf, 16);
    CHECK(f.err == 0 && f.len == 16 && !f.truncated);
    f = run_file(at("exact"), CAPSFAST_OP_READ, 0, buf, 15);
    CHECK(f.err == 0 && f.len == 15 && f.truncated);
    /* A zero-sized buffer still tells whether there was anything. */
    f = run_file(at("exact"), CAPSFAST_OP_READ, 0, buf, 0);
    CHECK(f.err == 0 && f.len == 0 && f.truncated);
    f = run_file(at("empty"), CAPSFAST_OP_READ, 0, buf, sizeof buf);
    CHECK(f.err == 0 && f.len == 0 && !f.truncated);
    /* NUL bytes are data. */
    f = run_file(at("nul"), CAPSFAST_OP_READ, 0, buf, sizeof buf);
    CHECK(f.err == 0 && f.len == 5 && memcmp(buf, "a\0b\0c", 5) == 0);
    /* A large file without a blank line: one buffer, no more. */
    f = run_file(at("huge"), CAPSFAST_OP_READ_BLOCK, 0, big, sizeof big);
    CHECK(f.err == 0 && f.len == sizeof big && f.truncated);
    /* Two blocks: the read stops once a blank line is in. */
    f = run_file(at("blocks"), CAPSFAST_OP_READ_BLOCK, 0, big, sizeof big);
    CHECK(f.err == 0 && memmem(big, f.len, "\n\n", 2) != NULL && f.len < 3000);
    for (i = 0; i < 3; i++) {
        f = run_file(at("missing"), i == 0 ? CAPSFAST_OP_STAT : i == 1 ? CAPSFAST_OP_READ : CAPSFAST_OP_MSR,
                     0x3a, buf, sizeof buf);
        CHECK(f.err == -ENOENT);
        f = run_file(at("small/below"), i == 0 ? CAPSFAST_OP_STAT : i == 1 ? CAPSFAST_OP_READ : CAPSFAST_OP_MSR,
                     0x3a, buf, sizeof buf);
        CHECK(f.err == -ENOTDIR);
        f = run_file(at("loop"), i == 0 ? CAPSFAST_OP_STAT : i == 1 ? CAPSFAST_OP_READ : CAPSFAST_OP_MSR,
                     0x3a, buf, sizeof buf);
        CHECK(f.err == -ELOOP);
    }
    f = run_file(at("small"), CAPSFAST_OP_STAT, 0, NULL, 0);
    CHECK(f.err == 0 && S_ISREG(f.mode) && f.len == 0);
    f = run_file(at("subdir"), CAPSFAST_OP_STAT, 0, NULL, 0);
    CHECK(f.err == 0 && S_ISDIR(f.mode));
    /* A directory, a FIFO, devices where a file belongs: never read.  A
     * FIFO opened for reading would block; /dev/zero would never end. */
    f = run_file(at("subdir"), CAPSFAST_OP_READ, 0, buf, sizeof buf);
    CHECK(f.err == -EISDIR && S_ISDIR(f.mode));
    f = run_file(at("fifo"), CAPSFAST_OP_READ, 0, buf, sizeof buf);
    CHECK(f.err == -EINVAL && S_ISFIFO(f.mode));
    f = run_file(at("fifo"), CAPSFAST_OP_READ_BLOCK, 0, buf, sizeof buf);
    CHECK(f.err == -EINVAL);
    f = run_file(at("fifo"), CAPSFAST_OP_MSR, 0x3a, NULL, 0);
    CHECK(f.err == -EINVAL);
    f = run_file("/dev/zero", CAPSFAST_OP_READ, 0, buf, sizeof buf);
    CHECK(f.err == -EINVAL && S_ISCHR(f.mode) && f.len == 0);
    f = run_file(at("to-null"), CAPSFAST_OP_READ, 0, buf, sizeof buf);
    CHECK(f.err == -EINVAL && S_ISCHR(f.mode));
    f = run_file(at("subdir"), CAPSFAST_OP_READ_ONCE, 0, buf, sizeof buf);
    CHECK(f.err == -EISDIR && S_ISDIR(f.mode));
    f = run_file(at("fifo"), CAPSFAST_OP_READ_ONCE, 0, buf, sizeof buf);
    CHECK(f.err == -EINVAL && S_ISFIFO(f.mode) && f.len == 0);
    f = run_file("/dev/zero", CAPSFAST_OP_READ_ONCE, 0, buf, sizeof buf);
    CHECK(f.err == -EINVAL && S_ISCHR(f.mode) && f.len == 0 && !f.truncated);
    f = run_file(at("to-null"), CAPSFAST_OP_READ_ONCE, 0, buf, sizeof buf);
    CHECK(f.err == -EINVAL && S_ISCHR(f.mode));
}

static void test_msr(void)
{
    struct capsfast_file f;

    f = run_file(at("msr"), CAPSFAST_OP_MSR, 0x3a, NULL, 0);
    CHECK(f.err == 0 && f.value == 0x0102030405060705ull);
    f = run_file(at("msr-amd"), CAPSFAST_OP_MSR, 0xc0010114u, NULL, 0);
    CHECK(f.err == 0 && f.value == 0x10u);
    /* Shorter than the offset, or ending inside the 8 bytes. */
    f = run_file(at("small"), CAPSFAST_OP_MSR, 0x3a, NULL, 0);
    CHECK(f.err == -ENODATA && f.value == 0);
    f = run_file(at("msr-short"), CAPSFAST_OP_MSR, 0x3a, NULL, 0);
    CHECK(f.err == -ENODATA && f.value == 0);
    f = run_file(at("empty"), CAPSFAST_OP_MSR, 0xffffffffu, NULL, 0);
    CHECK(f.err == -ENODATA);
    f = run_file(at("subdir"), CAPSFAST_OP_MSR, 0x3a, NULL, 0);
    CHECK(f.err == -EISDIR);
    /* A character device that is not the msr driver's: not opened. */
    f = run_file("/dev/null", CAPSFAST_OP_MSR, 0x3a, NULL, 0);
    CHECK(f.err == -EINVAL && S_ISCHR(f.mode));
}

static void test_kvm_fakes(void)
{
    struct capsfast_kvm k;

    k = run_kvm(at("missing"), 0);
    CHECK(k.stat_err == -ENOENT && k.access_err == 1 && k.open_err == 1 && k.api_version == NOT_TRIED && k.create_vm == 0);
    k = run_kvm(at("small/below"), 0);
    CHECK(k.stat_err == -ENOTDIR && k.open_err == 1);
    k = run_kvm(at("loop"), 0);
    CHECK(k.stat_err == -ELOOP && k.open_err == 1);
    /* A regular file stands in for the node: exists, never opened. */
    k = run_kvm(at("small"), 1);
    CHECK(k.stat_err == 0 && S_ISREG(k.mode) && k.access_err == 1 && k.open_err == 1 &&
          k.api_version == NOT_TRIED && k.create_vm == 0);
    k = run_kvm(at("subdir"), 1);
    CHECK(k.stat_err == 0 && S_ISDIR(k.mode) && k.open_err == 1);
    k = run_kvm(at("fifo"), 1);
    CHECK(k.stat_err == 0 && S_ISFIFO(k.mode) && k.open_err == 1);
    /* Another character device: its access is reported, it is not opened. */
    k = run_kvm(at("to-null"), 1);
    CHECK(k.stat_err == 0 && S_ISCHR(k.mode) && k.open_err == -ENODEV && k.api_version == NOT_TRIED &&
          k.create_vm == 0);
}

/* The real device, when this machine has it. */
static void test_kvm_live(int expect_access)
{
    struct stat st;
    struct capsfast_kvm k;

    if (stat("/dev/kvm", &st) != 0 || !S_ISCHR(st.st_mode) || major(st.st_rdev) != 10 || minor(st.st_rdev) != 232) {
        fprintf(stderr, "sanitize_driver: no /dev/kvm here, live KVM checks skipped\n");
        return;
    }
    k = run_kvm("/dev/kvm", 0);
    CHECK(k.stat_err == 0 && S_ISCHR(k.mode));
    CHECK((k.access_err == 0) == (access("/dev/kvm", R_OK | W_OK) == 0));
    if (expect_access && k.access_err == 0) {
        CHECK(k.open_err == 0 && k.api_version == 12 && k.create_vm == 0);
        k = run_kvm("/dev/kvm", 1);
        CHECK(k.open_err == 0 && k.api_version == 12 && k.create_vm == 1);
    } else if (k.access_err != 0) {
        CHECK(k.open_err == -EACCES && k.api_version == NOT_TRIED);
    }
}

/* capsfast_kvm_caps: arguments, every device it must not open, and (with
 * an accessible /dev/kvm) real answers; failures fill every value. */
static void test_kvm_caps(void)
{
    /* KVM_CAP_IRQCHIP, KVM_CAP_NR_VCPUS, KVM_CAP_MAX_VCPUS, and a number
     * no kernel knows (answered 0). */
    const uint32_t caps[4] = {0, 9, 66, 0x7fffffff};
    int32_t values[4];
    int i;

    CHECK(capsfast_kvm_caps(NULL, caps, values, 4) == -EINVAL);
    CHECK(capsfast_kvm_caps("/dev/kvm", NULL, values, 4) == -EINVAL);
    CHECK(capsfast_kvm_caps("/dev/kvm", caps, NULL, 4) == -EINVAL);
    CHECK(capsfast_kvm_caps("/dev/kvm", caps, values, -1) == -EINVAL);
    CHECK(capsfast_kvm_caps(at("missing"), NULL, NULL, 0) == -ENOENT);
    memset(values, 0x5A, sizeof values);
    CHECK(capsfast_kvm_caps(at("missing"), caps, values, 4) == -ENOENT);
    for (i = 0; i < 4; i++)
        CHECK(values[i] == -ENOENT);
    CHECK(capsfast_kvm_caps(at("small"), caps, values, 4) == -ENODEV);
    CHECK(capsfast_kvm_caps(at("fifo"), caps, values, 4) == -ENODEV);
    CHECK(capsfast_kvm_caps(at("subdir"), caps, values, 4) == -ENODEV);
    CHECK(capsfast_kvm_caps(at("to-null"), caps, values, 4) == -ENODEV && values[3] == -ENODEV);
    CHECK(capsfast_kvm_caps(at("loop"), caps, values, 4) == -ELOOP);
    if (access("/dev/kvm", R_OK | W_OK) == 0 && capsfast_kvm_caps("/dev/kvm", caps, values, 4) == 0) {
        CHECK(values[0] >= 0 && values[1] >= 1 && values[2] >= values[1] && values[3] == 0);
    } else if (access("/dev/kvm", F_OK) == 0) {
        CHECK(capsfast_kvm_caps("/dev/kvm", caps, values, 4) < 0 && values[0] < 0);
    }
}

/* capsfast_kvm_host_cpu: arguments, every device it must not open, and
 * (with an accessible /dev/kvm) a TSC frequency and an answered MSR read. */
static void test_kvm_host_cpu(void)
{
    struct capsfast_host_cpu h;

    memset(&h, 0x5A, sizeof h);
    CHECK(capsfast_kvm_host_cpu(NULL, 1, 1, &h) == -EINVAL);
    CHECK(capsfast_kvm_host_cpu("/dev/kvm", 1, 1, NULL) == -EINVAL);
    CHECK(capsfast_kvm_host_cpu(at("missing"), 1, 1, &h) == -ENOENT);
    CHECK(h.msr_err == 1 && h.tsc_err == 1 && h.tsc_khz == 0 && h.msr_value == 0);
    CHECK(capsfast_kvm_host_cpu(at("small"), 1, 1, &h) == -ENODEV);
    CHECK(capsfast_kvm_host_cpu(at("fifo"), 1, 1, &h) == -ENODEV);
    CHECK(capsfast_kvm_host_cpu(at("to-null"), 1, 1, &h) == -ENODEV);
    CHECK(capsfast_kvm_host_cpu(at("loop"), 1, 1, &h) == -ELOOP);
    h.msr_index = 0x10a;
    if (access("/dev/kvm", R_OK | W_OK) == 0 && capsfast_kvm_host_cpu("/dev/kvm", 0, 0, &h) == 0) {
        CHECK(h.msr_err == 1 && h.tsc_err == 1);
        CHECK(capsfast_kvm_host_cpu("/dev/kvm", 1, 1, &h) == 0);
        CHECK(h.msr_err == 0 || h.msr_err == -ENODATA || h.msr_err < 0);
        CHECK((h.tsc_err == 0 && h.tsc_khz > 0 && h.tsc_step == 0) || (h.tsc_err < 0 && h.tsc_step >= 1));
        /* An MSR KVM does not serve as a feature MSR reads nothing. */
        h.msr_index = 0xdeadbeef;
        CHECK(capsfast_kvm_host_cpu("/dev/kvm", 1, 0, &h) == 0 && h.msr_err != 0 && h.msr_value == 0);
    }
}

/* capsfast_kvm_supported_cpuid: arguments, every device it must not open,
 * and (with an accessible /dev/kvm) KVM's table, leaf 0 first. */
static void test_kvm_supported_cpuid(void)
{
    static struct capsfast_leaf out[CAPSFAST_KVM_CPUID_MAX];
    int n;

    CHECK(capsfast_kvm_supported_cpuid(NULL, out, CAPSFAST_KVM_CPUID_MAX) == -EINVAL);
    CHECK(capsfast_kvm_supported_cpuid("/dev/kvm", NULL, CAPSFAST_KVM_CPUID_MAX) == -EINVAL);
    CHECK(capsfast_kvm_supported_cpuid("/dev/kvm", out, 0) == -EINVAL);
    CHECK(capsfast_kvm_supported_cpuid("/dev/kvm", out, CAPSFAST_KVM_CPUID_MAX + 1) == -EINVAL);
    CHECK(capsfast_kvm_supported_cpuid(at("missing"), out, CAPSFAST_KVM_CPUID_MAX) == -ENOENT);
    CHECK(capsfast_kvm_supported_cpuid(at("small"), out, CAPSFAST_KVM_CPUID_MAX) == -ENODEV);
    CHECK(capsfast_kvm_supported_cpuid(at("fifo"), out, CAPSFAST_KVM_CPUID_MAX) == -ENODEV);
    CHECK(capsfast_kvm_supported_cpuid(at("to-null"), out, CAPSFAST_KVM_CPUID_MAX) == -ENODEV);
    CHECK(capsfast_kvm_supported_cpuid(at("loop"), out, CAPSFAST_KVM_CPUID_MAX) == -ELOOP);
    if (access("/dev/kvm", R_OK | W_OK) == 0) {
        n = capsfast_kvm_supported_cpuid("/dev/kvm", out, CAPSFAST_KVM_CPUID_MAX);
        CHECK(n > 0 && out[0].leaf == 0 && out[0].eax >= 1);
        /* Fewer slots than KVM has entries: -E2BIG, as the ioctl says. */
        CHECK(capsfast_kvm_supported_cpuid("/dev/kvm", out, 1) == -E2BIG);
    }
}

/* Checks that need the permission bits to bite: run as a user that is
 * not root. */
static void test_unprivileged(void)
{
    char buf[64];
    struct capsfast_file f;
    struct capsfast_kvm k;

    f = run_file(at("secret"), CAPSFAST_OP_READ, 0, buf, sizeof buf);
    CHECK(f.err == -EACCES && f.len == 0);
    f = run_file(at("secret"), CAPSFAST_OP_STAT, 0, NULL, 0);
    CHECK(f.err == 0);
    f = run_file(at("msr-secret"), CAPSFAST_OP_MSR, 0x3a, NULL, 0);
    CHECK(f.err == -EACCES && f.value == 0);
    f = run_file(at("closed/file"), CAPSFAST_OP_STAT, 0, NULL, 0);
    CHECK(f.err == -EACCES);
    f = run_file(at("closed/file"), CAPSFAST_OP_READ, 0, buf, sizeof buf);
    CHECK(f.err == -EACCES);
    k = run_kvm(at("closed/kvm"), 1);
    CHECK(k.stat_err == -EACCES && k.open_err == 1);
    test_kvm_live(0);
    test_kvm_caps();
    test_kvm_host_cpu();
}

struct worker {
    pthread_t thread;
    int bad;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    char buf[128];
    struct capsfast_cpu cpu;
    struct capsfast_kvm kvm;
    struct capsfast_file files[3];
    int i;

    for (i = 0; i < 2000; i++) {
        memset(files, 0, sizeof files);
        files[0].path = small_path;
        files[0].op = CAPSFAST_OP_READ;
        files[0].buf = buf;
        files[0].cap = sizeof buf;
        files[1].path = "/proc/cpuinfo";
        files[1].op = CAPSFAST_OP_STAT;
        files[2].path = msr_path;
        files[2].op = CAPSFAST_OP_MSR;
        files[2].msr = 0x3a;
        if (capsfast_probe(1, &cpu, "/dev/kvm", 0, &kvm, files, 3) != 0 || files[0].len != 6 ||
            files[2].value != 0x0102030405060705ull || cpu.available != capsfast_has_cpuid())
            w->bad++;
    }
    return NULL;
}

static void test_threads(void)
{
    struct worker workers[8];
    int i;

    /* One thread alone is counted once; the reset returns the old peak. */
    capsfast_peak_concurrency(1);
    CHECK(capsfast_peak_concurrency(0) == 0);
    CHECK(capsfast_probe(0, NULL, NULL, 0, NULL, NULL, 0) == 0);
    CHECK(capsfast_peak_concurrency(1) == 1 && capsfast_peak_concurrency(0) == 0);
    for (i = 0; i < 8; i++) {
        workers[i].bad = 0;
        CHECK(pthread_create(&workers[i].thread, NULL, work, &workers[i]) == 0);
    }
    for (i = 0; i < 8; i++) {
        pthread_join(workers[i].thread, NULL);
        CHECK(workers[i].bad == 0);
    }
    CHECK(capsfast_peak_concurrency(0) >= 1 && capsfast_peak_concurrency(0) <= 8);
    fprintf(stderr, "sanitize_driver: peak threads inside capsfast_probe: %d of 8\n", capsfast_peak_concurrency(0));
}

static void make_tree(void)
{
    char line[128];
    char *huge;
    size_t i;

    strcpy(dir, "/tmp/capsfast-csan-XXXXXX");
    if (mkdtemp(dir) == NULL || chmod(dir, 0755) != 0) {
        perror("mkdtemp");
        exit(3);
    }
    snprintf(small_path, sizeof small_path, "%s/small", dir);
    snprintf(msr_path, sizeof msr_path, "%s/msr", dir);
    write_file(at("small"), "hello\n", 6);
    write_file(at("exact"), "0123456789abcdef", 16);
    write_file(at("empty"), "", 0);
    write_file(at("nul"), "a\0b\0c", 5);
    huge = malloc(1 << 20);
    memset(huge, 'x', 1 << 20);
    write_file(at("huge"), huge, 1 << 20);
    for (i = 0; i + sizeof line < (1 << 20); i += strlen(line)) {
        snprintf(line, sizeof line, "processor\t: %zu\nflags\t\t: fpu vme\n\n", i);
        memcpy(huge + i, line, strlen(line));
    }
    write_file(at("blocks"), huge, 1 << 20);
    free(huge);
    write_msr(at("msr"), 0x3a, 0x0102030405060705ull, 0);
    write_msr(at("msr-amd"), 0xc0010114u, 0x10u, 0);
    write_msr(at("msr-short"), 0x3a, 0x5, 4);
    write_msr(at("msr-secret"), 0x3a, 0x5, 0);
    write_file(at("secret"), "no\n", 3);
    if (chmod(at("secret"), 0) != 0 || chmod(at("msr-secret"), 0) != 0 || mkdir(at("subdir"), 0755) != 0 ||
        mkfifo(at("fifo"), 0644) != 0 || symlink("loop", at("loop")) != 0 ||
        symlink("/dev/null", at("to-null")) != 0 || mkdir(at("closed"), 0755) != 0) {
        perror("tree");
        exit(3);
    }
    if (mkdir(at("listed"), 0755) != 0) {
        perror("listed");
        exit(3);
    }
    write_file(at("listed/aa"), "", 0);
    write_file(at("listed/bbbb"), "", 0);
    write_file(at("closed/file"), "x\n", 2);
    write_file(at("closed/kvm"), "", 0);
    if (chmod(at("closed"), 0) != 0) {
        perror("chmod");
        exit(3);
    }
}

static void remove_tree(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (chmod(at("closed"), 0755) != 0 || system(cmd) != 0)
        fprintf(stderr, "sanitize_driver: could not remove %s\n", dir);
}

/* Directory listings: whole names, each with its NUL, never past cap. */
static void test_lists(void)
{
    char buf[64];
    struct capsfast_file f;

    f = run_file(at("subdir"), CAPSFAST_OP_LIST, 0, buf, sizeof buf);
    CHECK(f.err == 0 && f.len == 0 && !f.truncated && S_ISDIR(f.mode));
    f = run_file(at("listed"), CAPSFAST_OP_LIST, 0, buf, sizeof buf);
    CHECK(f.err == 0 && f.len == 8 && !f.truncated);
    CHECK(memcmp(buf, "aa\0bbbb\0", 8) == 0 || memcmp(buf, "bbbb\0aa\0", 8) == 0);
    /* Exactly the room for both. */
    f = run_file(at("listed"), CAPSFAST_OP_LIST, 0, buf, 8);
    CHECK(f.err == 0 && f.len == 8 && !f.truncated);
    /* Room for one name: that one whole, or none, and truncated. */
    f = run_file(at("listed"), CAPSFAST_OP_LIST, 0, buf, 6);
    CHECK(f.err == 0 && f.truncated && (f.len == 3 || f.len == 5 || f.len == 0));
    CHECK(f.len == 0 || buf[f.len - 1] == '\0');
    f = run_file(at("listed"), CAPSFAST_OP_LIST, 0, buf, 0);
    CHECK(f.err == 0 && f.len == 0 && f.truncated);
    f = run_file(at("listed"), CAPSFAST_OP_LIST, 0, NULL, 16);
    CHECK(f.err == -EINVAL);
    /* Anything but a directory is never opened as one: a FIFO would block,
     * a device act. */
    f = run_file(at("small"), CAPSFAST_OP_LIST, 0, buf, sizeof buf);
    CHECK(f.err == -ENOTDIR && S_ISREG(f.mode) && f.len == 0);
    f = run_file(at("fifo"), CAPSFAST_OP_LIST, 0, buf, sizeof buf);
    CHECK(f.err == -ENOTDIR && S_ISFIFO(f.mode));
    f = run_file("/dev/zero", CAPSFAST_OP_LIST, 0, buf, sizeof buf);
    CHECK(f.err == -ENOTDIR && S_ISCHR(f.mode));
    f = run_file(at("missing"), CAPSFAST_OP_LIST, 0, buf, sizeof buf);
    CHECK(f.err == -ENOENT && f.mode == 0);
    f = run_file(at("loop"), CAPSFAST_OP_LIST, 0, buf, sizeof buf);
    CHECK(f.err == -ELOOP);
    if (geteuid() != 0) {
        f = run_file(at("closed"), CAPSFAST_OP_LIST, 0, buf, sizeof buf);
        CHECK(f.err == -EACCES && S_ISDIR(f.mode));
    }
}

/* An entry may depend on an earlier one: skipped (-ENOENT) when that one
 * found nothing, refused (-EINVAL) when it names no earlier entry. */
static void test_after(void)
{
    char buf[64];
    struct capsfast_file files[4];

    memset(files, 0xA5, sizeof files);
    files[0].path = at("absent");
    files[0].op = CAPSFAST_OP_STAT;
    files[0].after = 0;
    files[1].path = at("small");
    files[1].op = CAPSFAST_OP_READ;
    files[1].buf = buf;
    files[1].cap = sizeof buf;
    files[1].after = 1;       /* entry 0: absent, so skipped */
    files[2].path = at("small");
    files[2].op = CAPSFAST_OP_READ;
    files[2].buf = buf;
    files[2].cap = sizeof buf;
    files[2].after = 0;
    files[3].path = at("small");
    files[3].op = CAPSFAST_OP_STAT;
    files[3].after = 4;       /* itself: not an earlier entry */
    CHECK(capsfast_probe(0, NULL, NULL, 0, NULL, files, 4) == 0);
    CHECK(files[0].err == -ENOENT);
    CHECK(files[1].err == -ENOENT && files[1].len == 0 && files[1].truncated == 0 && files[1].value == 0);
    CHECK(files[2].err == 0 && files[2].len == 6);
    CHECK(files[3].err == -EINVAL && files[3].mode == 0);
    files[0].path = at("small"); /* entry 0 now finds its file: entry 1 runs */
    files[2].after = 4;       /* a later entry: refused */
    files[3].after = -7;
    CHECK(capsfast_probe(0, NULL, NULL, 0, NULL, files, 4) == 0);
    CHECK(files[1].err == 0 && files[1].len == 6);
    CHECK(files[2].err == -EINVAL);
    CHECK(files[3].err == -EINVAL);
}

int main(void)
{
    int status;
    pid_t pid;

    make_tree();
    test_arguments();
    test_cpu();
    test_walk();
#ifdef CAPSFAST_FAKE_CPUID
    test_walk_hostile();
#endif
    test_reads();
    test_lists();
    test_msr();
    test_after();
    test_kvm_fakes();
    test_kvm_live(1);
    test_kvm_caps();
    test_kvm_host_cpu();
    test_kvm_supported_cpuid();
    test_threads();
    if (geteuid() != 0) {
        test_unprivileged();
    } else {
        /* Root reads everything: drop to nobody in a child for EACCES. */
        fflush(stderr);
        pid = fork();
        if (pid == 0) {
            if (setgroups(0, NULL) != 0 || setgid(UNPRIVILEGED_ID) != 0 || setuid(UNPRIVILEGED_ID) != 0) {
                perror("setuid");
                _exit(3);
            }
            checks = failures = 0;
            test_unprivileged();
            fprintf(stderr, "sanitize_driver: as uid %d: %d checks, %d failed\n", UNPRIVILEGED_ID, checks, failures);
            _exit(failures ? 1 : 0);
        }
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    remove_tree();
    fprintf(stderr, "sanitize_driver (%s): %d checks, %d failed\n",
#ifdef CAPSFAST_FAKE_CPUID
            "fake cpuid",
#else
            capsfast_has_cpuid() ? "cpuid" : "no cpuid",
#endif
            checks, failures);
    return failures ? 1 : 0;
}
