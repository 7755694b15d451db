/* swiftlet jail's system calls that Swift cannot make directly: variadic or GNU-only
 * functions (syscall, setns, unshare, mount), macros (makedev, major, minor) and the
 * signal-forwarding wait. */
#define _GNU_SOURCE
#include "clinux.h"
#include <grp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

int sl_mknod_device(const char *path, unsigned mode, int is_block, unsigned major_number, unsigned minor_number) {
    mode_t type = is_block ? S_IFBLK : S_IFCHR;
    return mknod(path, type | (mode & 07777), makedev(major_number, minor_number)) == 0 ? 0 : -errno;
}

unsigned sl_dev_major(uint64_t device) { return major((dev_t)device); }
unsigned sl_dev_minor(uint64_t device) { return minor((dev_t)device); }

int sl_unshare(int flags) { return unshare(flags) == 0 ? 0 : -errno; }
int sl_setns(int fd, int nstype) { return setns(fd, nstype) == 0 ? 0 : -errno; }
pid_t sl_fork(void) { return fork(); }

int sl_mount_private_recursive(const char *path) {
    return mount(NULL, path, NULL, MS_REC | MS_PRIVATE, NULL) == 0 ? 0 : -errno;
}

int sl_mount_bind(const char *source, const char *target, int read_only) {
    if (mount(source, target, NULL, MS_BIND | MS_REC, NULL) != 0) return -errno;
    if (read_only && mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0) return -errno;
    return 0;
}

int sl_pivot_root(const char *new_root, const char *put_old) {
    return syscall(SYS_pivot_root, new_root, put_old) == 0 ? 0 : -errno;
}

int sl_mount_move(const char *source, const char *target) {
    return mount(source, target, NULL, MS_MOVE, NULL) == 0 ? 0 : -errno;
}

int sl_umount_detach(const char *path) { return umount2(path, MNT_DETACH) == 0 ? 0 : -errno; }

int sl_close_from(int first) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)first, ~0u, 0u) == 0) return 0;
    if (errno != ENOSYS) return -errno;
#endif
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 1 << 20) max = 1 << 20;
    for (int fd = first; fd < max; fd++) close(fd);
    return 0;
}

int sl_drop_privileges(uint32_t uid, uint32_t gid, const char **step) {
    *step = "setgroups";
    if (setgroups(0, NULL) != 0) return -errno;
    *step = "setgid";
    if (setgid((gid_t)gid) != 0) return -errno;
    *step = "setuid";
    if (setuid((uid_t)uid) != 0) return -errno;
    return 0;
}

int sl_set_rlimit(int resource, uint64_t value) {
    struct rlimit limit = { .rlim_cur = (rlim_t)value, .rlim_max = (rlim_t)value };
    return setrlimit((__rlimit_resource_t)resource, &limit) == 0 ? 0 : -errno;
}

void sl_reset_signals(void) {
    for (int signo = 1; signo < NSIG; signo++) {
        if (signo == SIGKILL || signo == SIGSTOP) continue;
        signal(signo, SIG_DFL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

int sl_exec_clean(const char *path, char *const argv[]) {
    char *const empty[] = { NULL };
    execve(path, argv, empty);
    return -errno;
}

static volatile pid_t forward_to;

static void forward_signal(int signo) {
    pid_t child = forward_to;
    if (child > 0) kill(child, signo);
}

int sl_wait_forwarding(pid_t child) {
    forward_to = child;
    // The caller may have blocked them (a VMM's main loop takes them by signalfd; a test
    // runner that hosts one passes its mask on): they must arrive to be passed on.
    sigset_t forwarded;
    sigemptyset(&forwarded);
    sigaddset(&forwarded, SIGTERM);
    sigaddset(&forwarded, SIGINT);
    sigaddset(&forwarded, SIGHUP);
    sigprocmask(SIG_UNBLOCK, &forwarded, NULL);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = forward_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGHUP, &action, NULL);
    for (;;) {
        int status;
        pid_t done = waitpid(child, &status, 0);
        if (done < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    }
}

int sl_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno;
}

int sl_daemonize_streams(void) {
    if (setsid() < 0) return -errno;
    int fd = open("/dev/null", O_RDWR);
    if (fd < 0) return -errno;
    for (int target = 0; target < 3; target++) {
        if (dup2(fd, target) < 0) { int error = errno; close(fd); return -error; }
    }
    if (fd > 2) close(fd);
    return 0;
}

uint64_t sl_process_cpu_us(void) {
    struct timespec now;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}
