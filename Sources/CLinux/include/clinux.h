// The one C module Swiftlet sees: glibc, the KVM UAPI and libfdt, plus fixed-argument
// wrappers for what Swift cannot call or see directly (variadic functions, function-like
// macros, unions inside struct kvm_run). Serves the host build and the Embedded builds.
#ifndef SWIFTLET_CLINUX_H
#define SWIFTLET_CLINUX_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/if_tun.h>
#include <libfdt.h>

// MARK: ioctl request numbers (function-like macros in linux/kvm.h)
static const unsigned long SL_KVM_GET_API_VERSION = KVM_GET_API_VERSION;
static const unsigned long SL_KVM_CREATE_VM = KVM_CREATE_VM;
static const unsigned long SL_KVM_CHECK_EXTENSION = KVM_CHECK_EXTENSION;
static const unsigned long SL_KVM_GET_VCPU_MMAP_SIZE = KVM_GET_VCPU_MMAP_SIZE;
static const unsigned long SL_KVM_CREATE_VCPU = KVM_CREATE_VCPU;
static const unsigned long SL_KVM_SET_USER_MEMORY_REGION = KVM_SET_USER_MEMORY_REGION;
static const unsigned long SL_KVM_RUN = KVM_RUN;
static const unsigned long SL_KVM_IRQ_LINE = KVM_IRQ_LINE;
static const unsigned long SL_KVM_IRQFD = KVM_IRQFD;
static const unsigned long SL_KVM_CREATE_DEVICE = KVM_CREATE_DEVICE;
static const unsigned long SL_KVM_SET_DEVICE_ATTR = KVM_SET_DEVICE_ATTR;
static const unsigned long SL_KVM_HAS_DEVICE_ATTR = KVM_HAS_DEVICE_ATTR;
static const unsigned long SL_KVM_GET_ONE_REG = KVM_GET_ONE_REG;
static const unsigned long SL_KVM_SET_ONE_REG = KVM_SET_ONE_REG;
static const unsigned long SL_KVM_GET_MP_STATE = KVM_GET_MP_STATE;
static const unsigned long SL_KVM_SET_MP_STATE = KVM_SET_MP_STATE;
static const unsigned long SL_KVM_IOEVENTFD = KVM_IOEVENTFD;
/// kvm_ioeventfd.flags bits (enum-based macros Swift cannot import).
static const uint32_t SL_KVM_IOEVENTFD_FLAG_DATAMATCH = KVM_IOEVENTFD_FLAG_DATAMATCH;
static const uint32_t SL_KVM_IOEVENTFD_FLAG_PIO = KVM_IOEVENTFD_FLAG_PIO;
static const uint32_t SL_KVM_IOEVENTFD_FLAG_DEASSIGN = KVM_IOEVENTFD_FLAG_DEASSIGN;

#if defined(__aarch64__)
static const unsigned long SL_KVM_ARM_PREFERRED_TARGET = KVM_ARM_PREFERRED_TARGET;
static const unsigned long SL_KVM_ARM_VCPU_INIT = KVM_ARM_VCPU_INIT;
static const unsigned long SL_KVM_ARM_VCPU_FINALIZE = KVM_ARM_VCPU_FINALIZE;

// Core register ids for KVM_{GET,SET}_ONE_REG (KVM_REG_ARM_CORE_REG is a macro on offsetof).
static inline uint64_t sl_arm64_core_reg(unsigned long offset_bytes) {
    return KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | (offset_bytes / sizeof(uint32_t));
}
static inline uint64_t sl_arm64_reg_x(int n) {
    return sl_arm64_core_reg(offsetof(struct kvm_regs, regs.regs) + (unsigned long)n * 8);
}
static inline uint64_t sl_arm64_reg_pc(void) { return sl_arm64_core_reg(offsetof(struct kvm_regs, regs.pc)); }
static inline uint64_t sl_arm64_reg_pstate(void) { return sl_arm64_core_reg(offsetof(struct kvm_regs, regs.pstate)); }
static inline uint64_t sl_arm64_sysreg(unsigned op0, unsigned op1, unsigned crn, unsigned crm, unsigned op2) {
    return ARM64_SYS_REG(op0, op1, crn, crm, op2);
}
#endif

