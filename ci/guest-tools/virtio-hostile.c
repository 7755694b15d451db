// virtio-hostile: a hostile virtio 1.x driver in a Linux guest's user space (run as root in
// a guest whose virtio_mmio module is not loaded, so no kernel driver owns the device).
//   virtio-hostile net|vsock SEED [ROUNDS [GUEST-IP PEER-IP]]
// Finds the virtio-mmio device (net: device ID 1, vsock: 19) by reading the magic value and
// device ID of each slot of the VMM's fixed map (README "Running a guest": arm64 32 slots
// from 0x0A00_0000 every 0x200, x86_64 18 windows from 0xD000_0000 every 0x1000), mapped
// through /dev/mem (MMIO is allowed under STRICT_DEVMEM / IO_STRICT_DEVMEM as long as no
// driver has claimed the region: hence no virtio_mmio). Rings and buffers live in mlocked
// anonymous pages whose guest-physical addresses come from /proc/self/pagemap; every ring
// has a page of its own and no buffer crosses a page, so contiguity never matters.
// Nothing uses interrupts: the used rings and the status register are polled, every poll is
// bounded, and each round has a time limit (SIGALRM).
//
// Each round negotiates a random subset of the offered features (always VERSION_1), floods
// the device-specific queues with one kind of garbage (round N does kind N mod KINDS, with
// parameters from the seed), then checks the device still answers:
//   - a chain whose ring is well formed must come back (garbage contents are the device's to
//     drop, never a reason to stop); a malformed ring (loops, buffers outside RAM, indices
//     past the queue, bad indirect tables) may instead get DEVICE_NEEDS_RESET, after which the
//     device is reset (status 0) and set up again; a chain neither returned nor refused within
//     the poll bound fails the run;
//   - after the garbage, a clean reset and setup and one well-formed request: net: an ARP
//     request for PEER-IP goes out on tx, its chain comes back, and the peer's ARP reply
//     arrives on rx; vsock: a REQUEST to a closed host port comes back on tx, and an answer
//     (RST, or RESPONSE if something listens) on rx is reported when one comes.
// Writable buffers only ever point into this program's own pages or outside guest RAM, so a
// device that writes where it is told cannot corrupt the guest kernel (tx garbage may point
// anywhere: the device only reads it).
// Prints "HOSTILE round N: KIND ... ok" per round and finally
// "SWIFTLET-HOSTILE-DONE device=net rounds=N seed=S" (exit 0), or one line
// "SWIFTLET-HOSTILE-FAIL: ..." (exit 1). Build: static (ci/lib/static-tool.sh).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define POOL_PAGES 1600
#define MAX_QUEUES 3
#define RING_PAGES (MAX_QUEUES * 3)
#define QMAX 256
#define ROUND_SECONDS 90

// virtio-mmio registers (virtio 1.2 §4.2.2)
#define R_MAGIC 0x000
#define R_VERSION 0x004
#define R_DEVICE_ID 0x008
#define R_DEVICE_FEATURES 0x010
#define R_DEVICE_FEATURES_SEL 0x014
#define R_DRIVER_FEATURES 0x020
#define R_DRIVER_FEATURES_SEL 0x024
#define R_QUEUE_SEL 0x030
#define R_QUEUE_NUM_MAX 0x034
#define R_QUEUE_NUM 0x038
#define R_QUEUE_READY 0x044
#define R_QUEUE_NOTIFY 0x050
#define R_INTERRUPT_STATUS 0x060
#define R_INTERRUPT_ACK 0x064
#define R_STATUS 0x070
#define R_QUEUE_DESC_LOW 0x080
#define R_QUEUE_DESC_HIGH 0x084
#define R_QUEUE_DRIVER_LOW 0x090
#define R_QUEUE_DRIVER_HIGH 0x094
#define R_QUEUE_DEVICE_LOW 0x0a0
#define R_QUEUE_DEVICE_HIGH 0x0a4
#define R_CONFIG 0x100

#define S_ACKNOWLEDGE 1u
#define S_DRIVER 2u
#define S_DRIVER_OK 4u
#define S_FEATURES_OK 8u
#define S_NEEDS_RESET 0x40u
#define S_FAILED 0x80u

#define F_INDIRECT (1ull << 28)
#define F_EVENT_IDX (1ull << 29)
#define F_VERSION_1 (1ull << 32)

#define D_NEXT 1
#define D_WRITE 2
#define D_INDIRECT 4

#define RXQ 0
#define TXQ 1
#define NET_HDR 12
#define VSOCK_HDR 44
#define DEV_NET 1
#define DEV_VSOCK 19

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
} __attribute__((packed));

struct vq {
    int index;
    uint16_t size;
    struct desc *desc;
    uint64_t desc_pa;
    uint8_t *avail;
    uint64_t avail_pa;
    uint8_t *used;
    uint64_t used_pa;
    uint16_t avail_idx;  // next avail.idx to publish
    uint16_t used_seen;  // used.idx consumed so far
    uint16_t dnext;      // next descriptor to hand out
    unsigned dused;      // descriptors handed out since the queue was last drained
};

static int device_kind;  // DEV_NET or DEV_VSOCK
static volatile uint8_t *regs;
static uint64_t regs_pa;
static uint8_t *pool;
static uint64_t pool_pa[POOL_PAGES];
static unsigned pool_next;
static uint64_t ram_end;
static struct vq queues[MAX_QUEUES];
static int nqueues;
static uint64_t offered;
static uint64_t negotiated;
static uint64_t rng_state;
static int round_no;
static uint8_t mac[6];
static uint32_t guest_ip, peer_ip;
static uint64_t guest_cid;
static unsigned needs_reset_total, returned_total, sent_total;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("SWIFTLET-HOSTILE-FAIL: round %d: ", round_no);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    fflush(stdout);
    exit(1);
}

static void on_alarm(int sig) {
    (void)sig;
    char line[128];
    int n = snprintf(line, sizeof line, "SWIFTLET-HOSTILE-FAIL: round %d took more than %d s (device or VMM stuck)\n",
                     round_no, ROUND_SECONDS);
    if (write(1, line, (size_t)n) < 0) _exit(1);
    _exit(1);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(void) {  // xorshift64*
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * UINT64_C(2685821657736338717);
}
static uint32_t rnd_below(uint32_t n) { return n ? (uint32_t)(rnd() % n) : 0; }
static void rnd_fill(void *p, size_t n) {
    for (size_t i = 0; i < n; i++) ((uint8_t *)p)[i] = (uint8_t)rnd();
}

// --- registers
static uint32_t rd(uint32_t off) { return *(volatile uint32_t *)(regs + off); }
static void wr(uint32_t off, uint32_t v) { *(volatile uint32_t *)(regs + off) = v; }
static uint8_t rd_config8(uint32_t off) { return *(volatile uint8_t *)(regs + R_CONFIG + off); }
static void fence(void) { __sync_synchronize(); }

// --- memory: page i of the pool; ring pages first, then buffer pages handed out in turn
static uint8_t *page_va(unsigned i) { return pool + (size_t)i * PAGE; }
static unsigned buf_page(void) {
    unsigned i = RING_PAGES + pool_next % (POOL_PAGES - RING_PAGES);
    pool_next++;
    return i;
}

static uint64_t pagemap_pa(int fd, void *va) {
    uint64_t entry;
    off_t off = (off_t)((uintptr_t)va / PAGE) * 8;
    if (pread(fd, &entry, 8, off) != 8) fail("reading /proc/self/pagemap: %s", strerror(errno));
    if (!(entry >> 63)) fail("page %p not present in pagemap", va);
    uint64_t pfn = entry & ((UINT64_C(1) << 55) - 1);
    if (pfn == 0) fail("pagemap shows PFN 0 (not root?)");
    return pfn * PAGE;
}

static void pool_init(void) {
    // Compaction may migrate even mlocked pages; ask it not to (we hand their addresses out).
    int c = open("/proc/sys/vm/compact_unevictable_allowed", O_WRONLY);
    if (c >= 0) {
        if (write(c, "0", 1) < 0) {}
        close(c);
    }
    size_t len = (size_t)POOL_PAGES * PAGE;
    pool = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pool == MAP_FAILED) fail("mmap of %zu bytes: %s", len, strerror(errno));
    madvise(pool, len, MADV_NOHUGEPAGE);
    if (mlock(pool, len) != 0) fail("mlock: %s", strerror(errno));
    memset(pool, 0, len);
    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0) fail("open /proc/self/pagemap: %s", strerror(errno));
    for (unsigned i = 0; i < POOL_PAGES; i++) pool_pa[i] = pagemap_pa(fd, page_va(i));
    close(fd);
}

