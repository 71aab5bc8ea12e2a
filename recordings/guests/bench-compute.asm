; =============================================================================================
; bench-compute.asm - shadow-versus-EPT benchmark, workload 1: pure computation
; =============================================================================================
;
; The baseline of the paging benchmark (the seed paper compares shadow paging with EPT): a
; register/ALU loop with one memory read per 62 instructions and no paging at all (CR0.PG
; stays 0, CR3 is never written). Neither paging method should cost anything here; any
; difference between a shadow run and an EPT run of this guest is overhead that has nothing to
; do with paging (scheduling, timer, hypercall path), to subtract from the other two workloads.
;
; The work: CRC-32 (IEEE 802.3, reflected polynomial 0xedb88320, as zlib's crc32) of the
; 43-byte sentence "The quick brown fox jumps over the lazy dog" repeated 75 times (3225
; bytes), computed bit by bit without branches so that the instruction count does not depend
; on the data:
;     per bit  (7): mov, and, neg, and, shr, xor, loop
;     per byte (62): movzx, xor, mov ecx 8, 8 x 7, inc, dec, jnz
;     per pass (4): mov, mov, dec, jnz
;     3225 x 62 + 75 x 4 = 200,250 instructions in the loop, about 201,700 in all.
; The guest checks its result against zlib.crc32(sentence * 75) = 0x0e1f4d96 and prints
;
;     bench-compute: crc32 0e1f4d96 ok, 3225 bytes, NNNNNN ticks
;
; (ticks = the RDTSC difference around the loop, in machine virtual time: 200,250 if the
; guest has a pCPU to itself and nothing else is charged to it; it grows with VM exits and
; with the time the vCPU waits while other domains run, so run a benchmark alone for a clean
; figure), then shuts down with sched_op(shutdown).
;
; Memory map (guest-physical; the domain is meant to have 1 MiB; paging stays off):
;   0x01000-...   this image (code, the sentence)
;   0x08000       data page: tick counts, text buffer
;   0x09000       IDT: 32 gates, every exception -> panic (prints the frame and shuts down)
;   0x0f000       stack page (ESP = 0x10000)
; =============================================================================================

bits 32
org 0x1000

CONSOLE_PORT            equ 0xe9
HYPERCALL_CONSOLE_IO    equ 18
HYPERCALL_SCHED_OP      equ 29
CONSOLEIO_WRITE         equ 0
SCHEDOP_SHUTDOWN        equ 2
KERNEL_CS               equ 0x08
GATE_INTERRUPT_32       equ 0x8e00

DATA                    equ 0x08000
IDT                     equ 0x09000
IDT_GATES               equ 32
STACK_TOP               equ 0x10000
IMAGE_BASE              equ 0x1000

PASSES                  equ 75
CRC_POLY                equ 0xedb88320
CRC_EXPECTED            equ 0x0e1f4d96          ; zlib.crc32(b"The quick ... dog" * 75)

tsc_start               equ DATA + 0x00
tsc_end                 equ DATA + 0x04
out_len                 equ DATA + 0x08
out_buf                 equ DATA + 0x100
OUT_MAX                 equ 0x200

start:
        cli
        mov esp, STACK_TOP
        xor ebx, ebx                        ; IDT: every exception is unexpected
.idt:
        mov eax, isr_panic
        call set_gate
        inc ebx
        cmp ebx, IDT_GATES
        jb .idt
        lidt [idt_descriptor]
        mov dword [out_len], 0

        rdtsc
        mov [tsc_start], eax

        ; ---- the measured loop --------------------------------------------------------------
        mov edx, 0xffffffff                 ; crc = ~0
        mov edi, PASSES
.pass:
        mov esi, sentence
        mov ebp, sentence_end - sentence
.byte:
        movzx eax, byte [esi]               ; the only memory access: one byte per 62 instructions
        xor edx, eax                        ; crc ^= byte (in the low 8 bits)
        mov ecx, 8
.bit:
        mov eax, edx                        ; mask = -(crc & 1)
        and eax, 1
        neg eax
        and eax, CRC_POLY                   ; poly or 0
        shr edx, 1
        xor edx, eax                        ; crc = (crc >> 1) ^ (poly & mask)
        loop .bit
        inc esi
        dec ebp
        jnz .byte
        dec edi
        jnz .pass
        not edx                             ; final complement
        ; -------------------------------------------------------------------------------------

        mov ebx, edx                        ; RDTSC overwrites EDX
        rdtsc
        mov [tsc_end], eax

        mov esi, msg_head
        call out_str
        mov eax, ebx
        call out_hex
        mov esi, msg_ok
        cmp ebx, CRC_EXPECTED
        je .verdict
        mov esi, msg_wrong
.verdict:
        call out_str
        mov eax, PASSES * (sentence_end - sentence)
        call out_dec
        mov esi, msg_bytes
        call out_str
        mov eax, [tsc_end]
        sub eax, [tsc_start]
        call out_dec
        mov esi, msg_ticks
        call out_str
        call out_flush
shutdown:
        mov eax, HYPERCALL_SCHED_OP
        mov ebx, SCHEDOP_SHUTDOWN
        vmcall
.hang:
        hlt
        jmp .hang

; ---- exceptions: none expected. Print the top of the frame ([esp] is EIP, or the error
; code for #DF/#GP/#PF with EIP after it) and stop.
isr_panic:
        mov eax, [esp]
        mov ebx, [esp + 4]
        mov dword [out_len], 0
        mov esi, msg_panic
        call out_str
        call out_hex
        mov al, ' '
        call out_char
        mov eax, ebx
        call out_hex
        mov al, 10
        call out_char
        call out_flush
        jmp shutdown

; ---- set_gate: EBX = vector, EAX = handler (clobbered): 32-bit interrupt gate, selector 0x08
set_gate:
        push edx
        lea edx, [IDT + ebx*8]
        mov [edx], ax
        mov word [edx + 2], KERNEL_CS
        mov word [edx + 4], GATE_INTERRUPT_32
        shr eax, 16
        mov [edx + 6], ax
        pop edx
        ret

; ---- text output into a buffer, flushed with one console_io; all preserve registers
out_char:                                   ; AL
        push edi
        mov edi, [out_len]
        cmp edi, OUT_MAX
        jae .full
        mov [out_buf + edi], al
        inc dword [out_len]
.full:
        pop edi
        ret

out_str:                                    ; ESI = NUL-terminated text
        push eax
        push esi
.next:
        mov al, [esi]
        test al, al
        jz .done
        call out_char
        inc esi
        jmp .next
.done:
        pop esi
        pop eax
        ret

out_hex:                                    ; EAX, 8 hex digits
        pushad
        mov edx, eax
        mov ecx, 8
.digit:
        rol edx, 4
        mov eax, edx
        and eax, 0x0f
        mov al, [hex_digits + eax]
        call out_char
        loop .digit
        popad
        ret

out_dec:                                    ; EAX, unsigned decimal
        pushad
        mov ebx, 10
        xor ecx, ecx
.divide:
        xor edx, edx
        div ebx
        push edx
        inc ecx
        test eax, eax
        jnz .divide
.emit:
        pop eax
        add al, '0'
        call out_char
        loop .emit
        popad
        ret

out_flush:
        pushad
        mov eax, HYPERCALL_CONSOLE_IO
        mov ebx, CONSOLEIO_WRITE
        mov ecx, [out_len]
        mov edx, out_buf
        vmcall
        mov dword [out_len], 0
        popad
        ret

; ---- read-only data
idt_descriptor:
        dw IDT_GATES * 8 - 1
        dd IDT
sentence:
        db 'The quick brown fox jumps over the lazy dog'
sentence_end:
hex_digits:
        db '0123456789abcdef'
msg_head:
        db 'bench-compute: crc32 ', 0
msg_ok:
        db ' ok, ', 0
msg_wrong:
        db ' WRONG (expected 0e1f4d96), ', 0
msg_bytes:
        db ' bytes, ', 0
msg_ticks:
        db ` ticks\n`, 0
msg_panic:
        db `bench-compute: unexpected exception, frame `, 0
image_end:
        times -(((DATA - IMAGE_BASE) - (image_end - $$)) >> 63) db 0   ; image below 0x8000
