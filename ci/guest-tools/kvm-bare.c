// kvm-bare [--memory MIB] IMAGE: the floor ci/bench-exits measures Swiftlet against. Runs
// a raw guest binary (Tests/Guests/exits-*.S) on /dev/kvm with one vCPU, loaded and entered
// as `swiftlet run --kernel IMAGE` does, and a KVM_RUN loop that does the least an exit can
// cost: port I/O and MMIO exits are counted and dropped (no device, no bus lookup, no data
// copy). It stops at the guest's end: the i8042 reset (a write of 0xFE to port 0x64) on
// x86_64, KVM_EXIT_SYSTEM_EVENT (PSCI SYSTEM_OFF) on arm64, KVM_EXIT_SHUTDOWN or
// KVM_EXIT_HLT on either. Prints one line:
//   kvm-bare: EXITS exits (pio P, mmio M, ended by WHAT) in S s of KVM_RUN loop
// and exits 0, or names the ioctl that failed and exits 1 (2 for bad arguments).
//
// The VM is set up like Swiftlet's (same RAM size by default, 256 MiB, and place, same
// in-kernel interrupt controller, same vCPU entry state), so the kernel's share of an exit
// is the same under both and the difference is the VMM's own loop:
//   x86_64 (Sources/X86_64): RAM from 0; TSS at 0xFFFB_D000, in-kernel irqchip and PIT;
//     KVM's supported CPUID; the raw image at 1 MiB, entered there in 64-bit long mode with
//     Swiftlet's GDT at 0x500 and 2 MiB page tables at 0x9000 identity-mapping 4 GiB.
//   arm64 (Sources/ARM64): RAM from 0x4000_0000; vCPU with PSCI 0.2; vGICv3 (distributor
//     0x0800_0000, redistributors 0x080A_0000, 256 IRQs); the raw image at RAM + 0x80000,
//     PC there, x0 = 0, PSTATE EL1h with DAIF masked.
// Left out, as no exit of these guests depends on them: Swiftlet's MSR and LAPIC LINT
// settings and CPUID edits (x86_64), the ITS and device tree (arm64), the devices.
// Build: static (ci/lib/static-tool.sh) for the arm64 L1, or `gcc -O2` for this host.
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
    fprintf(stderr, "kvm-bare: %s: %s\n", what, strerror(errno));
    exit(1);
}

// ioctl that must succeed (returns its non-negative result).
static int must(int fd, unsigned long request, void *arg, const char *name) {
    int result;
    do { result = ioctl(fd, request, arg); } while (result < 0 && errno == EINTR);
    if (result < 0) die(name);
    return result;
}

#if defined(__x86_64__)
#define RAM_BASE 0x0ULL
#define IMAGE_OFFSET 0x100000ULL          // Layout.kernel
#define GDT 0x500ULL
#define PML4 0x9000ULL
#define PDPT 0xA000ULL
#define PAGE_DIRECTORIES 0xB000ULL        // four, 2 MiB pages: the first 4 GiB
#define TSS_ADDRESS 0xFFFBD000UL
#define BOOT_PARAMS 0x7000ULL             // %rsi at entry (unused by raw images)
#define I8042_COMMAND_PORT 0x64
#define I8042_RESET 0xFE
#elif defined(__aarch64__)
#define RAM_BASE 0x40000000ULL
#define IMAGE_OFFSET 0x80000ULL
#define GIC_DISTRIBUTOR 0x08000000ULL
#define GIC_REDISTRIBUTORS 0x080A0000ULL
#define GIC_IRQS 256
// A 64-bit core register (struct kvm_regs field) as a KVM_{GET,SET}_ONE_REG id.
#define CORE_REG(field) \
    (KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | (offsetof(struct kvm_regs, field) / sizeof(uint32_t)))
// PSR_MODE_EL1h | F | I | A | D, as Swiftlet's PSTATE_EL1H_DAIF_MASKED.
#define PSTATE_EL1H_DAIF_MASKED (0x5ULL | 0x40 | 0x80 | 0x100 | 0x200)
#else
#error "kvm-bare: x86_64 or aarch64 only"
#endif

