// Exit-cost guest (ci/bench-exits): COUNT 4-byte MMIO writes to 0x2000_0000, below RAM
// (0x4000_0000) and clear of every device window of the memory map (GIC, PL011, PL031,
// PL061, virtio-mmio all lie in 0x0800_0000-0x0A00_3FFF), so each is one KVM_EXIT_MMIO
// that the VMM drops. Then PSCI SYSTEM_OFF through HVC, which ends swiftlet (and
// ci/guest-tools/kvm-bare). Swiftlet loads images without an arm64 Image header at
// RAM base + 0x80000 and enters them at EL1 with the MMU off.
// COUNT is 50,000, not the x86 guests' 200,000: in the nested L1 an MMIO exit to user space
// costs 55-120 µs (ci/bench-exits, 2026-12-02; NESTED-ARM64.md saw 126-172 µs), so the loop
// takes 3-6 s.
// The count is the last 4 bytes of the binary (little-endian), so ci/bench-exits can make
// a copy that does no loop at all and time the VMM's start and end alone.
    .equ    COUNT, 50000
    .text
    .globl _start
_start:
    ldr     w2, count
    movz    x1, #0x2000, lsl #16        // the unbacked address
    mov     w0, #0
    cbz     w2, 2f
1:  str     w0, [x1]                    // one exit to user space
    subs    w2, w2, #1
    b.ne    1b
2:  movz    x0, #0x0008                 // PSCI_0_2_FN_SYSTEM_OFF = 0x84000008
    movk    x0, #0x8400, lsl #16
    hvc     #0
3:  wfi
    b       3b
    .balign 4
count:
    .long   COUNT
