// Tiny arm64 guest for the PL031 RTC's match interrupt (ARM DDI 0224), through the vGICv3.
// 1. Reads the eight ID registers at 0xFE0-0xFFC and prints them:
//      "PL031 IDs: 31 10 04 00 0d f0 05 b1"
//    then "PL031 IDs match the TRM" or "PL031 ID mismatch".
// 2. Sets up the GICv3 for SPI 2 (INTID 34, level, group 1, routed to this vCPU) and for the
//    virtual timer's PPI (INTID 27), which bounds the wait: distributor (ARE, EnableGrp1,
//    IGROUPR, IPRIORITYR, IROUTER, ISENABLER), this vCPU's redistributor (WAKER, IGROUPR0,
//    ISENABLER0), the CPU interface (ICC_SRE_EL1, ICC_PMR_EL1, ICC_IGRPEN1_EL1).
// 3. Waits for RTCDR to change (a second boundary), programs RTCMR = RTCDR + 1, unmasks
//    RTCIMSC, arms the virtual timer 5 s ahead, and waits with WFI (PSTATE.I stays masked:
//    WFI still wakes on a pending interrupt), then acknowledges with ICC_IAR1_EL1:
//      INTID 34, RTCMIS = 1, RTCDR = RTCMR: clears with RTCICR (RTCRIS reads 0 after),
//      EOIs, prints "rtc-alarm: interrupt 34 after S.mmm s, RTCDR D = RTCMR, MIS 1 -> 0"
//      and "rtc-alarm guest passed";
//      anything else: "rtc-alarm FAILED: ..." (INTID 27 is the 5 s timeout).
// 4. Powers off with PSCI SYSTEM_OFF.
    .text
    .globl _start
_start:
    movz    x19, #0x0901, lsl #16       // PL031
    movz    x20, #0x0800, lsl #16       // GICv3 distributor
    movz    x21, #0x080a, lsl #16       // redistributor of vCPU 0 (RD_base; SGI_base + 0x10000)
    mrs     x28, cntfrq_el0

    // --- 1. identification registers
    adr     x0, ids
    bl      print
    mov     x22, #0xfe0
    adr     x23, expected
    mov     x18, #0                     // mismatches
1:  ldr     w25, [x19, x22]
    mov     w0, #' '
    bl      putc
    mov     w0, w25
    bl      puthex2
    ldrb    w26, [x23], #1
    cmp     w25, w26
    cinc    x18, x18, ne
    add     x22, x22, #4
    cmp     x22, #0x1000
    b.lo    1b
    adr     x0, newline
    bl      print
    adr     x0, idsok
    cbz     x18, 2f
    adr     x0, idsbad
2:  bl      print

    // --- 2. GICv3
    mov     w0, #0x12                   // GICD_CTLR: ARE (bit 4) | EnableGrp1 (bit 1)
    str     w0, [x20]
