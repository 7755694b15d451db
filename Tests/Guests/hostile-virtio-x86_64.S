// x86_64 test guest that drives a virtio-rng device (virtio-mmio version 2) with garbage
// and checks every answer against what Sources/Devices/Virtio/{MMIOTransport,Virtqueue,
// Entropy}.swift do. Run it with `--memory 64 --rng` (the rng may sit behind a disk: the
// guest looks for it in the first eight slots from 0xD000_0000, step 0x1000).
//  1. identity: magic, version 2, device id 4, QueueNumMax 256 (0 for a queue that does
//     not exist), the offered features (INDIRECT_DESC, EVENT_IDX; VERSION_1), config 0.
//  2. status out of order: DRIVER_OK, DRIVER or DEVICE_NEEDS_RESET first, FEATURES_OK
//     before DRIVER, DRIVER_OK before FEATURES_OK, a bit cleared, features written before
//     DRIVER, features without VERSION_1 or with a bit not offered: all refused.
//  3. bad queue sizes (0, 3, 6, 65535, 257, 512, 65536) make DRIVER_OK end in
//     DEVICE_NEEDS_RESET; sizes 1 and 256 are taken.
//  4. rings outside RAM, across its ends, wrapping the address space, in the virtio
//     window or misaligned: DEVICE_NEEDS_RESET at DRIVER_OK; rings ending at RAM's end work.
//  5. garbage chains behind a proper setup, one per activation, each followed by
//     QueueNotify: the ones the queue refuses must set DEVICE_NEEDS_RESET, the ones it
//     legitimately serves must come back in the used ring with the exact length; after
//     each, a reset and a good request.
//  6. registers the driver may no longer change after DRIVER_OK, bogus notifications, two
//     good 64-byte requests (random, distinct, nothing written past them, the second one
//     raising the used-buffer interrupt bit, acknowledged), then avail.idx moving backwards.
// One line per step; "hostile virtio guest survived" only when every check held, otherwise
// "FAIL: <step>: <case>: <what> (last read 0x...)". Either way it resets through the i8042.
// Every poll is bounded and reads the status register (one exit) per round.
    .set    RAM_END, 0x4000000          // --memory 64: RAM is 0 .. 64 MiB
    .set    RAM_BASE, 0
    .set    VIRTIO0, 0xd0000000         // virtio-mmio slot 0
    .set    VIRTIO_STRIDE, 0x1000
    .set    VIRTIO_SLOTS, 8
    .set    POLL, 100000                // rounds of a bounded poll
    .set    MAGIC, 0x74726976           // "virt"
    // Scratch RAM (zeroed before every setup, CLEAR_SIZE bytes).
    .set    SCRATCH, 0x300000
    .set    CLEAR_SIZE, 0x4000
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

// 32-bit register accesses to the device at %r15 (one exit each).
.macro wr off, val
    movl    $\val, \off(%r15)
.endm
.macro wrr off, reg
    movl    \reg, \off(%r15)
.endm
// Reads a register into %eax (and %r12d, for the failure line); fails with `why` unless it is `val`.
.macro expect off, val, why
    movl    \off(%r15), %eax
    mov     %eax, %r12d
    cmp     $\val, %eax
    je      .Lok\@
    lea     \why(%rip), %rdi
    jmp     fail
.Lok\@:
.endm
.macro check_eax val, why
    mov     %eax, %r12d
    cmp     $\val, %eax
    je      .Lok\@
    lea     \why(%rip), %rdi
    jmp     fail
.Lok\@:
.endm
.macro say msg
    lea     \msg(%rip), %rsi
    call    puts
.endm

    .code64
    .text
    .globl _start
_start:
    mov     $0x80000, %rsp
    cld
    xor     %r13d, %r13d                // current case name (0: none)
    xor     %r12d, %r12d                // last value read

// --- 1. find the virtio-rng; identity registers.
    lea     step1(%rip), %r14
    mov     $VIRTIO0, %r15d
    mov     $VIRTIO_SLOTS, %ebx
10: mov     R_MAGIC(%r15), %eax
    mov     %eax, %r12d
    cmp     $MAGIC, %eax
    jne     11f
    mov     R_DEVICE_ID(%r15), %eax
    mov     %eax, %r12d
    cmp     $4, %eax
    je      12f
