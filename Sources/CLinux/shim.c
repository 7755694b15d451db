#define _GNU_SOURCE
#include "clinux.h"
#include <net/if.h>

static __thread struct kvm_run *sl_thread_run;

void sl_vcpu_thread_set_run(struct kvm_run *run) { sl_thread_run = run; }

static void sl_kick_handler(int signo) {
    (void)signo;
    struct kvm_run *run = sl_thread_run;
    if (run) __atomic_store_n(&run->immediate_exit, 1, __ATOMIC_SEQ_CST);
}

int sl_install_kick_handler(int signo) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sl_kick_handler;
    sigemptyset(&sa.sa_mask);
    // No SA_RESTART: an interrupted KVM_RUN must return EINTR to the run loop.
    return sigaction(signo, &sa, NULL);
}

int sl_block_signal(int signo, int block) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    return pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

static int saved_argc;
static char **saved_argv;
static uint64_t start_monotonic_ns;

static void sl_save_args(int argc, char **argv, char **envp) {
    (void)envp;
    // The process's start on CLOCK_MONOTONIC, as early as the program's own code runs
    // (after the loader, before main): what the boot timer measures from.
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    start_monotonic_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    saved_argc = argc;
    saved_argv = argv;
}

__attribute__((section(".init_array"), used))
static void (*sl_save_args_hook)(int, char **, char **) = sl_save_args;

int sl_argc(void) { return saved_argc; }
char **sl_argv(void) { return saved_argv; }
uint64_t sl_process_start_monotonic_ns(void) { return start_monotonic_ns; }

int sl_unix_socket(int nonblocking) {
    return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
}

int sl_accept_nonblocking(int fd) {
    return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int sl_peer_credentials(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid) {
    struct ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -errno;
    if (length != sizeof credentials) return -EINVAL;
    *pid = credentials.pid;
    *uid = credentials.uid;
    *gid = credentials.gid;
    return 0;
}

int sl_join_within(pthread_t thread, long milliseconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += milliseconds / 1000;
    deadline.tv_nsec += (milliseconds % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) { deadline.tv_sec += 1; deadline.tv_nsec -= 1000000000L; }
    return pthread_timedjoin_np(thread, NULL, &deadline);
}

static __thread char sl_thread_name_buffer[32];

void sl_thread_set_name(const char *name) {
    strncpy(sl_thread_name_buffer, name, sizeof sl_thread_name_buffer - 1);
    sl_thread_name_buffer[sizeof sl_thread_name_buffer - 1] = 0;
    // The main thread's kernel name is the process's (ps, pgrep, killall): left alone.
    if (gettid() == getpid()) return;
    char comm[16];
    strncpy(comm, sl_thread_name_buffer, sizeof comm - 1);
    comm[sizeof comm - 1] = 0;
    pthread_setname_np(pthread_self(), comm);
}

const char *sl_thread_name(void) { return sl_thread_name_buffer; }

int sl_fallocate(int fd, int mode, off_t offset, off_t length) {
    return fallocate(fd, mode, offset, length);
}

int sl_tap_open(const char *name) {
    if (strlen(name) >= IFNAMSIZ) return -ENAMETOOLONG;
    // TUNSETIFF creates an interface that does not exist (given CAP_NET_ADMIN); Swiftlet
    // only attaches to taps the operator made.
    if (if_nametoindex(name) == 0) return -ENODEV;
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    int header = SL_VNET_HDR_SIZE;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &header) < 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    return fd;
}

int sl_interface_mtu(const char *name) {
    if (strlen(name) >= IFNAMSIZ) return -ENAMETOOLONG;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    int result = ioctl(fd, SIOCGIFMTU, &ifr) < 0 ? -errno : ifr.ifr_mtu;
    close(fd);
    return result;
}

/* Unmaps (MADV_DONTNEED) the pages of this program's own read-only and executable
 * segments. They are the file's pages, not copies: they stay in the page cache, and what
 * runs afterwards faults back in on first use. Called once the VM runs, so that the code
 * only start-up needs (parsing, image loading, building the device tree or ACPI tables)
 * stops counting in the VMM's resident set. Writable segments (data, bss, relro) are
 * left alone: zapping a private copy would lose it. */
#include <link.h>

static int sl_release_segments(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    size_t *released = data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *header = &info->dlpi_phdr[i];
        if (header->p_type != PT_LOAD || (header->p_flags & PF_W)) continue;
        uintptr_t start = (info->dlpi_addr + header->p_vaddr) & ~(page - 1);
        uintptr_t end = (info->dlpi_addr + header->p_vaddr + header->p_memsz + page - 1) & ~(page - 1);
        if (madvise((void *)start, end - start, MADV_DONTNEED) == 0) *released += end - start;
    }
    return 1; /* the first object is the program itself */
}

size_t sl_release_program_text(void) {
    size_t released = 0;
    dl_iterate_phdr(sl_release_segments, &released);
    return released;
}
