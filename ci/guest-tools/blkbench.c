// blkbench: the in-guest half of ci/bench-blk. Three measurements on a block device (or a
// regular file on a filesystem with O_DIRECT, for testing on a host), all with O_DIRECT so
// the guest's page cache is out of the way:
//   seq-write  SEQ MiB from offset 0 in 1 MiB pwrites, then fdatasync (timed together);
//              every 512-byte sector is stamped with (seed, offset)
//   seq-read   the same range in 1 MiB preads; each sector's stamp is checked
//   rand-read  4 KiB preads at random 4 KiB-aligned offsets over the whole device, one at
//              a time (queue depth 1), for SECONDS or OPS reads, whichever ends first;
//              reads inside the written range are checked too
// With -V PREV, first (untimed) the range is read and checked for the stamps of seed PREV,
// i.e. what an earlier run wrote (ci/bench-blk: the other VMM's run, on the same file).
// Prints one line for ci/bench-blk to parse,
//   BLKBENCH-RESULT size_mib=.. seq_mib=.. seq_write_mibps=.. seq_read_mibps=..
//                   rand_read_iops=.. rand_read_ops=.. rand_read_avg_us=.. verified=PREV|none ...
// or "BLKBENCH-ERROR: ..." and exit status 1 (2 for bad usage).
// Build: static, e.g. clang -O2 -static -o blkbench blkbench.c (see ci/bench-blk).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024 * 1024)
#define SEQ_BLOCK MIB
#define RAND_BLOCK 4096
#define SECTOR 512
#define MAGIC UINT64_C(0x534c424c4b424e43) // "SLBLKBNC"

static const char *path;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("BLKBENCH-ERROR: ", stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
    exit(1);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

// The whole count or a failure: O_DIRECT transfers of aligned sizes are not expected to be
// short, but a short one is continued rather than miscounted.
static void transfer(int fd, int write, void *buf, size_t len, uint64_t off, const char *what) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = write ? pwrite(fd, (char *)buf + done, len - done, (off_t)(off + done))
                          : pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("%s: %s of %zu bytes at offset %" PRIu64 " on %s: %s", what, write ? "pwrite" : "pread",
                 len - done, off + done, path, strerror(errno));
        }
        if (n == 0) fail("%s: end of %s at offset %" PRIu64, what, path, off + done);
        done += (size_t)n;
    }
}

static void stamp(unsigned char *buf, size_t len, uint64_t off, uint64_t seed) {
    for (size_t s = 0; s < len; s += SECTOR) {
        uint64_t words[2] = {MAGIC ^ seed, off + s};
        memcpy(buf + s, words, sizeof words);
    }
}

static void check(const unsigned char *buf, size_t len, uint64_t off, uint64_t seed, const char *what) {
    for (size_t s = 0; s < len; s += SECTOR) {
        uint64_t words[2];
        memcpy(words, buf + s, sizeof words);
        if (words[0] != (MAGIC ^ seed) || words[1] != off + s)
            fail("%s: sector at offset %" PRIu64 " reads stamp (%#" PRIx64 ", %" PRIu64 "), expected (%#" PRIx64
                 ", %" PRIu64 ")", what, off + s, words[0], words[1], MAGIC ^ seed, off + s);
    }
}

static uint64_t xorshift(uint64_t *state) {
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

static unsigned long number(const char *text, const char *flag) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 0);
    if (errno || end == text || *end) {
        fprintf(stderr, "blkbench: %s needs a number, got '%s'\n", flag, text);
        exit(2);
    }
    return v;
}

