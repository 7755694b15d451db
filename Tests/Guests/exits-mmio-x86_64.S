// Exit-cost guest (ci/bench-exits): COUNT 4-byte MMIO writes to 0xC000_0000, the start of
// the 32-bit MMIO hole: outside RAM, below the virtio-mmio windows (0xD000_0000 on), the
// IOAPIC and the LAPIC, so each is one KVM_EXIT_MMIO that the VMM drops. Then the i8042
// reset, which ends swiftlet --no-reboot (and ci/guest-tools/kvm-bare). Swiftlet enters raw
// images at 1 MiB in 64-bit long mode with the first 4 GiB identity mapped.
// The count is the last 4 bytes of the binary (little-endian), so ci/bench-exits can make
// a copy that does no loop at all and time the VMM's start and end alone.
    .equ    COUNT, 200000
    .equ    ADDRESS, 0xC0000000
    .code64
    .text
    .globl _start
_start:
    mov     count(%rip), %ecx
    mov     $ADDRESS, %edi          // zero-extended: identity-mapped below 4 GiB
    xor     %eax, %eax
    test    %ecx, %ecx
    jz      2f
1:  movl    %eax, (%rdi)            // one exit to user space
    dec     %ecx
    jnz     1b
2:  mov     $0xfe, %al              // i8042 command: pulse the CPU reset line
    out     %al, $0x64
3:  cli
    hlt
    jmp     3b
    .balign 4
count:
    .long   COUNT
