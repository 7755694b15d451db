// seccomp: compiling an allow-list with libseccomp into a BPF program (once, at start-up),
// installing such a program on the calling thread (one prctl and one seccomp call, nothing
// allocated), and the report a thread makes when it breaks its filter.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "include/clinux.h"

int sl_seccomp_compile(const struct sl_seccomp_rule *rules, size_t count, int log_only,
                       struct sl_seccomp_program *out) {
    scmp_filter_ctx ctx = seccomp_init(log_only ? SCMP_ACT_LOG : SCMP_ACT_TRAP);
    if (!ctx) return -ENOMEM;
    // The program is installed per thread with no_new_privs set by sl_seccomp_install.
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    if (rc == 0) rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    for (size_t i = 0; rc == 0 && i < count; i++) {
        const struct sl_seccomp_rule *rule = &rules[i];
        if (rule->has_condition) {
            struct scmp_arg_cmp cmp = {
                .arg = rule->argument, .op = SCMP_CMP_MASKED_EQ,
                .datum_a = rule->mask, .datum_b = rule->value,
            };
            rc = seccomp_rule_add_exact_array(ctx, SCMP_ACT_ALLOW, rule->syscall, 1, &cmp);
        } else {
            rc = seccomp_rule_add_exact_array(ctx, SCMP_ACT_ALLOW, rule->syscall, 0, NULL);
        }
    }
    int fd = -1;
    if (rc == 0) {
        fd = memfd_create("seccomp", MFD_CLOEXEC);
        if (fd < 0) rc = -errno;
    }
    if (rc == 0) rc = seccomp_export_bpf(ctx, fd);
    seccomp_release(ctx);
    if (rc != 0) {
        if (fd >= 0) close(fd);
        return rc < 0 ? rc : -EINVAL;
    }
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0 || size % sizeof(struct sock_filter) != 0 ||
        size / sizeof(struct sock_filter) > BPF_MAXINSNS) {
        close(fd);
        return -EINVAL;
    }
    struct sock_filter *code = malloc((size_t)size);
    if (!code || pread(fd, code, (size_t)size, 0) != size) {
        free(code);
        close(fd);
        return -EIO;
    }
    close(fd);
    out->instructions = code;
    out->count = (unsigned short)(size / sizeof(struct sock_filter));
    return 0;
}

void sl_seccomp_program_free(struct sl_seccomp_program *program) {
    free(program->instructions);
    program->instructions = NULL;
    program->count = 0;
}

int sl_seccomp_syscall_number(const char *name) { return seccomp_syscall_resolve_name(name); }

int sl_seccomp_syscall_number_arch(int arch, const char *name) {
    uint32_t token = arch == SL_SECCOMP_ARCH_AARCH64 ? SCMP_ARCH_AARCH64 : SCMP_ARCH_X86_64;
    return seccomp_syscall_resolve_name_arch(token, name);
}

#if defined(__x86_64__)
#define SL_SECCOMP_ARCH "x86_64"
#else
#define SL_SECCOMP_ARCH "aarch64"
#endif

// The calling thread's kind, for the report (the handler runs on the thread that broke its
// filter and may only make the calls every filter allows: write and the final kill).
static __thread char sl_seccomp_kind[24];

static size_t append(char *line, size_t at, size_t cap, const char *text) {
    while (*text && at < cap) line[at++] = *text++;
    return at;
}

/// `value` in decimal, zero-padded to `digits` (at most 20).
static size_t append_decimal(char *line, size_t at, size_t cap, uint64_t value, int digits) {
    char scratch[20];
    int d = 0;
    do { scratch[d++] = (char)('0' + value % 10); value /= 10; } while ((value || d < digits) && d < 20);
    while (d > 0 && at < cap) line[at++] = scratch[--d];
    return at;
}

// The audit log's descriptor, or -1: the handler may only read a plain int.
static volatile sig_atomic_t sl_seccomp_audit_fd = -1;

void sl_seccomp_set_audit_fd(int fd) { sl_seccomp_audit_fd = fd; }

