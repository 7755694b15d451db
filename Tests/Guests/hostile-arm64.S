// arm64 test guest that attacks every emulated device register on purpose: across the whole
// 4 KiB page of the PL011 (0x09000000), PL031 (0x09010000) and PL061 (0x09030000), every
// word offset is written at widths 1, 2, 4 and 8 (8 where 8-aligned: with the MMU off all
// accesses are Device-nGnRnE and must be naturally aligned). Where the devices have
// registers (the low offsets, PL061's GPIODATA ends and control block, the PrimeCell ID
// block) each width gets every extreme value (0, all ones, 0x80.., 0x7F.., 0x55.., 0xAA..)
// with a read back after each write, plus byte and halfword accesses inside the word;
// elsewhere each access gets the next value in turn. Then every word offset of each device
// is read back at every width. About 30,000 MMIO exits. Writing UARTDR prints garbage.
// A VMM that survives: the guest restores the PL011, prints that it survived and calls
// PSCI SYSTEM_OFF. No HVC before that (KVM's PSCI handling zeroes x1-x3). Position
// independent (adr only), so it also runs where QEMU loads a raw binary (0x40000000).
    .text
    .globl _start

// Every value of row ROW of `values` (ROW 0-3: bytes, halfwords, words, doublewords)
// stored at [x0, #OFF] with ST from register R3 (R: w or x), each read back with LD.
    .macro write_read_all st, ld, r, row, off
    mov     x10, #0
97: add     x9, x24, #(\row * 48)
    ldr     x3, [x9, x10, lsl #3]
    \st     \r\()3, [x0, #\off]
    \ld     \r\()4, [x0, #\off]
    add     x10, x10, #1
    cmp     x10, #6
    b.lo    97b
    .endm

// The next value in turn (x23) of row ROW stored at [x0, #OFF]; READ nonzero: read back.
    .macro write_next st, ld, r, row, off, read
    add     x9, x24, #(\row * 48)
    ldr     x3, [x9, x23, lsl #3]
    \st     \r\()3, [x0, #\off]
    .if \read
    \ld     \r\()4, [x0, #\off]
    .endif
    add     x23, x23, #1
    cmp     x23, #6
    csel    x23, x23, xzr, lo
    .endm

_start:
    adr     x19, devices
    adr     x24, values
    mov     x23, #0
1:  ldr     x20, [x19], #8              // device base; 0 ends the list
    cbz     x20, 20f
    mov     x22, #0                     // offset in the device's page
2:  add     x0, x20, x22
    // Is the offset in one of the device's register windows (.hword start, end; end 0 ends)?
    mov     x9, x19
3:  ldrh    w12, [x9], #2
    ldrh    w13, [x9], #2
    cbz     w13, 6f                     // not in any: the sparse treatment
    cmp     x22, x12
    b.lo    3b
    cmp     x22, x13
    b.hs    3b
    // A register: every value at every width, each read back.
    write_read_all strb, ldrb, w, 0, 0
    write_read_all strh, ldrh, w, 1, 0
    write_read_all str, ldr, w, 2, 0
    tst     x22, #7
    b.ne    4f
    write_read_all str, ldr, x, 3, 0
4:  write_next strb, ldrb, w, 0, 1, 1   // bytes and the halfword inside the word
    write_next strb, ldrb, w, 0, 2, 1
    write_next strb, ldrb, w, 0, 3, 1
    write_next strh, ldrh, w, 1, 2, 1
    b       8f
    // Elsewhere in the page: one write per width, values in turn (read back below).
6:  write_next strb, ldrb, w, 0, 0, 0
    write_next strh, ldrh, w, 1, 0, 0
    write_next str, ldr, w, 2, 0, 0
    tst     x22, #7
    b.ne    8f
    write_next str, ldr, x, 3, 0, 0
8:  add     x22, x22, #4
    cmp     x22, #0x1000
    b.lo    2b
    // Every word offset of the page read back at every width.
    mov     x22, #0
9:  add     x0, x20, x22
    ldrb    w4, [x0]
    ldrh    w4, [x0]
    ldr     w4, [x0]
    tst     x22, #7
    b.ne    10f
    ldr     x4, [x0]
10: add     x22, x22, #4
    cmp     x22, #0x1000
    b.lo    9b
    // Past this device's windows to the next entry (8-aligned).
11: ldrh    w12, [x19], #2
    ldrh    w13, [x19], #2
    cbnz    w13, 11b
    add     x19, x19, #7
    and     x19, x19, #~7
    b       1b

    // The end: the PL011 back to a sane state (UART, TX and RX enabled, 8-bit words with
    // FIFOs, no interrupts), the message, PSCI SYSTEM_OFF.
20: movz    x1, #0x0900, lsl #16        // PL011 base
    mov     w2, #0x300
    str     w2, [x1, #0x30]             // UARTCR: disabled while reprogrammed
    str     wzr, [x1, #0x38]            // UARTIMSC: no interrupts
    mov     w2, #0x7ff
    str     w2, [x1, #0x44]             // UARTICR: clear every interrupt
    mov     w2, #0x70
    str     w2, [x1, #0x2c]             // UARTLCR_H: 8 bits, FIFOs on
    mov     w2, #0x301
    str     w2, [x1, #0x30]             // UARTCR: UARTEN | TXE | RXE
    adr     x2, message
21: ldrb    w3, [x2], #1
    cbz     w3, 23f
22: ldr     w4, [x1, #0x18]             // UARTFR
    tbnz    w4, #5, 22b                 // wait while TXFF
    strb    w3, [x1]                    // UARTDR
    b       21b
23: movz    x0, #0x0008                 // PSCI_0_2_FN_SYSTEM_OFF = 0x84000008
    movk    x0, #0x8400, lsl #16
    hvc     #0
24: wfi
    b       24b

    .balign 8
// Rows of six: bytes, halfwords, words, doublewords (each 8 bytes wide here).
values:
    .quad   0x00, 0xff, 0x80, 0x7f, 0x55, 0xaa
    .quad   0x0000, 0xffff, 0x8000, 0x7fff, 0x5555, 0xaaaa
    .quad   0x00000000, 0xffffffff, 0x80000000, 0x7fffffff, 0x55555555, 0xaaaaaaaa
    .quad   0x0000000000000000, 0xffffffffffffffff, 0x8000000000000000
    .quad   0x7fffffffffffffff, 0x5555555555555555, 0xaaaaaaaaaaaaaaaa
// Each device: base, then register windows [start, end) as .hword pairs, ended by 0, 0.
devices:
    .quad   0x09000000                  // PL011: DR..DMACR and beyond, the ID block
    .hword  0x000, 0x080, 0xfc0, 0x1000, 0, 0
    .balign 8
    .quad   0x09010000                  // PL031: DR..ICR and beyond, the ID block
    .hword  0x000, 0x080, 0xfc0, 0x1000, 0, 0
    .balign 8
    .quad   0x09030000                  // PL061: GPIODATA's ends, DIR..AFSEL and beyond, IDs
    .hword  0x000, 0x040, 0x3c0, 0x480, 0xfc0, 0x1000, 0, 0
    .balign 8
    .quad   0
message:
    .asciz  "\nhostile guest survived\n"
