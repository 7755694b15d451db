// vmm-phases: what ci/bench-boot measures of one VMM run, the same way for Swiftlet and QEMU.
//
//   vmm-phases [--ram-mib N] [--log FILE] [--timeout S] -- VMM [ARGS...]
//     Runs the VMM (stdin /dev/null, stdout and stderr into a pipe this program reads,
//     copied to FILE) until it exits, timing each line of its output from the fork:
//       exec_to_init    the guest's init line (SWIFTLET-GUEST-UP, with uptime=GUEST-SECONDS)
//       clock_at_init   the guest's own clock then (its /proc/uptime: the kernel's clock
//                       starts a few milliseconds after its first instruction, and on x86_64
//                       after the bzImage decompressed itself)
//       exec_to_clock   exec_to_init - clock_at_init: the VMM's set-up, the loading and the
//                       guest's first steps before its clock runs
//       init_to_off     init line to the kernel's "reboot: Power down" (printed even when
//                       quiet), less the time the VMM was held stopped (below)
//       off_to_exit     that line to the VMM process's end (a pidfd, not the pipe's end)
//       off_to_report   that line to the VMM's own end-of-run line (Swiftlet's "swiftlet:
//                       guest powered off ..."), when it prints one: the rest of
//                       off_to_exit is the process's teardown by the kernel (its memory,
//                       the KVM VM)
//       stop_to_exit    the VMM's own stop request (the guest's power-off exit) to the
//                       process's end, where the VMM reports its part (Swiftlet's --stats
//                       line "stopping took MS ms from the stop request to this line"):
//                       that part plus the time from the line to the end. Unlike
//                       off_to_exit it leaves out the guest's work between its message and
//                       its power-off (x86_64 Linux's machine_shutdown, for one)
//       boot_timer      the VMM's own figure for the guest's boot, where it prints one
//                       (Swiftlet's --boot-timer line "Guest-boot-time = N us ..."): from
//                       its process start to the guest's write to the boot-timer device
//       total           fork to the process's end
//     At the init line the VMM is stopped (SIGSTOP), its /proc/PID/smaps read, and let go
//     (SIGCONT): a guest that powers off at once cannot end the process mid-read, and the
//     stop is subtracted from init_to_off. From smaps: rss_kib (all mappings), ram_kib (the
//     Rss of mappings of at least N MiB: the guest's RAM) and overhead_kib = rss - ram, the
//     VMM's own memory (code, libraries, heap, stacks), of which anon_overhead_kib is
//     anonymous. peak_kib is VmHWM, sampled every 20 ms.
//
//   vmm-phases --socket PATH [--timeout S] -- VMM [ARGS...]
//     Times fork to the first successful connect() to the Unix socket PATH (polled every
//     100 us), then ends the VMM with SIGTERM (SIGKILL after 2 s). Prints socket_ms=MS.
//
// Prints one line: status=EXIT-STATUS and KEY=VALUE pairs ("-" for what was not seen;
// seconds with 4 decimals). Exits 0 if the figures were taken, 1 if not (the VMM did not
// start, time out, ...), 2 for bad arguments. Built static by ci/lib/static-tool.sh.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static const char initMarker[] = "SWIFTLET-GUEST-UP";
static const char powerOffLine[] = "reboot: Power down";
static const char reportLine[] = "swiftlet: guest powered off";
static const char stoppingLine[] = "swiftlet: stats: stopping took ";
static const char bootTimerLine[] = "Guest-boot-time = ";

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void usage(void) {
    fprintf(stderr, "usage: vmm-phases [--ram-mib N] [--log FILE] [--timeout S] [--socket PATH] -- VMM [ARGS...]\n");
    exit(2);
}

static pid_t spawn(char **argv, int outputFD) {
    pid_t pid = fork();
    if (pid < 0) { perror("vmm-phases: fork"); exit(1); }
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0) dup2(null, 0);
        if (outputFD >= 0) { dup2(outputFD, 1); dup2(outputFD, 2); }
        execvp(argv[0], argv);
        fprintf(stderr, "vmm-phases: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

static int exitStatus(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

// VmHWM of pid in KiB, or -1.
static long peakKiB(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long value = -1;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "VmHWM: %ld kB", &value) == 1) break;
    }
    fclose(f);
    return value;
}

struct Smaps { long rss, ram, anonOverhead; };

