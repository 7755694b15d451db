// x86_64 test guest that attacks every emulated device register on purpose: COM1 (16550,
// 0x3F8-0x3FF), the i8042 (0x60, 0x64) and the CMOS RTC (0x70, 0x71) get extreme values
// (0, all ones, 0x80.., 0x7F.., 0x55.., 0xAA..) at widths 1, 2 and 4, each read back;
// every i8042 controller and keyboard command; string I/O (rep outs/ins, which KVM hands
// to the VMM with io.count > 1); every CMOS index 0x00-0xFF, and the time and date
// registers in BCD and binary, 12- and 24-hour mode, read back after every write. The only
// writes it avoids are the ones that ask for a reset (0xF0-0xFE even to 0x64; 0xD1 then a data byte
// with bit 0 clear). A VMM that survives: the guest resets COM1 to 8N1, prints that it
// survived, and resets through the i8042. About 35,000 I/O exits.
    .set    BUFFER, 0x300000            // scratch RAM for rep ins (the guest has >= 4 MiB)
    .set    NVALUES, 6                  // entries in val8, val16, val32
    .code64
    .text
    .globl _start
_start:
    mov     $0x80000, %rsp
    cld

// --- 1. every port, every width, every extreme value: out, then in. Twice, so COM1's
// divisor latch (LCR bit 7, left set by the first pass) is hit as well as RBR/THR and IER.
    mov     $2, %r12d
    lea     val8(%rip), %r8
    lea     val16(%rip), %r9
    lea     val32(%rip), %r10
10: lea     ports(%rip), %r13
11: movzwl  (%r13), %edx
    test    %edx, %edx
    jz      14f
    xor     %ebx, %ebx
12: movzbl  (%r8,%rbx), %eax
    out     %al, (%dx)
    in      (%dx), %al
    movzwl  (%r9,%rbx,2), %eax
    out     %ax, (%dx)
    in      (%dx), %ax
    mov     (%r10,%rbx,4), %eax
    out     %eax, (%dx)
    in      (%dx), %eax
    inc     %ebx
    cmp     $NVALUES, %ebx
    jb      12b
    add     $2, %r13
    jmp     11b
14: dec     %r12d
    jnz     10b

// --- 2. i8042: every controller command but those that pulse the reset line (0xF0-0xFE
// with bit 0 clear: "pulse output port" with output bit 0 selected), each followed by every
// extreme value on the data port (the first is the command's parameter, if it takes one);
// 0xD1 (write output port) only with data bytes that keep bit 0, the reset line, high.
    xor     %ebx, %ebx
20: cmp     $0xf0, %ebx
    jb      23f
    test    $1, %bl
    jz      24f
23: cmp     $0xd1, %ebx
    je      24f
    mov     %bl, %al
    out     %al, $0x64
    xor     %ecx, %ecx
21: movzbl  (%r8,%rcx), %eax
    out     %al, $0x60
    inc     %ecx
    cmp     $NVALUES, %ecx
    jb      21b
    in      $0x64, %al
    call    drain_i8042
24: inc     %ebx
    cmp     $0x100, %ebx
    jb      20b
    lea     output_port(%rip), %rsi
25: lodsb
    test    %al, %al
    jz      26f
    mov     %al, %cl
    mov     $0xd1, %al
    out     %al, $0x64
    mov     %cl, %al
    out     %al, $0x60
    in      $0x64, %al
    in      $0x60, %al
    jmp     25b
    // Every keyboard command byte, each with a parameter byte after it.
26: xor     %ebx, %ebx
27: mov     %bl, %al
    out     %al, $0x60
    mov     $0xaa, %al
    out     %al, $0x60
    in      $0x64, %al
    call    drain_i8042
    inc     %ebx
    cmp     $0x100, %ebx
    jb      27b
    // Overfill the output buffer: 40 "read CTR" and 40 keyboard echoes unread, then drain.
    mov     $40, %ecx
28: mov     $0x20, %al
    out     %al, $0x64
    mov     $0xee, %al
    out     %al, $0x60
    loop    28b
    call    drain_i8042
    call    drain_i8042
    call    drain_i8042