#if defined(__x86_64__)
static const unsigned long SL_KVM_GET_REGS = KVM_GET_REGS;
static const unsigned long SL_KVM_SET_REGS = KVM_SET_REGS;
static const unsigned long SL_KVM_GET_SREGS = KVM_GET_SREGS;
static const unsigned long SL_KVM_SET_SREGS = KVM_SET_SREGS;
static const unsigned long SL_KVM_GET_FPU = KVM_GET_FPU;
static const unsigned long SL_KVM_SET_FPU = KVM_SET_FPU;
static const unsigned long SL_KVM_GET_SUPPORTED_CPUID = KVM_GET_SUPPORTED_CPUID;
static const unsigned long SL_KVM_SET_CPUID2 = KVM_SET_CPUID2;
static const unsigned long SL_KVM_SET_MSRS = KVM_SET_MSRS;
static const unsigned long SL_KVM_GET_MSRS = KVM_GET_MSRS;
static const unsigned long SL_KVM_GET_LAPIC = KVM_GET_LAPIC;
static const unsigned long SL_KVM_SET_LAPIC = KVM_SET_LAPIC;
static const unsigned long SL_KVM_CREATE_IRQCHIP = KVM_CREATE_IRQCHIP;
static const unsigned long SL_KVM_CREATE_PIT2 = KVM_CREATE_PIT2;
static const unsigned long SL_KVM_REINJECT_CONTROL = KVM_REINJECT_CONTROL;
static const unsigned long SL_KVM_SET_TSS_ADDR = KVM_SET_TSS_ADDR;
static const unsigned long SL_KVM_SET_IDENTITY_MAP_ADDR = KVM_SET_IDENTITY_MAP_ADDR;
#endif

// MARK: fixed-argument wrappers for variadic libc calls and errno
static inline int sl_errno(void) { return errno; }
static inline void sl_set_errno(int value) { errno = value; }
static inline int sl_ioctl(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }
static inline int sl_ioctl_value(int fd, unsigned long request, unsigned long arg) { return ioctl(fd, request, arg); }
static inline int sl_open(const char *path, int flags) { return open(path, flags | O_CLOEXEC); }
static inline int sl_open_mode(const char *path, int flags, unsigned mode) { return open(path, flags | O_CLOEXEC, mode); }
static inline int sl_fcntl(int fd, int cmd, int arg) { return fcntl(fd, cmd, arg); }
static inline int sl_map_failed(void *p) { return p == MAP_FAILED; }
/* mmap flags for hugetlbfs-backed anonymous memory in 2 MiB pages (MAP_HUGE_2MB, from
 * linux/mman.h, which clashes with sys/mman.h when both are included). */
static inline int sl_map_hugetlb_2mb(void) { return MAP_HUGETLB | (21 << MAP_HUGE_SHIFT); }
/* Unmaps the program's own read-only and executable pages (they stay in the page cache and
 * fault back on use); returns the bytes released. See shim.c. */
size_t sl_release_program_text(void);

// MARK: disks
static const unsigned long SL_BLKGETSIZE64 = BLKGETSIZE64;
/// Open file description locks (F_OFD_*, GNU-only in glibc's headers): held per open
/// file, not per process, so two images in one VMM and two VMMs exclude each other alike.
static const int SL_F_OFD_GETLK = 36;
static const int SL_F_OFD_SETLK = 37;
static inline int sl_fcntl_lock(int fd, int cmd, struct flock *lock) { return fcntl(fd, cmd, lock); }
/// fallocate(2) is GNU-only in glibc's headers (shim.c has _GNU_SOURCE).
int sl_fallocate(int fd, int mode, off_t offset, off_t length);
/// preadv/pwritev under names that do not collide with DiskImage's methods of the same name.
static inline ssize_t sl_preadv(int fd, const struct iovec *iov, int count, off_t offset) { return preadv(fd, iov, count, offset); }
static inline ssize_t sl_pwritev(int fd, const struct iovec *iov, int count, off_t offset) { return pwritev(fd, iov, count, offset); }

// MARK: taps (struct ifreq lives in <net/if.h>, which clashes with <linux/if.h>: shim.c only)
static const unsigned long SL_TUNSETOFFLOAD = TUNSETOFFLOAD;
static const unsigned long SL_TUNSETIFF = TUNSETIFF;
static const unsigned long SL_TUNSETVNETHDRSZ = TUNSETVNETHDRSZ;
static const unsigned long SL_SIOCGIFMTU = 0x8921;   // linux/sockios.h
/// glibc's if_nametoindex, which sl_tap_open asks first.
static const unsigned long SL_SIOCGIFINDEX = 0x8933;
/// The size of struct virtio_net_hdr_v1, which a VERSION_1 virtio-net device exchanges.
static const int SL_VNET_HDR_SIZE = 12;
/// IFNAMSIZ: interface names are at most 15 bytes and a NUL.
static const int SL_IFNAMSIZ = 16;
/// Attaches a new non-blocking /dev/net/tun descriptor to the existing tap interface
/// `name` with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR and a 12-byte vnet header. Returns the
/// descriptor or -errno (ENODEV: no such interface; EINVAL: not a tap; EBUSY: in use).
int sl_tap_open(const char *name);
/// The interface's MTU (SIOCGIFMTU), or -errno.
int sl_interface_mtu(const char *name);

