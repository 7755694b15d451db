// arm64 test guest that drives a virtio-rng device (virtio-mmio version 2) with garbage
// and checks every answer against what Sources/Devices/Virtio/{MMIOTransport,Virtqueue,
// Entropy}.swift do: the arm64 twin of hostile-virtio-x86_64.S, step for step and case for
// case. Run it with `--memory 64 --rng` (the rng may sit behind a disk: the guest looks
// for it in the first eight slots from 0x0A00_0000, step 0x200).
//  1. identity: magic, version 2, device id 4, QueueNumMax 256 (0 for a queue that does
//     not exist), the offered features (INDIRECT_DESC, EVENT_IDX; VERSION_1), config 0.
//  2. status out of order: DRIVER_OK, DRIVER or DEVICE_NEEDS_RESET first, FEATURES_OK
//     before DRIVER, DRIVER_OK before FEATURES_OK, a bit cleared, features written before
//     DRIVER, features without VERSION_1 or with a bit not offered: all refused.
//  3. bad queue sizes (0, 3, 6, 65535, 257, 512, 65536) make DRIVER_OK end in
//     DEVICE_NEEDS_RESET; sizes 1 and 256 are taken.
//  4. rings outside RAM, across its ends (below 0x4000_0000 too), at the top of the
//     address space, in the virtio window or misaligned: DEVICE_NEEDS_RESET at DRIVER_OK;
//     rings ending at RAM's end work.
//  5. garbage chains behind a proper setup, one per activation, each followed by
//     QueueNotify: the ones the queue refuses must set DEVICE_NEEDS_RESET, the ones it
//     legitimately serves must come back in the used ring with the exact length; after
//     each, a reset and a good request.
//  6. registers the driver may no longer change after DRIVER_OK, bogus notifications, two
//     good 64-byte requests (random, distinct, nothing written past them, the second one
//     raising the used-buffer interrupt bit, acknowledged), then avail.idx moving backwards.
// One line per step; "hostile virtio guest survived" only when every check held, otherwise
// "FAIL: <step>: <case>: <what> (last read 0x...)". Either way it calls PSCI SYSTEM_OFF.
// Every poll is bounded and reads the status register (one exit) per round.
//
// The MMU is off, so every data access is Device-nGnRnE: all of them are naturally
// aligned, and every MMIO access is a plain ldr/str (no writeback, no pairs) so that KVM
// gets a valid syndrome. The VMM touches the rings through the host's cacheable mapping,
// so the guest cleans and invalidates the scratch lines (dc civac) before it writes
// them, before each notification and before it reads what the device wrote (a no-op
// where the stage-2 forces write-back or the CPU is emulated).
    .set    RAM_BASE, 0x40000000
    .set    RAM_END, 0x44000000         // --memory 64
    .set    VIRTIO0, 0x0a000000         // virtio-mmio slot 0
    .set    VIRTIO_STRIDE, 0x200
    .set    VIRTIO_SLOTS, 8
    .set    POLL, 100000                // rounds of a bounded poll
    .set    MAGIC, 0x74726976           // "virt"
    // Scratch RAM (zeroed before every setup, CLEAR_SIZE bytes).
    .set    SCRATCH, RAM_BASE + 0x300000
    .set    CLEAR_SIZE, 0x4000
    .set    RINGS_SIZE, 0x1000          // the part with the small rings and buffers
    .set    DESC, SCRATCH               // descriptor table, 8 entries
    .set    AVAIL, SCRATCH + 0x100      // available ring: flags, idx, ring[8], used_event
    .set    USED, SCRATCH + 0x200       // used ring: flags, idx, ring[8] {id, len}, avail_event
    .set    IND, SCRATCH + 0x300        // an indirect table
    .set    IND2, SCRATCH + 0x400       // another one
    .set    BUF, SCRATCH + 0x800        // 64-byte buffers
    .set    BUF2, SCRATCH + 0x900
    .set    DESC_L, SCRATCH + 0x1000    // rings for 256 entries
    .set    AVAIL_L, SCRATCH + 0x2000
    .set    USED_L, SCRATCH + 0x3000
    .set    BIG, SCRATCH + 0x10000      // a buffer of 64 KiB + 1
    // virtio-mmio registers
    .set    R_MAGIC, 0x000
    .set    R_VERSION, 0x004
    .set    R_DEVICE_ID, 0x008
    .set    R_DEV_FEAT, 0x010
    .set    R_DEV_FEAT_SEL, 0x014
    .set    R_DRV_FEAT, 0x020
    .set    R_DRV_FEAT_SEL, 0x024
    .set    R_QUEUE_SEL, 0x030
    .set    R_QUEUE_NUM_MAX, 0x034
    .set    R_QUEUE_NUM, 0x038
    .set    R_QUEUE_READY, 0x044
    .set    R_QUEUE_NOTIFY, 0x050
    .set    R_ISR, 0x060
    .set    R_ISR_ACK, 0x064
    .set    R_STATUS, 0x070
    .set    R_DESC_LO, 0x080
    .set    R_DESC_HI, 0x084
    .set    R_AVAIL_LO, 0x090
    .set    R_AVAIL_HI, 0x094
    .set    R_USED_LO, 0x0a0
    .set    R_USED_HI, 0x0a4
    .set    R_CONFIG, 0x100
    // status bits: ACKNOWLEDGE 1, DRIVER 2, DRIVER_OK 4, FEATURES_OK 8, NEEDS_RESET 0x40, FAILED 0x80
    .set    S_RUNNING, 0x0f
    .set    S_BROKEN, 0x4f              // running + DEVICE_NEEDS_RESET
    .set    F_INDIRECT, 0x10000000      // VIRTIO_RING_F_INDIRECT_DESC (bit 28); VERSION_1 is bit 32
    // descriptor flags
    .set    N, 1                        // VIRTQ_DESC_F_NEXT
    .set    W, 2                        // VIRTQ_DESC_F_WRITE
    .set    I, 4                        // VIRTQ_DESC_F_INDIRECT
    // a ring case: name, QueueNum, desc, avail, used, 1 if the device takes it
    .set    Q_SIZE, 4
    .set    Q_DESC, 8
    .set    Q_AVAIL, 16
    .set    Q_USED, 24
    .set    Q_OK, 32
    .set    QCASE_SIZE, 40
    // a chain case: name, used entries expected (0: DEVICE_NEEDS_RESET expected), used len,
    // driver features (low word), head, avail.idx, 8 descriptors, an indirect table of 4
    .set    C_COUNT, 4
    .set    C_LEN, 8
    .set    C_FEAT, 12
    .set    C_HEAD, 16
    .set    C_IDX, 18
    .set    C_DESCS, 24
    .set    C_IND, 24 + 8 * 16
    .set    CASE_SIZE, 24 + 8 * 16 + 4 * 16