#if defined(__x86_64__)
// Swiftlet's long-mode entry (Sources/X86_64/LongMode*.swift): GDT, identity page tables,
// segment and control registers, RIP at the image.
static void enter_long_mode(int vcpu, uint8_t *ram) {
    static const uint64_t gdt[] = {
        0, 0,
        0x00AF9B000000FFFFULL,  // 0x10: 64-bit code
        0x00CF93000000FFFFULL,  // 0x18: data, 4 GiB
        0x00808B0000000000ULL,  // 0x20: TSS (busy), only so TR is valid
    };
    memcpy(ram + GDT, gdt, sizeof gdt);
    uint64_t *pml4 = (uint64_t *)(ram + PML4), *pdpt = (uint64_t *)(ram + PDPT);
    pml4[0] = PDPT | 3;                                     // present, writable
    for (uint64_t gib = 0; gib < 4; gib++) {
        uint64_t directory = PAGE_DIRECTORIES + gib * 0x1000;
        pdpt[gib] = directory | 3;
        uint64_t *pd = (uint64_t *)(ram + directory);
        for (uint64_t i = 0; i < 512; i++) pd[i] = (gib << 30) | (i << 21) | 0x83;  // + 2 MiB page
    }

    struct kvm_sregs sregs;
    must(vcpu, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
    struct kvm_segment code = {.base = 0, .limit = 0xFFFFFFFF, .selector = 0x10, .type = 0xB,
                               .present = 1, .s = 1, .l = 1, .g = 1};
    struct kvm_segment data = {.base = 0, .limit = 0xFFFFFFFF, .selector = 0x18, .type = 0x3,
                               .present = 1, .s = 1, .db = 1, .g = 1};
    struct kvm_segment tss = {.base = 0, .limit = 0xFFF, .selector = 0x20, .type = 0xB,
                              .present = 1, .g = 1};
    sregs.cs = code;
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
    sregs.tr = tss;
    sregs.gdt.base = GDT;
    sregs.gdt.limit = sizeof gdt - 1;
    sregs.cr3 = PML4;
    sregs.cr4 = 1 << 5;                                     // PAE
    // PE | MP | ET | NE | WP | AM | PG
    sregs.cr0 = 1 << 0 | 1 << 1 | 1 << 4 | 1 << 5 | 1 << 16 | 1 << 18 | 1U << 31;
    sregs.efer = 1 << 8 | 1 << 10;                          // LME | LMA
    must(vcpu, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");

    struct kvm_regs regs = {.rflags = 0x2, .rip = RAM_BASE + IMAGE_OFFSET, .rsi = BOOT_PARAMS};
    must(vcpu, KVM_SET_REGS, &regs, "KVM_SET_REGS");
    struct kvm_fpu fpu = {.fcw = 0x37F, .mxcsr = 0x1F80};
    must(vcpu, KVM_SET_FPU, &fpu, "KVM_SET_FPU");
}

// KVM_SET_CPUID2 with everything KVM_GET_SUPPORTED_CPUID offers.
static void set_cpuid(int kvm, int vcpu) {
    for (int capacity = 128; capacity <= 4096; capacity *= 2) {
        struct kvm_cpuid2 *cpuid = calloc(1, sizeof *cpuid + capacity * sizeof(struct kvm_cpuid_entry2));
        if (!cpuid) die("calloc");
        cpuid->nent = capacity;
        if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid) == 0) {
            must(vcpu, KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2");
            free(cpuid);
            return;
        }
        free(cpuid);
        if (errno != E2BIG) die("KVM_GET_SUPPORTED_CPUID");
    }
    errno = E2BIG;
    die("KVM_GET_SUPPORTED_CPUID");
}
#else
static void set_one_reg(int vcpu, uint64_t id, uint64_t value, const char *name) {
    struct kvm_one_reg reg = {.id = id, .addr = (uint64_t)(uintptr_t)&value};
    if (ioctl(vcpu, KVM_SET_ONE_REG, &reg) < 0) die(name);
}

static void set_gic_attribute(int gic, uint32_t group, uint64_t attr, void *value, const char *name) {
    struct kvm_device_attr attribute = {.group = group, .attr = attr, .addr = (uint64_t)(uintptr_t)value};
    must(gic, KVM_SET_DEVICE_ATTR, &attribute, name);
}

// The vGICv3 as Sources/ARM64/VGIC.swift makes it (after the vCPU exists).
static void create_gic(int vm) {
    struct kvm_create_device device = {.type = KVM_DEV_TYPE_ARM_VGIC_V3};
    must(vm, KVM_CREATE_DEVICE, &device, "KVM_CREATE_DEVICE (vGICv3)");
    int gic = device.fd;
    uint64_t distributor = GIC_DISTRIBUTOR, redistributors = GIC_REDISTRIBUTORS;
    uint32_t irqs = GIC_IRQS;
    set_gic_attribute(gic, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, &distributor, "vGIC distributor address");
    set_gic_attribute(gic, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, &redistributors, "vGIC redistributor address");
    set_gic_attribute(gic, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, &irqs, "vGIC IRQ count");
    set_gic_attribute(gic, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, NULL, "vGIC init");
}
#endif

int main(int argc, char **argv) {
    unsigned long memory_mib = 256;
    const char *image = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--memory") == 0 && i + 1 < argc) {
            memory_mib = strtoul(argv[++i], NULL, 10);
        } else if (argv[i][0] != '-' && !image) {
            image = argv[i];
        } else {
            fprintf(stderr, "usage: kvm-bare [--memory MIB] IMAGE\n");
            return 2;
        }
    }
    if (!image || memory_mib < 4 || memory_mib > 3072) {
        fprintf(stderr, "usage: kvm-bare [--memory MIB (4-3072)] IMAGE\n");
        return 2;
    }
    size_t ram_size = (size_t)memory_mib << 20;

    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) die("/dev/kvm");
    if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
        fprintf(stderr, "kvm-bare: KVM_GET_API_VERSION is not %d\n", KVM_API_VERSION);
        return 1;
    }
    int vm = must(kvm, KVM_CREATE_VM, 0, "KVM_CREATE_VM");

    // Guest RAM, with the image copied in as Swiftlet's raw loader does.
    uint8_t *ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (ram == MAP_FAILED) die("mmap of guest RAM");
    int file = open(image, O_RDONLY | O_CLOEXEC);
    if (file < 0) die(image);
    struct stat st;
    if (fstat(file, &st) < 0) die(image);
    if (st.st_size <= 0 || (uint64_t)st.st_size > ram_size - IMAGE_OFFSET) {
        fprintf(stderr, "kvm-bare: %s: empty or larger than guest RAM\n", image);
        return 1;
    }
    for (off_t done = 0; done < st.st_size;) {
        ssize_t n = pread(file, ram + IMAGE_OFFSET + done, st.st_size - done, done);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) continue;
            if (n == 0) errno = EIO;
            die(image);
        }
        done += n;
    }
    close(file);
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = RAM_BASE, .memory_size = ram_size, .userspace_addr = (uint64_t)(uintptr_t)ram};
    must(vm, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");

#if defined(__x86_64__)
    must(vm, KVM_SET_TSS_ADDR, (void *)TSS_ADDRESS, "KVM_SET_TSS_ADDR");
    must(vm, KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP");
    struct kvm_pit_config pit = {0};
    must(vm, KVM_CREATE_PIT2, &pit, "KVM_CREATE_PIT2");
    int vcpu = must(vm, KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU");
    set_cpuid(kvm, vcpu);
    enter_long_mode(vcpu, ram);
#else
    int vcpu = must(vm, KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU");
    struct kvm_vcpu_init init;
    must(vm, KVM_ARM_PREFERRED_TARGET, &init, "KVM_ARM_PREFERRED_TARGET");
    memset(init.features, 0, sizeof init.features);
    init.features[0] = 1U << KVM_ARM_VCPU_PSCI_0_2;
    must(vcpu, KVM_ARM_VCPU_INIT, &init, "KVM_ARM_VCPU_INIT");
    create_gic(vm);
    set_one_reg(vcpu, CORE_REG(regs.regs[0]), 0, "KVM_SET_ONE_REG x0");
    set_one_reg(vcpu, CORE_REG(regs.pc), RAM_BASE + IMAGE_OFFSET, "KVM_SET_ONE_REG pc");
    set_one_reg(vcpu, CORE_REG(regs.pstate), PSTATE_EL1H_DAIF_MASKED, "KVM_SET_ONE_REG pstate");
#endif

    int run_size = must(kvm, KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");
    struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) die("mmap of kvm_run");

    // The loop under test: nothing but KVM_RUN and a switch on the exit reason.
    uint64_t exits = 0, pio = 0, mmio = 0;
    const char *ended = NULL;
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (!ended) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            die("KVM_RUN");
        }
        exits++;
        switch (run->exit_reason) {
        case KVM_EXIT_IO:
#if defined(__x86_64__)
            if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == I8042_COMMAND_PORT && run->io.size == 1 &&
                *((uint8_t *)run + run->io.data_offset) == I8042_RESET) {
                ended = "i8042 reset";
                break;
            }
#endif
            pio++;
            break;
        case KVM_EXIT_MMIO:
            mmio++;             // a read gets whatever run->mmio.data holds
            break;
        case KVM_EXIT_SYSTEM_EVENT:
            ended = run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN ? "system event shutdown" : "system event";
            break;
        case KVM_EXIT_SHUTDOWN:
            ended = "shutdown";
            break;
        case KVM_EXIT_HLT:
            ended = "hlt";
            break;
        case KVM_EXIT_INTR:
            break;
        default:
            fprintf(stderr, "kvm-bare: unexpected exit reason %u after %llu exits\n", run->exit_reason,
                    (unsigned long long)exits);
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    double seconds = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
    printf("kvm-bare: %llu exits (pio %llu, mmio %llu, ended by %s) in %.6f s of KVM_RUN loop\n",
           (unsigned long long)exits, (unsigned long long)pio, (unsigned long long)mmio, ended, seconds);
    return 0;
}
