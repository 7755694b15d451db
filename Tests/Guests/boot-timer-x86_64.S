// Tiny x86_64 test guest for --boot-timer: writes the byte 123 to the boot timer at
// 0xD000_0000 (Firecracker's address; identity-mapped, outside RAM: one MMIO exit), reads
// it back (0), writes 123 once more (a repeat, not reported) and a 16-bit 123 (ignored),
// prints "boot timer signalled, read 0" on COM1 (the digit is what the read gave, or '?'
// for anything but 0), then resets through the i8042. Without --boot-timer the accesses go
// to unclaimed MMIO: counted, not fatal.
    .equ    BOOT_TIMER, 0xD0000000
    .code64
    .text
    .globl _start
_start:
    mov     $BOOT_TIMER, %edi       // zero-extended: identity-mapped below 4 GiB
    movb    $123, (%rdi)            // the signal
    movb    (%rdi), %bl             // reads return 0
    movb    $123, (%rdi)            // a second signal: counted, not reported
    movw    $123, (%rdi)            // not a byte: ignored, counted
    mov     $'0', %bh
    test    %bl, %bl
    jz      1f
    mov     $'?', %bh
1:  lea     message(%rip), %rsi
    mov     $0x3f8, %dx
2:  lodsb
    test    %al, %al
    jz      3f
    out     %al, (%dx)
    jmp     2b
3:  mov     %bh, %al                // the value read, then a newline
    out     %al, (%dx)
    mov     $'\n', %al
    out     %al, (%dx)
    mov     $0xfe, %al              // i8042 command: pulse the CPU reset line
    out     %al, $0x64
4:  cli
    hlt
    jmp     4b
message:
    .asciz  "boot timer signalled, read "