static void pool_verify(void) {
    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0) fail("open /proc/self/pagemap: %s", strerror(errno));
    for (unsigned i = 0; i < POOL_PAGES; i++)
        if (pagemap_pa(fd, page_va(i)) != pool_pa[i]) fail("page %u moved during the run (the tool's fault, not the device's)", i);
    close(fd);
}

// The first address past guest RAM (System RAM in /proc/iomem, which root sees with addresses).
static void find_ram_end(void) {
    FILE *f = fopen("/proc/iomem", "r");
    char line[256];
    if (!f) fail("open /proc/iomem: %s", strerror(errno));
    while (fgets(line, sizeof line, f)) {
        unsigned long long a, b;
        if (strstr(line, "System RAM") && sscanf(line, " %llx-%llx", &a, &b) == 2 && b + 1 > ram_end) ram_end = b + 1;
    }
    fclose(f);
    if (ram_end == 0) fail("no System RAM in /proc/iomem");
}

// --- device discovery
static void find_device(int want) {
#if defined(__aarch64__)
    const uint64_t base = 0x0A000000, stride = 0x200;
    const unsigned slots = 32;
#else
    const uint64_t base = 0xD0000000, stride = 0x1000;
    const unsigned slots = 18;
#endif
    size_t len = (size_t)(slots * stride + PAGE - 1) / PAGE * PAGE;
    int fd = open("/dev/mem", O_RDWR | O_SYNC);
    if (fd < 0) fail("open /dev/mem: %s", strerror(errno));
    volatile uint8_t *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)base);
    if (map == MAP_FAILED) fail("mmap /dev/mem at 0x%" PRIx64 ": %s (a driver holding the region? virtio_mmio must not be loaded)", base, strerror(errno));
    close(fd);
    for (unsigned n = 0; n < slots; n++) {
        regs = map + n * stride;
        if (rd(R_MAGIC) != 0x74726976) continue;
        uint32_t id = rd(R_DEVICE_ID);
        if ((int)id != want) continue;
        if (rd(R_VERSION) != 2) fail("slot %u: virtio-mmio version %u, wanted 2", n, rd(R_VERSION));
        regs_pa = base + n * stride;
        printf("HOSTILE device %d at 0x%" PRIx64 " (slot %u); guest RAM ends at 0x%" PRIx64 "\n", want, regs_pa, n, ram_end);
        return;
    }
    fail("no virtio-mmio device with ID %d in %u slots from 0x%" PRIx64, want, slots, base);
}

// --- queues
static void vq_place(int i) {
    struct vq *q = &queues[i];
    memset(q, 0, sizeof *q);
    q->index = i;
    q->desc = (struct desc *)page_va((unsigned)i * 3);
    q->desc_pa = pool_pa[i * 3];
    q->avail = page_va((unsigned)i * 3 + 1);
    q->avail_pa = pool_pa[i * 3 + 1];
    q->used = page_va((unsigned)i * 3 + 2);
    q->used_pa = pool_pa[i * 3 + 2];
    memset(q->desc, 0, PAGE);
    memset(q->avail, 0, PAGE);
    memset(q->used, 0, PAGE);
}

static uint16_t used_idx(struct vq *q) {
    uint16_t v = *(volatile uint16_t *)(q->used + 2);
    fence();
    return v;
}
static uint16_t in_flight(struct vq *q) { return (uint16_t)(q->avail_idx - used_idx(q)); }

static uint16_t dalloc(struct vq *q) {
    uint16_t d = (uint16_t)(q->dnext % q->size);
    q->dnext++;
    return d;
}
static void dset(struct vq *q, uint16_t d, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    struct desc v = {addr, len, flags, next};
    memcpy(&q->desc[d], &v, sizeof v);
}
static void submit(struct vq *q, uint16_t head) {
    *(volatile uint16_t *)(q->avail + 4 + 2 * (q->avail_idx % q->size)) = head;
    fence();
    q->avail_idx++;
    *(volatile uint16_t *)(q->avail + 2) = q->avail_idx;
    fence();
    sent_total++;
}
static void kick(struct vq *q) { wr(R_QUEUE_NOTIFY, (uint32_t)q->index); }

// A single-descriptor chain of len bytes from buf page p (offset 0).
static uint16_t chain1(struct vq *q, unsigned p, uint32_t len, uint16_t flags) {
    uint16_t d = dalloc(q);
    dset(q, d, pool_pa[p], len, flags, 0);
    return d;
}

static uint32_t status(void) { return rd(R_STATUS); }

static void device_reset(void) {
    wr(R_STATUS, 0);
    for (int i = 0; i < 1000 && rd(R_STATUS) != 0; i++) {}
    if (rd(R_STATUS) != 0) fail("status reads 0x%x after a reset (wrote 0)", rd(R_STATUS));
    wr(R_INTERRUPT_ACK, 0xffffffff);
}

// Queue configuration garbage for the handshake kind.
// Q_RX_OVERLAP (not a handshake case): rx's used ring on its available ring.
enum qmangle { Q_OK, Q_SIZE0, Q_SIZE3, Q_SIZE_HUGE, Q_DESC_MISALIGNED, Q_DESC_OUTSIDE, Q_USED_MMIO, Q_USED_STRADDLE, Q_MANGLES, Q_RX_OVERLAP };
static const char *qmangle_name[] = {"ok", "size 0", "size 3", "size 65536", "misaligned table", "table outside RAM",
                                     "used ring on the MMIO window", "used ring across RAM's end"};