// --- 3. string I/O on every port: rep outs of a pattern (one exit per element) and rep
// ins of up to a page (KVM batches these: one exit with io.count > 1), forwards from a
// buffer that crosses a page boundary, and backwards (DF set).
    lea     ports(%rip), %r13
30: movzwl  (%r13), %edx
    test    %edx, %edx
    jz      32f
    lea     pattern(%rip), %rsi
    mov     $32, %ecx
    rep outsb
    mov     $BUFFER + 0xff0, %edi
    mov     $256, %ecx
    rep insb
    lea     pattern(%rip), %rsi
    mov     $16, %ecx
    rep outsw
    mov     $BUFFER, %edi
    mov     $512, %ecx
    rep insw
    lea     pattern(%rip), %rsi
    mov     $8, %ecx
    rep outsl
    mov     $BUFFER, %edi
    mov     $1024, %ecx
    rep insl
    std
    lea     pattern_end - 1(%rip), %rsi
    mov     $16, %ecx
    rep outsb
    mov     $BUFFER + 0x1ffc, %edi
    mov     $300, %ecx
    rep insl
    cld
    add     $2, %r13
    jmp     30b
32: call    drain_i8042

// --- 4. CMOS. (a) Every index 0x00-0xFF (bit 7 is the NMI mask) gets every extreme value,
// each read back; status B goes back to BCD 24-hour after each index. Then every index is
// read.
    xor     %ebx, %ebx
40: mov     %bl, %al
    out     %al, $0x70
    xor     %ecx, %ecx
41: movzbl  (%r8,%rcx), %eax
    out     %al, $0x71
    in      $0x71, %al
    inc     %ecx
    cmp     $NVALUES, %ecx
    jb      41b
    mov     $0x0b, %al
    out     %al, $0x70
    mov     $0x02, %al
    out     %al, $0x71
    inc     %ebx
    cmp     $0x100, %ebx
    jb      40b
    call    read_all_cmos
    // (b) In each of several modes (status B: binary bit 2, 24-hour bit 1; 0xFF also sets
    // SET, the interrupt enables and daylight saving), every time and date register gets
    // every value of cmos_values; after each write all of them are read back. The modes
    // alternate binary and BCD, so each reads what the previous mode left, whatever it is.
    lea     cmos_modes(%rip), %r14
42: movzbl  (%r14), %eax
    cmp     $0xee, %eax                 // end of the list
    je      49f
    mov     %al, %cl
    mov     $0x0b, %al
    out     %al, $0x70
    mov     %cl, %al
    out     %al, $0x71
    call    read_status_cmos
    call    read_time_cmos
    lea     time_registers(%rip), %r15
43: movzbl  (%r15), %ebx
    cmp     $0xee, %ebx
    je      46f
    lea     cmos_values(%rip), %rsi
44: lodsb
    mov     %al, %cl
    cmp     $0xee, %al
    je      45f
    mov     %bl, %al
    out     %al, $0x70
    mov     %cl, %al
    out     %al, $0x71
    call    read_time_cmos
    jmp     44b
45: inc     %r15
    jmp     43b
46: call    read_all_cmos
    inc     %r14
    jmp     42b
    // Back to a sane clock: BCD 24-hour, status A's usual divider.
49: mov     $0x0b, %al
    out     %al, $0x70
    mov     $0x02, %al
    out     %al, $0x71
    mov     $0x0a, %al
    out     %al, $0x70
    mov     $0x26, %al
    out     %al, $0x71
    call    read_time_cmos

// --- the end: COM1 back to 8N1, no interrupts, OUT2 and no loopback; say so; reset.
    mov     $0x3fb, %dx                 // LCR: 8N1, divisor latch off
    mov     $0x03, %al
    out     %al, (%dx)
    mov     $0x3f9, %dx                 // IER: no interrupts
    xor     %al, %al
    out     %al, (%dx)
    mov     $0x3fc, %dx                 // MCR: OUT2, not loopback
    mov     $0x08, %al
    out     %al, (%dx)
    lea     message(%rip), %rsi
    mov     $0x3f8, %dx
50: lodsb
    test    %al, %al
    jz      51f
    out     %al, (%dx)
    jmp     50b
51: mov     $0xfe, %al
    out     %al, $0x64
