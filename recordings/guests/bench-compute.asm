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

%include "lib/abi.inc"                      ; hypercalls, console port, x2APIC MSRs
%include "lib/x86.inc"                      ; paging bits, CR0/CR4, gates

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
%include "lib/bench-boot.inc"               ; ESP, every exception gate to isr_panic
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
        call puts
        mov eax, ebx
        call puthex8
        mov esi, msg_ok
        cmp ebx, CRC_EXPECTED
        je .verdict
        mov esi, msg_wrong
.verdict:
        call puts
        mov eax, PASSES * (sentence_end - sentence)
        call putdec
        mov esi, msg_bytes
        call puts
%include "lib/bench-end.inc"                ; the ticks, flush; shutdown:

; ---- exceptions: none expected. Print the top of the frame ([esp] is EIP, or the error
; code for #DF/#GP/#PF with EIP after it) and stop.
isr_panic:
%include "lib/panic-frame.inc"              ; msg_panic, [esp], [esp + 4]
        mov al, 10
        call putc
        call flush
        jmp shutdown

%include "lib/set-gate.inc"                 ; set_gate: EBX = vector, EAX = handler (clobbered)

; ---- text output into a buffer, flushed with one console_io; all preserve registers
%include "lib/console.inc"                  ; putc, puts, puthex8, putdec, flush (out_buf, out_len)

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
