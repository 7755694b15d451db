// netbench: both ends of ci/bench-net's TCP measurements (IPv4, numeric addresses only).
//   netbench server PORT
//       Accepts connections forever, one child process per connection. The connection's
//       first byte picks the mode:
//         's' sink      read until EOF, then reply with the byte count (8 bytes, big-endian;
//                       all ones if a stamp was wrong, see below)
//         'o' source    the next 4 bytes (big-endian) are SECONDS: send for that long, then close
//         'p' ping-pong echo each byte back at once (TCP_NODELAY) until EOF
//   netbench client HOST PORT MODE SECONDS
//       Runs one measurement against a server and prints one line:
//         s  NETBENCH mode=s tx_mbit=.. bytes=.. seconds=..     (send for SECONDS, then the
//            time until the server's count arrives; the count must equal what was sent)
//         o  NETBENCH mode=o rx_mbit=.. bytes=.. seconds=..     (request to EOF)
//         p  NETBENCH mode=p rtt_us_median=.. rtt_us_p99=.. rtt_us_min=.. rtt_us_max=..
//            round_trips=..                                       (1-byte messages, one at a
//            time, TCP_NODELAY, for SECONDS; the first WARMUP round trips are not counted)
//       or "NETBENCH-ERROR: ..." and exit status 1 (2 for bad usage).
// Bulk data carries an 8-byte stamp (stream offset ^ MAGIC) at every 4 KiB stream offset,
// checked by the receiver wherever a stamp lies whole inside one read: lost, duplicated,
// reordered or misplaced data fails the run, at a cost of a few stores per 4 KiB (checksum
// offloads mean a buggy virtio-net would otherwise go unnoticed).
// Times: clock_gettime(CLOCK_MONOTONIC). Build: static (ci/lib/static-tool.sh).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (128 * 1024)
#define STAMP_EVERY 4096
#define MAGIC UINT64_C(0x4e4554424e434831) // "NETBNCH1"
#define WARMUP 20
#define MAX_SAMPLES (16 * 1024 * 1024)
#define MAX_SECONDS 3600
#define BAD_COUNT UINT64_MAX

static int server_side;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    FILE *f = server_side ? stderr : stdout;
    fputs(server_side ? "NETBENCH-SERVER-ERROR: " : "NETBENCH-ERROR: ", f);
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    va_end(ap);
    fflush(f);
    exit(1);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void put_be(unsigned char *p, uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; i--, v >>= 8) p[i] = (unsigned char)v;
}

static uint64_t get_be(const unsigned char *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v = (v << 8) | p[i];
    return v;
}

// All of len bytes, or a failure (EINTR retried).
static void write_all(int fd, const void *buf, size_t len, const char *what) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, (const char *)buf + done, len - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("%s: write: %s", what, strerror(errno));
        }
        done += (size_t)n;
    }
}

// Exactly len bytes; returns 0 at EOF before the first byte, fails at EOF after it.
static int read_all(int fd, void *buf, size_t len, const char *what) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = read(fd, (char *)buf + done, len - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("%s: read: %s", what, strerror(errno));
        }
        if (n == 0) {
            if (done == 0) return 0;
            fail("%s: connection closed after %zu of %zu bytes", what, done, len);
        }
        done += (size_t)n;
    }
    return 1;
}

// Stamps the stream offsets that are multiples of STAMP_EVERY inside [off, off + len) of
// buf (which holds the stream from off); a stamp cut by the end of buf is cut short.
static void stamp(unsigned char *buf, size_t len, uint64_t off) {
    uint64_t first = (off + STAMP_EVERY - 1) / STAMP_EVERY * STAMP_EVERY;
    for (uint64_t s = first; s < off + len; s += STAMP_EVERY) {
        unsigned char word[8];
        put_be(word, s ^ MAGIC, 8);
        size_t at = (size_t)(s - off), n = len - at < 8 ? len - at : 8;
        memcpy(buf + at, word, n);
    }
}

// Checks the stamps lying whole inside buf (the stream from off, len bytes); returns the
// stream offset of the first bad one, or UINT64_MAX. Counts the checked stamps in *checked.
static uint64_t check(const unsigned char *buf, size_t len, uint64_t off, uint64_t *checked) {
    uint64_t first = (off + STAMP_EVERY - 1) / STAMP_EVERY * STAMP_EVERY;
    for (uint64_t s = first; s + 8 <= off + len; s += STAMP_EVERY) {
        if (get_be(buf + (s - off), 8) != (s ^ MAGIC)) return s;
        (*checked)++;
    }
    return UINT64_MAX;
}