// Sums Rss over pid's mappings: all, those of at least ramKiB (guest RAM), and the anonymous
// ones outside guest RAM. Returns 0, or -1 if smaps could not be read.
static int readSmaps(pid_t pid, long ramKiB, struct Smaps *out) {
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/smaps", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    memset(out, 0, sizeof *out);
    long size = 0, value;
    int anonymous = 0, mappings = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long start, end;
        char perms[8];
        unsigned long offset, inode;
        char device[16];
        int consumed = 0;
        if (sscanf(line, "%lx-%lx %7s %lx %15s %lu %n", &start, &end, perms, &offset, device, &inode, &consumed) == 6) {
            // A header: the path, if any, follows. Anonymous: no path, or a bracketed
            // name other than a file's ([heap], [stack], [anon:...]).
            const char *name = line + consumed;
            anonymous = (*name == '\0' || *name == '\n' || *name == '[');
            size = 0;
            mappings++;
        } else if (sscanf(line, "Size: %ld kB", &value) == 1) {
            size = value;
        } else if (sscanf(line, "Rss: %ld kB", &value) == 1) {
            out->rss += value;
            if (size >= ramKiB) out->ram += value;
            else if (anonymous) out->anonOverhead += value;
        }
    }
    fclose(f);
    return mappings > 0 ? 0 : -1;
}

static int socketMode(char **argv, const char *socketPath, double timeout) {
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    if (strlen(socketPath) >= sizeof address.sun_path) { fprintf(stderr, "vmm-phases: socket path too long\n"); return 2; }
    strcpy(address.sun_path, socketPath);
    int null = open("/dev/null", O_WRONLY);
    double start = now();
    pid_t pid = spawn(argv, null);
    double ready = -1;
    int status = 0, exited = 0;
    while (now() - start < timeout) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&address, sizeof address) == 0) {
            ready = now() - start;
            close(fd);
            break;
        }
        if (fd >= 0) close(fd);
        if (waitpid(pid, &status, WNOHANG) == pid) { exited = 1; break; }
        struct timespec pause = { 0, 100000 };
        nanosleep(&pause, NULL);
    }
    if (!exited) {
        kill(pid, SIGTERM);
        double asked = now();
        while (waitpid(pid, &status, WNOHANG) == 0) {
            if (now() - asked > 2) { kill(pid, SIGKILL); waitpid(pid, &status, 0); break; }
            struct timespec pause = { 0, 1000000 };
            nanosleep(&pause, NULL);
        }
    }
    if (ready < 0) {
        printf("status=%d socket_ms=-\n", exitStatus(status));
        return 1;
    }
    printf("status=%d socket_ms=%.3f\n", exited ? exitStatus(status) : 0, ready * 1000);
    return 0;
}

static void printSeconds(const char *key, double value) {
    if (value < 0) printf(" %s=-", key); else printf(" %s=%.4f", key, value);
}