11: add     $VIRTIO_STRIDE, %r15
    dec     %ebx
    jnz     10b
    lea     why_no_rng(%rip), %rdi
    jmp     fail
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
    mov     %r15d, %eax
    call    puthex32
    say     ok_end

// --- 2. status written out of order, features the device must not accept.
    lea     step2(%rip), %r14
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
    call    reset_dev
    say     ok2

// --- 3. bad queue sizes; 4. rings outside RAM.
    lea     step3(%rip), %r14
    lea     sizes(%rip), %rbx
    lea     sizes_end(%rip), %rbp
    call    ring_cases
    call    good_request
    say     ok3
    lea     step4(%rip), %r14
    mov     $RAM_END - 0x100, %edi      // the top of RAM, where some rings below end
    mov     $0x100 / 8, %ecx
    xor     %eax, %eax
    rep stosq
    lea     rings(%rip), %rbx
    lea     rings_end(%rip), %rbp
    call    ring_cases
    call    good_request
    say     ok4

// --- 5. garbage chains.
    lea     step5(%rip), %r14
    lea     chains(%rip), %rbx
    lea     chains_end(%rip), %rbp
50: movslq  (%rbx), %rax
    lea     (%rbx,%rax), %r13
    call    mem_clear
    mov     $8, %edi
    mov     $DESC, %esi
    mov     $AVAIL, %edx
    mov     $USED, %ecx
    mov     C_FEAT(%rbx), %r8d
    call    setup
    check_eax S_RUNNING, why_setup
    lea     C_DESCS(%rbx), %rsi
    mov     $DESC, %edi
    mov     $8 * 16 / 8, %ecx
    rep movsq
    mov     $IND, %edi
    mov     $4 * 16 / 8, %ecx
    rep movsq
    movzwl  C_HEAD(%rbx), %edi
    movzwl  C_IDX(%rbx), %esi
    mov     $1, %edx                    // VIRTQ_AVAIL_F_NO_INTERRUPT
    call    post
    mov     C_COUNT(%rbx), %edi
    test    %edi, %edi
    jnz     51f
    call    wait_needs_reset
    jmp     52f
51: call    wait_used
    movzwl  C_HEAD(%rbx), %edi
    mov     C_LEN(%rbx), %esi
    xor     %edx, %edx
    call    check_used
    expect  R_ISR, 0, why_isr_served
52: call    reset_dev
    call    good_request
    add     $CASE_SIZE, %rbx
    cmp     %rbp, %rbx
    jb      50b
    xor     %r13d, %r13d
    say     ok5

// --- 6. late register writes, bogus notifications, two good requests, avail.idx backwards.
    lea     step6(%rip), %r14
    call    mem_clear
    call    setup_good
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
    movq    $BUF, DESC
    movl    $64, DESC + 8
    movl    $W, DESC + 12               // flags WRITE, next 0
    xor     %edi, %edi
    mov     $1, %esi
    mov     $1, %edx
    call    post
    mov     $1, %edi
    call    wait_used
    xor     %edi, %edi
    mov     $64, %esi
    xor     %edx, %edx
    call    check_used
    mov     $BUF, %esi
    call    check_random
    mov     BUF + 64, %rax              // nothing written past the buffer
    or      BUF + 72, %rax
    or      BUF + 120, %rax
    jz      60f
    lea     why_past_buffer(%rip), %rdi
    jmp     fail
60: expect  R_ISR, 0, why_isr_served
    // The second request asks for an interrupt (avail.flags 0).
    movq    $BUF2, DESC + 16
    movl    $64, DESC + 24
    movl    $W, DESC + 28
    movw    $1, AVAIL + 6               // ring[1] = descriptor 1
    movw    $0, AVAIL                   // flags: interrupts wanted
    movw    $2, AVAIL + 2               // idx
    call    kick
    mov     $2, %edi
    call    wait_used
    mov     $1, %edi
    mov     $64, %esi
    mov     $1, %edx
    call    check_used
    mov     $BUF2, %esi
    call    check_random
    mov     $BUF, %esi                  // two requests, two different fills
    mov     $BUF2, %edi
    mov     $8, %ecx
    repe cmpsq
    jne     61f
    lea     why_same_bytes(%rip), %rdi
    jmp     fail
