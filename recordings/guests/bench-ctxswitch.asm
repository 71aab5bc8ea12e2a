; =============================================================================================
; bench-ctxswitch.asm - shadow-versus-EPT benchmark, workload 2: address-space switches
; =============================================================================================
;
; What it measures: the cost of MOV to CR3. Under shadow paging every CR3 load traps to the
; hypervisor, which must find (or build) the shadow tables of the new guest page directory,
; and the first touch of each page after the switch refills the shadow/TLB state; under EPT
; the guest loads CR3 itself and only the TLB refill (a two-dimensional walk) costs extra.
; The seed paper's comparison of the two paging methods is about exactly this kind of load.
;
; The workload: four address spaces (four page directories) that share one page table for
; linear 0-4 MiB (identity map of the first 1 MiB: code, data, stack) and each map a private
; window of 16 pages at linear 0x400000. A tight loop of 4000 rounds; each round
;   - loads CR3 with the next page directory (round % 4),
;   - touches 4 of the 16 window pages (stride 5, so all 16 get visited): ADD the round number
;     to the page's first dword (a read-modify-write: accessed and dirty bits) and read it back,
;   - mixes the values read into a hash with 12 ALU instructions,
; 50 instructions per round, 200,000 in the loop:
;     switch 7 (mov, and, mov, mov cr3, mov, shr, mov) + 4 x 7 touch + 12 hash + 3 (inc, cmp, jb)
; Afterwards it switches to each address space once more and sums the first dwords of its 16
; window pages through the window. Space s must hold 4 x (the sum of the rounds r < 4000 with
; r % 4 = s) = 7,992,000 + 4000 s: a wrong translation after a switch (a stale TLB or shadow
; entry of another address space) would move a write into the wrong space and break the sums.
; The hash is checked too (0x521e0e9f, computed by a separate model of the loop). Output:
;
;     bench-ctxswitch: 4000 CR3 loads, 4 address spaces, 16000 page touches, sums ok, hash 521e0e9f ok, NNNNNN ticks
;
; (ticks: the RDTSC difference around the loop, in machine virtual time, as in
; bench-compute.asm: VM exits and waiting for a pCPU make it grow), then sched_op(shutdown).
; About 205,300 instructions in all.
;
; Memory map (guest-physical, 1 MiB domain):
;   0x01000-...      this image
;   0x08000          data page (tick counts, text buffer)
;   0x09000          IDT: 32 gates, every exception -> panic
;   0x0a000          PT_LOW: identity map of 0-1 MiB (page 0 not present), shared by all spaces
;   0x0b000-0x0e000  PD0-PD3: [0] = PT_LOW, [1] = PT_SPACE0-3
;   0x0f000          stack page (ESP = 0x10000)
;   0x10000-0x13000  PT_SPACE0-3: window page k of space s -> frame 0x20000 + (16 s + k) * 0x1000
;   0x20000-0x5ffff  the 64 window frames
; =============================================================================================

bits 32
org 0x1000

%include "lib/abi.inc"                      ; hypercalls, console port, x2APIC MSRs
%include "lib/x86.inc"                      ; paging bits, CR0/CR4, gates

IMAGE_BASE              equ 0x1000
DATA                    equ 0x08000
IDT                     equ 0x09000
IDT_GATES               equ 32
PT_LOW                  equ 0x0a000
PD0                     equ 0x0b000
STACK_TOP               equ 0x10000
PT_SPACE0               equ 0x10000
FRAMES                  equ 0x20000
WINDOW                  equ 0x400000                ; PDE 1

SPACES                  equ 4                       ; power of two
WINDOW_PAGES            equ 16                      ; power of two
TOUCHES                 equ 4
STRIDE                  equ 5                       ; odd: visits every window page
ROUNDS                  equ 4000                    ; a multiple of SPACES
PER_SPACE               equ ROUNDS / SPACES
HASH_EXPECTED           equ 0x521e0e9f

tsc_start               equ DATA + 0x00
tsc_end                 equ DATA + 0x04
hash                    equ DATA + 0x08
bad_sums                equ DATA + 0x0c
out_len                 equ DATA + 0x10
out_buf                 equ DATA + 0x100
OUT_MAX                 equ 0x200

start:
%include "lib/bench-boot.inc"               ; ESP, every exception gate to isr_panic
        lidt [idt_descriptor]
        mov dword [out_len], 0
        mov dword [bad_sums], 0

        ; ---- page tables (paging off: physical addresses) -------------------------------------
        xor ebx, ebx                        ; PT_LOW: identity map of the first 1 MiB
%include "lib/identity-map.inc"             ; PT_LOW[EBX..255] = their own frames
        mov dword [PT_LOW], 0               ; page 0 not present
        xor ebx, ebx                        ; the 64 window PTEs, four tables in a row
