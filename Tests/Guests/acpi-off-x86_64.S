// Tiny x86_64 test guest: prints a line on COM1, then powers off as Linux's acpi_power_off
// does on a hardware-reduced ACPI machine: WAK_STS to the sleep status register, then
// SLP_TYP 5 (the DSDT's \_S5_) with SLP_EN to the sleep control register, both the byte at
// I/O port 0x600 that Swiftlet's FADT names. Swiftlet ends with "guest powered off (ACPI S5)".
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
2:  mov     $0x600, %dx
    mov     $0x80, %al          // WAK_STS: clear (does not power off)
    out     %al, (%dx)
    mov     $0x34, %al          // SLP_TYP 5 << 2 | SLP_EN
    out     %al, (%dx)
3:  cli
    hlt
    jmp     3b
message:
    .asciz  "ACPI soft-off from a Swiftlet x86_64 guest\n"