61: mov     $POLL, %ecx                 // VIRTIO_MMIO_INT_VRING follows the used entry
62: mov     R_ISR(%r15), %eax
    mov     %eax, %r12d
    test    $1, %eax
    jnz     63f
    dec     %ecx
    jnz     62b
    lea     why_no_vring_interrupt(%rip), %rdi
    jmp     fail
63: check_eax 1, why_isr_bits
    wr      R_ISR_ACK, 1
    expect  R_ISR, 0, why_isr_ack
    movw    $1, AVAIL + 2               // avail.idx back from 2 to 1
    call    kick
    call    wait_needs_reset
    call    reset_dev
    say     ok6
    say     survived
    jmp     power_off

// --- helpers. Each keeps %rbx, %rbp, %r13-%r15; uses %rax, %rcx, %rdx, %rsi, %rdi, %r8.

// Runs the ring cases from %rbx to %rbp: set up with each, DRIVER_OK, check the status
// at once (activation builds the queues under the register lock), reset.
ring_cases:
1:  movslq  (%rbx), %rax
    lea     (%rbx,%rax), %r13
    call    mem_clear
    mov     Q_SIZE(%rbx), %edi
    mov     Q_DESC(%rbx), %rsi
    mov     Q_AVAIL(%rbx), %rdx
    mov     Q_USED(%rbx), %rcx
    mov     $F_INDIRECT, %r8d
    call    setup
    cmpl    $0, Q_OK(%rbx)
    je      2f
    check_eax S_RUNNING, why_good_rings_refused
    expect  R_ISR, 0, why_isr_good_rings
    jmp     3f
2:  check_eax S_BROKEN, why_no_needs_reset_at_driver_ok
    expect  R_ISR, 2, why_isr_config
3:  call    reset_dev
    add     $QCASE_SIZE, %rbx
    cmp     %rbp, %rbx
    jb      1b
    xor     %r13d, %r13d
    ret

// ACKNOWLEDGE, DRIVER, features VERSION_1 + %r8d, FEATURES_OK (checked), queue 0 with
// size %edi and rings %rsi, %rdx, %rcx, QueueReady (checked), DRIVER_OK.
// Returns the status read after DRIVER_OK in %eax.
setup:
    wr      R_STATUS, 1
    wr      R_STATUS, 3
    wr      R_DRV_FEAT_SEL, 1
    wr      R_DRV_FEAT, 1
    wr      R_DRV_FEAT_SEL, 0
    wrr     R_DRV_FEAT, %r8d
    wr      R_STATUS, 3 | 8
    expect  R_STATUS, 3 | 8, why_features_refused
    wr      R_QUEUE_SEL, 0
    wrr     R_QUEUE_NUM, %edi
    wrr     R_DESC_LO, %esi
    shr     $32, %rsi
    wrr     R_DESC_HI, %esi
    wrr     R_AVAIL_LO, %edx
    shr     $32, %rdx
    wrr     R_AVAIL_HI, %edx
    wrr     R_USED_LO, %ecx
    shr     $32, %rcx
    wrr     R_USED_HI, %ecx
    wr      R_QUEUE_READY, 1
    expect  R_QUEUE_READY, 1, why_queue_ready
    wr      R_STATUS, S_RUNNING
    mov     R_STATUS(%r15), %eax
    mov     %eax, %r12d
    ret

// A proper setup in the (cleared) scratch RAM: size 8, INDIRECT_DESC; must run.
setup_good:
    mov     $8, %edi
    mov     $DESC, %esi
    mov     $AVAIL, %edx
    mov     $USED, %ecx
    mov     $F_INDIRECT, %r8d
    call    setup
    check_eax S_RUNNING, why_setup
    ret

// After a reset: a proper setup and one 64-byte device-writable request, served with
// 64 random bytes; then a reset.
good_request:
    push    %r14
    lea     step_good(%rip), %r14
    call    mem_clear
    call    setup_good
    movq    $BUF, DESC
    movl    $64, DESC + 8
    movl    $W, DESC + 12
    xor     %edi, %edi
    mov     $1, %esi
    mov     $1, %edx
    call    post
    mov     $1, %edi
    call    wait_used
    xor     %edi, %edi
    mov     $64, %esi
    xor     %edx, %edx
    call    check_used
    mov     $BUF, %esi
    call    check_random
    call    reset_dev
    pop     %r14
    ret

