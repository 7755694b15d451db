// Tiny arm64 test guest for --boot-timer: writes the byte 123 to Swiftlet's arm64 boot
// timer at 0x0B00_0000 (MMU off: device memory, one MMIO exit), reads it back (0), writes
// 123 once more (a repeat, not reported) and a 16-bit 123 (ignored), prints "boot timer
// signalled, read 0" on the PL011 (the digit is what the read gave, or '?' for anything
// but 0), then calls PSCI SYSTEM_OFF. Without --boot-timer the accesses go to unclaimed
// MMIO: counted, not fatal. Runs only where arm64 KVM is (the nested arm64 L1).
    .text
    .globl _start
_start:
    movz    x5, #0x0B00, lsl #16        // the boot timer
    mov     w6, #123
    strb    w6, [x5]                    // the signal
    ldrb    w7, [x5]                    // reads return 0
    strb    w6, [x5]                    // a second signal: counted, not reported
    strh    w6, [x5]                    // not a byte: ignored, counted
    mov     w8, #'0'
    cbz     w7, 1f
    mov     w8, #'?'
1:  movz    x1, #0x0900, lsl #16        // PL011 base
    adr     x2, message
2:  ldrb    w3, [x2], #1
    cbz     w3, 3f
    bl      putc
    b       2b
3:  mov     w3, w8                      // the value read, then a newline
    bl      putc
    mov     w3, #'\n'
    bl      putc
    movz    x0, #0x0008                 // PSCI_0_2_FN_SYSTEM_OFF = 0x84000008
    movk    x0, #0x8400, lsl #16
    hvc     #0
4:  wfi
    b       4b
// w3 to the PL011 at x1, once its transmit FIFO has room.
putc:
    ldr     w4, [x1, #0x18]             // UARTFR
    tbnz    w4, #5, putc                // wait while TXFF (transmit FIFO full)
    strb    w3, [x1]                    // UARTDR
    ret
message:
    .asciz  "boot timer signalled, read "
