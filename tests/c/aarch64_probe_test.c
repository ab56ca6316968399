/*
 * The probe's behaviour off x86, run under qemu-user by ci/cross-aarch64.sh:
 * CPUID reported unavailable (and never executed), the full CPUID walk
 * empty, while the device and file checks work as on x86, here on a
 * temporary tree this test makes.
 *
 * Exit 0 and "N passed, 0 failed" when every check holds; 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capsfast.h"

static int passed, failed;

#define CHECK(cond)                                                       \
    do {                                                                  \
        if (cond)                                                         \
            passed++;                                                     \
        else {                                                            \
            failed++;                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,        \
                    __LINE__, #cond);                                     \
        }                                                                 \
    } while (0)

static char tree[PATH_MAX / 2];  /* room left in PATH_MAX for the names below */

/* The path of name inside the temporary tree. */
static void path_in(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", tree, name);
}

static void write_file(const char *name, const char *text)
{
    char path[PATH_MAX];
    FILE *f;

    path_in(path, sizeof path, name);
    f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void make_dir(const char *name)
{
    char path[PATH_MAX];

    path_in(path, sizeof path, name);
    if (mkdir(path, 0755) != 0) {
        perror(path);
        exit(1);
    }
}

/* A sparse file holding value little-endian at offset msr, as /dev/cpu/0/msr serves it. */
static void write_msr(const char *name, uint32_t msr, uint64_t value)
{
    char path[PATH_MAX];
    unsigned char raw[8];
    int fd, i;

    for (i = 0; i < 8; i++)
        raw[i] = (unsigned char)(value >> (8 * i));
    path_in(path, sizeof path, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || pwrite(fd, raw, sizeof raw, (off_t)msr) != (ssize_t)sizeof raw || close(fd) != 0) {
        perror(path);
        exit(1);
    }
}

/* A short first block, then a long second one: CPUINFO_SIZE bytes. */
#define CPUINFO_SIZE 3000u
static void write_cpuinfo(void)
{
    static char text[CPUINFO_SIZE + 1];
    const char *head = "processor\t: 0\n\nprocessor\t: 1\nflags\t:";
    size_t n = strlen(head);

    memcpy(text, head, n);
    memset(text + n, 'x', CPUINFO_SIZE - 1 - n);
    text[CPUINFO_SIZE - 1] = '\n';
    text[CPUINFO_SIZE] = '\0';
    write_file("proc/cpuinfo", text);
}

static void test_cpuid_unavailable(void)
{
    struct capsfast_cpu cpu;
    static const struct capsfast_cpu zero;

    CHECK(capsfast_has_cpuid() == 0);
    /* Garbage in, so a probe that leaves the struct alone is caught. */
    memset(&cpu, 0xa5, sizeof cpu);
    CHECK(capsfast_probe(1, &cpu, NULL, 0, NULL, NULL, 0) == 0);
    CHECK(cpu.available == 0);
    CHECK(memcmp(&cpu, &zero, sizeof cpu) == 0);
    CHECK(capsfast_cpuid_executed() == 0);
}

/* No CPUID, no walk: 0 entries (as capsfast_has_cpuid() says 0), nothing
 * written, nothing counted; the arguments checked as on x86. */
static void test_cpuid_walk_unavailable(void)
{
    struct capsfast_leaf out[4];
    static const unsigned char garbage = 0xa5;
    size_t i;
    int untouched = 1;

    memset(out, garbage, sizeof out);
    CHECK(capsfast_cpuid_walk(out, 4) == 0);
    CHECK(capsfast_cpuid_walk(NULL, 0) == 0);
    for (i = 0; i < sizeof out; i++)
        untouched &= ((const unsigned char *)out)[i] == garbage;
    CHECK(untouched);
    CHECK(capsfast_cpuid_walk(out, -1) == -EINVAL);
    CHECK(capsfast_cpuid_walk(NULL, 1) == -EINVAL);
    CHECK(capsfast_cpuid_executed() == 0);
}

/* Built as shipped, without CAPSFAST_TEST_COUNTERS: the thread count is
 * not kept, and says so. */
static void test_no_test_counters(void)
{
    CHECK(capsfast_probe(0, NULL, NULL, 0, NULL, NULL, 0) == 0);
    CHECK(capsfast_peak_concurrency(0) == -1);
    CHECK(capsfast_peak_concurrency(1) == -1);
}

static void test_kvm_checks(void)
{
    struct capsfast_kvm kvm;
    char path[PATH_MAX];

    /* Absent: stat's errno, nothing else tried. */
    path_in(path, sizeof path, "dev/kvm-absent");
    CHECK(capsfast_probe(0, NULL, path, 0, &kvm, NULL, 0) == 0);
    CHECK(kvm.stat_err == -ENOENT);
    CHECK(kvm.access_err == 1 && kvm.open_err == 1);
    CHECK(kvm.api_version == -1000 && kvm.create_vm == 0);

    /* A fake root's stand-in: a regular file, seen but never opened. */
    path_in(path, sizeof path, "dev/kvm");
    CHECK(capsfast_probe(0, NULL, path, 1, &kvm, NULL, 0) == 0);
    CHECK(kvm.stat_err == 0 && S_ISREG(kvm.mode));
    CHECK(kvm.access_err == 1 && kvm.open_err == 1);
    CHECK(kvm.api_version == -1000 && kvm.create_vm == 0);

    /* A real character device other than KVM's 10:232, through qemu-user's
     * syscall translation: stat and access checked, never opened. */
    CHECK(capsfast_probe(0, NULL, "/dev/null", 1, &kvm, NULL, 0) == 0);
    CHECK(kvm.stat_err == 0 && S_ISCHR(kvm.mode));
    CHECK(kvm.access_err == 0 && kvm.open_err == -ENODEV);
    CHECK(kvm.api_version == -1000 && kvm.create_vm == 0);
}

static void test_file_checks(void)
{
    enum { N = 10, CAP = 4096 };
    struct capsfast_file files[N];
    static char paths[N][PATH_MAX];
    static char bufs[N][CAP];
    static const char *names[N] = {
        "proc/cpuinfo", "proc/cpuinfo", "sys/hypervisor/type", "sys/hypervisor/type",
        "dev/cpu/0/msr", "dev/cpu/0/msr", "proc/xen", "proc/xen", "absent", "/dev/null",
    };
    static const int ops[N] = {
        CAPSFAST_OP_READ_BLOCK, CAPSFAST_OP_READ, CAPSFAST_OP_READ, CAPSFAST_OP_READ,
        CAPSFAST_OP_MSR, CAPSFAST_OP_MSR, CAPSFAST_OP_STAT, CAPSFAST_OP_READ, CAPSFAST_OP_STAT,
        CAPSFAST_OP_MSR,
    };
    int i;

    memset(files, 0, sizeof files);
    for (i = 0; i < N; i++) {
        if (names[i][0] == '/')
            snprintf(paths[i], sizeof paths[i], "%s", names[i]);
        else
            path_in(paths[i], sizeof paths[i], names[i]);
        files[i].path = paths[i];
        files[i].op = ops[i];
        files[i].buf = bufs[i];
        files[i].cap = CAP;
        /* Stale outputs, which the probe must reset. */
        files[i].err = 12345;
        files[i].len = 99;
    }
    files[3].cap = 3;         /* "xen\n" does not fit in 3 bytes */
    files[4].msr = 0x3a;      /* IA32_FEATURE_CONTROL */
    files[5].msr = 0x1000;    /* beyond the end of the file */

    CHECK(capsfast_probe(0, NULL, NULL, 0, NULL, files, N) == 0);

    /* One /proc/cpuinfo block: the read stops after the step that brought
     * the first blank line, well before the end of the file. */
    CHECK(files[0].err == 0 && files[0].mode == 0);  /* read as a file: never stat()ed */
    CHECK(files[0].len >= 15 && memcmp(bufs[0], "processor\t: 0\n\n", 15) == 0);
    CHECK(files[0].len < CPUINFO_SIZE && files[0].truncated == 0);
    /* The whole file with OP_READ. */
    CHECK(files[1].err == 0 && files[1].len == CPUINFO_SIZE && files[1].truncated == 0);
    CHECK(memcmp(bufs[1] + 15, "processor\t: 1\n", 14) == 0);
    CHECK(files[2].err == 0 && files[2].len == 4 && memcmp(bufs[2], "xen\n", 4) == 0);
    CHECK(files[2].truncated == 0);
    CHECK(files[3].err == 0 && files[3].len == 3 && files[3].truncated == 1);
    /* A sparse regular file stands in for the msr driver's node. */
    CHECK(files[4].err == 0 && files[4].value == 0x0000000500000005ull);
    CHECK(files[5].err == -ENODATA && files[5].value == 0);
    CHECK(files[6].err == 0 && S_ISDIR(files[6].mode));
    CHECK(files[7].err == -EISDIR);
    CHECK(files[8].err == -ENOENT && files[8].mode == 0);
    /* A character device that is not the msr driver's: never read. */
    CHECK(files[9].err == -EINVAL && S_ISCHR(files[9].mode) && files[9].value == 0);
}

static void test_bad_arguments(void)
{
    struct capsfast_file f;

    CHECK(capsfast_probe(1, NULL, NULL, 0, NULL, NULL, 0) == -EINVAL);
    CHECK(capsfast_probe(0, NULL, "/dev/null", 0, NULL, NULL, 0) == -EINVAL);
    CHECK(capsfast_probe(0, NULL, NULL, 0, NULL, NULL, -1) == -EINVAL);
    memset(&f, 0, sizeof f);
    f.path = "/dev/null";
    f.op = 42;
    CHECK(capsfast_probe(0, NULL, NULL, 0, NULL, &f, 1) == 0);
    CHECK(f.err == -EINVAL);
}

static void remove_tree(void)
{
    static const char *files[] = {
        "dev/kvm", "dev/cpu/0/msr", "proc/cpuinfo", "sys/hypervisor/type",
    };
    static const char *dirs[] = {
        "dev/cpu/0", "dev/cpu", "dev", "proc/xen", "proc", "sys/hypervisor", "sys", "",
    };
    char path[PATH_MAX];
    size_t i;

    for (i = 0; i < sizeof files / sizeof files[0]; i++) {
        path_in(path, sizeof path, files[i]);
        unlink(path);
    }
    for (i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        path_in(path, sizeof path, dirs[i]);
        rmdir(path);
    }
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");

    if (snprintf(tree, sizeof tree, "%s/capsfast-aarch64.XXXXXX", tmp && *tmp ? tmp : "/tmp") >= (int)sizeof tree) {
        fprintf(stderr, "TMPDIR too long\n");
        return 1;
    }
    if (mkdtemp(tree) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    make_dir("dev");
    make_dir("dev/cpu");
    make_dir("dev/cpu/0");
    make_dir("proc");
    make_dir("proc/xen");
    make_dir("sys");
    make_dir("sys/hypervisor");
    write_file("dev/kvm", "");
    write_cpuinfo();
    write_file("sys/hypervisor/type", "xen\n");
    /* Lock bit and VMX-outside-SMX, with a high word to check byte order. */
    write_msr("dev/cpu/0/msr", 0x3a, 0x0000000500000005ull);

    test_cpuid_unavailable();
    test_cpuid_walk_unavailable();
    test_kvm_checks();
    test_file_checks();
    test_bad_arguments();
    test_no_test_counters();
    remove_tree();

    printf("aarch64 probe test: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