static void usage(void) {
    fputs("usage: blkbench [-s SEQ_MIB] [-t SECONDS] [-n OPS] [-S SEED] [-V PREV] DEVICE\n"
          "  -s  MiB written then read sequentially from offset 0 (default 64)\n"
          "  -t  seconds of 4 KiB random reads (default 5)\n"
          "  -n  at most this many random reads (default 1000000)\n"
          "  -S  seed of the sector stamps and of the random offsets (default 1)\n"
          "  -V  first check that the range holds the stamps of seed PREV (an earlier run's)\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv) {
    unsigned long seq_mib = 64, seconds = 5, max_ops = 1000000, seed = 1, prev = 0;
    int verify = 0, opt;
    while ((opt = getopt(argc, argv, "s:t:n:S:V:h")) != -1) {
        switch (opt) {
        case 's': seq_mib = number(optarg, "-s"); break;
        case 't': seconds = number(optarg, "-t"); break;
        case 'n': max_ops = number(optarg, "-n"); break;
        case 'S': seed = number(optarg, "-S"); break;
        case 'V': prev = number(optarg, "-V"); verify = 1; break;
        default: usage();
        }
    }
    if (optind + 1 != argc || seq_mib == 0 || max_ops == 0) usage();
    path = argv[optind];
    setvbuf(stdout, NULL, _IOLBF, 0);

    int fd = open(path, O_RDWR | O_DIRECT);
    if (fd < 0) {
        if (errno == EINVAL)
            fail("open %s with O_DIRECT: %s (this filesystem has no O_DIRECT, e.g. tmpfs)", path, strerror(errno));
        fail("open %s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) fail("fstat %s: %s", path, strerror(errno));
    uint64_t size;
    if (S_ISBLK(st.st_mode)) {
        if (ioctl(fd, BLKGETSIZE64, &size) != 0) fail("BLKGETSIZE64 on %s: %s", path, strerror(errno));
    } else if (S_ISREG(st.st_mode)) {
        size = (uint64_t)st.st_size;
    } else {
        fail("%s is neither a block device nor a regular file", path);
    }
    uint64_t seq_bytes = (uint64_t)seq_mib * MIB;
    if (size < seq_bytes)
        fail("%s has %" PRIu64 " bytes, fewer than -s %lu MiB", path, size, seq_mib);
    uint64_t blocks = size / RAND_BLOCK;

    unsigned char *big, *small;
    if (posix_memalign((void **)&big, 4096, SEQ_BLOCK) || posix_memalign((void **)&small, 4096, RAND_BLOCK))
        fail("posix_memalign: out of memory");

    if (verify) {
        for (uint64_t off = 0; off < seq_bytes; off += SEQ_BLOCK) {
            transfer(fd, 0, big, SEQ_BLOCK, off, "verify");
            check(big, SEQ_BLOCK, off, prev, "verify (the previous run's data)");
        }
    }

    // seq-write, with the fdatasync that makes it durable in the timed span.
    double t0 = now();
    for (uint64_t off = 0; off < seq_bytes; off += SEQ_BLOCK) {
        stamp(big, SEQ_BLOCK, off, seed);
        transfer(fd, 1, big, SEQ_BLOCK, off, "seq-write");
    }
    if (fdatasync(fd) != 0) fail("seq-write: fdatasync %s: %s", path, strerror(errno));
    double write_s = now() - t0;

    // seq-read, every stamp checked.
    memset(big, 0, SEQ_BLOCK);
    t0 = now();
    for (uint64_t off = 0; off < seq_bytes; off += SEQ_BLOCK) {
        transfer(fd, 0, big, SEQ_BLOCK, off, "seq-read");
        check(big, SEQ_BLOCK, off, seed, "seq-read");
    }
    double read_s = now() - t0;

    // rand-read at queue depth 1.
    uint64_t state = UINT64_C(0x9e3779b97f4a7c15) ^ (seed * UINT64_C(0x2545f4914f6cdd1d));
    if (state == 0) state = 1;
    unsigned long ops = 0;
    t0 = now();
    double rand_s = 0;
    while (ops < max_ops) {
        uint64_t off = (xorshift(&state) % blocks) * RAND_BLOCK;
        transfer(fd, 0, small, RAND_BLOCK, off, "rand-read");
        if (off + RAND_BLOCK <= seq_bytes) check(small, RAND_BLOCK, off, seed, "rand-read");
        ops++;
        rand_s = now() - t0;
        if (rand_s >= (double)seconds) break;
    }
    close(fd);
    char prevtext[32];
    snprintf(prevtext, sizeof prevtext, "%lu", prev);

    printf("BLKBENCH-RESULT size_mib=%.1f seq_mib=%lu seq_write_mibps=%.2f seq_read_mibps=%.2f "
           "rand_read_iops=%.1f rand_read_ops=%lu rand_read_avg_us=%.1f verified=%s write_s=%.3f read_s=%.3f rand_s=%.3f\n",
           (double)size / MIB, seq_mib, (double)seq_mib / write_s, (double)seq_mib / read_s,
           (double)ops / rand_s, ops, rand_s * 1e6 / (double)ops, verify ? prevtext : "none", write_s, read_s, rand_s);
    return 0;
}