.window:                                    ; (PT_SPACE0 + 4 * i maps frame FRAMES + i pages)
        mov eax, ebx
        shl eax, 12
        add eax, FRAMES
        mov dword [eax], 0                  ; the counter dword of that frame starts at 0
        or eax, PG_P | PG_RW
        mov edx, ebx
        and edx, WINDOW_PAGES - 1           ; entry k ...
        mov ecx, ebx
        shr ecx, 4                          ; ... of space s
        shl ecx, 12
        mov [PT_SPACE0 + ecx + edx*4], eax
        inc ebx
        cmp ebx, SPACES * WINDOW_PAGES
        jb .window
        xor ebx, ebx                        ; the four page directories
.directory:
        mov edi, ebx
        shl edi, 12
        mov dword [PD0 + edi], PT_LOW | PG_P | PG_RW
        lea eax, [PT_SPACE0 + edi + PG_P + PG_RW]
        mov [PD0 + edi + 4], eax
        inc ebx
        cmp ebx, SPACES
        jb .directory

        mov eax, PD0
        mov cr3, eax
        mov eax, cr0
        or eax, CR0_PG | CR0_WP
        mov cr0, eax

        xor esi, esi                        ; hash state
        xor edi, edi
        rdtsc
        mov [tsc_start], eax

        ; ---- the measured loop: 50 instructions per round ------------------------------------
        xor ebp, ebp                        ; round
.round:
        mov eax, ebp
        and eax, SPACES - 1
        mov eax, [pd_list + eax*4]
        mov cr3, eax                        ; the switch (flushes the non-global TLB)
        mov ebx, ebp
        shr ebx, 2                          ; first window page of this round
        mov ecx, TOUCHES
.touch:
        mov edx, ebx
        and edx, WINDOW_PAGES - 1
        shl edx, 12
        add [WINDOW + edx], ebp             ; read-modify-write the page's counter
        mov eax, [WINDOW + edx]             ; and read it back
        add ebx, STRIDE
        loop .touch
        xor esi, eax                        ; 12 ALU instructions of "work" per round
        imul esi, esi, 0x01000193
        mov edx, esi
        shr edx, 15
        xor esi, edx
        add edi, esi
        rol edi, 7
        mov edx, edi
        and edx, 0xff
        add esi, edx
        xor edi, ebp
        sub esi, 0x61c88647
        inc ebp
        cmp ebp, ROUNDS
        jb .round
        ; -------------------------------------------------------------------------------------

        rdtsc
        mov [tsc_end], eax
        xor esi, edi
        mov [hash], esi

        ; ---- verification: each space, through its own window --------------------------------
        xor ebp, ebp                        ; space
.verify:
        mov eax, [pd_list + ebp*4]
        mov cr3, eax
        xor eax, eax
        xor ebx, ebx
.sum:
        mov edx, ebx
        shl edx, 12
        add eax, [WINDOW + edx]
        inc ebx
        cmp ebx, WINDOW_PAGES
        jb .sum
        mov ecx, ebp                        ; TOUCHES * (PER_SPACE * s + SPACES * PER_SPACE * (PER_SPACE - 1) / 2)
        imul ecx, ecx, PER_SPACE
        add ecx, SPACES * PER_SPACE * (PER_SPACE - 1) / 2
        imul ecx, ecx, TOUCHES
        cmp eax, ecx
        je .space_ok
        inc dword [bad_sums]
.space_ok:
        inc ebp
        cmp ebp, SPACES
        jb .verify

        mov esi, msg_head
        call puts
        mov esi, msg_sums_ok
        cmp dword [bad_sums], 0
        je .sums
        mov esi, msg_sums_bad
.sums:
        call puts
        mov eax, [hash]
        call puthex8
        mov esi, msg_ok
        cmp dword [hash], HASH_EXPECTED
        je .hash
        mov esi, msg_hash_bad
.hash:
        call puts
%include "lib/bench-end.inc"                ; the ticks, flush; shutdown:

; ---- exceptions: none expected ([esp] = EIP, or the error code with EIP after it)
%include "lib/bench-panic.inc"              ; isr_panic: the frame and CR2, then shutdown

%include "lib/set-gate.inc"                 ; set_gate: EBX = vector, EAX = handler (clobbered)

%include "lib/console.inc"                  ; putc, puts, puthex8, putdec, flush (out_buf, out_len)

idt_descriptor:
        dw IDT_GATES * 8 - 1
        dd IDT
pd_list:
        dd PD0, PD0 + 0x1000, PD0 + 0x2000, PD0 + 0x3000
hex_digits:
        db '0123456789abcdef'
msg_head:
        db 'bench-ctxswitch: 4000 CR3 loads, 4 address spaces, 16000 page touches, ', 0
msg_sums_ok:
        db 'sums ok, hash ', 0
msg_sums_bad:
        db 'SUMS WRONG, hash ', 0
msg_ok:
        db ' ok, ', 0
msg_hash_bad:
        db ' WRONG (expected 521e0e9f), ', 0
msg_ticks:
        db ` ticks\n`, 0
msg_panic:
        db `bench-ctxswitch: unexpected exception, frame/cr2 `, 0
image_end:
        times -(((DATA - IMAGE_BASE) - (image_end - $$)) >> 63) db 0   ; image below 0x8000