// Sends stamped data on fd until the clock reaches end; returns the bytes sent.
static uint64_t send_for(int fd, double end, const char *what) {
    static unsigned char buf[CHUNK];
    uint64_t sent = 0;
    memset(buf, 0xa5, sizeof buf);
    while (now() < end) {
        stamp(buf, sizeof buf, sent);
        ssize_t n = write(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("%s: write after %" PRIu64 " bytes: %s", what, sent, strerror(errno));
        }
        sent += (uint64_t)n;
        // A short write leaves stamps for offsets past sent in buf; the next round restamps
        // from sent, and the 0xa5 filler in between is never checked.
    }
    return sent;
}

// Reads stamped data until EOF; returns the byte count, *bad the first bad stamp's offset
// (UINT64_MAX: none).
static uint64_t receive_all(int fd, uint64_t *bad, uint64_t *checked, const char *what) {
    static unsigned char buf[CHUNK];
    uint64_t got = 0;
    *bad = UINT64_MAX;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("%s: read after %" PRIu64 " bytes: %s", what, got, strerror(errno));
        }
        if (n == 0) return got;
        if (*bad == UINT64_MAX) *bad = check(buf, (size_t)n, got, checked);
        got += (uint64_t)n;
    }
}

static void set_nodelay(int fd) {
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) fail("TCP_NODELAY: %s", strerror(errno));
}

static void set_timeouts(int fd, int seconds) {
    struct timeval tv = {.tv_sec = seconds, .tv_usec = 0};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
        fail("socket timeouts: %s", strerror(errno));
}

static int parse_int(const char *s, int min, int max, const char *what) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, "netbench: %s must be an integer from %d to %d, not '%s'\n", what, min, max, s);
        exit(2);
    }
    return (int)v;
}

// One connection, in its own process. A peer that vanishes (its VM killed) is noticed by
// the socket timeouts, so no child lingers for ever.
static void serve(int fd) {
    unsigned char mode;
    set_timeouts(fd, 120);
    if (!read_all(fd, &mode, 1, "mode")) exit(0);
    if (mode == 's') {
        uint64_t bad, checked = 0;
        uint64_t got = receive_all(fd, &bad, &checked, "sink");
        unsigned char reply[8];
        if (bad != UINT64_MAX)
            fprintf(stderr, "NETBENCH-SERVER-ERROR: sink: bad stamp at stream offset %" PRIu64 "\n", bad);
        put_be(reply, bad == UINT64_MAX ? got : BAD_COUNT, 8);
        write_all(fd, reply, sizeof reply, "sink reply");
    } else if (mode == 'o') {
        unsigned char req[4];
        if (!read_all(fd, req, sizeof req, "source request")) fail("source: no seconds");
        uint64_t seconds = get_be(req, 4);
        if (seconds < 1 || seconds > MAX_SECONDS) fail("source: %" PRIu64 " seconds", seconds);
        send_for(fd, now() + (double)seconds, "source");
    } else if (mode == 'p') {
        set_nodelay(fd);
        unsigned char b;
        while (read_all(fd, &b, 1, "ping")) write_all(fd, &b, 1, "pong");
    } else {
        fail("unknown mode byte 0x%02x", mode);
    }
    close(fd);
    exit(0);
}

static int server(int port) {
    server_side = 1;
    signal(SIGCHLD, SIG_IGN); // children are reaped by the kernel
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) fail("socket: %s", strerror(errno));
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) fail("SO_REUSEADDR: %s", strerror(errno));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) fail("bind port %d: %s", port, strerror(errno));
    if (listen(fd, 16) < 0) fail("listen: %s", strerror(errno));
    fprintf(stderr, "NETBENCH-SERVER listening on port %d\n", port);
    for (;;) {
        int c = accept(fd, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            fail("accept: %s", strerror(errno));
        }
        pid_t pid = fork();
        if (pid < 0) fail("fork: %s", strerror(errno));
        if (pid == 0) {
            close(fd);
            serve(c);
        }
        close(c);
    }
}

