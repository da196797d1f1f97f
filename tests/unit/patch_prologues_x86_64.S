/* patch_prologues_x86_64.S: hand-written function prologues that exercise each case of runtime/patch.c's relocator. */
/* Every function takes an int in edi and returns an int in eax (System V), so the test can
 * call the original, the patched entry and the trampoline the same way. Offsets in comments
 * are byte offsets from the entry; the patch overwrites offsets 0..4. */
        .intel_syntax noprefix

        .data
        .globl  pp_global
        .p2align 3
pp_global:
        .quad   1000
pp_flag:
        .long   1
pp_table:
        .long   10, 20, 30, 40
        .p2align 4
pp_vec:
        .long   500, 0, 0, 0

        .text

#define FN(name) .globl name; .type name, @function; .p2align 4; name:
#define END(name) .size name, .-name

/* 2x+1 behind a frame-pointer prologue: push rbp (1), mov rbp,rsp (3), lea (4). */
FN(pp_plain)
        push    rbp
        mov     rbp, rsp
        lea     eax, [rdi + rdi + 1]
        pop     rbp
        ret
END(pp_plain)

/* Same body as pp_plain; patched with a replacement more than 2 GiB away (stub path). */
FN(pp_far)
        push    rbp
        mov     rbp, rsp
        lea     eax, [rdi + rdi + 1]
        pop     rbp
        ret
END(pp_far)

/* pp_global + x, starting with a 7-byte RIP-relative load. */
FN(pp_riprel)
        mov     rax, qword ptr [rip + pp_global]
        add     eax, edi
        ret
END(pp_riprel)

/* RIP-relative compare whose disp32 is followed by an imm8 (83 3d disp32 imm8), then a
 * short jcc outside the copied bytes: pp_flag != 0 ? x+100 : x+200. */
FN(pp_riprel_cmp)
        cmp     dword ptr [rip + pp_flag], 0
        je      1f
        lea     eax, [rdi + 100]
        ret
1:      lea     eax, [rdi + 200]
        ret
END(pp_riprel_cmp)

/* RIP-relative lea (7 bytes) of a table: pp_table[x]. */
FN(pp_lea)
        lea     rax, [rip + pp_table]
        movsxd  rdi, edi
        mov     eax, dword ptr [rax + rdi * 4]
        ret
END(pp_lea)

/* pp_vec[0] + x, starting with a 66-prefixed SSE RIP-relative load (66 0f 6f 05 disp32),
 * the form capstone 4.0.2 mislabels with disp_size 2. */
FN(pp_sse)
        movdqa  xmm0, xmmword ptr [rip + pp_vec]
        movd    eax, xmm0
        add     eax, edi
        ret
END(pp_sse)

FN(pp_helper)
        lea     eax, [rdi + rdi + 100]
        ret
END(pp_helper)

/* pp_helper(x) + 1 with a call rel32 at offset 1..5. */
FN(pp_call)
        push    rbx
        call    pp_helper
        add     eax, 1
        pop     rbx
        ret
END(pp_call)

/* x < 0 ? -1 : 2x, with a short js at offset 2..3 (rewritten to jcc rel32). */
FN(pp_jcc)
        test    edi, edi
        js      1f
        lea     eax, [rdi + rdi]
        ret
1:      mov     eax, -1
        ret
END(pp_jcc)

/* x + 3 behind a short jmp over a ud2 that stays inside the copied bytes (internal branch). */
FN(pp_jmpfwd)
        jmp     1f
        ud2
1:      lea     eax, [rdi + 3]
        ret
END(pp_jmpfwd)

/* A loop entirely inside the first 5 bytes (jnz at 3..4 back to offset 1); returns 42
 * for x >= 1. */
FN(pp_backloop)
        push    rbx
1:      dec     edi
        jnz     1b
        pop     rbx
        lea     eax, [rdi + 42]
        ret
END(pp_backloop)

/* 1 + 2 + ... + x: the jnz at offset 6 jumps back to offset 2, inside the patched bytes;
 * the patcher must take the whole loop into the trampoline (the PyMutex_Unlock shape). */
FN(pp_extloop)
        xor     eax, eax
1:      add     eax, edi
        dec     edi
        jnz     1b
        ret
END(pp_extloop)

/* (x, _, _, c) -> c == 0 ? x+7 : x+8, with a jrcxz (rel8-only) whose target lies past the
 * copied bytes: relocated as "jrcxz +2; jmp short +5; jmp rel32 target". */
FN(pp_rel8ext)
        jrcxz   1f
        nop
        nop
        nop
        lea     eax, [rdi + 8]
        ret
1:      lea     eax, [rdi + 7]
        ret
END(pp_rel8ext)

/* 4x behind endbr64 (the jump goes after it). */
FN(pp_endbr)
        endbr64
        push    rbp
        mov     rbp, rsp
        lea     eax, [rdi * 4]
        pop     rbp
        ret
END(pp_endbr)

/* ---- negative cases: each must be refused and left intact ---- */

/* 3 bytes: xor eax,eax; ret. */
FN(pp_short)
        xor     eax, eax
        ret
END(pp_short)

/* 1 + ... + x, but the jump back to offset 2 sits more than FTSAN_PATCH_MAX_RELOC bytes
 * after the entry, so the loop cannot be moved into the trampoline. */
FN(pp_loopback)
        xor     eax, eax
1:      add     eax, edi
        dec     edi
        .rept   80
        nop
        .endr
        jnz     1b
        ret
END(pp_loopback)

/* Returns 5; byte 0x06 (push es, invalid in 64-bit mode) sits at offset 4, skipped by a
 * jz that xor always takes. */
FN(pp_undecodable)
        xor     ecx, ecx
        jz      1f
        .byte   0x06
1:      mov     eax, 5
        ret
END(pp_undecodable)

/* Returns 6; the invalid byte follows an unconditional jmp. */
FN(pp_undecodable_after_jmp)
        jmp     1f
        .byte   0x06
1:      mov     eax, 6
        ret
END(pp_undecodable_after_jmp)

/* Returns x + 9; an [eip+disp32] operand (addr32, unsupported) sits in the first bytes. */
FN(pp_eiprel)
        jmp     1f
        mov     eax, dword ptr [eip + pp_flag]
1:      lea     eax, [rdi + 9]
        ret
END(pp_eiprel)

/* Returns x + 7; a jrcxz (rel8-only) to offset 4 stays inside the copied bytes, which the
 * relocator does not support. */
FN(pp_rel8internal)
        jrcxz   1f
        nop
        nop
1:      lea     eax, [rdi + 7]
        ret
END(pp_rel8internal)

/* A local (.symtab-only) function named like a static one in test_patch.c: a duplicate
 * local name for the ambiguity flag. */
        .type   pp_dup, @function
        .p2align 4
pp_dup:
        mov     eax, 1
        ret
        .size   pp_dup, .-pp_dup

        .section .note.GNU-stack, "", @progbits