// MARK: struct kvm_run access. Swift copies unions out of structs, so pointers into the
// mapped page come from here and stay valid for the vCPU's life.
static inline uint32_t sl_run_exit_reason(struct kvm_run *run) { return run->exit_reason; }
static inline void sl_run_set_immediate_exit(struct kvm_run *run, uint8_t value) {
    __atomic_store_n(&run->immediate_exit, value, __ATOMIC_SEQ_CST);
}
static inline uint64_t sl_run_mmio_addr(struct kvm_run *run) { return run->mmio.phys_addr; }
static inline uint32_t sl_run_mmio_len(struct kvm_run *run) { return run->mmio.len; }
static inline uint8_t sl_run_mmio_is_write(struct kvm_run *run) { return run->mmio.is_write; }
static inline uint8_t *sl_run_mmio_data(struct kvm_run *run) { return run->mmio.data; }
static inline uint8_t sl_run_io_direction(struct kvm_run *run) { return run->io.direction; }
static inline uint8_t sl_run_io_size(struct kvm_run *run) { return run->io.size; }
static inline uint16_t sl_run_io_port(struct kvm_run *run) { return run->io.port; }
static inline uint32_t sl_run_io_count(struct kvm_run *run) { return run->io.count; }
static inline uint64_t sl_run_io_data_offset(struct kvm_run *run) { return run->io.data_offset; }
static inline uint8_t *sl_run_io_data(struct kvm_run *run) { return (uint8_t *)run + run->io.data_offset; }
static inline uint32_t sl_run_system_event_type(struct kvm_run *run) { return run->system_event.type; }
static inline uint64_t sl_run_hardware_exit_reason(struct kvm_run *run) { return run->fail_entry.hardware_entry_failure_reason; }
static inline uint32_t sl_run_internal_suberror(struct kvm_run *run) { return run->internal.suberror; }

// MARK: vCPU kicks. A signal sent to a vCPU thread sets immediate_exit on that thread's
// kvm_run, so a KVM_RUN about to start returns at once and one in progress returns EINTR.
void sl_vcpu_thread_set_run(struct kvm_run *run);
int sl_install_kick_handler(int signo);
int sl_block_signal(int signo, int block);
/// SIG_IGN is a cast macro Swift cannot import.
static inline void sl_ignore_signal(int signo) { signal(signo, SIG_IGN); }

// MARK: threads
/// pthread_timedjoin_np (GNU): 0 when joined, ETIMEDOUT when the thread is still running.
int sl_join_within(pthread_t thread, long milliseconds);
/// Names the calling thread: kept in a thread-local for log lines (at most 31 bytes), and
/// given to the kernel (first 15 bytes) so ps -L and top -H show it too; except on the
/// main thread, whose kernel name is the process's own.
void sl_thread_set_name(const char *name);
/// The calling thread's name as last set above; "" if it never was.
const char *sl_thread_name(void);

// MARK: sockets (SOCK_* flags are an enum in glibc; accept4 needs _GNU_SOURCE)
int sl_unix_socket(int nonblocking);
int sl_accept_nonblocking(int fd);
/// The connected peer's pid, effective uid and gid (SO_PEERCRED): 0 or -errno.
int sl_peer_credentials(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid);

// MARK: process arguments. Embedded Swift has no CommandLine; an .init_array hook keeps them.
int sl_argc(void);
char **sl_argv(void);
/// CLOCK_MONOTONIC (ns) when the same hook ran: the process's start, as near its exec as
/// the program's own code gets.
uint64_t sl_process_start_monotonic_ns(void);

// MARK: seccomp (seccomp.c, on libseccomp)
/// One allow rule: the syscall, and if `has_condition`, (argument & mask) == value.
struct sl_seccomp_rule {
    int syscall;
    int has_condition;
    unsigned argument;
    uint64_t mask;
    uint64_t value;
};
/// A compiled BPF program (struct sock_fprog's parts; linux/filter.h is seccomp.c's only).
struct sl_seccomp_program {
    void *instructions;
    unsigned short count;
};
enum { SL_SECCOMP_ARCH_X86_64 = 0, SL_SECCOMP_ARCH_AARCH64 = 1 };
/// Compiles the allow-list for this machine's architecture; what it does not allow traps
/// (SIGSYS, reported by the handler of sl_seccomp_arm_report) or, with `log_only`, is
/// allowed and logged by the kernel (dmesg: audit type=1326). 0 or -errno.
int sl_seccomp_compile(const struct sl_seccomp_rule *rules, size_t count, int log_only,
                       struct sl_seccomp_program *out);
