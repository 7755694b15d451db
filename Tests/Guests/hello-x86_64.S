// Tiny x86_64 test guest. Swiftlet enters raw images at 1 MiB in 64-bit long mode.
// Prints a line on COM1 (port 0x3F8, one I/O exit per byte), then asks the i8042 to reset
// the CPU (what Linux does with reboot=k), which ends swiftlet with status 0.
    .code64
    .text
    .globl _start
_start:
    lea     message(%rip), %rsi
    mov     $0x3f8, %dx
1:  lodsb
    test    %al, %al
    jz      2f
    out     %al, (%dx)
    jmp     1b
2:  mov     $0xfe, %al          // i8042 command: pulse the CPU reset line
    out     %al, $0x64
3:  cli
    hlt
    jmp     3b
message:
    .asciz  "Hello from a Swiftlet x86_64 guest\n"
