// arm64 test guest that misbehaves on purpose: it writes 0xA5A5A5A5 to and reads back
// every word of the PL011's, PL031's and PL061's 4 KiB windows (every register, the ID
// registers and the reserved gaps), then a word every 64 bytes across the unclaimed MMIO
// around them, then pokes unclaimed MMIO further out (the virtio-mmio window, high
// addresses). A VMM that survives: the guest prints that it did and calls PSCI SYSTEM_OFF.
    .text
    .globl _start
_start:
    movz    w3, #0xa5a5
    movk    w3, #0xa5a5, lsl #16
    adr     x5, devices
7:  ldr     x1, [x5], #8                // each device window, word by word
    cbz     x1, 9f
    add     x2, x1, #0x1000
8:  str     w3, [x1]
    ldr     w4, [x1]
    add     x1, x1, #4
    cmp     x1, x2
    b.lo    8b
    b       7b
9:  movz    x1, #0x0900, lsl #16        // 0x09000000
    movz    x2, #0x0904, lsl #16        // end: 0x09040000
1:  str     w3, [x1]
    ldr     w4, [x1]
    add     x1, x1, #64
    cmp     x1, x2
    b.lo    1b
    adr     x5, addresses
2:  ldr     x1, [x5], #8
    cbz     x1, 3f
    strb    w3, [x1]
    strh    w3, [x1, #2]
    str     w3, [x1, #4]
    str     x3, [x1, #8]
    ldr     x4, [x1]
    b       2b
3:  movz    x1, #0x0900, lsl #16
    adr     x2, message
4:  ldrb    w3, [x2], #1
    cbz     w3, 5f
    strb    w3, [x1]                    // UARTDR
    b       4b
5:  movz    x0, #0x0008                 // PSCI_0_2_FN_SYSTEM_OFF
    movk    x0, #0x8400, lsl #16
    hvc     #0
6:  wfi
    b       6b
    .balign 8
devices:                                // PL011, PL031, PL061 (QEMU virt's map)
    .quad   0x09000000, 0x09010000, 0x09030000, 0
addresses:
    .quad   0x0a000000, 0x0a003e00, 0x10000000, 0x3ffff000, 0x8000000000, 0
message:
    .asciz  "\nwild guest survived\n"
