// Exit-cost guest (ci/bench-exits): COUNT port writes to a port no Swiftlet device claims
// (0x80, the PC's POST/delay port: KVM does not handle it in the kernel either), so each
// is one KVM_EXIT_IO that the VMM drops, then the i8042 reset, which ends swiftlet
// --no-reboot (and ci/guest-tools/kvm-bare). Swiftlet enters raw images at 1 MiB in
// 64-bit long mode with the first 4 GiB identity mapped.
// The count is the last 4 bytes of the binary (little-endian), so ci/bench-exits can make
// a copy that does no loop at all and time the VMM's start and end alone.
    .equ    COUNT, 200000
    .equ    PORT, 0x80
    .code64
    .text
    .globl _start
_start:
    mov     count(%rip), %ecx
    xor     %eax, %eax
    test    %ecx, %ecx
    jz      2f
1:  out     %al, $PORT              // one exit to user space
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
