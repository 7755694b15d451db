// kvm-cap CAP...: prints "CAP=N" for each KVM capability named, N being /dev/kvm's answer
// to KVM_CHECK_EXTENSION (0: absent). The nested suites ask it, not Swiftlet, whether L1's
// KVM offers a feature, so a test of a Swiftlet flag knows which outcome to expect.
// Exits 1 when /dev/kvm cannot be opened or a name is unknown.
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

static const struct {
    const char *name;
    int cap;
} capabilities[] = {
    {"KVM_CAP_ARM_PMU_V3", KVM_CAP_ARM_PMU_V3},
    {"KVM_CAP_ARM_SVE", KVM_CAP_ARM_SVE},
    {"KVM_CAP_ARM_PTRAUTH_ADDRESS", KVM_CAP_ARM_PTRAUTH_ADDRESS},
    {"KVM_CAP_ARM_PTRAUTH_GENERIC", KVM_CAP_ARM_PTRAUTH_GENERIC},
};

int main(int argc, char **argv) {
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        perror("kvm-cap: /dev/kvm");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        int cap = -1;
        for (size_t j = 0; j < sizeof capabilities / sizeof capabilities[0]; j++) {
            if (strcmp(argv[i], capabilities[j].name) == 0) cap = capabilities[j].cap;
        }
        if (cap < 0) {
            fprintf(stderr, "kvm-cap: unknown capability %s\n", argv[i]);
            return 1;
        }
        printf("%s=%d\n", argv[i], ioctl(kvm, KVM_CHECK_EXTENSION, cap));
    }
    return 0;
}
