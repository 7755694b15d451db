// Tiny arm64 test guest. Swiftlet loads images without an arm64 Image header at
// RAM base + 0x80000 and enters them at EL1 with the MMU off.
// Prints a line on the PL011 at 0x09000000 (one MMIO exit per byte), then calls
// PSCI SYSTEM_OFF through HVC, which ends swiftlet with status 0.
    .text
    .globl _start
_start:
    movz    x1, #0x0900, lsl #16        // PL011 base
    adr     x2, message
1:  ldrb    w3, [x2], #1
    cbz     w3, 2f
3:  ldr     w4, [x1, #0x18]             // UARTFR
    tbnz    w4, #5, 3b                  // wait while TXFF (transmit FIFO full)
    strb    w3, [x1]                    // UARTDR
    b       1b
2:  movz    x0, #0x0008                 // PSCI_0_2_FN_SYSTEM_OFF = 0x84000008
    movk    x0, #0x8400, lsl #16
    hvc     #0
4:  wfi
    b       4b
message:
    .asciz  "Hello from a Swiftlet arm64 guest\n"