// Makes descriptor %di the head in every available ring slot, avail.flags = %dx,
// avail.idx = %si, then notifies queue 0.
post:
    mov     $AVAIL + 4, %r8d
    mov     $8, %ecx
1:  mov     %di, (%r8)
    add     $2, %r8
    loop    1b
    mov     %dx, AVAIL
    mov     %si, AVAIL + 2
kick:
    wr      R_QUEUE_NOTIFY, 0
    ret

// Polls the status until DEVICE_NEEDS_RESET (bounded); then the status must be exactly
// running + NEEDS_RESET and the interrupt status exactly VIRTIO_MMIO_INT_CONFIG.
wait_needs_reset:
    mov     $POLL, %ecx
1:  mov     R_STATUS(%r15), %eax
    mov     %eax, %r12d
    test    $0x40, %eax
    jnz     2f
    dec     %ecx
    jnz     1b
    lea     why_no_needs_reset(%rip), %rdi
    jmp     fail
2:  check_eax S_BROKEN, why_needs_reset_status
    expect  R_ISR, 2, why_isr_config
    ret

// Polls (bounded) until used.idx is %edi; DEVICE_NEEDS_RESET on the way fails.
wait_used:
    mov     $POLL, %ecx
1:  mov     R_STATUS(%r15), %eax
    mov     %eax, %r12d
    test    $0x40, %eax
    jnz     3f
    movzwl  USED + 2, %eax
    cmp     %edi, %eax
    je      2f
    dec     %ecx
    jnz     1b
    mov     %eax, %r12d
    lea     why_no_used(%rip), %rdi
    jmp     fail
2:  ret
3:  lea     why_unexpected_needs_reset(%rip), %rdi
    jmp     fail

// Used ring entry %edx must be {id %edi, len %esi}.
check_used:
    mov     USED + 4(,%rdx,8), %eax
    mov     %eax, %r12d
    cmp     %edi, %eax
    je      1f
    lea     why_used_id(%rip), %rdi
    jmp     fail
1:  mov     USED + 8(,%rdx,8), %eax
    mov     %eax, %r12d
    cmp     %esi, %eax
    je      2f
    lea     why_used_len(%rip), %rdi
    jmp     fail
2:  ret

// The 64 bytes at %rsi must not all be zero.
check_random:
    xor     %eax, %eax
    mov     $8, %ecx
1:  or      (%rsi), %rax
    add     $8, %rsi
    loop    1b
    test    %rax, %rax
    jnz     2f
    lea     why_zeros(%rip), %rdi
    jmp     fail
2:  ret

// Writes 0 to the status; it and the interrupt status must read 0.
reset_dev:
    wr      R_STATUS, 0
    expect  R_STATUS, 0, why_reset
    expect  R_ISR, 0, why_isr_after_reset
    ret

mem_clear:
    mov     $SCRATCH, %edi
    mov     $CLEAR_SIZE / 8, %ecx
    xor     %eax, %eax
    rep stosq
    ret

// "FAIL: <step>[: <case>]: <%rdi> (last read 0x<%r12d>)", then off.
fail:
    push    %rdi
    say     msg_fail
    mov     %r14, %rsi
    call    puts
    test    %r13, %r13
    jz      1f
    say     msg_sep
    mov     %r13, %rsi
    call    puts
1:  say     msg_sep
    pop     %rsi
    call    puts
    say     msg_read
    mov     %r12d, %eax
    call    puthex32
    say     msg_close
power_off:
    mov     $0xfe, %al                  // i8042: pulse the CPU reset line
    out     %al, $0x64
1:  cli
    hlt
    jmp     1b

puts:
    mov     $0x3f8, %dx
1:  lodsb
    test    %al, %al
    jz      2f
    out     %al, (%dx)
    jmp     1b
2:  ret

// Prints %eax as 8 hex digits.
puthex32:
    push    %rbx
    push    %rcx
    mov     %eax, %ebx
    mov     $8, %ecx
    mov     $0x3f8, %dx
1:  rol     $4, %ebx
    mov     %ebx, %eax
    and     $0xf, %eax
    cmp     $10, %eax
    jb      2f
    add     $'a' - '0' - 10, %eax
2:  add     $'0', %eax
    out     %al, (%dx)
    loop    1b
    pop     %rcx
    pop     %rbx
    ret

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
q_desc_below_start: .asciz "descriptor table at -0x40 (wraps into RAM start)"
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