52: cli
    hlt
    jmp     52b

// Reads the i8042 output buffer empty and then some: one batched rep insb of 20 (the
// buffer holds 16 here). Keeps %rbx, %rcx, %rdx, %rsi.
drain_i8042:
    push    %rcx
    push    %rdx
    mov     $0x60, %dx
    mov     $BUFFER, %edi
    mov     $20, %ecx
    rep insb
    in      $0x64, %al
    pop     %rdx
    pop     %rcx
    ret

// Selects and reads every CMOS index 0x00-0xFF. Keeps everything but %rax.
read_all_cmos:
    push    %rbx
    xor     %ebx, %ebx
1:  mov     %bl, %al
    out     %al, $0x70
    in      $0x71, %al
    inc     %ebx
    cmp     $0x100, %ebx
    jb      1b
    pop     %rbx
    ret

// Selects and reads every time and date register, then status B. Keeps everything but %rax.
read_time_cmos:
    push    %rdi
    lea     time_registers(%rip), %rdi
1:  movzbl  (%rdi), %eax
    cmp     $0xee, %eax
    je      2f
    out     %al, $0x70
    in      $0x71, %al
    inc     %rdi
    jmp     1b
2:  mov     $0x0b, %al
    out     %al, $0x70
    in      $0x71, %al
    pop     %rdi
    ret

// Selects and reads status registers A-D. Keeps everything but %rax.
read_status_cmos:
    mov     $0x0a, %al
    out     %al, $0x70
    in      $0x71, %al
    mov     $0x0b, %al
    out     %al, $0x70
    in      $0x71, %al
    mov     $0x0c, %al
    out     %al, $0x70
    in      $0x71, %al
    mov     $0x0d, %al
    out     %al, $0x70
    in      $0x71, %al
    ret

val8:
    .byte   0x00, 0xff, 0x80, 0x7f, 0x55, 0xaa
    .balign 2
val16:
    .word   0x0000, 0xffff, 0x8000, 0x7fff, 0x5555, 0xaaaa
    .balign 4
val32:
    .long   0x00000000, 0xffffffff, 0x80000000, 0x7fffffff, 0x55555555, 0xaaaaaaaa
ports:
    .word   0x3f8, 0x3f9, 0x3fa, 0x3fb, 0x3fc, 0x3fd, 0x3fe, 0x3ff, 0x60, 0x64, 0x70, 0x71, 0
// Data bytes for i8042 command 0xD1 (write output port): bit 0 (reset) always high.
output_port:
    .byte   0xff, 0x7f, 0x55, 0x01, 0x03, 0xdf, 0
// Seconds, alarm, minutes, alarm, hours, alarm, weekday, day, month, year, century.
time_registers:
    .byte   0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x32, 0xee
// Status B: binary 24 h, BCD 12 h, binary 12 h, BCD 24 h, everything set (binary 24 h);
// the clean-up after the list reads it all in BCD 24 h.
cmos_modes:
    .byte   0x06, 0x00, 0x04, 0x02, 0xff, 0xee
// Extremes, and values that are extreme for a clock: BCD 99, 59, 60, 12, 13, 31, 12-hour
// PM bits (0x81 = 1 PM, 0x92 = 12 PM in BCD, 0x8c = 12 PM in binary).
cmos_values:
    .byte   0x00, 0xff, 0x80, 0x7f, 0x55, 0xaa, 0x99, 0x59, 0x60, 0x12, 0x13, 0x31
    .byte   0x81, 0x92, 0x8c, 0xee
// Bytes for rep outs (never 0xFE or 0xD1, so safe on the i8042 command port too).
pattern:
    .byte   0x00, 0xff, 0x80, 0x7f, 0x55, 0xaa, 0x00, 0xff, 0x80, 0x7f, 0x55, 0xaa, 0x01, 0x7e, 0x81, 0xc0
    .byte   0x00, 0xff, 0x80, 0x7f, 0x55, 0xaa, 0x00, 0xff, 0x80, 0x7f, 0x55, 0xaa, 0x01, 0x7e, 0x81, 0xc0
pattern_end:
message:
    .asciz  "\nhostile guest survived\n"
