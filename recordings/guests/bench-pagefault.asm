; =============================================================================================
; bench-pagefault.asm - shadow-versus-EPT benchmark, workload 3: demand paging
; =============================================================================================
;
; What it measures: the cost of guest page faults and guest page-table updates. Under shadow
; paging a guest #PF first exits to the hypervisor (which must decide whether it is a shadow
; miss or a real guest fault and inject it), the handler's PTE write hits a write-protected
; guest page table (another exit, or a resync later), and every INVLPG exits too. Under EPT
; the guest takes its own #PF, writes its own PTE and runs INVLPG without the hypervisor.
;
; The workload: a window of 128 pages at linear 0x400000 whose page table starts empty. Each
; of 52 passes
;   - touches the 128 pages in a scrambled order (stride 37): the first access, a write of
;     the pass number, faults (#PF, error code 2 = not present + write); the #PF handler maps
;     the page (PTE = pool frame k, present, writable) and IRETDs, which retries the write;
;     a second access reads the value back (no fault);
;   - unmaps all 128 pages again: PTE = 0 and INVLPG for each.
; Per page and pass: 7 instructions of touch loop + 18 in the #PF handler + 5 to unmap =
; 30, so 52 x 128 x 30 + 52 x 8 (pass overhead) = 200,096 instructions in the loop (the
; faulting attempts do not retire), 6656 page faults, 6656 INVLPGs.
;
; Self-checks, printed: the number of page faults taken must be 6656; the values read back
; must add up to 128 x (0 + 1 + ... + 51) = 169,728; and after the last pass every pool frame
; (read through the identity map) must hold 51 - the pages kept their data while unmapped:
;
;     bench-pagefault: 6656 page faults, 52 passes x 128 pages, data ok, NNNNNN ticks
;
; (ticks: the RDTSC difference around the loop, in machine virtual time, as in
; bench-compute.asm: VM exits and waiting for a pCPU make it grow), then sched_op(shutdown).
; About 205,100 instructions in all.
;
; Memory map (guest-physical, 1 MiB domain):
;   0x01000-...      this image
;   0x08000          data page (counters, text buffer)
;   0x09000          IDT: 32 gates; #PF -> the demand-paging handler, the rest -> panic
;   0x0a000          PD: [0] = PT_LOW, [1] = PT_DEMAND
;   0x0b000          PT_LOW: identity map of 0-1 MiB (page 0 not present)
;   0x0c000          PT_DEMAND: the window at linear 0x400000 (entries 0-127)
;   0x0f000          stack page (ESP = 0x10000)
;   0x40000-0xbffff  the pool: window page k is backed by frame 0x40000 + k * 0x1000
; =============================================================================================

bits 32
org 0x1000

%include "lib/abi.inc"                      ; hypercalls, console port, x2APIC MSRs
%include "lib/x86.inc"                      ; paging bits, CR0/CR4, gates

IMAGE_BASE              equ 0x1000
DATA                    equ 0x08000
IDT                     equ 0x09000
IDT_GATES               equ 32
PD                      equ 0x0a000
PT_LOW                  equ 0x0b000
PT_DEMAND               equ 0x0c000
STACK_TOP               equ 0x10000
POOL                    equ 0x40000
WINDOW                  equ 0x400000                ; PDE 1

PAGES                   equ 128                     ; power of two
STRIDE                  equ 37                      ; odd: a permutation of the 128 pages
PASSES                  equ 52

tsc_start               equ DATA + 0x00
tsc_end                 equ DATA + 0x04
pf_count                equ DATA + 0x08
read_sum                equ DATA + 0x0c
bad_pages               equ DATA + 0x10
out_len                 equ DATA + 0x14
out_buf                 equ DATA + 0x100
OUT_MAX                 equ 0x200

start:
%include "lib/bench-boot.inc"               ; ESP, every exception gate to isr_panic
        mov ebx, 14
        mov eax, isr_pf
        call set_gate
        lidt [idt_descriptor]
        mov dword [out_len], 0
        mov dword [pf_count], 0
        mov dword [bad_pages], 0

        ; ---- page tables (paging off) ---------------------------------------------------------
        xor ebx, ebx
%include "lib/identity-map.inc"             ; PT_LOW[EBX..255] = their own frames
        mov dword [PT_LOW], 0               ; page 0 not present
        mov edi, PT_DEMAND                  ; the window starts empty
        mov ecx, 1024
        xor eax, eax
        rep stosd
        mov dword [PD + 0 * 4], PT_LOW | PG_P | PG_RW
        mov dword [PD + 1 * 4], PT_DEMAND | PG_P | PG_RW
        mov eax, PD
        mov cr3, eax
        mov eax, cr0
        or eax, CR0_PG | CR0_WP
        mov cr0, eax

        rdtsc
        mov [tsc_start], eax

        ; ---- the measured loop ---------------------------------------------------------------
        xor eax, eax                        ; sum of the values read back
        xor ebp, ebp                        ; pass
.pass:
        xor ebx, ebx                        ; touch: page (i * 37) % 128 for i = 0..127
        mov ecx, PAGES
.touch:
        mov edx, ebx
        and edx, PAGES - 1
        shl edx, 12
        mov [WINDOW + edx], ebp             ; #PF (not present, write) -> mapped -> retried
        add eax, [WINDOW + edx]             ; mapped now: no fault
        add ebx, STRIDE
        loop .touch
        mov edi, PT_DEMAND                  ; unmap everything again
        mov esi, WINDOW
        mov ecx, PAGES
.unmap:
        mov dword [edi], 0
        invlpg [esi]
        add edi, 4
        add esi, 0x1000
        loop .unmap
        inc ebp
        cmp ebp, PASSES
        jb .pass
        ; -------------------------------------------------------------------------------------

        mov [read_sum], eax
        rdtsc
        mov [tsc_end], eax

        ; ---- checks ------------------------------------------------------------------------
        mov esi, POOL                       ; every pool frame holds the last pass number
        mov ecx, PAGES
.frame:
        cmp dword [esi], PASSES - 1
        je .frame_ok
        inc dword [bad_pages]
.frame_ok:
        add esi, 0x1000
        loop .frame

        mov esi, msg_head
        call puts
        mov eax, [pf_count]
        call putdec
        mov esi, msg_faults
        call puts
        mov esi, msg_data_ok
        cmp dword [pf_count], PASSES * PAGES
        jne .bad
        cmp dword [read_sum], PAGES * PASSES * (PASSES - 1) / 2
        jne .bad
        cmp dword [bad_pages], 0
        je .verdict
.bad:
        mov esi, msg_data_bad
.verdict:
        call puts
%include "lib/bench-end.inc"                ; the ticks, flush; shutdown:

; =============================================================================================
; #PF: [esp] = error code, [esp+4] = EIP, [esp+8] = CS, [esp+12] = EFLAGS; CR2 = the address.
; A not-present fault inside the window maps the page and returns to the faulting
; instruction, which then succeeds. Anything else is a bug: panic. 18 instructions.
; =============================================================================================
isr_pf:
        push eax
        push edx
        test dword [esp + 8], 1             ; error code bit 0: the page was present
        jnz .unexpected
        mov eax, cr2
        sub eax, WINDOW
        cmp eax, PAGES * 0x1000
        jae .unexpected
        shr eax, 12                         ; window page k
        mov edx, eax
        shl edx, 12
        add edx, POOL | PG_P | PG_RW        ; -> pool frame k
        mov [PT_DEMAND + eax*4], edx        ; a not-present entry is never cached: no INVLPG
        inc dword [pf_count]
        pop edx
        pop eax
        add esp, 4                          ; the error code
        iretd
.unexpected:
        pop edx
        pop eax
        jmp isr_panic

; ---- other exceptions: none expected ([esp] = EIP, or the error code with EIP after it)
%include "lib/bench-panic.inc"              ; isr_panic: the frame and CR2, then shutdown

%include "lib/set-gate.inc"                 ; set_gate: EBX = vector, EAX = handler (clobbered)

%include "lib/console.inc"                  ; putc, puts, puthex8, putdec, flush (out_buf, out_len)

idt_descriptor:
        dw IDT_GATES * 8 - 1
        dd IDT
hex_digits:
        db '0123456789abcdef'
msg_head:
        db 'bench-pagefault: ', 0
msg_faults:
        db ' page faults, 52 passes x 128 pages, ', 0
msg_data_ok:
        db 'data ok, ', 0
msg_data_bad:
        db 'DATA WRONG (expected 6656 faults, sum 169728, every frame 51), ', 0
msg_ticks:
        db ` ticks\n`, 0
msg_panic:
        db `bench-pagefault: unexpected exception, frame/cr2 `, 0
image_end:
        times -(((DATA - IMAGE_BASE) - (image_end - $$)) >> 63) db 0   ; image below 0x8000