// Resets and sets the device up with features `want` and nq queues of up to qsize
// descriptors. Returns 0 when running, 1 when FEATURES_OK did not stick, 2 when the device
// asked for a reset at DRIVER_OK (or refused it).
static int setup(uint64_t want, unsigned qsize, enum qmangle mangle) {
    device_reset();
    wr(R_STATUS, S_ACKNOWLEDGE);
    wr(R_STATUS, S_ACKNOWLEDGE | S_DRIVER);
    wr(R_DEVICE_FEATURES_SEL, 0);
    uint64_t lo = rd(R_DEVICE_FEATURES);
    wr(R_DEVICE_FEATURES_SEL, 1);
    offered = lo | (uint64_t)rd(R_DEVICE_FEATURES) << 32;
    wr(R_DRIVER_FEATURES_SEL, 0);
    wr(R_DRIVER_FEATURES, (uint32_t)want);
    wr(R_DRIVER_FEATURES_SEL, 1);
    wr(R_DRIVER_FEATURES, (uint32_t)(want >> 32));
    wr(R_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
    if (!(status() & S_FEATURES_OK)) return 1;
    negotiated = want;
    for (int i = 0; i < nqueues; i++) {
        vq_place(i);
        struct vq *q = &queues[i];
        wr(R_QUEUE_SEL, (uint32_t)i);
        if (rd(R_QUEUE_READY) != 0) fail("queue %d ready right after a reset", i);
        uint32_t max = rd(R_QUEUE_NUM_MAX);
        if (max == 0) fail("queue %d: QueueNumMax 0", i);
        uint32_t size = qsize < max ? qsize : max;
        if (size > QMAX) size = QMAX;
        while (size & (size - 1)) size &= size - 1;  // a power of two
        q->size = (uint16_t)size;
        uint64_t dpa = q->desc_pa, upa = q->used_pa;
        uint32_t num = size;
        if (mangle == Q_RX_OVERLAP) {
            if (i == 0) upa = q->avail_pa;
        } else if (i == 0 || mangle == Q_OK) {
            // Mangles apply to the queues the device only reads from (tx): a device that took
            // a misaligned table from there could only read the wrong page.
        } else if (mangle == Q_SIZE0) num = 0;
        else if (mangle == Q_SIZE3) num = 3;
        else if (mangle == Q_SIZE_HUGE) num = 65536;
        else if (mangle == Q_DESC_MISALIGNED) dpa += 8;
        else if (mangle == Q_DESC_OUTSIDE) dpa = ram_end;
        else if (mangle == Q_USED_MMIO) upa = regs_pa;
        else if (mangle == Q_USED_STRADDLE) upa = ram_end - 64;
        wr(R_QUEUE_NUM, num);
        wr(R_QUEUE_DESC_LOW, (uint32_t)dpa);
        wr(R_QUEUE_DESC_HIGH, (uint32_t)(dpa >> 32));
        wr(R_QUEUE_DRIVER_LOW, (uint32_t)q->avail_pa);
        wr(R_QUEUE_DRIVER_HIGH, (uint32_t)(q->avail_pa >> 32));
        wr(R_QUEUE_DEVICE_LOW, (uint32_t)upa);
        wr(R_QUEUE_DEVICE_HIGH, (uint32_t)(upa >> 32));
        wr(R_QUEUE_READY, 1);
    }
    wr(R_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    uint32_t s = status();
    if ((s & S_NEEDS_RESET) || !(s & S_DRIVER_OK)) return 2;
    return 0;
}

// A random subset of what the device offers, always with VERSION_1.
static uint64_t random_features(void) {
    uint64_t f = offered & rnd();
    if (rnd_below(4) == 0) f = offered;
    return f | F_VERSION_1;
}

// Sets up with random features (and queue size); fails if the device will not run.
static void setup_random(void) {
    static const unsigned sizes[] = {QMAX, QMAX, QMAX, 64, 16, 8};
    for (int attempt = 0; attempt < 3; attempt++) {
        // The last attempt takes everything offered: a device may refuse subsets that break
        // feature dependencies (e.g. GUEST_TSO4 without GUEST_CSUM), never its own offer.
        uint64_t f = attempt < 2 ? random_features() : offered | F_VERSION_1;
        int r = setup(f, sizes[rnd_below(6)], Q_OK);
        if (r == 0) return;
        if (attempt == 2) fail("a well-formed setup (features 0x%" PRIx64 ") got %s, status 0x%x", f, r == 1 ? "no FEATURES_OK" : "no DRIVER_OK", status());
    }
}

// vsock garbage rounds: answers (RSTs) pile up on rx, and a device may hold tx until it
// has room for them, so waits keep rx stocked.
static int auto_refill;
static void vsock_rx_refill(void);

// Waits until every chain submitted on q has come back, or the device asks for a reset.
// Returns 1 (all back), 0 (NEEDS_RESET), -1 (neither within secs).
static int wait_returned(struct vq *q, double secs) {
    double end = now() + secs, next_status = 0;
    for (;;) {
        if (in_flight(q) == 0) return 1;
        double t = now();
        if (t >= next_status) {
            if (status() & S_NEEDS_RESET) return 0;
            if (auto_refill && q->index == TXQ) vsock_rx_refill();
            next_status = t + 0.005;
        }
        if (t > end) return -1;
    }
}

// --- device-specific well-formed requests

static void put16be(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32be(uint8_t *p, uint32_t v) { put16be(p, (uint16_t)(v >> 16)); put16be(p + 2, (uint16_t)v); }
static void le16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void le32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void le64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint16_t get_le16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get_le32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get_le64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

// net: virtio_net_hdr_v1 (zero) + an ARP request for the peer from us, padded to 60 bytes.
static uint32_t net_arp(uint8_t *p) {
    memset(p, 0, NET_HDR + 60);
    uint8_t *e = p + NET_HDR;
    memset(e, 0xff, 6);
    memcpy(e + 6, mac, 6);
    put16be(e + 12, 0x0806);
    put16be(e + 14, 1);
    put16be(e + 16, 0x0800);
    e[18] = 6;
    e[19] = 4;
    put16be(e + 20, 1);
    memcpy(e + 22, mac, 6);
    put32be(e + 28, guest_ip);
    put32be(e + 38, peer_ip);
    return NET_HDR + 60;
}

// vsock: struct virtio_vsock_hdr, little-endian.
static void vsock_hdr(uint8_t *p, uint64_t src, uint64_t dst, uint32_t sport, uint32_t dport, uint32_t len, uint16_t type,
                      uint16_t op, uint32_t flags, uint32_t buf_alloc, uint32_t fwd_cnt) {
    le64(p, src);
    le64(p + 8, dst);
    le32(p + 16, sport);
    le32(p + 20, dport);
    le32(p + 24, len);
    le16(p + 28, type);
    le16(p + 30, op);
    le32(p + 32, flags);
    le32(p + 36, buf_alloc);
    le32(p + 40, fwd_cnt);
}
#define VSOCK_TYPE_STREAM 1
#define VSOCK_OP_REQUEST 1
#define VSOCK_OP_RESPONSE 2
#define VSOCK_OP_RST 3
#define VSOCK_OP_SHUTDOWN 4
#define VSOCK_OP_RW 5
#define VSOCK_OP_CREDIT_UPDATE 6
#define VSOCK_OP_CREDIT_REQUEST 7
#define VSOCK_CLOSED_PORT 0xDEAD

static uint32_t vsock_request(uint8_t *p, uint32_t sport) {
    vsock_hdr(p, guest_cid, 2, sport, VSOCK_CLOSED_PORT, 0, VSOCK_TYPE_STREAM, VSOCK_OP_REQUEST, 0, 65536, 0);
    return VSOCK_HDR;
}

// One well-formed request in a fresh page.
static uint32_t good_request(unsigned p) {
    return device_kind == DEV_NET ? net_arp(page_va(p)) : vsock_request(page_va(p), 40000 + (uint32_t)rnd_below(20000));
}

// Posts n receive buffers of len bytes (a page each, writable) on the rx queue.
static void post_rx(unsigned n, uint32_t len) {
    struct vq *q = &queues[RXQ];
    for (unsigned i = 0; i < n && in_flight(q) < q->size; i++) submit(q, chain1(q, buf_page(), len, D_WRITE));
    kick(q);
}

// The round's closing check: the device registers answer, then (after a clean reset and
// setup) one well-formed request completes. Writes what it saw into note.
static void check_alive(char *note, size_t cap) {
    if (rd(R_MAGIC) != 0x74726976) fail("the magic register reads 0x%x after the garbage", rd(R_MAGIC));
    setup_random();
    struct vq *tx = &queues[TXQ], *rx = &queues[RXQ];
    post_rx(rx->size < 16 ? rx->size : 16, PAGE);
    uint16_t rx_start = rx->used_seen;
    double end = now() + 6;
    int answered = 0, tries = 0;
    while (!answered && now() < end) {
        unsigned p = buf_page();
        uint32_t len = good_request(p);
        uint16_t head = chain1(tx, p, len, 0);
        submit(tx, head);
        kick(tx);
        tries++;
        int r = wait_returned(tx, 3);
        if (r == 0) fail("a well-formed request on a fresh setup (features 0x%" PRIx64 ") got DEVICE_NEEDS_RESET", negotiated);
        if (r < 0) fail("a well-formed request on a fresh setup was not returned within 3 s (tx used %u of %u)", used_idx(tx), tx->avail_idx);
        // Look for the answer on rx for up to 1 s.
        double until = now() + 1;
        while (!answered && now() < until) {
            uint16_t u = used_idx(rx);
            while (rx->used_seen != u && !answered) {
                uint8_t *el = rx->used + 4 + 8 * (rx->used_seen % rx->size);
                uint32_t id = get_le32(el), wlen = get_le32(el + 4);
                rx->used_seen++;
                if (id >= rx->size) fail("rx used ring names descriptor %u of %u", id, rx->size);
                struct desc d;
                memcpy(&d, &rx->desc[id], sizeof d);
                unsigned p = 0;
                for (unsigned i = RING_PAGES; i < POOL_PAGES; i++)
                    if (pool_pa[i] == d.addr) p = i;
                if (!p || wlen > d.len) fail("rx used element %u: %u bytes written into a %u-byte buffer", id, wlen, d.len);
                const uint8_t *b = page_va(p);
                if (device_kind == DEV_NET) {
                    const uint8_t *e = b + NET_HDR;
                    if (wlen >= NET_HDR + 42 && e[12] == 0x08 && e[13] == 0x06 && e[20] == 0 && e[21] == 2 &&
                        memcmp(e + 32, mac, 6) == 0) {
                        answered = 1;
                        snprintf(note, cap, "arp-reply after %d request(s)", tries);
                    }
                } else if (wlen >= VSOCK_HDR) {
                    uint16_t op = get_le16(b + 30);
                    if (get_le64(b + 8) == guest_cid && get_le32(b + 16) == VSOCK_CLOSED_PORT) {
                        answered = 1;
                        snprintf(note, cap, "answer op=%u after %d request(s)", op, tries);
                    }
                }
            }
        }
        if (!answered && device_kind == DEV_VSOCK) {
            snprintf(note, cap, "tx returned, no answer on rx");
            break;
        }
    }
    if (!answered && device_kind == DEV_NET)
        fail("no ARP reply from the peer on rx within 6 s (%d requests returned on tx, rx used %u -> %u)", tries, rx_start, used_idx(rx));
    if (status() & S_NEEDS_RESET) fail("DEVICE_NEEDS_RESET after the well-formed check");
}

// --- garbage helpers

// A hostile address for a buffer of len bytes: outside RAM, the MMIO window, across RAM's end.
static uint64_t bad_address(int allow_straddle) {
    switch (rnd_below(allow_straddle ? 5 : 4)) {
    case 0: return UINT64_C(0xfffffffffffff000);
    case 1: return ram_end;
    case 2: return regs_pa;
    case 3: return ram_end + ((uint64_t)rnd_below(1u << 20) << 12);
    default: return ram_end - 8;
    }
}

// A random descriptor whose buffer, if the device writes it, lands in our pages or nowhere.
static void rand_desc(struct desc *d, uint16_t size) {
    uint16_t flags = (uint16_t)rnd_below(8);  // NEXT, WRITE, INDIRECT in any mix
    if (rnd_below(3) == 0) flags = (uint16_t)rnd();
    uint64_t addr;
    uint32_t len;
    if (rnd_below(3) == 0) {
        addr = bad_address(0);
        len = (uint32_t)rnd();
    } else {
        unsigned p = buf_page();
        uint32_t off = rnd_below(PAGE);
        addr = pool_pa[p] + off;
        len = rnd_below(PAGE - off + 1);
        if (flags & D_INDIRECT) {
            addr = pool_pa[p] + (off & ~15u);
            len = rnd_below(3) == 0 ? (uint32_t)rnd() : 16 * rnd_below(PAGE / 16 + 1);
        }
    }
    struct desc v = {addr, len, flags, (uint16_t)(rnd_below(3) == 0 ? rnd() : rnd_below(size))};
    memcpy(d, &v, sizeof v);
}

struct tally {
    int returned, reset, sent;
};

// After garbage on q: every chain must come back or the device must ask for a reset.
// Resets and sets up again in the latter case. strict: the rings were well formed, so a
// reset is a failure.
static void settle(struct vq *q, struct tally *t, double secs, int strict, const char *what) {
    uint16_t before = q->used_seen;
    int r = wait_returned(q, secs);
    uint16_t back = (uint16_t)(used_idx(q) - before);
    q->used_seen = used_idx(q);
    t->returned += back;
    returned_total += back;
    if (r < 0) fail("%s: %u of %u chains on queue %d neither returned nor refused (no DEVICE_NEEDS_RESET) within %.0f s, status 0x%x",
                    what, (unsigned)(q->avail_idx - used_idx(q)), (unsigned)(q->avail_idx - before), q->index, secs, status());
    if (r > 0) q->dused = 0;
    if (r == 0) {
        if (strict) fail("%s: DEVICE_NEEDS_RESET for well-formed rings (features 0x%" PRIx64 ")", what, negotiated);
        t->reset++;
        needs_reset_total++;
        setup_random();
    }
}

// Makes room for a chain of n descriptors: when the queue's descriptors have all been handed
// out since it was last drained, waits for every chain to come back first (so a chain in
// flight is never rewritten, whatever order the device returns them in).
static void need(struct vq *q, unsigned n, struct tally *t) {
    if (q->dused + n > q->size) {
        kick(q);
        settle(q, t, 5, 1, "waiting for room");
    }
    q->dused += n;
}

// Sends the first `pieces` bytes of page p as a chain of 1-byte descriptors (a header or a
// frame split as finely as a driver can), waits for it, and names the case `what`.
static void submit_bytewise(struct vq *q, struct tally *t, unsigned p, uint32_t pieces, const char *what) {
    need(q, pieces + 1, t);
    uint16_t head = dalloc(q), d = head;
    for (uint32_t i = 0; i < pieces; i++) {
        uint16_t next = dalloc(q);
        dset(q, d, pool_pa[p] + i, 1, i + 1 < pieces ? D_NEXT : 0, next);
        d = next;
    }
    submit(q, head);
    t->sent++;
    kick(q);
    settle(q, t, 5, 1, what);
}

// --- net garbage

// A frame (header + body) of total bytes in pages: a chain of page-sized descriptors.
// *first: the first page's index.
static uint16_t chain_pages(struct vq *q, uint32_t total, uint16_t last_flags, unsigned *first_page) {
    uint16_t head = 0, prev = 0;
    int first = 1;
    while (total > 0 || first) {
        uint32_t n = total < PAGE ? total : PAGE;
        unsigned p = buf_page();
        rnd_fill(page_va(p), n);
        uint16_t d = dalloc(q);
        dset(q, d, pool_pa[p], n, 0, 0);
        if (first) head = d, *first_page = p;
        else q->desc[prev].flags |= D_NEXT, q->desc[prev].next = d;
        prev = d;
        first = 0;
        total -= n;
    }
    q->desc[prev].flags |= last_flags;
    return head;
}

static void net_header(uint8_t *h, uint8_t flags, uint8_t gso, uint16_t hdr_len, uint16_t gso_size, uint16_t cstart,
                       uint16_t coff, uint16_t nbuf) {
    h[0] = flags;
    h[1] = gso;
    le16(h + 2, hdr_len);
    le16(h + 4, gso_size);
    le16(h + 6, cstart);
    le16(h + 8, coff);
    le16(h + 10, nbuf);
}

// Submits chains on q, waiting for room; settles (strictly) at the end.
static void tx_frame(struct vq *q, struct tally *t, uint32_t len, const uint8_t *hdr12) {
    need(q, 1, t);
    unsigned p = buf_page();
    rnd_fill(page_va(p), len < PAGE ? len : PAGE);
    if (hdr12 && len >= NET_HDR) memcpy(page_va(p), hdr12, NET_HDR);
    submit(q, chain1(q, p, len > PAGE ? PAGE : len, 0));
    t->sent++;
}

static void net_tx_headers(struct tally *t, char *what, size_t cap) {
    struct vq *q = &queues[TXQ];
    static const uint8_t gsos[] = {0, 1, 3, 4, 5, 0x81, 0x84, 0x83, 0x7f, 0xff};
    uint8_t h[NET_HDR];
    // Deterministic cases: each field wrong on its own.
    net_header(h, 1, 0, 0, 0, 1500, 1500, 0);    tx_frame(q, t, NET_HDR + 60, h);   // csum past the frame
    net_header(h, 1, 0, 0, 0, 0xffff, 0xffff, 0); tx_frame(q, t, NET_HDR + 60, h);
    net_header(h, 2, 0, 0, 0, 0, 0, 0);          tx_frame(q, t, NET_HDR + 60, h);                   // DATA_VALID from the driver
    net_header(h, 0xff, 0xff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff); tx_frame(q, t, NET_HDR + 60, h);
    net_header(h, 1, 1, 54, 0, 34, 16, 0);       tx_frame(q, t, NET_HDR + 1514, h);                 // TSO4, gso_size 0
    net_header(h, 0, 1, 54, 1448, 34, 16, 0);    tx_frame(q, t, NET_HDR + 1514, h);                 // TSO4 without NEEDS_CSUM
    net_header(h, 1, 3, 42, 1472, 34, 6, 0);     tx_frame(q, t, NET_HDR + 1514, h);                 // UDP (UFO), never offered
    net_header(h, 1, 0x81, 54, 1448, 34, 16, 0); tx_frame(q, t, NET_HDR + 1514, h);                 // ECN without HOST_ECN
    net_header(h, 1, 4, 74, 1428, 54, 16, 0xffff); tx_frame(q, t, NET_HDR + 1514, h);               // TSO6, num_buffers garbage
    net_header(h, 0, 0, 0, 0, 0, 0, 0x1234);     tx_frame(q, t, NET_HDR + 60, h);                   // num_buffers on tx
    // Random headers on random frame lengths.
    for (int i = 0; i < 200; i++) {
        net_header(h, (uint8_t)(rnd_below(2) ? rnd() : rnd_below(4)), gsos[rnd_below(sizeof gsos)], (uint16_t)rnd(),
                   (uint16_t)rnd(), (uint16_t)rnd_below(2048), (uint16_t)rnd_below(2048), (uint16_t)rnd());
        tx_frame(q, t, NET_HDR + rnd_below(1600), h);
        if (i % 32 == 31) kick(q);
    }
    kick(q);
    settle(q, t, 5, 1, "bad headers");
    snprintf(what, cap, "tx bad headers (flags, GSO types, csum_start/offset, num_buffers)");
}

static void net_tx_short(struct tally *t, char *what, size_t cap) {
    struct vq *q = &queues[TXQ];
    static const uint32_t lens[] = {0, 1, 5, 11, 12, 13, 25};
    for (unsigned i = 0; i < sizeof lens / sizeof lens[0]; i++) tx_frame(q, t, lens[i], NULL);
    kick(q);
    settle(q, t, 5, 1, "short frames");
    // A header and frame split into 1-byte descriptors; one of 5 + 7 + rest; zero-length pieces.
    uint8_t *src = page_va(buf_page());
    uint32_t len = net_arp(src);
    unsigned p = buf_page();
    memcpy(page_va(p), src, len);
    submit_bytewise(q, t, p, q->size < 80 ? q->size - 1u : 80, "a frame in 1-byte descriptors");
    need(q, 4, t);
    uint16_t a = dalloc(q), b = dalloc(q), c = dalloc(q), z = dalloc(q);
    if (q->size >= 4) {
        dset(q, a, pool_pa[p], 5, D_NEXT, z);
        dset(q, z, pool_pa[p], 0, D_NEXT, b);
        dset(q, b, pool_pa[p] + 5, 7, D_NEXT, c);
        dset(q, c, pool_pa[p] + 12, len - 12, 0, 0);
        submit(q, a);
        t->sent++;
    }
    kick(q);
    settle(q, t, 5, 1, "split headers");
    snprintf(what, cap, "tx frames shorter than a header, headers split over 1-byte and zero-length descriptors");
}

static void net_tx_oversized(struct tally *t, char *what, size_t cap) {
    struct vq *q = &queues[TXQ];
    // Chains of up to 64 pages: a full-size queue (same features).
    if (q->size < QMAX && setup(negotiated, QMAX, Q_OK) != 0) fail("setup with the same features and a full-size queue refused");
    static const uint32_t sizes[] = {NET_HDR + 65550, NET_HDR + 65551, 70000, 100000, 262144};
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint32_t pages = (sizes[i] + PAGE - 1) / PAGE;
        if (pages > q->size) continue;
        need(q, pages, t);
        unsigned first;
        uint16_t head = chain_pages(q, sizes[i], 0, &first);
        net_header(page_va(first), 0, 0, 0, 0, 0, 0, 0);
        submit(q, head);
        t->sent++;
    }
    kick(q);
    settle(q, t, 10, 1, "oversized frames");
    snprintf(what, cap, "tx frames of 64 KiB + 14 .. 256 KiB in page chains (queue size %u)", q->size);
}

static void net_tx_flood(struct tally *t, char *what, size_t cap) {
    struct vq *q = &queues[TXQ];
    unsigned count = 4096;
    double end = now() + 30;
    // A few pages of small random frames, each chain one descriptor; reused as chains return.
    unsigned base = buf_page();
    for (int i = 0; i < 7; i++) buf_page();
    for (unsigned i = 0; i < 8; i++) {
        uint8_t *b = page_va(base + i);
        for (unsigned off = 0; off + 128 <= PAGE; off += 128) {
            rnd_fill(b + off, 128);
            net_header(b + off, 0, 0, 0, 0, 0, 0, 0);
        }
    }
    for (unsigned i = 0; i < count;) {
        while (i < count && in_flight(q) < q->size) {
            uint16_t d = (uint16_t)(q->avail_idx % q->size);
            dset(q, d, pool_pa[base + i % 8] + 128 * (i / 8 % 32), NET_HDR + 14 + rnd_below(100), 0, 0);
            submit(q, d);
            i++;
            t->sent++;
        }
        kick(q);
        if (status() & S_NEEDS_RESET) fail("DEVICE_NEEDS_RESET during a flood of well-formed frames");
        if (now() > end) fail("flood: only %u of %u frames returned within 30 s", (unsigned)used_idx(q), count);
    }
    settle(q, t, 10, 1, "flood");
    snprintf(what, cap, "tx flood of %u small frames", count);
}

static void net_rx_garbage(struct tally *t, char *what, size_t cap) {
    struct vq *rx = &queues[RXQ], *tx = &queues[TXQ];
    // Receive buffers of 0, 1, 11, 12 bytes; read-only ones; readable-then-writable mixes;
    // all in our pages.
    unsigned n = rx->size < 12 ? rx->size : 12;
    for (unsigned i = 0; i < n; i++) {
        unsigned p = buf_page();
        uint16_t d = dalloc(rx);
        switch (i % 6) {
        case 0: dset(rx, d, pool_pa[p], 0, D_WRITE, 0); break;
        case 1: dset(rx, d, pool_pa[p], 1, D_WRITE, 0); break;
        case 2: dset(rx, d, pool_pa[p], 11, D_WRITE, 0); break;
        case 3: dset(rx, d, pool_pa[p], 12, D_WRITE, 0); break;
        case 4: dset(rx, d, pool_pa[p], PAGE, 0, 0); break;  // read-only on rx
        case 5: {
            uint16_t e = dalloc(rx);
            dset(rx, d, pool_pa[p], 100, D_NEXT, e);          // readable first
            dset(rx, e, pool_pa[p] + 100, 2000, D_WRITE, 0);
            break;
        }
        }
        submit(rx, d);
        t->sent++;
    }
    kick(rx);
    // Provoke frames from the peer (ARP replies) into the garbage buffers. The device may
    // find the rx ring malformed and ask for a reset (then tx stops too).
    uint16_t rx_before = used_idx(rx);
    int reset = 0;
    for (int i = 0; i < 3 && !reset; i++) {
        unsigned p = buf_page();
        submit(tx, chain1(tx, p, good_request(p), 0));
        t->sent++;
        kick(tx);
        int r = wait_returned(tx, 5);
        if (r < 0) fail("an ARP request behind garbage rx buffers was neither returned nor refused within 5 s");
        if (r == 0) reset = 1;
        double until = now() + 0.5;
        while (!reset && now() < until)
            if (status() & S_NEEDS_RESET) reset = 1;
    }
    unsigned back = (uint16_t)(used_idx(rx) - rx_before);
    t->returned += back;
    if (reset) {
        t->reset++;
        needs_reset_total++;
        setup_random();
    }
    // Write-only buffers on tx: the device must not write them; it may drop them or refuse
    // the queue (a NEEDS_RESET is accepted here).
    tx->used_seen = used_idx(tx);
    for (int i = 0; i < 4; i++) {
        unsigned p = buf_page();
        need(tx, 2, t);
        uint16_t a = dalloc(tx), b = dalloc(tx);
        uint32_t len = net_arp(page_va(p));
        dset(tx, a, pool_pa[p], len, i & 1 ? D_WRITE : 0, 0);
        if (i >= 2) {
            dset(tx, a, pool_pa[p], NET_HDR, D_NEXT, b);
            dset(tx, b, pool_pa[p] + NET_HDR, len - NET_HDR, D_WRITE, 0);
        }
        submit(tx, a);
        t->sent++;
    }
    kick(tx);
    settle(tx, t, 5, 0, "write-only tx buffers");
    uint32_t s = reset ? S_NEEDS_RESET : 0;
    snprintf(what, cap, "rx buffers of 0/1/11/12 bytes, read-only and mixed chains (%u rx chains used%s); write-only tx buffers",
             back, s & S_NEEDS_RESET ? ", NEEDS_RESET" : "");
}

// --- malformed rings (both devices): each case on a fresh setup; NEEDS_RESET or return.
static const char *malformed_names[] = {
    "desc len 4 GiB-1",         "desc outside RAM",         "desc on the MMIO window",   "desc across RAM's end",
    "two-descriptor loop",      "self loop",                "next past the queue",       "avail idx jumps past size",
    "head past the queue",      "indirect not negotiated",  "indirect len 0",            "indirect len 17",
    "indirect > queue size",    "indirect outside RAM",     "nested indirect",           "indirect with NEXT",
    "indirect loop",            "indirect random bytes",    "readable after writable",   "rx buffer outside RAM",
    "rx indirect random",       "rx used ring on its avail ring", "rx descriptors rewritten live",
};
#define MALFORMED_CASES (int)(sizeof malformed_names / sizeof malformed_names[0])

static char outcomes[64];

static void malformed_case(int c, struct tally *t) {
    struct vq *q = &queues[TXQ], *rx = &queues[RXQ];
    unsigned p = buf_page(), ip = buf_page();
    uint32_t len = good_request(p);
    uint64_t pa = pool_pa[p], ipa = pool_pa[ip];
    struct desc *it = (struct desc *)page_va(ip);
    int use_rx = 0;
    uint16_t d0 = dalloc(q), d1 = dalloc(q);
    if (c == 9 && (negotiated & F_INDIRECT)) {
        // Needs a setup without VIRTIO_RING_F_INDIRECT_DESC.
        if (setup((offered & ~F_INDIRECT) | F_VERSION_1, QMAX, Q_OK) != 0) fail("setup without INDIRECT_DESC refused");
        q = &queues[TXQ];
        rx = &queues[RXQ];
        d0 = dalloc(q);
        d1 = dalloc(q);
    }
    int indirect_ok = (negotiated & F_INDIRECT) != 0;
    switch (c) {
    case 0: dset(q, d0, pa, 0xffffffff, 0, 0); break;
    case 1: dset(q, d0, UINT64_C(0xfffffffffffff000), len, 0, 0); break;
    case 2: dset(q, d0, regs_pa, len, 0, 0); break;
    case 3: dset(q, d0, ram_end - 8, len, 0, 0); break;
    case 4: dset(q, d0, pa, 6, D_NEXT, d1); dset(q, d1, pa + 6, 6, D_NEXT, d0); break;
    case 5: dset(q, d0, pa, 6, D_NEXT, d0); break;
    case 6: dset(q, d0, pa, 6, D_NEXT, (uint16_t)(q->size + 5)); break;
    case 7: dset(q, d0, pa, len, 0, 0); break;
    case 8: dset(q, d0, pa, len, 0, 0); break;
    case 9: dset(q, d0, ipa, 16, D_INDIRECT, 0); memcpy(it, &(struct desc){pa, len, 0, 0}, 16); break;
    case 10: dset(q, d0, ipa, 0, D_INDIRECT, 0); break;
    case 11: dset(q, d0, ipa, 17, D_INDIRECT, 0); break;
    case 12: dset(q, d0, ipa, 16u * q->size + 16 > PAGE ? PAGE : 16u * q->size + 16, D_INDIRECT, 0);
        for (unsigned i = 0; i < PAGE / 16; i++) memcpy(&it[i], &(struct desc){pa, 1, D_NEXT, (uint16_t)(i + 1)}, 16);
        break;
    case 13: dset(q, d0, ram_end, 64, D_INDIRECT, 0); break;
    case 14: dset(q, d0, ipa, 32, D_INDIRECT, 0);
        memcpy(&it[0], &(struct desc){pa, NET_HDR, D_NEXT, 1}, 16);
        memcpy(&it[1], &(struct desc){ipa, 16, D_INDIRECT, 0}, 16);
        break;
    case 15: dset(q, d0, ipa, 16, D_INDIRECT | D_NEXT, d1); dset(q, d1, pa, len, 0, 0);
        memcpy(it, &(struct desc){pa, len, 0, 0}, 16);
        break;
    case 16: dset(q, d0, ipa, 32, D_INDIRECT, 0);
        memcpy(&it[0], &(struct desc){pa, 6, D_NEXT, 1}, 16);
        memcpy(&it[1], &(struct desc){pa + 6, 6, D_NEXT, 0}, 16);
        break;
    case 17: dset(q, d0, ipa, 16 * (1 + rnd_below(q->size)), D_INDIRECT, 0); rnd_fill(it, PAGE); break;  // tx: read only
    case 18: dset(q, d0, pa, NET_HDR, D_WRITE | D_NEXT, d1); dset(q, d1, pa + NET_HDR, len - NET_HDR, 0, 0); break;
    case 19: case 20: case 21: case 22: use_rx = 1; break;
    }
    if (!use_rx) {
        if (c == 7) {
            submit(q, d0);
            q->avail_idx = (uint16_t)(q->avail_idx + q->size + 1);
            *(volatile uint16_t *)(q->avail + 2) = q->avail_idx;
        } else if (c == 8) {
            submit(q, d0);
            *(volatile uint16_t *)(q->avail + 4 + 2 * ((q->avail_idx - 1) % q->size)) = (uint16_t)(q->size + rnd_below(60000));
        } else {
            submit(q, d0);
        }
        t->sent++;
        fence();
        kick(q);
        (void)indirect_ok;
        // Either refused (NEEDS_RESET) or returned; a returned chain is fine (e.g. a device
        // may drop a packet it cannot read). Then a fresh setup for the next case.
        int r = wait_returned(q, 3);
        if (r < 0) fail("malformed ring (%s): chain neither returned nor refused within 3 s, status 0x%x", malformed_names[c], status());
        if (r == 0) t->reset++, needs_reset_total++, outcomes[c] = 'R';
        else t->returned++, returned_total++, outcomes[c] = 'r';
        return;
    }
    // Receive side: the device only looks at rx chains when something arrives; send
    // well-formed requests on tx to provoke answers.
    uint16_t r0 = dalloc(rx);
    switch (c) {
    case 19: dset(rx, r0, bad_address(0), PAGE, D_WRITE, 0); break;
    case 20: {
        unsigned ip2 = buf_page();
        struct desc *t2 = (struct desc *)page_va(ip2);
        for (unsigned i = 0; i < PAGE / 16; i++) rand_desc(&t2[i], 16);
        dset(rx, r0, pool_pa[ip2], 16 * (1 + rnd_below(rx->size < 16 ? rx->size : 16)), D_INDIRECT, 0);
        break;
    }
    case 21: break;
    case 22: dset(rx, r0, pool_pa[buf_page()], PAGE, D_WRITE, 0); break;
    }
    if (c == 21) {
        // The device's used-ring writes land on the available ring it reads heads from.
        if (setup(negotiated, rx->size, Q_RX_OVERLAP) != 0) {
            t->reset++, needs_reset_total++, outcomes[c] = 'R';
            return;
        }
        for (unsigned i = 0; i < rx->size && i < 8; i++) dset(rx, (uint16_t)i, pool_pa[buf_page()], PAGE, D_WRITE, 0);
        for (unsigned i = 0; i < rx->size && i < 8; i++) submit(rx, (uint16_t)i);
    } else {
        submit(rx, r0);
    }
    t->sent++;
    kick(rx);
    uint16_t rx_before = used_idx(rx);
    double end = now() + 3;
    int outcome = 0;  // 1 used, 2 reset
    while (!outcome && now() < end) {
        unsigned pp = buf_page();
        submit(q, chain1(q, pp, good_request(pp), 0));
        kick(q);
        if (c == 22) {
            // Rewrite the rx descriptor table under the device's feet, a few hundred times.
            struct desc *tab = rx->desc;
            for (int k = 0; k < 300; k++) {
                rand_desc(&tab[rnd_below(rx->size)], rx->size);
                if (k % 50 == 0) kick(rx);
            }
        }
        double until = now() + 0.5;
        while (now() < until) {
            if (status() & S_NEEDS_RESET) { outcome = 2; break; }
            if (used_idx(rx) != rx_before) { outcome = 1; break; }
        }
    }
    outcomes[c] = "-rR"[outcome];
    if (outcome == 2) t->reset++, needs_reset_total++;
    else if (outcome == 1) t->returned++, returned_total++;
    // Neither: nothing arrived, or the device holds the frame for better buffers; both are fine
    // here (rx chains come back only when something arrives). The closing check decides.
    if (rd(R_MAGIC) != 0x74726976) fail("registers dead after %s", malformed_names[c]);
}

static void malformed(struct tally *t, char *what, size_t cap) {
    memset(outcomes, 0, sizeof outcomes);
    for (int c = 0; c < MALFORMED_CASES; c++) {
        outcomes[c] = '.';
        if (device_kind != DEV_NET && c == 21) continue;
        setup_random();
        malformed_case(c, t);
    }
    // One letter per case, in malformed_names order: R reset asked, r chain returned (rx:
    // buffers used), - rx: nothing arrived meanwhile, . skipped.
    snprintf(what, cap, "malformed rings: %d cases (lengths, addresses, loops, indices, indirect tables, rx) %s", MALFORMED_CASES, outcomes);
}

// --- transport and handshake garbage (both devices)
static void handshake(struct tally *t, char *what, size_t cap) {
    int refused = 0, not_running = 0;
    // Features the device did not offer, and none without VERSION_1: FEATURES_OK must not stick.
    if (setup(offered | (UINT64_C(1) << (40 + rnd_below(20))), QMAX, Q_OK) == 1) refused++;
    if (setup(offered & ~F_VERSION_1, QMAX, Q_OK) == 1) refused++;
    // Bad queue configurations: DRIVER_OK must give NEEDS_RESET (or the queue must at least
    // not be used); then reset.
    for (int m = 1; m < Q_MANGLES; m++) {
        int r = setup(random_features(), QMAX, (enum qmangle)m);
        if (r == 2) not_running++;
        else if (r == 0) {
            // Accepted: poke the mangled queue and see that nothing breaks.
            kick(&queues[TXQ]);
        }
        if (rd(R_MAGIC) != 0x74726976) fail("registers dead after queue config '%s'", qmangle_name[m]);
    }
    // Out-of-order status writes, register writes after DRIVER_OK, notifications of queues that
    // do not exist, config-space garbage, a queue disabled while running then notified.
    setup_random();
    wr(R_STATUS, S_DRIVER_OK);
    wr(R_STATUS, 0xff & ~S_FAILED);
    wr(R_QUEUE_SEL, 0);
    wr(R_QUEUE_NUM, 7);
    wr(R_QUEUE_DESC_LOW, 0xdeadbeef);
    wr(R_QUEUE_SEL, 0xffffffff);
    wr(R_QUEUE_READY, 1);
    wr(R_QUEUE_NOTIFY, 7);
    wr(R_QUEUE_NOTIFY, 0xffff);
    wr(R_QUEUE_NOTIFY, 0xffffffff);
    wr(R_DRIVER_FEATURES_SEL, 0x7fffffff);
    wr(R_DRIVER_FEATURES, 0xffffffff);
    for (uint32_t off = 0; off < 0x100; off += 4)
        if (off != R_STATUS && off != R_QUEUE_NOTIFY) wr(R_CONFIG + off, (uint32_t)rnd());
    for (uint32_t off = 0; off < 0x40; off += 4) (void)rd(R_CONFIG + off);
    wr(R_QUEUE_SEL, TXQ);
    wr(R_QUEUE_READY, 0);
    struct vq *q = &queues[TXQ];
    unsigned p = buf_page();
    submit(q, chain1(q, p, good_request(p), 0));
    kick(q);
    t->sent++;
    // The disabled queue may keep its chain; a failed status (FAILED) and reset follow.
    wr(R_STATUS, status() | S_FAILED);
    if (rd(R_MAGIC) != 0x74726976) fail("registers dead after transport garbage");
    snprintf(what, cap, "handshake: unoffered features refused %d/2, bad queue configs not run %d/%d; transport garbage", refused,
             not_running, Q_MANGLES - 1);
}

// --- vsock garbage
static void vsock_send(struct tally *t, uint64_t src, uint64_t dst, uint32_t sport, uint32_t dport, uint32_t len, uint16_t type,
                       uint16_t op, uint32_t flags, uint32_t buf_alloc, uint32_t payload) {
    struct vq *q = &queues[TXQ];
    need(q, 1, t);
    unsigned p = buf_page();
    vsock_hdr(page_va(p), src, dst, sport, dport, len, type, op, flags, buf_alloc, (uint32_t)rnd_below(4096));
    if (payload > PAGE - VSOCK_HDR) payload = PAGE - VSOCK_HDR;
    rnd_fill(page_va(p) + VSOCK_HDR, payload);
    submit(q, chain1(q, p, VSOCK_HDR + payload, 0));
    t->sent++;
}

// Keeps the rx queue stocked (answers pile up: RSTs for every bogus request).
static void vsock_rx_refill(void) {
    struct vq *rx = &queues[RXQ];
    uint16_t u = used_idx(rx);
    rx->used_seen = u;
    while (in_flight(rx) < rx->size) submit(rx, chain1(rx, buf_page(), PAGE, D_WRITE));
    kick(rx);
}

static void vsock_ops(struct tally *t, char *what, size_t cap) {
    vsock_rx_refill();
    for (int i = 0; i < 300; i++) {
        uint16_t op = (uint16_t)(rnd_below(2) ? 0 : 8 + rnd_below(65528));
        uint16_t type = (uint16_t)(rnd_below(3) == 0 ? rnd() : 1 + rnd_below(3));
        if (rnd_below(2)) op = (uint16_t)(1 + rnd_below(7));
        vsock_send(t, guest_cid, 2, 1024 + rnd_below(60000), rnd_below(70000), rnd_below(2) ? 0 : (uint32_t)rnd(), type, op,
                   (uint32_t)rnd(), (uint32_t)rnd(), rnd_below(200));
        if (i % 32 == 31) kick(&queues[TXQ]), vsock_rx_refill();
    }
    kick(&queues[TXQ]);
    settle(&queues[TXQ], t, 5, 1, "bogus ops and types");
    vsock_rx_refill();
    snprintf(what, cap, "vsock ops 0 and 8..65535, unknown types, random flags/lengths");
}

static void vsock_cids(struct tally *t, char *what, size_t cap) {
    static const uint64_t cids[] = {0, 1, 2, 3, UINT32_MAX, UINT64_MAX, UINT64_C(0x100000003)};
    vsock_rx_refill();
    for (unsigned i = 0; i < sizeof cids / sizeof cids[0]; i++) {
        vsock_send(t, cids[i], 2, 5000 + i, 1234, 0, VSOCK_TYPE_STREAM, VSOCK_OP_REQUEST, 0, 65536, 0);
        vsock_send(t, guest_cid, cids[i] == 2 ? guest_cid : cids[i], 6000 + i, 1234, 0, VSOCK_TYPE_STREAM, VSOCK_OP_REQUEST, 0, 65536, 0);
        vsock_send(t, guest_cid + 1 + i, cids[i], 7000 + i, 1234, 0, VSOCK_TYPE_STREAM, VSOCK_OP_RW, 0, 65536, 64);
    }
    kick(&queues[TXQ]);
    settle(&queues[TXQ], t, 5, 1, "bogus CIDs");
    vsock_rx_refill();
    snprintf(what, cap, "vsock src CIDs not the guest's (0, 1, 2, 3, 2^32-1, 2^64-1), dst CIDs not the host's");
}

static void vsock_lengths(struct tally *t, char *what, size_t cap) {
    struct vq *q = &queues[TXQ];
    vsock_rx_refill();
    // len past the chain, past 64 KiB, 4 GiB-1, with and without payload.
    static const uint32_t lens[] = {1, 100, 4096, 65536, 65537, 1u << 20, 0xffffffff};
    for (unsigned i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        vsock_send(t, guest_cid, 2, 8000 + i, 1234, lens[i], VSOCK_TYPE_STREAM, VSOCK_OP_RW, 0, 65536, 0);
        vsock_send(t, guest_cid, 2, 8100 + i, 1234, lens[i], VSOCK_TYPE_STREAM, VSOCK_OP_REQUEST, 0, 65536, 10);
    }
    // Truncated headers: 0..43 bytes.
    for (uint32_t n = 0; n < VSOCK_HDR; n += 7) {
        need(q, 1, t);
        unsigned p = buf_page();
        vsock_request(page_va(p), 9000 + n);
        submit(q, chain1(q, p, n, 0));
        t->sent++;
    }
    kick(q);
    settle(q, t, 5, 1, "lengths and truncated headers");
    // A header split over 1-byte descriptors, then one of 20 + 24 with payload in a third.
    unsigned p = buf_page();
    vsock_hdr(page_va(p), guest_cid, 2, 9100, VSOCK_CLOSED_PORT, 8, VSOCK_TYPE_STREAM, VSOCK_OP_REQUEST, 0, 65536, 0);
    submit_bytewise(q, t, p, q->size - 1u < VSOCK_HDR ? q->size - 1u : VSOCK_HDR, "a header in 1-byte descriptors");
    if (q->size >= 4) {
        need(q, 3, t);
        uint16_t a = dalloc(q), b = dalloc(q), c = dalloc(q);
        dset(q, a, pool_pa[p], 20, D_NEXT, b);
        dset(q, b, pool_pa[p] + 20, 24, D_NEXT, c);
        dset(q, c, pool_pa[p] + 44, 8, 0, 0);
        submit(q, a);
        t->sent++;
    }
    kick(q);
    settle(q, t, 5, 1, "split headers");
    vsock_rx_refill();
    snprintf(what, cap, "vsock len past the chain / 64 KiB / 4 GiB-1, truncated headers, headers split over descriptors");
}

static void vsock_conn_ops(struct tally *t, char *what, size_t cap) {
    vsock_rx_refill();
    for (int i = 0; i < 20; i++) {
        uint32_t sport = 10000 + (uint32_t)i, dport = 20000 + (uint32_t)rnd_below(1000);
        vsock_send(t, guest_cid, 2, sport, dport, 64, VSOCK_TYPE_STREAM, VSOCK_OP_RW, 0, 65536, 64);
        vsock_send(t, guest_cid, 2, sport, dport, 0, VSOCK_TYPE_STREAM, VSOCK_OP_CREDIT_UPDATE, 0, 0xffffffff, 0);
        vsock_send(t, guest_cid, 2, sport, dport, 0, VSOCK_TYPE_STREAM, VSOCK_OP_CREDIT_REQUEST, 0, 0, 0);
        vsock_send(t, guest_cid, 2, sport, dport, 0, VSOCK_TYPE_STREAM, VSOCK_OP_SHUTDOWN, 0xffffffff, 65536, 0);
        vsock_send(t, guest_cid, 2, sport, dport, 0, VSOCK_TYPE_STREAM, VSOCK_OP_RESPONSE, 0, 65536, 0);
        vsock_send(t, guest_cid, 2, sport, dport, 0, VSOCK_TYPE_STREAM, VSOCK_OP_RST, 0, 65536, 0);
    }
    kick(&queues[TXQ]);
    settle(&queues[TXQ], t, 5, 1, "ops for connections that do not exist");
    vsock_rx_refill();
    // Event queue: garbage buffers (read-only, 0 bytes, tiny).
    if (nqueues > 2) {
        struct vq *ev = &queues[2];
        for (int i = 0; i < 4 && in_flight(ev) < ev->size; i++) {
            unsigned p = buf_page();
            submit(ev, chain1(ev, p, (uint32_t)(i == 0 ? 0 : i == 1 ? 1 : PAGE), i == 2 ? 0 : D_WRITE));
        }
        kick(ev);
    }
    snprintf(what, cap, "vsock RW / CREDIT_UPDATE (buf_alloc 4 GiB-1) / CREDIT_REQUEST / SHUTDOWN (all flags) / RESPONSE / RST without connections; event queue garbage");
}

static void vsock_flood(struct tally *t, char *what, size_t cap) {
    unsigned count = 2000;
    vsock_rx_refill();
    for (unsigned i = 0; i < count; i++) {
        vsock_send(t, guest_cid, 2, 30000 + i, 1 + rnd_below(65535), 0, VSOCK_TYPE_STREAM, VSOCK_OP_REQUEST, 0, 65536, 0);
        if (i % 64 == 63) {
            kick(&queues[TXQ]);
            vsock_rx_refill();
        }
    }
    kick(&queues[TXQ]);
    settle(&queues[TXQ], t, 10, 1, "REQUEST flood");
    vsock_rx_refill();
    snprintf(what, cap, "vsock REQUEST flood: %u requests to random ports", count);
}

typedef void (*kind_fn)(struct tally *, char *, size_t);
static const kind_fn net_kinds[] = {net_tx_headers, net_tx_short, net_tx_oversized, malformed, net_tx_flood, net_rx_garbage, handshake};
static const kind_fn vsock_kinds[] = {vsock_ops, vsock_cids, vsock_lengths, malformed, vsock_conn_ops, vsock_flood, handshake};

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3) {
        fprintf(stderr, "usage: virtio-hostile net|vsock SEED [ROUNDS [GUEST-IP PEER-IP]]\n");
        return 2;
    }
    device_kind = strcmp(argv[1], "net") == 0 ? DEV_NET : strcmp(argv[1], "vsock") == 0 ? DEV_VSOCK : 0;
    if (!device_kind) {
        fprintf(stderr, "virtio-hostile: device must be net or vsock\n");
        return 2;
    }
    uint64_t seed = strtoull(argv[2], NULL, 0);
    int rounds = argc > 3 ? atoi(argv[3]) : 14;
    struct in_addr a;
    guest_ip = inet_aton(argc > 4 ? argv[4] : "10.0.2.2", &a) ? ntohl(a.s_addr) : 0;
    peer_ip = inet_aton(argc > 5 ? argv[5] : "10.0.2.1", &a) ? ntohl(a.s_addr) : 0;
    rng_state = seed * UINT64_C(0x9E3779B97F4A7C15) + 1;
    signal(SIGALRM, on_alarm);
    alarm(ROUND_SECONDS);
    find_ram_end();
    pool_init();
    find_device(device_kind);
    nqueues = device_kind == DEV_NET ? 2 : 3;
    device_reset();
    if (setup(F_VERSION_1, QMAX, Q_OK) != 0) fail("the device refuses a plain VERSION_1 setup (status 0x%x)", status());
    if (device_kind == DEV_NET) {
        for (int i = 0; i < 6; i++) mac[i] = rd_config8((uint32_t)i);
        printf("HOSTILE net: mac %02x:%02x:%02x:%02x:%02x:%02x, features offered 0x%" PRIx64 ", seed %" PRIu64 ", %d rounds\n", mac[0],
               mac[1], mac[2], mac[3], mac[4], mac[5], offered, seed, rounds);
    } else {
        for (int i = 0; i < 8; i++) guest_cid |= (uint64_t)rd_config8((uint32_t)i) << (8 * i);
        printf("HOSTILE vsock: guest cid %" PRIu64 ", features offered 0x%" PRIx64 ", seed %" PRIu64 ", %d rounds\n", guest_cid, offered,
               seed, rounds);
    }
    const kind_fn *kinds = device_kind == DEV_NET ? net_kinds : vsock_kinds;
    int nkinds = 7;
    double start = now();
    for (round_no = 1; round_no <= rounds; round_no++) {
        alarm(ROUND_SECONDS);
        double t0 = now();
        struct tally t = {0, 0, 0};
        char what[200] = "", note[120] = "";
        setup_random();
        uint64_t features = negotiated;
        auto_refill = device_kind == DEV_VSOCK;
        kinds[(round_no - 1) % nkinds](&t, what, sizeof what);
        auto_refill = 0;
        check_alive(note, sizeof note);
        printf("HOSTILE round %d: %s; features 0x%" PRIx64 ", sent %d, returned %d, needs-reset %d; check: %s; %.2f s ok\n", round_no, what,
               features, t.sent, t.returned, t.reset, note, now() - t0);
    }
    alarm(ROUND_SECONDS);
    device_reset();
    pool_verify();
    printf("SWIFTLET-HOSTILE-DONE device=%s rounds=%d seed=%" PRIu64 " chains=%u needs-reset=%u seconds=%.1f\n", argv[1], rounds, seed,
           sent_total, needs_reset_total, now() - start);
    return 0;
}