int main(int argc, char **argv) {
    long ramMiB = 128;
    const char *logPath = NULL, *socketPath = NULL;
    double timeout = 600;
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) { i++; break; }
        if (i + 1 >= argc) usage();
        if (strcmp(argv[i], "--ram-mib") == 0) ramMiB = atol(argv[++i]);
        else if (strcmp(argv[i], "--log") == 0) logPath = argv[++i];
        else if (strcmp(argv[i], "--timeout") == 0) timeout = atof(argv[++i]);
        else if (strcmp(argv[i], "--socket") == 0) socketPath = argv[++i];
        else usage();
    }
    if (i >= argc || ramMiB <= 0 || timeout <= 0) usage();
    char **vmm = argv + i;
    signal(SIGPIPE, SIG_IGN);
    if (socketPath) return socketMode(vmm, socketPath, timeout);

    FILE *log = logPath ? fopen(logPath, "w") : NULL;
    if (logPath && !log) { perror("vmm-phases: log"); return 1; }
    int pipeFDs[2];
    if (pipe2(pipeFDs, O_CLOEXEC) != 0) { perror("vmm-phases: pipe"); return 1; }
    double start = now();
    pid_t pid = spawn(vmm, pipeFDs[1]);
    close(pipeFDs[1]);
    int pidFD = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidFD < 0) { perror("vmm-phases: pidfd_open"); kill(pid, SIGKILL); return 1; }

    double atInit = -1, guestClock = -1, atOff = -1, atReport = -1, atExit = -1, stopped = 0;
    double atStopping = -1, stopping = -1, bootTimer = -1;
    long peak = -1;
    struct Smaps smaps = { -1, -1, -1 };
    char line[4096];
    size_t used = 0;
    int outputOpen = 1;
    int status = 0;
    double lastSample = 0;
    while (atExit < 0) {
        if (now() - start > timeout) {
            kill(pid, SIGKILL);
            fprintf(stderr, "vmm-phases: no exit within %.0f s; killed\n", timeout);
            break;
        }
        struct pollfd fds[2] = { { pidFD, POLLIN, 0 }, { pipeFDs[0], POLLIN, 0 } };
        int ready = poll(fds, outputOpen ? 2 : 1, 20);
        if (ready < 0 && errno != EINTR) { perror("vmm-phases: poll"); break; }
        if (now() - lastSample >= 0.02) {
            long sample = peakKiB(pid);
            if (sample > peak) peak = sample;
            lastSample = now();
        }
        if (outputOpen && (fds[1].revents & (POLLIN | POLLHUP))) {
            ssize_t n = read(pipeFDs[0], line + used, sizeof line - 1 - used);
            double at = now() - start;
            if (n <= 0) {
                outputOpen = 0;
            } else {
                if (log) fwrite(line + used, 1, (size_t)n, log);
                used += (size_t)n;
                line[used] = '\0';
                char *end;
                while ((end = strchr(line, '\n')) != NULL || used == sizeof line - 1) {
                    size_t length = end ? (size_t)(end - line) + 1 : used;
                    char saved = line[length - 1];
                    line[length - 1] = '\0';
                    char *marker;
                    if (atInit < 0 && (marker = strstr(line, initMarker)) != NULL) {
                        atInit = at;
                        char *uptime = strstr(marker, "uptime=");
                        if (uptime) guestClock = atof(uptime + 7);
                        double stopAt = now();
                        if (kill(pid, SIGSTOP) == 0) {
                            int stopStatus;
                            if (waitpid(pid, &stopStatus, WUNTRACED) == pid && WIFSTOPPED(stopStatus)) {
                                if (readSmaps(pid, ramMiB * 1024, &smaps) != 0) smaps.rss = -1;
                                long sample = peakKiB(pid);
                                if (sample > peak) peak = sample;
                            }
                            kill(pid, SIGCONT);
                        }
                        stopped = now() - stopAt;
                    }
                    if (atInit >= 0 && atOff < 0 && strstr(line, powerOffLine)) atOff = at;
                    if (atOff >= 0 && atReport < 0 && strstr(line, reportLine)) atReport = at;
                    char *report;
                    if (bootTimer < 0 && (report = strstr(line, bootTimerLine)) != NULL)
                        bootTimer = atof(report + sizeof bootTimerLine - 1) / 1e6;
                    if (atStopping < 0 && (report = strstr(line, stoppingLine)) != NULL) {
                        atStopping = at;
                        stopping = atof(report + sizeof stoppingLine - 1) / 1000;
                    }
                    line[length - 1] = saved;
                    memmove(line, line + length, used - length);
                    used -= length;
                    line[used] = '\0';
                }
            }
        }
        if (fds[0].revents & POLLIN) {
            atExit = now() - start;
            waitpid(pid, &status, 0);
        }
    }
    if (atExit < 0) waitpid(pid, &status, 0);
    // Output still in the pipe (the last lines) is read for the log.
    if (outputOpen) {
        ssize_t n;
        while ((n = read(pipeFDs[0], line, sizeof line)) > 0) {
            if (log) fwrite(line, 1, (size_t)n, log);
            if (atInit >= 0 && atOff < 0 && memmem(line, (size_t)n, powerOffLine, sizeof powerOffLine - 1)) atOff = atExit;
        }
    }
    if (log) fclose(log);

    printf("status=%d", exitStatus(status));
    printSeconds("exec_to_init", atInit);
    printSeconds("clock_at_init", guestClock);
    printSeconds("exec_to_clock", atInit >= 0 && guestClock >= 0 ? atInit - guestClock : -1);
    printSeconds("init_to_off", atInit >= 0 && atOff >= 0 ? atOff - atInit - stopped : -1);
    printSeconds("off_to_exit", atOff >= 0 && atExit >= 0 ? atExit - atOff : -1);
    printSeconds("off_to_report", atOff >= 0 && atReport >= 0 ? atReport - atOff : -1);
    printSeconds("stop_to_exit", atStopping >= 0 && atExit >= 0 ? stopping + (atExit - atStopping) : -1);
    printSeconds("boot_timer", bootTimer);
    printSeconds("total", atExit >= 0 ? atExit - stopped : -1);
    printSeconds("stopped", atInit >= 0 ? stopped : -1);
    if (peak >= 0) printf(" peak_kib=%ld", peak); else printf(" peak_kib=-");
    if (smaps.rss >= 0) {
        printf(" rss_kib=%ld ram_kib=%ld overhead_kib=%ld anon_overhead_kib=%ld\n",
               smaps.rss, smaps.ram, smaps.rss - smaps.ram, smaps.anonOverhead);
    } else {
        printf(" rss_kib=- ram_kib=- overhead_kib=- anon_overhead_kib=-\n");
    }
    return atInit >= 0 && atOff >= 0 && atExit >= 0 && smaps.rss >= 0 ? 0 : 1;
}
