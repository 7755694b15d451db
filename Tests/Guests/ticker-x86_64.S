// x86_64 test guest that prints "tick N" on COM1 about five times a second (timed with
// rdtsc, so the period is wall-clock time however fast the CPU is emulated) and watches
// the i8042: any keyboard byte (e.g. the host's Ctrl-Alt-Del) makes it say so and reset
// the CPU through the i8042, which ends swiftlet with status 0.
    .code64
    .text
    .globl _start
_start:
    mov     $0x80000, %rsp              // a stack below the kernel, in low RAM
    xor     %r12d, %r12d                // tick counter
tick:
    lea     prefix(%rip), %rsi
    call    puts
    mov     %r12d, %eax
    call    putdigits
    mov     $'\n', %al
    mov     $0x3f8, %dx
    out     %al, (%dx)
    inc     %r12d
    rdtsc                               // wait ~200 ms: 4e8 cycles at up to 2 GHz
    shl     $32, %rdx
    or      %rax, %rdx
    mov     %rdx, %r13
    mov     $400000000, %r14
wait:
    in      $0x64, %al                  // i8042 status: output buffer full?
    test    $1, %al
    jnz     key
    rdtsc
    shl     $32, %rdx
    or      %rax, %rdx
    sub     %r13, %rdx
    cmp     %r14, %rdx
    jb      wait
    jmp     tick
key:
    in      $0x60, %al
    lea     bye(%rip), %rsi
    call    puts
    mov     $0xfe, %al                  // pulse the CPU reset line
    out     %al, $0x64
1:  cli
    hlt
    jmp     1b

puts:                                   // print the NUL-terminated string at %rsi
    mov     $0x3f8, %dx
1:  lodsb
    test    %al, %al
    jz      2f
    out     %al, (%dx)
    jmp     1b
2:  ret

putdigits:                              // print %eax in decimal
    mov     $10, %ecx
    xor     %r8d, %r8d
1:  xor     %edx, %edx
    div     %ecx
    push    %rdx
    inc     %r8d
    test    %eax, %eax
    jnz     1b
    mov     $0x3f8, %dx
2:  pop     %rax
    add     $'0', %al
    out     %al, (%dx)
    dec     %r8d
    jnz     2b
    ret

prefix: .asciz "tick "
bye:    .asciz "key pressed, resetting\n"