// Connects, retrying for up to 10 s while the server is not there yet or the link is not
// up (refused, unreachable).
static int connect_to(const char *host, int port) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "netbench: HOST must be a numeric IPv4 address, not '%s'\n", host);
        exit(2);
    }
    double give_up = now() + 10;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) fail("socket: %s", strerror(errno));
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) return fd;
        int e = errno;
        close(fd);
        if ((e != ECONNREFUSED && e != EHOSTUNREACH && e != ENETUNREACH) || now() > give_up)
            fail("connect to %s:%d: %s", host, port, strerror(e));
        usleep(200 * 1000);
    }
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int client(const char *host, int port, char mode, int seconds) {
    int fd = connect_to(host, port);
    set_timeouts(fd, seconds + 60);
    if (mode == 's') {
        double start = now();
        write_all(fd, "s", 1, "sink mode");
        uint64_t sent = send_for(fd, start + seconds, "sink");
        if (shutdown(fd, SHUT_WR) < 0) fail("sink: shutdown: %s", strerror(errno));
        unsigned char reply[8];
        if (!read_all(fd, reply, sizeof reply, "sink count")) fail("sink: the server closed without a count");
        double took = now() - start;
        uint64_t count = get_be(reply, 8);
        if (count == BAD_COUNT) fail("sink: the server saw a bad stamp (data lost, duplicated or misplaced)");
        if (count != sent) fail("sink: sent %" PRIu64 " bytes, the server counted %" PRIu64, sent, count);
        printf("NETBENCH mode=s tx_mbit=%.1f bytes=%" PRIu64 " seconds=%.3f\n", (double)count * 8 / took / 1e6, count, took);
    } else if (mode == 'o') {
        unsigned char req[5] = {'o'};
        put_be(req + 1, (uint64_t)seconds, 4);
        double start = now();
        write_all(fd, req, sizeof req, "source request");
        uint64_t bad, checked = 0;
        uint64_t got = receive_all(fd, &bad, &checked, "source");
        double took = now() - start;
        if (bad != UINT64_MAX) fail("source: bad stamp at stream offset %" PRIu64 " (data lost, duplicated or misplaced)", bad);
        if (got == 0) fail("source: no data");
        printf("NETBENCH mode=o rx_mbit=%.1f bytes=%" PRIu64 " seconds=%.3f stamps_checked=%" PRIu64 "\n",
               (double)got * 8 / took / 1e6, got, took, checked);
    } else if (mode == 'p') {
        set_nodelay(fd);
        write_all(fd, "p", 1, "ping-pong mode");
        size_t cap = 4096, n = 0;
        double *rtt = malloc(cap * sizeof *rtt);
        if (!rtt) fail("out of memory");
        unsigned char out = 0, in;
        long rounds = 0;
        double end = now() + seconds;
        for (;;) {
            double t0 = now();
            if (t0 >= end || n == MAX_SAMPLES) break;
            out++;
            write_all(fd, &out, 1, "ping");
            if (!read_all(fd, &in, 1, "pong")) fail("ping-pong: the server closed after %ld round trips", rounds);
            double t1 = now();
            if (in != out) fail("ping-pong: sent 0x%02x, got 0x%02x back", out, in);
            if (++rounds <= WARMUP) continue;
            if (n == cap) {
                cap *= 2;
                rtt = realloc(rtt, cap * sizeof *rtt);
                if (!rtt) fail("out of memory");
            }
            rtt[n++] = (t1 - t0) * 1e6;
        }
        if (n == 0) fail("ping-pong: no round trip after the %d warm-up ones in %d s", WARMUP, seconds);
        qsort(rtt, n, sizeof *rtt, compare_double);
        double median = n % 2 ? rtt[n / 2] : (rtt[n / 2 - 1] + rtt[n / 2]) / 2;
        size_t p99 = (n * 99 + 99) / 100; // ceil(0.99 n), 1-based
        printf("NETBENCH mode=p rtt_us_median=%.1f rtt_us_p99=%.1f rtt_us_min=%.1f rtt_us_max=%.1f round_trips=%zu\n",
               median, rtt[p99 - 1], rtt[0], rtt[n - 1], n);
        free(rtt);
    } else {
        fprintf(stderr, "netbench: MODE must be s, o or p\n");
        exit(2);
    }
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN); // a vanished peer is an EPIPE error, reported
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && strcmp(argv[1], "server") == 0) return server(parse_int(argv[2], 1, 65535, "PORT"));
    if (argc == 6 && strcmp(argv[1], "client") == 0 && strlen(argv[4]) == 1)
        return client(argv[2], parse_int(argv[3], 1, 65535, "PORT"), argv[4][0], parse_int(argv[5], 1, MAX_SECONDS, "SECONDS"));
    fprintf(stderr, "usage: netbench server PORT\n       netbench client HOST PORT s|o|p SECONDS\n");
    return 2;
}