// Registers: x19 the device's window, x20 the step's name, x21 the case's name (0: none),
// w22 the last value read (for the failure line), x23/x24 the case table and its end,
// x25 the data cache line size. Helpers use x0-x15.

// 32-bit register accesses to the device at x19 (one exit each).
.macro wr off, val
    ldr     w9, =\val
    str     w9, [x19, #\off]
.endm
// Reads a register into w22; fails with `why` unless it is `val`.
.macro expect off, val, why
    ldr     w22, [x19, #\off]
    ldr     w9, =\val
    cmp     w22, w9
    b.eq    .Lok\@
    adr     x0, \why
    b       fail
.Lok\@:
.endm
.macro check_reg reg, val, why
    mov     w22, \reg
    ldr     w9, =\val
    cmp     w22, w9
    b.eq    .Lok\@
    adr     x0, \why
    b       fail
.Lok\@:
.endm
.macro say msg
    adr     x1, \msg
    bl      puts
.endm
.macro push_lr
    str     x30, [sp, #-16]!
.endm
.macro pop_lr
    ldr     x30, [sp], #16
.endm

    .text
    .globl _start
_start:
    ldr     x9, =RAM_BASE + 0x80000     // the stack grows down from the image
    mov     sp, x9
    mov     x21, #0
    mov     w22, #0
    mrs     x9, ctr_el0
    ubfx    x9, x9, #16, #4             // DminLine: log2 of the smallest line, in words
    mov     x25, #4
    lsl     x25, x25, x9

// --- 1. find the virtio-rng; identity registers.
    adr     x20, step1
    ldr     x19, =VIRTIO0
    mov     w24, #VIRTIO_SLOTS
10: ldr     w22, [x19, #R_MAGIC]
    ldr     w9, =MAGIC
    cmp     w22, w9
    b.ne    11f
    ldr     w22, [x19, #R_DEVICE_ID]
    cmp     w22, #4
    b.eq    12f
11: add     x19, x19, #VIRTIO_STRIDE
    subs    w24, w24, #1
    b.ne    10b
    adr     x0, why_no_rng
    b       fail
12: expect  R_MAGIC, MAGIC, why_magic
    expect  R_VERSION, 2, why_version
    expect  R_DEVICE_ID, 4, why_device_id
    expect  R_STATUS, 0, why_status_at_start
    wr      R_QUEUE_SEL, 0
    expect  R_QUEUE_NUM_MAX, 256, why_num_max
    expect  R_QUEUE_READY, 0, why_ready_at_start
    wr      R_QUEUE_SEL, 1
    expect  R_QUEUE_NUM_MAX, 0, why_num_max_q1
    wr      R_QUEUE_SEL, 0
    wr      R_DEV_FEAT_SEL, 0
    expect  R_DEV_FEAT, F_INDIRECT | 0x20000000, why_features_low
    wr      R_DEV_FEAT_SEL, 1
    expect  R_DEV_FEAT, 1, why_features_high
    wr      R_DEV_FEAT_SEL, 2
    expect  R_DEV_FEAT, 0, why_features_sel2
    wr      R_DEV_FEAT_SEL, 0
    expect  R_CONFIG, 0, why_config
    say     ok1
    mov     w0, w19
    bl      puthex32
    say     ok_end

// --- 2. status written out of order, features the device must not accept.
    adr     x20, step2
    wr      R_STATUS, 0
    expect  R_STATUS, 0, why_reset
    wr      R_STATUS, 4
    expect  R_STATUS, 0, why_driver_ok_first
    wr      R_STATUS, 2
    expect  R_STATUS, 0, why_driver_first
    wr      R_STATUS, 0x40
    expect  R_STATUS, 0, why_driver_sets_nr
    wr      R_STATUS, 1
    expect  R_STATUS, 1, why_ack
    wr      R_STATUS, 1 | 8
    expect  R_STATUS, 1, why_features_ok_before_driver
    wr      R_STATUS, 1 | 4
    expect  R_STATUS, 1, why_driver_ok_before_features_ok
    wr      R_DRV_FEAT_SEL, 1           // VERSION_1 before DRIVER: ignored
    wr      R_DRV_FEAT, 1
    wr      R_STATUS, 3
    expect  R_STATUS, 3, why_driver
    wr      R_STATUS, 3 | 8
    expect  R_STATUS, 3, why_early_features_kept
    wr      R_STATUS, 1
    expect  R_STATUS, 3, why_bit_cleared
    wr      R_DRV_FEAT_SEL, 1
    wr      R_DRV_FEAT, 0
    wr      R_DRV_FEAT_SEL, 0
    wr      R_DRV_FEAT, F_INDIRECT
    wr      R_STATUS, 3 | 8
    expect  R_STATUS, 3, why_no_version_1
    wr      R_STATUS, 3 | 8 | 4
    expect  R_STATUS, 3, why_driver_ok_without_features_ok
    wr      R_DRV_FEAT_SEL, 1
    wr      R_DRV_FEAT, 1
    wr      R_DRV_FEAT_SEL, 0
    wr      R_DRV_FEAT, F_INDIRECT | 1  // bit 0: not offered by virtio-rng
    wr      R_STATUS, 3 | 8
    expect  R_STATUS, 3, why_unoffered_feature
    wr      R_DRV_FEAT, F_INDIRECT
    wr      R_STATUS, 3 | 8
    expect  R_STATUS, 3 | 8, why_good_features
    wr      R_STATUS, S_RUNNING
    expect  R_STATUS, S_RUNNING, why_driver_ok
    wr      R_STATUS, 0
    expect  R_STATUS, 0, why_reset
    wr      R_STATUS, 0x80
    expect  R_STATUS, 0x80, why_failed
    bl      reset_dev
    say     ok2

// --- 3. bad queue sizes; 4. rings outside RAM.
    adr     x20, step3
    adr     x23, sizes
    adr     x24, sizes_end
    bl      ring_cases
    bl      good_request
    say     ok3
    adr     x20, step4
    ldr     x0, =RAM_END - 0x100        // the top of RAM, where some rings below end
    ldr     x1, =RAM_END
    bl      sync_range
    ldr     x0, =RAM_END - 0x100
    bl      zero_range
    ldr     x0, =RAM_END - 0x100
    bl      sync_range
    adr     x23, rings
    adr     x24, rings_end
    bl      ring_cases
    bl      good_request
    say     ok4

// --- 5. garbage chains.
    adr     x20, step5
    adr     x23, chains
    adr     x24, chains_end
50: ldrsw   x9, [x23]
    add     x21, x23, x9
    bl      mem_clear
    mov     w0, #8
    ldr     x1, =DESC
    ldr     x2, =AVAIL
    ldr     x3, =USED
    ldr     w4, [x23, #C_FEAT]
    bl      setup
    check_reg w0, S_RUNNING, why_setup
    add     x9, x23, #C_DESCS
    ldr     x10, =DESC
    mov     w11, #8                     // 8 descriptors
51: ldp     x12, x13, [x9], #16
    stp     x12, x13, [x10], #16
    subs    w11, w11, #1
    b.ne    51b
    ldr     x10, =IND                   // x9 is at C_IND now
    mov     w11, #4
52: ldp     x12, x13, [x9], #16
    stp     x12, x13, [x10], #16
    subs    w11, w11, #1
    b.ne    52b
    ldrh    w0, [x23, #C_HEAD]
    ldrh    w1, [x23, #C_IDX]
    mov     w2, #1                      // VIRTQ_AVAIL_F_NO_INTERRUPT
    bl      post
    ldr     w0, [x23, #C_COUNT]
    cbnz    w0, 53f
    bl      wait_needs_reset
    b       54f
53: bl      wait_used
    ldrh    w0, [x23, #C_HEAD]
    ldr     w1, [x23, #C_LEN]
    mov     w2, #0
    bl      check_used
    expect  R_ISR, 0, why_isr_served
54: bl      reset_dev
    bl      good_request
    add     x23, x23, #CASE_SIZE
    cmp     x23, x24
    b.lo    50b
    mov     x21, #0
    say     ok5

// --- 6. late register writes, bogus notifications, two good requests, avail.idx backwards.
    adr     x20, step6
    bl      mem_clear
    bl      setup_good
    wr      R_QUEUE_NUM, 3              // all refused once DRIVER_OK is set
    wr      R_DESC_LO, 0xfffff000
    wr      R_DESC_HI, 0xffffffff
    wr      R_AVAIL_LO, 0
    wr      R_USED_HI, 0xffffffff
    wr      R_QUEUE_READY, 1
    wr      R_DRV_FEAT_SEL, 1
    wr      R_DRV_FEAT, 0
    wr      R_QUEUE_NOTIFY, 1           // no queue 1
    wr      R_QUEUE_NOTIFY, 0xffffffff
    expect  R_STATUS, S_RUNNING, why_late_writes
    expect  R_QUEUE_READY, 1, why_late_ready
    ldr     x10, =DESC
    ldr     x9, =BUF
    str     x9, [x10]
    mov     w9, #64
    str     w9, [x10, #8]
    mov     w9, #W                      // flags WRITE, next 0
    str     w9, [x10, #12]
    mov     w0, #0
    mov     w1, #1
    mov     w2, #1
    bl      post
    mov     w0, #1
    bl      wait_used
    mov     w0, #0
    mov     w1, #64
    mov     w2, #0
    bl      check_used
    ldr     x1, =BUF
    bl      check_random
    ldr     x10, =BUF + 64              // nothing written past the buffer
    ldp     x9, x11, [x10]
    orr     x9, x9, x11
    ldr     x11, [x10, #56]
    orr     x9, x9, x11
    mov     w22, w9
    cbz     x9, 60f
    adr     x0, why_past_buffer
    b       fail
60: expect  R_ISR, 0, why_isr_served
    // The second request asks for an interrupt (avail.flags 0).
    ldr     x10, =DESC
    ldr     x9, =BUF2
    str     x9, [x10, #16]
    mov     w9, #64
    str     w9, [x10, #24]
    mov     w9, #W
    str     w9, [x10, #28]
    ldr     x10, =AVAIL
    mov     w9, #1
    strh    w9, [x10, #6]               // ring[1] = descriptor 1
    strh    wzr, [x10]                  // flags: interrupts wanted
    dmb     sy
    mov     w9, #2
    strh    w9, [x10, #2]               // idx
    bl      kick
    mov     w0, #2
    bl      wait_used
    mov     w0, #1
    mov     w1, #64
    mov     w2, #1
    bl      check_used
    ldr     x1, =BUF2
    bl      check_random
    ldr     x10, =BUF                   // two requests, two different fills
    ldr     x11, =BUF2
    mov     w12, #8
    mov     x9, #0
61: ldr     x13, [x10], #8
    ldr     x14, [x11], #8
    eor     x13, x13, x14
    orr     x9, x9, x13
    subs    w12, w12, #1
    b.ne    61b
    cbnz    x9, 62f
    adr     x0, why_same_bytes
    b       fail
62: ldr     w10, =POLL                  // VIRTIO_MMIO_INT_VRING follows the used entry
63: ldr     w22, [x19, #R_ISR]
    tbnz    w22, #0, 64f
    subs    w10, w10, #1
    b.ne    63b
    adr     x0, why_no_vring_interrupt
    b       fail
64: check_reg w22, 1, why_isr_bits
    wr      R_ISR_ACK, 1
    expect  R_ISR, 0, why_isr_ack
    ldr     x10, =AVAIL
    mov     w9, #1
    strh    w9, [x10, #2]               // avail.idx back from 2 to 1
    bl      kick
    bl      wait_needs_reset
    bl      reset_dev
    say     ok6
    say     survived
    b       power_off

// --- helpers. Each keeps x19-x28; uses x0-x15.

// Runs the ring cases from x23 to x24: set up with each, DRIVER_OK, check the status at
// once (activation builds the queues under the register lock), reset.
ring_cases:
    push_lr
1:  ldrsw   x9, [x23]
    add     x21, x23, x9
    bl      mem_clear
    ldr     w0, [x23, #Q_SIZE]
    ldr     x1, [x23, #Q_DESC]
    ldr     x2, [x23, #Q_AVAIL]
    ldr     x3, [x23, #Q_USED]
    ldr     w4, =F_INDIRECT
    bl      setup
    ldr     w9, [x23, #Q_OK]
    cbz     w9, 2f
    check_reg w0, S_RUNNING, why_good_rings_refused
    expect  R_ISR, 0, why_isr_good_rings
    b       3f
2:  check_reg w0, S_BROKEN, why_no_needs_reset_at_driver_ok
    expect  R_ISR, 2, why_isr_config
3:  bl      reset_dev
    add     x23, x23, #QCASE_SIZE
    cmp     x23, x24
    b.lo    1b
    mov     x21, #0
    pop_lr
    ret

// ACKNOWLEDGE, DRIVER, features VERSION_1 + w4, FEATURES_OK (checked), queue 0 with size
// w0 and rings x1, x2, x3, QueueReady (checked), DRIVER_OK. Returns the status read
// after DRIVER_OK in w0.
setup:
    wr      R_STATUS, 1
    wr      R_STATUS, 3
    wr      R_DRV_FEAT_SEL, 1
    wr      R_DRV_FEAT, 1
    wr      R_DRV_FEAT_SEL, 0
    str     w4, [x19, #R_DRV_FEAT]
    wr      R_STATUS, 3 | 8
    expect  R_STATUS, 3 | 8, why_features_refused
    wr      R_QUEUE_SEL, 0
    str     w0, [x19, #R_QUEUE_NUM]
    str     w1, [x19, #R_DESC_LO]
    lsr     x9, x1, #32
    str     w9, [x19, #R_DESC_HI]
    str     w2, [x19, #R_AVAIL_LO]
    lsr     x9, x2, #32
    str     w9, [x19, #R_AVAIL_HI]
    str     w3, [x19, #R_USED_LO]
    lsr     x9, x3, #32
    str     w9, [x19, #R_USED_HI]
    wr      R_QUEUE_READY, 1
    expect  R_QUEUE_READY, 1, why_queue_ready
    wr      R_STATUS, S_RUNNING
    ldr     w22, [x19, #R_STATUS]
    mov     w0, w22
    ret

// A proper setup in the (cleared) scratch RAM: size 8, INDIRECT_DESC; must run.
setup_good:
    push_lr
    mov     w0, #8
    ldr     x1, =DESC
    ldr     x2, =AVAIL
    ldr     x3, =USED
    ldr     w4, =F_INDIRECT
    bl      setup
    check_reg w0, S_RUNNING, why_setup
    pop_lr
    ret

// After a reset: a proper setup and one 64-byte device-writable request, served with
// 64 random bytes; then a reset.
good_request:
    stp     x20, x30, [sp, #-16]!
    adr     x20, step_good
    bl      mem_clear
    bl      setup_good
    ldr     x10, =DESC
    ldr     x9, =BUF
    str     x9, [x10]
    mov     w9, #64
    str     w9, [x10, #8]
    mov     w9, #W
    str     w9, [x10, #12]
    mov     w0, #0
    mov     w1, #1
    mov     w2, #1
    bl      post
    mov     w0, #1
    bl      wait_used
    mov     w0, #0
    mov     w1, #64
    mov     w2, #0
    bl      check_used
    ldr     x1, =BUF
    bl      check_random
    bl      reset_dev
    ldp     x20, x30, [sp], #16
    ret

// Makes descriptor w0 the head in every available ring slot, avail.flags = w2,
// avail.idx = w1, then notifies queue 0.
post:
    ldr     x10, =AVAIL
    strh    w0, [x10, #4]
    strh    w0, [x10, #6]
    strh    w0, [x10, #8]
    strh    w0, [x10, #10]
    strh    w0, [x10, #12]
    strh    w0, [x10, #14]
    strh    w0, [x10, #16]
    strh    w0, [x10, #18]
    strh    w2, [x10]
    dmb     sy                          // the ring before the index that publishes it
    strh    w1, [x10, #2]
kick:
    push_lr
    ldr     x0, =SCRATCH
    ldr     x1, =SCRATCH + RINGS_SIZE
    bl      sync_range
    str     wzr, [x19, #R_QUEUE_NOTIFY]
    pop_lr
    ret

// Polls the status until DEVICE_NEEDS_RESET (bounded); then the status must be exactly
// running + NEEDS_RESET and the interrupt status exactly VIRTIO_MMIO_INT_CONFIG.
wait_needs_reset:
    ldr     w10, =POLL
1:  ldr     w22, [x19, #R_STATUS]
    tbnz    w22, #6, 2f
    subs    w10, w10, #1
    b.ne    1b
    adr     x0, why_no_needs_reset
    b       fail
2:  check_reg w22, S_BROKEN, why_needs_reset_status
    expect  R_ISR, 2, why_isr_config
    ret

// Polls (bounded) until used.idx is w0; DEVICE_NEEDS_RESET on the way fails. Then the
// rings and buffers are made visible to the guest's uncached reads.
wait_used:
    push_lr
    mov     w11, w0
    ldr     w10, =POLL
    ldr     x12, =USED
1:  ldr     w22, [x19, #R_STATUS]
    tbnz    w22, #6, 3f
    dc      civac, x12
    dsb     sy
    ldrh    w9, [x12, #2]
    cmp     w9, w11
    b.eq    2f
    subs    w10, w10, #1
    b.ne    1b
    mov     w22, w9
    adr     x0, why_no_used
    b       fail
2:  ldr     x0, =SCRATCH
    ldr     x1, =SCRATCH + RINGS_SIZE
    bl      sync_range
    pop_lr
    ret
3:  adr     x0, why_unexpected_needs_reset
    b       fail

// Used ring entry w2 must be {id w0, len w1}.
check_used:
    ldr     x10, =USED + 4
    add     x10, x10, w2, uxtw #3
    ldr     w22, [x10]
    cmp     w22, w0
    b.eq    1f
    adr     x0, why_used_id
    b       fail
1:  ldr     w22, [x10, #4]
    cmp     w22, w1
    b.eq    2f
    adr     x0, why_used_len
    b       fail
2:  ret

// The 64 bytes at x1 must not all be zero.
check_random:
    ldp     x9, x10, [x1]
    orr     x9, x9, x10
    ldp     x10, x11, [x1, #16]
    orr     x9, x9, x10
    orr     x9, x9, x11
    ldp     x10, x11, [x1, #32]
    orr     x9, x9, x10
    orr     x9, x9, x11
    ldp     x10, x11, [x1, #48]
    orr     x9, x9, x10
    orr     x9, x9, x11
    cbnz    x9, 1f
    mov     w22, #0
    adr     x0, why_zeros
    b       fail
1:  ret

// Writes 0 to the status; it and the interrupt status must read 0.
reset_dev:
    str     wzr, [x19, #R_STATUS]
    expect  R_STATUS, 0, why_reset
    expect  R_ISR, 0, why_isr_after_reset
    ret

// Zeroes the scratch RAM, with its cache lines cleaned first (so no dirty host line lands
// on the zeros later) and invalidated after.
mem_clear:
    push_lr
    ldr     x0, =SCRATCH
    ldr     x1, =SCRATCH + CLEAR_SIZE
    bl      sync_range
    ldr     x0, =SCRATCH
    bl      zero_range
    ldr     x0, =SCRATCH
    bl      sync_range
    pop_lr
    ret

// dc civac over every line of [x0, x1), then dsb sy. Clobbers x0, x9; keeps x1.
sync_range:
    sub     x9, x25, #1
    bic     x0, x0, x9
1:  dc      civac, x0
    add     x0, x0, x25
    cmp     x0, x1
    b.lo    1b
    dsb     sy
    ret

// Zeroes [x0, x1), both 16-byte aligned. Clobbers x0; keeps x1.
zero_range:
1:  stp     xzr, xzr, [x0], #16
    cmp     x0, x1
    b.lo    1b
    ret

// "FAIL: <step>[: <case>]: <x0> (last read 0x<w22>)", then off.
fail:
    mov     x26, x0
    say     msg_fail
    mov     x1, x20
    bl      puts
    cbz     x21, 1f
    say     msg_sep
    mov     x1, x21
    bl      puts
1:  say     msg_sep
    mov     x1, x26
    bl      puts
    say     msg_read
    mov     w0, w22
    bl      puthex32
    say     msg_close
power_off:
    movz    x0, #0x0008                 // PSCI_0_2_FN_SYSTEM_OFF = 0x84000008
    movk    x0, #0x8400, lsl #16
    hvc     #0
1:  wfi
    b       1b

// Prints the string at x1 on the PL011. Clobbers x1, x2, w3.
puts:
    movz    x2, #0x0900, lsl #16
1:  ldrb    w3, [x1], #1
    cbz     w3, 2f
    strb    w3, [x2]                    // UARTDR
    b       1b
2:  ret

// Prints w0 as 8 hex digits. Clobbers w0, x2, w3, w4.
puthex32:
    movz    x2, #0x0900, lsl #16
    mov     w4, #8
1:  ror     w0, w0, #28                 // the next nibble to the bottom
    and     w3, w0, #0xf
    cmp     w3, #10
    b.lo    2f
    add     w3, w3, #'a' - '0' - 10
2:  add     w3, w3, #'0'
    strb    w3, [x2]
    subs    w4, w4, #1
    b.ne    1b
    ret
    .ltorg

// --- case tables
.macro ring name, size, desc, avail, used, ok
    .balign 8
    .long   \name - .
    .long   \size
    .quad   \desc, \avail, \used
    .long   \ok, 0
.endm
.macro chain name, count, len, feat, head, idx
    .balign 8
\name\()_r:
    .long   \name - .
    .long   \count, \len, \feat
    .short  \head, \idx
    .long   0
.endm
.macro desc addr, len, flags, next=0
    .quad   \addr
    .long   \len
    .short  \flags, \next
.endm
.macro indirect name
    .org    \name\()_r + C_IND
.endm
.macro endcase name
    .org    \name\()_r + CASE_SIZE
.endm

    .balign 8
sizes:
    ring    q_size0, 0, DESC_L, AVAIL_L, USED_L, 0
    ring    q_size3, 3, DESC_L, AVAIL_L, USED_L, 0
    ring    q_size6, 6, DESC_L, AVAIL_L, USED_L, 0
    ring    q_size65535, 65535, DESC_L, AVAIL_L, USED_L, 0
    ring    q_size257, 257, DESC_L, AVAIL_L, USED_L, 0
    ring    q_size512, 512, DESC_L, AVAIL_L, USED_L, 0
    ring    q_size65536, 65536, DESC_L, AVAIL_L, USED_L, 0
    ring    q_size1, 1, DESC_L, AVAIL_L, USED_L, 1
    ring    q_size256, 256, DESC_L, AVAIL_L, USED_L, 1
sizes_end:
rings:
    ring    q_desc_fffff000, 8, 0xfffff000, AVAIL, USED, 0
    ring    q_desc_ram_end, 8, RAM_END, AVAIL, USED, 0
    ring    q_desc_across_end, 8, RAM_END - 0x40, AVAIL, USED, 0
    ring    q_desc_below_start, 8, RAM_BASE - 0x40, AVAIL, USED, 0
    ring    q_desc_top, 8, 0xffffffffffffff80, AVAIL, USED, 0
    ring    q_desc_high, 8, 0x100000000 + DESC, AVAIL, USED, 0
    ring    q_desc_window, 8, VIRTIO0, AVAIL, USED, 0
    ring    q_desc_misaligned, 8, DESC + 8, AVAIL, USED, 0
    ring    q_avail_fffff000, 8, DESC, 0xfffff000, USED, 0
    ring    q_avail_across_end, 8, DESC, RAM_END - 0x10, USED, 0
    ring    q_avail_odd, 8, DESC, AVAIL + 1, USED, 0
    ring    q_used_across_end, 8, DESC, AVAIL, RAM_END - 0x40, 0
    ring    q_used_top, 8, DESC, AVAIL, 0xfffffffffffffffc, 0
    ring    q_used_misaligned, 8, DESC, AVAIL, USED + 2, 0
    ring    q_256_used_across_end, 256, DESC_L, AVAIL_L, RAM_END - 0x800, 0
    ring    q_256_desc_at_end, 256, RAM_END - 0x1000, AVAIL_L, USED_L, 1
    ring    q_desc_at_end, 8, RAM_END - 0x80, AVAIL, USED, 1
    ring    q_avail_at_end, 8, DESC, RAM_END - 0x16, USED, 1
    ring    q_used_near_end, 8, DESC, AVAIL, RAM_END - 0x48, 1
rings_end:

chains:
    chain   c_loop, 0, 0, F_INDIRECT, 0, 1
    desc    BUF, 16, W | N, 1
    desc    BUF2, 16, W | N, 0
    endcase c_loop
    chain   c_self, 0, 0, F_INDIRECT, 0, 1
    desc    BUF, 16, W | N, 0
    endcase c_self
    chain   c_next_size, 0, 0, F_INDIRECT, 0, 1
    desc    BUF, 16, W | N, 8
    endcase c_next_size
    chain   c_next_ffff, 0, 0, F_INDIRECT, 0, 1
    desc    BUF, 16, W | N, 0xffff
    endcase c_next_ffff
    chain   c_head_size, 0, 0, F_INDIRECT, 8, 1
    desc    BUF, 64, W
    endcase c_head_size
    chain   c_head_ffff, 0, 0, F_INDIRECT, 0xffff, 1
    desc    BUF, 64, W
    endcase c_head_ffff
    chain   c_buf_ram_end, 0, 0, F_INDIRECT, 0, 1
    desc    RAM_END, 64, W
    endcase c_buf_ram_end
    chain   c_buf_across_end, 0, 0, F_INDIRECT, 0, 1
    desc    RAM_END - 32, 64, W
    endcase c_buf_across_end
    chain   c_buf_wraps, 0, 0, F_INDIRECT, 0, 1
    desc    0xffffffffffffffc0, 128, W
    endcase c_buf_wraps
    chain   c_buf_fffff000, 0, 0, F_INDIRECT, 0, 1
    desc    0xfffff000, 64, W
    endcase c_buf_fffff000
    chain   c_buf_window, 0, 0, F_INDIRECT, 0, 1
    desc    VIRTIO0, 64, W
    endcase c_buf_window
    chain   c_readable_outside, 0, 0, F_INDIRECT, 0, 1
    desc    0xfffff000, 64, 0
    endcase c_readable_outside
    chain   c_len_ffffffff, 0, 0, F_INDIRECT, 0, 1
    desc    BUF, 0xffffffff, W
    endcase c_len_ffffffff
    chain   c_readable_len_ffffffff, 0, 0, F_INDIRECT, 0, 1
    desc    BUF, 0xffffffff, 0
    endcase c_readable_len_ffffffff
    chain   c_read_after_write, 0, 0, F_INDIRECT, 0, 1
    desc    BUF, 16, W | N, 1
    desc    BUF2, 16, 0
    endcase c_read_after_write
    chain   c_empty_read_after_write, 0, 0, F_INDIRECT, 0, 1
    desc    BUF, 16, W | N, 1
    desc    BUF2, 0, 0
    endcase c_empty_read_after_write
    chain   c_ind_self, 0, 0, F_INDIRECT, 0, 1
    desc    DESC, 8 * 16, I
    endcase c_ind_self
    chain   c_ind_len24, 0, 0, F_INDIRECT, 0, 1
    desc    IND, 24, I
    indirect c_ind_len24
    desc    BUF, 64, W
    endcase c_ind_len24
    chain   c_ind_len0, 0, 0, F_INDIRECT, 0, 1
    desc    IND, 0, I
    indirect c_ind_len0
    desc    BUF, 64, W
    endcase c_ind_len0
    chain   c_ind_nested, 0, 0, F_INDIRECT, 0, 1
    desc    IND, 16, I
    indirect c_ind_nested
    desc    IND2, 16, I
    endcase c_ind_nested
    chain   c_ind_loop, 0, 0, F_INDIRECT, 0, 1
    desc    IND, 16, I
    indirect c_ind_loop
    desc    BUF, 16, W | N, 0
    endcase c_ind_loop
    chain   c_ind_next_past, 0, 0, F_INDIRECT, 0, 1
    desc    IND, 32, I
    indirect c_ind_next_past
    desc    BUF, 16, W | N, 2
    desc    BUF2, 16, W
    endcase c_ind_next_past
    chain   c_ind_with_next, 0, 0, F_INDIRECT, 0, 1
    desc    IND, 16, I | N, 1
    desc    BUF2, 64, W
    indirect c_ind_with_next
    desc    BUF, 64, W
    endcase c_ind_with_next
    chain   c_ind_outside, 0, 0, F_INDIRECT, 0, 1
    desc    0xfffff000, 16, I
    endcase c_ind_outside
    chain   c_ind_across_end, 0, 0, F_INDIRECT, 0, 1
    desc    RAM_END - 8, 16, I
    endcase c_ind_across_end
    chain   c_ind_huge, 0, 0, F_INDIRECT, 0, 1
    desc    IND, 0x100010, I
    endcase c_ind_huge
    chain   c_ind_not_negotiated, 0, 0, 0, 0, 1
    desc    IND, 16, I
    indirect c_ind_not_negotiated
    desc    BUF, 64, W
    endcase c_ind_not_negotiated
    chain   c_ind_read_after_write, 0, 0, F_INDIRECT, 0, 1
    desc    IND, 32, I
    indirect c_ind_read_after_write
    desc    BUF, 16, W | N, 1
    desc    BUF2, 16, 0
    endcase c_ind_read_after_write
    chain   c_avail_1000, 0, 0, F_INDIRECT, 0, 1000
    desc    BUF, 64, W
    endcase c_avail_1000
    chain   c_avail_9, 0, 0, F_INDIRECT, 0, 9
    desc    BUF, 64, W
    endcase c_avail_9
    // Served, as Virtqueue.swift and Entropy.swift say.
    chain   s_zero_len, 1, 0, F_INDIRECT, 0, 1
    desc    BUF, 0, W
    endcase s_zero_len
    chain   s_zero_len_outside, 1, 0, F_INDIRECT, 0, 1
    desc    0xfffffffffffff000, 0, W
    endcase s_zero_len_outside
    chain   s_readable_only, 1, 0, F_INDIRECT, 0, 1
    desc    BUF, 16, 0
    endcase s_readable_only
    chain   s_read_then_write, 1, 64, F_INDIRECT, 0, 1
    desc    BUF2, 16, N, 1
    desc    BUF, 64, W
    endcase s_read_then_write
    chain   s_chain_of_8, 1, 64, F_INDIRECT, 0, 1
    desc    BUF, 8, W | N, 1
    desc    BUF + 8, 8, W | N, 2
    desc    BUF + 16, 8, W | N, 3
    desc    BUF + 24, 8, W | N, 4
    desc    BUF + 32, 8, W | N, 5
    desc    BUF + 40, 8, W | N, 6
    desc    BUF + 48, 8, W | N, 7
    desc    BUF + 56, 8, W
    endcase s_chain_of_8
    chain   s_garbage_unlinked, 1, 64, F_INDIRECT, 0, 1
    desc    BUF, 64, W, 0xffff          // no NEXT: the next field means nothing
    desc    0xffffffffffffffff, 0xffffffff, 0xffff, 0xffff
    desc    0xffffffffffffffff, 0xffffffff, 0xffff, 0xffff
    endcase s_garbage_unlinked
    chain   s_ind_two, 1, 64, F_INDIRECT, 0, 1
    desc    IND, 32, I
    indirect s_ind_two
    desc    BUF, 32, W | N, 1
    desc    BUF + 32, 32, W
    endcase s_ind_two
    chain   s_ind_unaligned, 1, 64, F_INDIRECT, 0, 1
    desc    IND + 8, 16, I
    indirect s_ind_unaligned
    .quad   0
    desc    BUF, 64, W
    endcase s_ind_unaligned
    chain   s_ind_write_flag, 1, 64, F_INDIRECT, 0, 1
    desc    IND, 16, I | W
    indirect s_ind_write_flag
    desc    BUF, 64, W
    endcase s_ind_write_flag
    chain   s_over_desc_table, 1, 128, F_INDIRECT, 0, 1
    desc    DESC, 8 * 16, W
    endcase s_over_desc_table
    chain   s_over_used_ring, 1, 64, F_INDIRECT, 0, 1
    desc    USED + 4, 64, W
    endcase s_over_used_ring
    chain   s_over_64k, 1, 0x10000, F_INDIRECT, 0, 1
    desc    BIG, 0x10001, W
    endcase s_over_64k
    chain   s_avail_8, 8, 64, F_INDIRECT, 0, 8
    desc    BUF, 64, W
    endcase s_avail_8
chains_end:

// --- strings
step1:  .asciz "1 identity"
step2:  .asciz "2 status order"
step3:  .asciz "3 bad queue sizes"
step4:  .asciz "4 rings outside RAM"
step5:  .asciz "5 garbage chains"
step6:  .asciz "6 good requests"
step_good: .asciz "good request after the reset"
ok1:    .asciz "hostile-virtio: 1 identity ok: virtio-rng, version 2, at 0x"
ok_end: .asciz "\n"
ok2:    .asciz "hostile-virtio: 2 status written out of order and bad features refused ok\n"
ok3:    .asciz "hostile-virtio: 3 bad queue sizes set DEVICE_NEEDS_RESET ok\n"
ok4:    .asciz "hostile-virtio: 4 rings outside RAM set DEVICE_NEEDS_RESET ok\n"
ok5:    .asciz "hostile-virtio: 5 garbage chains refused with DEVICE_NEEDS_RESET or served as specified ok\n"
ok6:    .asciz "hostile-virtio: 6 good requests after late register writes ok\n"
survived: .asciz "hostile virtio guest survived\n"
msg_fail: .asciz "FAIL: "
msg_sep: .asciz ": "
msg_read: .asciz " (last read 0x"
msg_close: .asciz ")\n"
why_no_rng: .asciz "no virtio-rng (magic \"virt\", device id 4) in the first 8 virtio-mmio slots"
why_magic: .asciz "magic value"
why_version: .asciz "version is not 2"
why_device_id: .asciz "device id is not 4"
why_status_at_start: .asciz "status not 0 at start"
why_num_max: .asciz "QueueNumMax of queue 0 is not 256"
why_ready_at_start: .asciz "QueueReady set at start"
why_num_max_q1: .asciz "QueueNumMax of a queue that does not exist is not 0"
why_features_low: .asciz "device features 0-31 are not INDIRECT_DESC + EVENT_IDX"
why_features_high: .asciz "device features 32-63 are not VERSION_1"
why_features_sel2: .asciz "device features 64-95 are not 0"
why_config: .asciz "config space does not read 0"
why_reset: .asciz "status after writing 0 is not 0"
why_driver_ok_first: .asciz "DRIVER_OK before ACKNOWLEDGE was taken"
why_driver_first: .asciz "DRIVER before ACKNOWLEDGE was taken"
why_driver_sets_nr: .asciz "the driver could set DEVICE_NEEDS_RESET"
why_ack: .asciz "ACKNOWLEDGE not taken"
why_features_ok_before_driver: .asciz "FEATURES_OK before DRIVER was taken"
why_driver_ok_before_features_ok: .asciz "DRIVER_OK before FEATURES_OK was taken"
why_driver: .asciz "DRIVER not taken"
why_early_features_kept: .asciz "features written before DRIVER were kept"
why_bit_cleared: .asciz "a status bit could be cleared without a reset"
why_no_version_1: .asciz "FEATURES_OK without VERSION_1 was taken"
why_driver_ok_without_features_ok: .asciz "DRIVER_OK with refused features was taken"
why_unoffered_feature: .asciz "FEATURES_OK with a feature the device does not offer was taken"
why_good_features: .asciz "FEATURES_OK with VERSION_1 + INDIRECT_DESC refused"
why_driver_ok: .asciz "DRIVER_OK refused"
why_failed: .asciz "FAILED not taken"
why_features_refused: .asciz "setup: FEATURES_OK refused"
why_queue_ready: .asciz "setup: QueueReady does not read 1"
why_setup: .asciz "a proper setup did not reach DRIVER_OK cleanly"
why_good_rings_refused: .asciz "good rings: status after DRIVER_OK is not 0x0f"
why_isr_good_rings: .asciz "good rings: interrupt status not 0"
why_no_needs_reset_at_driver_ok: .asciz "status after DRIVER_OK is not 0x4f (DEVICE_NEEDS_RESET)"
why_isr_config: .asciz "interrupt status after DEVICE_NEEDS_RESET is not 2 (config change)"
why_isr_after_reset: .asciz "interrupt status not 0 after reset"
why_no_needs_reset: .asciz "no DEVICE_NEEDS_RESET after QueueNotify (bounded poll)"
why_needs_reset_status: .asciz "status with DEVICE_NEEDS_RESET is not 0x4f"
why_no_used: .asciz "used.idx did not reach the count (bounded poll; last read is used.idx)"
why_unexpected_needs_reset: .asciz "DEVICE_NEEDS_RESET for a chain the device should serve"
why_used_id: .asciz "used entry id"
why_used_len: .asciz "used entry length"
why_zeros: .asciz "buffer still all zeros"
why_isr_served: .asciz "interrupt status not 0 with VIRTQ_AVAIL_F_NO_INTERRUPT"
why_late_writes: .asciz "status changed by register writes after DRIVER_OK"
why_late_ready: .asciz "QueueReady changed after DRIVER_OK"
why_past_buffer: .asciz "bytes written past the 64-byte buffer"
why_same_bytes: .asciz "two requests got the same 64 bytes"
why_no_vring_interrupt: .asciz "no VIRTIO_MMIO_INT_VRING for a request that wants interrupts"
why_isr_bits: .asciz "interrupt status is not exactly INT_VRING"
why_isr_ack: .asciz "InterruptACK did not clear the interrupt status"
q_size0: .asciz "QueueNum 0"
q_size3: .asciz "QueueNum 3"
q_size6: .asciz "QueueNum 6"
q_size65535: .asciz "QueueNum 65535"
q_size257: .asciz "QueueNum 257"
q_size512: .asciz "QueueNum 512 (> QueueNumMax)"
q_size65536: .asciz "QueueNum 65536"
q_size1: .asciz "QueueNum 1"
q_size256: .asciz "QueueNum 256"
q_desc_fffff000: .asciz "descriptor table at 0xfffff000"
q_desc_ram_end: .asciz "descriptor table at RAM end"
q_desc_across_end: .asciz "descriptor table across RAM end"
q_desc_below_start: .asciz "descriptor table across RAM start"
q_desc_top: .asciz "descriptor table ending at 2^64"
q_desc_high: .asciz "descriptor table 4 GiB above a good address"
q_desc_window: .asciz "descriptor table in the virtio window"
q_desc_misaligned: .asciz "descriptor table 8-byte aligned only"
q_avail_fffff000: .asciz "available ring at 0xfffff000"
q_avail_across_end: .asciz "available ring across RAM end"
q_avail_odd: .asciz "available ring at an odd address"
q_used_across_end: .asciz "used ring across RAM end"
q_used_top: .asciz "used ring at 2^64 - 4"
q_used_misaligned: .asciz "used ring 2-byte aligned only"
q_256_used_across_end: .asciz "size 256: used ring across RAM end"
q_256_desc_at_end: .asciz "size 256: descriptor table ending at RAM end"
q_desc_at_end: .asciz "descriptor table ending at RAM end"
q_avail_at_end: .asciz "available ring ending at RAM end"
q_used_near_end: .asciz "used ring ending 2 bytes below RAM end"
c_loop: .asciz "chain loops d0 -> d1 -> d0"
c_self: .asciz "d0 next is d0"
c_next_size: .asciz "next = queue size"
c_next_ffff: .asciz "next = 0xffff"
c_head_size: .asciz "head = queue size"
c_head_ffff: .asciz "head = 0xffff"
c_buf_ram_end: .asciz "writable buffer at RAM end"
c_buf_across_end: .asciz "writable buffer across RAM end"
c_buf_wraps: .asciz "writable buffer wrapping the address space"
c_buf_fffff000: .asciz "writable buffer at 0xfffff000"
c_buf_window: .asciz "writable buffer in the virtio window"
c_readable_outside: .asciz "readable buffer at 0xfffff000"
c_len_ffffffff: .asciz "writable buffer of 0xffffffff bytes"
c_readable_len_ffffffff: .asciz "readable buffer of 0xffffffff bytes"
c_read_after_write: .asciz "readable descriptor after a writable one"
c_empty_read_after_write: .asciz "zero-length readable descriptor after a writable one"
c_ind_self: .asciz "indirect table is the descriptor table holding it"
c_ind_len24: .asciz "indirect table of 24 bytes"
c_ind_len0: .asciz "indirect table of 0 bytes"
c_ind_nested: .asciz "indirect descriptor inside an indirect table"
c_ind_loop: .asciz "indirect entry whose next is itself"
c_ind_next_past: .asciz "indirect entry next past its table"
c_ind_with_next: .asciz "indirect descriptor with NEXT"
c_ind_outside: .asciz "indirect table at 0xfffff000"
c_ind_across_end: .asciz "indirect table across RAM end"
c_ind_huge: .asciz "indirect table of 65537 entries"
c_ind_not_negotiated: .asciz "indirect descriptor without INDIRECT_DESC negotiated"
c_ind_read_after_write: .asciz "indirect: readable after writable"
c_avail_1000: .asciz "avail.idx jumps by 1000"
c_avail_9: .asciz "avail.idx jumps by queue size + 1"
s_zero_len: .asciz "zero-length writable buffer (served, 0 bytes)"
s_zero_len_outside: .asciz "zero-length writable buffer outside RAM (served, 0 bytes)"
s_readable_only: .asciz "readable-only chain (served, 0 bytes)"
s_read_then_write: .asciz "readable then writable (served, 64 bytes)"
s_chain_of_8: .asciz "chain of 8 = queue size (served, 64 bytes)"
s_garbage_unlinked: .asciz "garbage descriptors not in the chain (served)"
s_ind_two: .asciz "indirect table of 2 (served, 64 bytes)"
s_ind_unaligned: .asciz "indirect table 8-byte aligned only (served)"
s_ind_write_flag: .asciz "indirect descriptor with WRITE (served)"
s_over_desc_table: .asciz "writable buffer over its own descriptor table (served, 128 bytes)"
s_over_used_ring: .asciz "writable buffer over the used ring entries (served)"
s_over_64k: .asciz "writable buffer of 64 KiB + 1 (served, 64 KiB)"
s_avail_8: .asciz "avail.idx jumps by exactly the queue size (8 served)"
