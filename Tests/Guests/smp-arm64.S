// Tiny arm64 SMP test guest: the boot vCPU starts vCPU 1, 2, … in turn with PSCI CPU_ON
// (context_id = N) until one is refused. Each secondary stores the affinity-0 digit of its
// own MPIDR_EL1 in slot context_id of `arrived`; the boot vCPU waits up to 10 s (the
// generic timer) for slot N and prints "vCPU D up" with the digit D the secondary wrote
// (a vCPU started with the wrong MPIDR, or a lost context_id, shows), or "vCPU N missing", then
// "CPU_ON N refused (PSCI error -E)" for the first vCPU PSCI refuses, and powers off. With --cpus 4
// the output must be exactly vCPU 1, 2 and 3 up and CPU_ON 4 refused.
// The MMU is off: every access is Device memory, coherent between vCPUs, no atomics needed.
    .text
    .globl _start
_start:
    adr     x0, hello
    bl      print
    mov     x19, #1                     // the vCPU to start
1:  movz    x0, #0x0003                 // PSCI_0_2_FN64_CPU_ON = 0xC4000003
    movk    x0, #0xc400, lsl #16
    mov     x1, x19                     // target MPIDR: KVM gives vCPU n affinity 0 = n (n < 16)
    adr     x2, secondary
    mov     x3, x19                     // context_id: the slot the secondary reports in
    hvc     #0
    cbnz    x0, 5f                      // not PSCI_SUCCESS
    adr     x20, arrived
    mrs     x21, cntfrq_el0             // deadline: 10 s of the virtual counter from now
    mov     x24, #10
    mul     x21, x21, x24
    mrs     x24, cntvct_el0
    add     x21, x21, x24
2:  ldrb    w22, [x20, x19]
    cbnz    w22, 3f
    mrs     x24, cntvct_el0
    cmp     x24, x21
    b.lo    2b
    adr     x0, vcpu
    bl      print
    add     w0, w19, #'0'
    bl      putc
    adr     x0, missing
    bl      print
    b       4f
3:  adr     x0, vcpu
    bl      print
    mov     w0, w22                     // what the secondary wrote
    bl      putc
    adr     x0, up
    bl      print
4:  add     x19, x19, #1
    cmp     x19, #9                     // `arrived` has slots for vCPUs 1-8
    b.lo    1b
    b       11f
5:  mov     x23, x0
    adr     x0, cpuon
    bl      print
    add     w0, w19, #'0'
    bl      putc
    adr     x0, refused
    bl      print
    neg     w0, w23                     // PSCI errors are -1 … -9
    add     w0, w0, #'0'
    bl      putc
    adr     x0, close
    bl      print
11: movz    x0, #0x0008                 // PSCI_0_2_FN_SYSTEM_OFF = 0x84000008
    movk    x0, #0x8400, lsl #16
    hvc     #0
6:  wfi
    b       6b

secondary:                              // x0: context_id
    mrs     x5, mpidr_el1
    and     x5, x5, #0xff
    adr     x6, arrived
    add     w7, w5, #'0'
    and     x0, x0, #0xf                // stay inside `arrived` whatever arrives
    strb    w7, [x6, x0]
    dsb     sy
    movz    x0, #0x0002                 // PSCI_0_2_FN_CPU_OFF = 0x84000002
    movk    x0, #0x8400, lsl #16
    hvc     #0
7:  wfi
    b       7b

// print: the NUL-terminated string at x0 on the PL011 (x0-x4 clobbered).
print:
    mov     x4, x30
    mov     x2, x0
8:  ldrb    w0, [x2], #1
    cbz     w0, 9f
    bl      putc
    b       8b
9:  mov     x30, x4
    ret

// putc: the byte in w0 on the PL011 (x1, x3 clobbered).
putc:
    movz    x1, #0x0900, lsl #16        // PL011 base
10: ldr     w3, [x1, #0x18]             // UARTFR
    tbnz    w3, #5, 10b                 // wait while TXFF
    strb    w0, [x1]                    // UARTDR
    ret

hello:   .asciz "Hello from a Swiftlet arm64 SMP guest\n"
vcpu:    .asciz "vCPU "
up:      .asciz " up\n"
missing: .asciz " missing\n"
cpuon:   .asciz "CPU_ON "
refused: .asciz " refused (PSCI error -"
close:   .asciz ")\n"
    .balign 8
arrived: .fill 16, 1, 0
