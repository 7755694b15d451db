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
#define SL_SECCOMP_ARCH_NAME " (x86_64)"
#else
#define SL_SECCOMP_ARCH_NAME " (aarch64)"
#endif

// The calling thread's kind, for the report (the handler runs on the thread that broke its
// filter and may only make the calls every filter allows: write and the final kill).
static __thread char sl_seccomp_kind[24];

static size_t append(char *line, size_t at, size_t cap, const char *text) {
    while (*text && at < cap) line[at++] = *text++;
    return at;
}

static void sl_seccomp_report(int signo, siginfo_t *info, void *context) {
    (void)signo;
    (void)context;
    char line[200];
    size_t n = 0, cap = sizeof line - 1;
    n = append(line, n, cap, "swiftlet: seccomp: the ");
    n = append(line, n, cap, sl_seccomp_kind[0] ? sl_seccomp_kind : "?");
    n = append(line, n, cap, " thread made system call ");
    char digits[12];
    int d = 0;
    unsigned number = (unsigned)info->si_syscall;
    do { digits[d++] = (char)('0' + number % 10); number /= 10; } while (number && d < 11);
    while (d > 0 && n < cap) line[n++] = digits[--d];
    n = append(line, n, cap, SL_SECCOMP_ARCH_NAME ", which its filter does not allow: the VMM is killed (SIGSYS)\n");
    (void)!write(2, line, n);
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