3:  ldr     w0, [x20]                   // wait while RWP (bit 31)
    tbnz    w0, #31, 3b
    mov     w0, #(1 << 2)               // INTID 34 = SPI 2: bit 2 of the second word
    str     w0, [x20, #0x084]           // GICD_IGROUPR1: group 1
    mov     w1, #0xa0
    add     x2, x20, #0x400
    strb    w1, [x2, #34]               // GICD_IPRIORITYR byte 34
    add     x2, x20, #0x6000
    str     xzr, [x2, #(8 * 34)]        // GICD_IROUTER34: affinity 0.0.0.0 (this vCPU)
    str     w0, [x20, #0x104]           // GICD_ISENABLER1
    ldr     w0, [x21, #0x14]            // GICR_WAKER: clear ProcessorSleep (bit 1)
    bic     w0, w0, #(1 << 1)
    str     w0, [x21, #0x14]
4:  ldr     w0, [x21, #0x14]            // wait while ChildrenAsleep (bit 2)
    tbnz    w0, #2, 4b
    add     x2, x21, #0x10000           // SGI_base
    mov     w0, #(1 << 27)              // INTID 27: the EL1 virtual timer
    str     w0, [x2, #0x080]            // GICR_IGROUPR0: group 1
    mov     w1, #0xa0
    add     x3, x2, #0x400
    strb    w1, [x3, #27]               // GICR_IPRIORITYR byte 27
    str     w0, [x2, #0x100]            // GICR_ISENABLER0
    mrs     x0, S3_0_C12_C12_5          // ICC_SRE_EL1: SRE
    orr     x0, x0, #1
    msr     S3_0_C12_C12_5, x0
    isb
    mov     x0, #0xff
    msr     S3_0_C4_C6_0, x0            // ICC_PMR_EL1: let every priority through
    mov     x0, #1
    msr     S3_0_C12_C12_7, x0          // ICC_IGRPEN1_EL1: group 1 on
    isb

    // --- 3. the alarm: from a second boundary, RTCMR = RTCDR + 1
    mov     w0, #1
    str     w0, [x19, #0x1c]            // RTCICR: nothing left from before
    ldr     w22, [x19]                  // RTCDR
    lsr     x5, x28, #7                 // poll every 1/128 s (few MMIO exits)
5:  mrs     x6, cntvct_el0
    add     x6, x6, x5
6:  mrs     x7, cntvct_el0
    cmp     x7, x6
    b.lo    6b
    ldr     w23, [x19]
    cmp     w23, w22
    b.eq    5b
    add     w24, w23, #1                // the match: one second from this boundary
    str     w24, [x19, #0x04]           // RTCMR
    mov     w0, #1
    str     w0, [x19, #0x10]            // RTCIMSC: unmasked
    mrs     x25, cntvct_el0             // start
    mov     x0, #5
    mul     x0, x0, x28
    add     x0, x0, x25
    msr     cntv_cval_el0, x0           // the bound: 5 s
    add     x23, x0, x28                // and if even the timer stays away: 6 s
    mov     x0, #1
    msr     cntv_ctl_el0, x0            // enabled, not masked
    isb
7:  wfi
    mrs     x26, S3_0_C12_C12_0         // ICC_IAR1_EL1
    and     x26, x26, #0xffffff
    cmp     x26, #1020
    b.lo    17f
    mrs     x7, cntvct_el0              // spurious: nothing pending yet
    cmp     x7, x23
    b.lo    7b
    adr     x0, notimer
    b       9f
17:
    mrs     x27, cntvct_el0
    msr     cntv_ctl_el0, xzr           // timer off
    isb
    cmp     x26, #34
    b.ne    fail_intid
    ldr     w23, [x19, #0x18]           // RTCMIS
    cmp     w23, #1
    b.ne    fail_mis
    ldr     w22, [x19]                  // RTCDR at the interrupt
    cmp     w22, w24
    b.ne    fail_dr
    mov     w0, #1
    str     w0, [x19, #0x1c]            // RTCICR
    ldr     w23, [x19, #0x14]           // RTCRIS after the clear
    msr     S3_0_C12_C12_1, x26         // ICC_EOIR1_EL1
    isb
    cbnz    w23, fail_clear
    adr     x0, took
    bl      print
    sub     x0, x27, x25                // elapsed ticks -> milliseconds
    mov     x1, #1000
    mul     x0, x0, x1
    udiv    x0, x0, x28
    mov     x1, #1000
    udiv    x25, x0, x1
    msub    x26, x25, x1, x0
    mov     x0, x25
    bl      putdec
    mov     w0, #'.'
    bl      putc
    mov     x0, #100
    udiv    x1, x26, x0
    add     w0, w1, #'0'
    bl      putc
    mov     x0, #10
    udiv    x1, x26, x0
    mov     x2, #10
    udiv    x3, x1, x2
    msub    x1, x3, x2, x1
    add     w0, w1, #'0'
    bl      putc
    mov     x2, #10
    udiv    x3, x26, x2
    msub    x1, x3, x2, x26
    add     w0, w1, #'0'
    bl      putc
    adr     x0, rtcdr
    bl      print
    mov     x0, x22
    bl      putdec
    adr     x0, tail
    bl      print
    cbnz    x18, off                    // an ID mismatch already failed the run
    adr     x0, passed
    bl      print
    b       off

fail_intid:
    adr     x0, badintid
    bl      print
    mov     x0, x26
    bl      putdec
    cmp     x26, #27
    b.ne    8f
    adr     x0, timeout
    bl      print
8:  adr     x0, newline
    bl      print
    b       off
fail_mis:
    adr     x0, badmis
    b       9f
fail_dr:
    adr     x0, baddr
    b       9f
fail_clear:
    adr     x0, badclear
9:  bl      print
off:
    movz    x0, #0x0008                 // PSCI_0_2_FN_SYSTEM_OFF = 0x84000008
    movk    x0, #0x8400, lsl #16
    hvc     #0
10: wfi
    b       10b

// print: the NUL-terminated string at x0 on the PL011 (x0-x4 clobbered).
print:
    mov     x4, x30
    mov     x2, x0
11: ldrb    w0, [x2], #1
    cbz     w0, 12f
    bl      putc
    b       11b
12: mov     x30, x4
    ret

// putc: the byte in w0 on the PL011 (x1, x3 clobbered).
putc:
    movz    x1, #0x0900, lsl #16        // PL011 base
13: ldr     w3, [x1, #0x18]             // UARTFR
    tbnz    w3, #5, 13b                 // wait while TXFF
    strb    w0, [x1]                    // UARTDR
    ret

// puthex2: the low byte of w0 as two hex digits (x0-x3, x5-x7 clobbered).
puthex2:
    mov     x7, x30
    mov     w5, w0
    adr     x6, hexdigits
    ubfx    w0, w5, #4, #4
    ldrb    w0, [x6, x0]
    bl      putc
    and     w0, w5, #0xf
    ldrb    w0, [x6, x0]
    bl      putc
    mov     x30, x7
    ret

// putdec: x0 in decimal (x0-x3, x5-x9 clobbered).
putdec:
    mov     x9, x30
    adr     x5, digits + 20             // built backwards
    mov     x6, #10
14: udiv    x7, x0, x6
    msub    x8, x7, x6, x0
    add     w8, w8, #'0'
    strb    w8, [x5, #-1]!
    mov     x0, x7
    cbnz    x0, 14b
15: ldrb    w0, [x5], #1
    cbz     w0, 16f
    bl      putc
    b       15b
16: mov     x30, x9
    ret

ids:       .asciz "PL031 IDs:"
idsok:     .asciz "PL031 IDs match the TRM\n"
idsbad:    .asciz "PL031 ID mismatch (TRM: 31 10 04 00 0d f0 05 b1)\n"
took:      .asciz "rtc-alarm: interrupt 34 after "
rtcdr:     .asciz " s, RTCDR "
tail:      .asciz " = RTCMR, MIS 1 -> 0\n"
passed:    .asciz "rtc-alarm guest passed\n"
badintid:  .asciz "rtc-alarm FAILED: acknowledged INTID "
timeout:   .asciz " (the 5 s timeout: no RTC interrupt)"
badmis:    .asciz "rtc-alarm FAILED: RTCMIS is not 1 at the interrupt\n"
baddr:     .asciz "rtc-alarm FAILED: RTCDR is not RTCMR at the interrupt\n"
badclear:  .asciz "rtc-alarm FAILED: RTCRIS still set after RTCICR\n"
notimer:   .asciz "rtc-alarm FAILED: no interrupt at all within 6 s (not even the timer)\n"
newline:   .asciz "\n"
hexdigits: .ascii "0123456789abcdef"
expected:  .byte 0x31, 0x10, 0x04, 0x00, 0x0d, 0xf0, 0x05, 0xb1
digits:    .fill 20, 1, 0
           .byte 0