size_t sl_seccomp_audit_line(char *line, size_t cap, int64_t seconds, long nanoseconds, const char *kind,
                             unsigned number, int pid) {
    if (cap == 0) return 0;
    cap -= 1;   // room for the newline
    // The civil date in integers (Howard Hinnant's days_from_civil inverse, as the Swift
    // logger computes it): 400-year eras of 146097 days, years starting on March 1.
    int64_t days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400;
    int64_t second_of_day = seconds - days * 86400;
    int64_t shifted = days + 719468;
    int64_t era = (shifted >= 0 ? shifted : shifted - 146096) / 146097;
    int64_t day_of_era = shifted - era * 146097;
    int64_t year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    int64_t month_from_march = (5 * day_of_year + 2) / 153;
    int64_t day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    int64_t month = month_from_march < 10 ? month_from_march + 3 : month_from_march - 9;
    int64_t year = year_of_era + era * 400 + (month <= 2 ? 1 : 0);
    size_t n = 0;
    n = append(line, n, cap, "{\"time\":\"");
    n = append_decimal(line, n, cap, year < 0 ? 0 : (uint64_t)year, 4);
    n = append(line, n, cap, "-");
    n = append_decimal(line, n, cap, (uint64_t)month, 2);
    n = append(line, n, cap, "-");
    n = append_decimal(line, n, cap, (uint64_t)day, 2);
    n = append(line, n, cap, "T");
    n = append_decimal(line, n, cap, (uint64_t)(second_of_day / 3600), 2);
    n = append(line, n, cap, ":");
    n = append_decimal(line, n, cap, (uint64_t)(second_of_day / 60 % 60), 2);
    n = append(line, n, cap, ":");
    n = append_decimal(line, n, cap, (uint64_t)(second_of_day % 60), 2);
    n = append(line, n, cap, ".");
    n = append_decimal(line, n, cap, nanoseconds < 0 ? 0 : (uint64_t)nanoseconds, 9);
    n = append(line, n, cap, "Z\",\"event\":\"seccomp_violation\",\"pid\":");
    n = append_decimal(line, n, cap, pid < 0 ? 0 : (uint64_t)pid, 1);
    // The kind is one of Swiftlet's own thread kind names (letters only): no escaping.
    n = append(line, n, cap, ",\"thread\":\"");
    n = append(line, n, cap, kind);
    n = append(line, n, cap, "\",\"syscall\":");
    n = append_decimal(line, n, cap, number, 1);
    n = append(line, n, cap, ",\"arch\":\"" SL_SECCOMP_ARCH "\"}");
    line[n++] = '\n';
    return n;
}

static void sl_seccomp_report(int signo, siginfo_t *info, void *context) {
    (void)signo;
    (void)context;
    char line[200];
    size_t n = 0, cap = sizeof line - 1;
    const char *kind = sl_seccomp_kind[0] ? sl_seccomp_kind : "background job";   // build and media-change threads keep the main filter and install none
    unsigned number = (unsigned)info->si_syscall;
    n = append(line, n, cap, "swiftlet: seccomp: the ");
    n = append(line, n, cap, kind);
    n = append(line, n, cap, " thread made system call ");
    n = append_decimal(line, n, cap, number, 1);
    n = append(line, n, cap, " (" SL_SECCOMP_ARCH "), which its filter does not allow: the VMM is killed (SIGSYS)\n");
    (void)!write(2, line, n);
    // The audit line: only calls every filter allows (clock_gettime, getpid, write), all
    // async-signal-safe, and integer formatting.
    int audit = sl_seccomp_audit_fd;
    if (audit >= 0) {
        struct timespec now = {0, 0};
        clock_gettime(CLOCK_REALTIME, &now);
        char record[256];
        size_t length = sl_seccomp_audit_line(record, sizeof record, (int64_t)now.tv_sec, now.tv_nsec, kind, number, (int)getpid());
        (void)!write(audit, record, length);
    }
    // SIGSYS is blocked while its handler runs: a second forbidden call makes the kernel
    // kill the whole process with SIGSYS. kexec_load is in no thread's allow-list.
    syscall(SYS_kexec_load, 0, 0, 0, 0);
    _exit(128 + SIGSYS);
}

int sl_seccomp_arm_report(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = sl_seccomp_report;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    return sigaction(SIGSYS, &action, NULL) == 0 ? 0 : -errno;
}

int sl_seccomp_install(const struct sl_seccomp_program *program, const char *kind) {
    strncpy(sl_seccomp_kind, kind, sizeof sl_seccomp_kind - 1);
    sl_seccomp_kind[sizeof sl_seccomp_kind - 1] = 0;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -errno;
    struct sock_fprog fprog = { .len = program->count, .filter = program->instructions };
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0) return -errno;
    return 0;
}

int sl_seccomp_mode_of_calling_thread(void) { return prctl(PR_GET_SECCOMP, 0, 0, 0, 0); }