void sl_seccomp_program_free(struct sl_seccomp_program *program);
/// The syscall's number on this machine, or negative (no such call here).
int sl_seccomp_syscall_number(const char *name);
/// The syscall's number on an architecture (SL_SECCOMP_ARCH_*), or negative.
int sl_seccomp_syscall_number_arch(int arch, const char *name);
/// Installs the process's SIGSYS handler: one line naming the thread kind and the call,
/// then the process dies of SIGSYS. 0 or -errno.
int sl_seccomp_arm_report(void);
/// Where the SIGSYS handler also writes one JSON line (the audit log's descriptor), or -1
/// for nowhere (the default). Set before the threads it should cover start; set to -1
/// before that descriptor is closed.
void sl_seccomp_set_audit_fd(int fd);
/// The handler's audit line for a violation at `seconds`/`nanoseconds` since the epoch, by
/// a `kind` thread, of call `number`, in process `pid`: written into `line` (no NUL),
/// ending in a newline; its length. Async-signal-safe (integer formatting only).
size_t sl_seccomp_audit_line(char *line, size_t cap, int64_t seconds, long nanoseconds, const char *kind,
                             unsigned number, int pid);
/// no_new_privs, then the program, on the calling thread only. 0 or -errno.
int sl_seccomp_install(const struct sl_seccomp_program *program, const char *kind);
/// PR_GET_SECCOMP for the calling thread: 0 none, 2 filter.
int sl_seccomp_mode_of_calling_thread(void);


// MARK: swiftlet jail (jail.c): namespaces, mounts, device nodes, credentials
static const int SL_CLONE_NEWNS = 0x00020000;
static const int SL_CLONE_NEWPID = 0x20000000;
static const int SL_CLONE_NEWNET = 0x40000000;
/// mknod of a character (is_block 0) or block device node with the given numbers. 0 or -errno.
int sl_mknod_device(const char *path, unsigned mode, int is_block, unsigned major_number, unsigned minor_number);
/// The major and minor numbers of a device number (macros in sys/sysmacros.h).
unsigned sl_dev_major(uint64_t device);
unsigned sl_dev_minor(uint64_t device);
int sl_unshare(int flags);
int sl_setns(int fd, int nstype);
pid_t sl_fork(void);
/// Every mount below / private (MS_REC | MS_PRIVATE): nothing propagates out of the jail.
int sl_mount_private_recursive(const char *path);
/// Bind-mounts source on target (recursive), then read-only if asked.
int sl_mount_bind(const char *source, const char *target, int read_only);
/// pivot_root(2), which glibc does not wrap.
int sl_pivot_root(const char *new_root, const char *put_old);
int sl_umount_detach(const char *path);
/// mount(source, target, MS_MOVE): what switch_root does where pivot_root cannot.
int sl_mount_move(const char *source, const char *target);
/// Closes every descriptor from `first` up (close_range, else one by one). 0 or -errno.
int sl_close_from(int first);
/// setgroups(0, NULL), setgid, setuid, in that order. 0 or -errno; *step names the failed call.
int sl_drop_privileges(uint32_t uid, uint32_t gid, const char **step);
/// setrlimit with soft = hard = value (RLIMIT_* are an enum in glibc with _GNU_SOURCE).
static const int SL_RLIMIT_NOFILE = 7;
static const int SL_RLIMIT_FSIZE = 1;
int sl_set_rlimit(int resource, uint64_t value);
/// Every signal back to its default action and unblocked: the VMM starts as from a clean
/// exec, whatever the jail's caller had blocked or ignored.
void sl_reset_signals(void);
/// execve with an empty environment. Returns only on failure (-errno).
int sl_exec_clean(const char *path, char *const argv[]);
/// Waits for `child`, passing SIGTERM, SIGINT and SIGHUP on to it meanwhile. Returns its
/// exit status, or 128 + N if signal N killed it; -errno if waiting failed.
int sl_wait_forwarding(pid_t child);
/// setsid, and stdin, stdout, stderr on /dev/null (--daemonize). 0 or -errno.
int sl_daemonize_streams(void);
/// pipe2(O_CLOEXEC). 0 or -errno.
int sl_pipe_cloexec(int fds[2]);
/// CPU time of the calling process so far (CLOCK_PROCESS_CPUTIME_ID), in microseconds.
uint64_t sl_process_cpu_us(void);

// MARK: libfdt macros
static inline uint32_t sl_fdt_totalsize(const void *fdt) { return fdt_totalsize(fdt); }
static inline int sl_fdt_property_string(void *fdt, const char *name, const char *value) {
    return fdt_property_string(fdt, name, value);
}
static inline int sl_fdt_property_u32(void *fdt, const char *name, uint32_t value) {
    return fdt_property_u32(fdt, name, value);
}
static inline int sl_fdt_property_u64(void *fdt, const char *name, uint64_t value) {
    return fdt_property_u64(fdt, name, value);
}

#endif
