// x86_64 test guest that misbehaves on purpose: it writes 0xA5 to and reads every I/O
// port (garbage in every device register Swiftlet or KVM models), then pokes MMIO at
// addresses outside RAM and any device. A VMM that survives restores nothing for it: the
// guest resets COM1's line control itself, says it survived, and resets the CPU.
    .code64
    .text
    .globl _start
_start:
    mov     $0x80000, %rsp
    xor     %edx, %edx
1:  cmp     $0x64, %dx                  // skip the i8042 command port (0xFE would reset)
    je      2f
    mov     $0xa5, %al
    out     %al, (%dx)
    in      (%dx), %al
2:  inc     %edx
    cmp     $0x10000, %edx
    jb      1b
    lea     addresses(%rip), %rsi
3:  mov     (%rsi), %rbx                // MMIO nothing claims: reads and writes of each width
    test    %rbx, %rbx
    jz      4f
    movb    $0xa5, (%rbx)
    movw    $0xa5a5, 2(%rbx)
    movl    $0xa5a5a5a5, 4(%rbx)
    movq    $-1, 8(%rbx)
    mov     (%rbx), %rax
    mov     8(%rbx), %eax
    add     $8, %rsi
    jmp     3b
4:  mov     $0x3fb, %dx                 // COM1 LCR: 8N1, divisor latch off
    mov     $0x03, %al
    out     %al, (%dx)
    mov     $0x3f9, %dx                 // COM1 IER: no interrupts
    xor     %al, %al
    out     %al, (%dx)
    lea     message(%rip), %rsi
    mov     $0x3f8, %dx
5:  lodsb
    test    %al, %al
    jz      6f
    out     %al, (%dx)
    jmp     5b
6:  mov     $0xfe, %al
    out     %al, $0x64
7:  cli
    hlt
    jmp     7b
    .balign 8
addresses:
    .quad   0x10000000, 0xC0000000, 0xD0001000, 0xFEBFF000, 0xFFFFF000, 0
message:
    .asciz  "\nwild guest survived\n"
