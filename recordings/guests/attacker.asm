; =============================================================================================
; attacker.asm - a hostile guest for chronovisor
; =============================================================================================
;
; What it demonstrates: a guest kernel that does everything a malicious (or just broken)
; ring-0 guest can do to escape its memory or disturb the machine, and records what the
; hypervisor answered. Nothing here may ever show another domain's data, crash another domain
; or the hypervisor, or take the attacker itself down with a triple fault: every attack must
; end in a fault delivered to the attacker's own IDT (or a hypercall error, or nothing at all).
;
; How it survives its own attacks: every attack is a small subroutine called by run_attack,
; which first stores a recovery address ("recover") and the stack pointer ("recover_esp").
; The #DE/#UD/#DF/#GP/#PF handlers (and a default handler for every other vector) count the
; fault per vector, print a letter (D U F G P, '?' for other vectors) with the error code and
; the faulting EIP, then replace the saved EIP in the interrupt frame with "recover", pop the
; vector and the error code and IRETD: the faulting instruction is abandoned and run_attack
; goes on with the next attack. A fault with no recovery address armed is "unexpected": the
; attacker prints that and goes straight to its summary.
;
; Each output line is "[tag] what (expect X): outcome". X is the letter of the expected fault,
; or a value. EPT and shadow paging may answer some memory attacks differently: the ABI turns
; an EPT violation into #GP(0) ("G"), while a shadow-paging hypervisor may reflect a #PF ("P")
; for a guest PTE that names a frame the domain does not have. Both are fine; what is never
; fine is a read that returns foreign data or a write that lands outside the domain.
;
; Attacks, in order (phase, expected result; "no fault" lines print the value read):
;   [00]  warm-up, divide by zero                                         D
;   (a) memory beyond the domain, paging off:
;   [a1]  read 0x00100000 (1 MiB: first byte past a 1 MiB domain)         G
;   [a2]  write 0x00100000                                                G
;   [a3]  read 0x04000000 (64 MiB)                                        G
;   [a4]  write 0x04000000                                                G
;   [a5]  read 0xfffffff0 (top of the address space)                      G
;   [a6]  write a dword across the end of memory at 0x000ffffe            G
;   [a7]  the two in-bounds bytes of that write are unchanged             1111 (no partial write)
;   [a8]  rep stosd from 0x000ffff0, running off the end                  G
;   -- paging on (identity map of 0-1 MiB, an attack window at linear 0x400000)
;   [a9]  window PTE -> gfn 0x100 (past our memory), read                 G (or P)
;   [a10] window PTE -> gfn 0x4000 (64 MiB), write                        G (or P)
;   (b) page-table entries naming frames that are not ours:
;   [b1]  PTE -> gfn 0x1ff (the last gfn our max reservation allows)      G (or P)
;   [b2]  PTE -> gfn 0x800 (8 MiB: beyond the host's RAM)                 G (or P)
;   [b3]  PTE -> gfn 0xfffff (the highest 32-bit frame number)            G (or P)
;   [b4]  PTE -> frame 0x180 (another domain's machine frame on a small host)  G (or P)
;   [b5]  PTE -> frame 0x026 (a machine frame in Xen's own first MiB; to the guest it is
;         its own gfn 0x26, the marker page)                              454e494d ("MINE")
;   [b6]  PTE -> frame 0 (machine frame 0 of the host; our own page 0)    00000000
;   [b7]  marker through the window, then PTE -> gfn 0x4000 WITHOUT INVLPG, read: a TLB may
;         still hold the old translation (our own marker); it may never give foreign data
;                                                                         G, or 454e494d
;   [b8]  the same after INVLPG                                           G (or P)
;   [b9]  PDE 2 -> a page table at gfn 0x4000 (not ours), read 0x800000  G (or P)
;   [b10] CR4.PSE, PDE 3 -> 4 MiB page at gpa 0: read our marker at 0xc26000  454e494d
;   [b11] same large page, 0xd00000 = gpa 0x100000, past our memory        G (or P)
;   [b12] PDE 3 -> 4 MiB page at gpa 0x40000000 (1 GiB)                   G (or P)
;   (c) executing data:
;   [c1]  jump into a page of 0xff bytes (ff ff = FF /7, invalid)         U at 0x27000
;   [c2]  jump into random-looking bytes: xchg eax,ecx / dec ebx / xor eax,imm32, then
;         fe ff (FE /7, invalid)                                          U at +7
;   [c3]  jump to 0x500000, a non-present page                            P err=0 cr2=0x500000
;   [c4]  jump to 0x400000, whose PTE names gfn 0x100 (not ours)          G (or P)
;   (d) hypercalls with hostile arguments (results as signed numbers):
;   [d1]  populate_physmap gfn 0x100 count 0xffffffff                     -22
;   [d2]  populate_physmap gfn 0x100 count 1025 (over 1024 extents)       -22
;   [d3]  populate_physmap gfn 0xffffffff (negative) count 1              -22
;   [d4]  populate_physmap gfn 0x80000000 count 16                        -22
;   [d5]  populate_physmap gfn 0xfffff count 2 (past the 2^20 gfn limit)  -22
;   [d6]  populate_physmap gfn 0 count 0                                  -22
;   [d7]  populate_physmap gfn 0x10 count 4 (our own memory)              -17
;   [d8]  populate_physmap gfn 0xf0 count 32 (straddles our last gfn)     -17
;   [d9]  populate_physmap gfn 0x100 count 1024 (beyond max reservation)  -12 (or -22)
;   [d10] populate_physmap gfn 0x100 count 1 (legitimate)                 1
;   [d11] read the new frame through the window: it must be zeroed        00000000
;   [d12] populate_physmap gfn 0x100 count 1 again                        -17
;   [d13] decrease_reservation gfn 0x5000 count 4 (not ours)              0
;   [d14] decrease_reservation gfn 0xffffffff count 1                     0 (or -22)
;   [d15] decrease_reservation gfn 0x5000 count 0xffffffff (a count that must not make Xen
;         walk 4 billion gfns)                                            0 or -22
;   [d16] decrease_reservation gfn 0x100 count 2: ours, then one we lack  1 (stops at 0x101)
;   [d17] read gfn 0x100 again through the window after INVLPG           G (or P)
;   [d18] decrease_reservation gfn 0x28 (our scratch page, "OLD!")       1
;   [d19] read 0x28000, the frame we gave back                           G (or P)
;   [d20] populate_physmap gfn 0x28 count 1 (take a frame back)           1
;   [d21] read 0x28000: 00000000 in the secure profile (scrubbed); the vanilla profile may
;         hand the same frame back unscrubbed ("OLD!" = 21444c4f): our own old data
;   [d22] read 0x1400000 through page table PT_VICTIM (gfn 0x25)         454e494d
;   [d23] decrease_reservation gfn 0x25: the page table itself             1
;   [d24] read 0x1400000 again after INVLPG: the walk needs the table     G (or P)
;   [d25]-[d30] hypercalls 0, 1, 38, 99, 0x7fffffff, 0xffffffff           -38 each
;   [d31] memory_op subop 99                                              -38
;   [d32] sched_op subop 99                                               -38
;   [d33] console_io subop 1 (read)                                       -38
;   [d34] console_io write, length 0x7fffffff, text at 0x04000000        negative, nothing printed
;   [d35] console_io write, length 0x7fffffff, text at 0x000ffff0 (the last 16 bytes of memory
;         hold "<end of memory>\n")                       negative; at most those 16 bytes printed
;   [d36] console_io write, length 32, text at 0xfffffff0 (wraps 4 GiB)  negative
;   [d37] console_io write, length 0xffffffff (-1), text at 0x000ffff0   negative
;   (e) privileged state:
;   [e1]  cpuid 0x40000000 (recon, allowed)                               XenVMMXenVMM
;   [e2]  rdmsr 0xdeadbeef                                                G
;   [e3]  wrmsr 0xdeadbeef                                                G
;   [e4]  rdmsr 0x9e IA32_SMBASE (SMM's base; readable only in SMM)       G
;   [e5]  wrmsr 0x1f2 IA32_SMRR_PHYSBASE (move the SMM range)             G
;   [e6]  wrmsr 0x1b IA32_APIC_BASE (disable the local APIC)              G
;   [e7]  wrmsr 0x830 x2APIC ICR: INIT IPI to all other CPUs              G
;   [e8]  rdmsr 0x480 IA32_VMX_BASIC                                      G
;   [e9]  wrmsr 0x3a IA32_FEATURE_CONTROL                                 G
;   [e10] out 0xcf9 <- 0x06 (reset control register: hard reset)          no fault, no reset
;   [e11] out 0x64 <- 0xfe (keyboard controller: pulse the reset line)    no fault, no reset
;   [e12] out 0x92 <- 0x01 (port 92 fast reset)                           no fault, no reset
;   [e13] out 0xcf8 <- 0x80000000, in 0xcfc (PCI config, host bridge)     no fault (ffffffff on Xen)
;   [e14] in al, 0x3f8 (COM1)                                             no fault (ff on Xen)
;   [e15] mov cr4, 0xffffffff (reserved bits)                             G
;   [e16] mov cr4, cr4 | VMXE (nested VMX)                                G
;   [e17] mov cr0, PG without PE                                          G
;   [e18] mov cr0, NW without CD                                          G
;   [e19] mov cr1, eax (0f 22 c8: CR1 does not exist)                     U
;   [e20] lgdt (0f 01 15 ...: not in the modelled subset)                 U
;   [e21] vmlaunch (0f 01 c2)                                             U
;   [e22] int 0x82 (a software interrupt: goes to our own IDT)            ?
;   (f) the last act:
;   [f1]  decrease_reservation of the page this code runs from: the fetch after VMCALL
;         finds the frame gone                                             G (or P) at the VMCALL+3
; Then a summary of the fault counts, one console_io line, and sched_op(shutdown).
; Expected summary, with a TLB that keeps the stale entry of [b7] (chronovisor's does, under
; EPT and under shadow paging alike):
;     attacker summary: 42 faults: #DE=1 #UD=5 #DF=0 #GP=34 #PF=1 other=1
; (43 faults and #GP=35 without a TLB; a shadow-paging hypervisor that reflects #PF instead of
; #GP for guest PTEs naming frames the domain lacks turns some G into P).
; About 69,000 instructions, counting each REP iteration and each OUT (one per character
; printed: most of the run is printing).
;
; Guest-physical memory map (the domain is meant to have exactly 1 MiB, gfn 0x00-0xff):
;   0x00000          page 0 (unused)
;   0x01000-...      this image; the final-act code is alone on the image's last page
;   0x20000          data page: recovery state, fault counters
;   0x21000          IDT (256 gates)
;   0x22000          PD          page directory: [0] PT_LOW, [1] PT_WIN, attacks use [2] [3] [5]
;   0x23000          PT_LOW      identity map of linear 0-1 MiB (the attacker's own memory)
;   0x24000          PT_WIN      the attack window at linear 0x400000 (PTE 0 is rewritten)
;   0x25000          PT_VICTIM   a page table the attacker gives back to Xen while it is in use
;   0x26000          marker page: "MINE"
;   0x27000          a page of 0xff bytes (executed in [c1])
;   0x28000          scratch page: "OLD!" (given back and taken again in [d18]-[d21])
;   0x29000-0x2ffff  stack (ESP = 0x30000)
;   0xffff0-0xfffff  the last 16 bytes of memory: "<end of memory>\n" for [d35]
; =============================================================================================

bits 32
org 0x1000

; ---- the machine ABI and x86 constants -------------------------------------------------------
%include "lib/abi.inc"                      ; hypercalls, console port, x2APIC MSRs
%include "lib/x86.inc"                      ; paging bits, CR0/CR4, gates

; ---- layout ------------------------------------------------------------------------------------
IMAGE_BASE              equ 0x1000                  ; = org
DATA                    equ 0x20000
IDT                     equ 0x21000
PD                      equ 0x22000
PT_LOW                  equ 0x23000
PT_WIN                  equ 0x24000
PT_VICTIM               equ 0x25000
MARKER_PAGE             equ 0x26000
FF_PAGE                 equ 0x27000
SCRATCH_PAGE            equ 0x28000
STACK_TOP               equ 0x30000
LAYOUT_START            equ 0x20000
LAYOUT_END              equ 0x30000
MEMORY_END              equ 0x100000                ; a 1 MiB domain
WINDOW                  equ 0x400000                ; linear, PDE 1 -> PT_WIN
MARKER                  equ 'MINE'                  ; 0x454e494d
OLD_MARKER              equ 'OLD!'                  ; 0x21444c4f

; ---- variables (data page) ---------------------------------------------------------------------
recover                 equ DATA + 0x00             ; where a fault resumes (0: unexpected)
recover_esp             equ DATA + 0x04             ; run_attack's stack pointer
faulted                 equ DATA + 0x08             ; the current attack faulted
fault_total             equ DATA + 0x0c
table_cursor            equ DATA + 0x10             ; next entry of the attack table
fault_counts            equ DATA + 0x40             ; dd [33]: per vector 0-31, [32] = other vectors
OTHER_SLOT              equ 32

; =============================================================================================
; Boot: paging off, IF = 0 (and it stays 0: no timer here).
; =============================================================================================
attacker_entry:
        cli
        mov esp, STACK_TOP                  ; our own stack: the top of memory gets attacked
        mov edi, LAYOUT_START               ; zero data, IDT, tables, pages and stack
        mov ecx, (LAYOUT_END - LAYOUT_START) / 4
        xor eax, eax
        rep stosd
        mov dword [MARKER_PAGE], MARKER
        mov dword [SCRATCH_PAGE], OLD_MARKER
        mov edi, FF_PAGE                    ; a page of 0xff bytes
        mov ecx, 1024
        mov eax, 0xffffffff
        rep stosd

        ; IDT: the default handler everywhere, then the vectors we tell apart.
        xor ebx, ebx
.idt_fill:
        mov eax, isr_other
        call set_gate
        inc ebx
        cmp ebx, 256
        jb .idt_fill
        mov ebx, 0
        mov eax, isr_de
        call set_gate
        mov ebx, 6
        mov eax, isr_ud
        call set_gate
        mov ebx, 8
        mov eax, isr_df
        call set_gate
        mov ebx, 13
        mov eax, isr_gp
        call set_gate
        mov ebx, 14
        mov eax, isr_pf
        call set_gate
        lidt [idt_descriptor]

        mov eax, HYPERCALL_CONSOLE_IO       ; a legitimate console_io first
        mov ebx, CONSOLEIO_WRITE
        mov ecx, msg_banner_end - msg_banner
        mov edx, msg_banner
        vmcall

        mov esi, table_warmup
        call run_table
        mov esi, table_memory
        call run_table
        call paging_on
        mov esi, table_paging_memory
        call run_table
        mov esi, table_page_tables
        call run_table
        mov esi, table_execute
        call run_table
        mov esi, table_hypercalls
        call run_table
        mov esi, table_privileged
        call run_table
        mov esi, table_last_act
        call run_table
        jmp finish

; ---------------------------------------------------------------------------------------------
; set_gate: EBX = vector, EAX = handler (clobbered). 32-bit interrupt gate, selector 0x08.
; ---------------------------------------------------------------------------------------------
set_gate:
        push edx
        lea edx, [IDT + ebx*8]
        mov [edx], ax                       ; offset 15:0
        mov word [edx + 2], KERNEL_CS       ; selector
        mov word [edx + 4], GATE_INTERRUPT_32
        shr eax, 16
        mov [edx + 6], ax                   ; offset 31:16
        pop edx
        ret

; ---------------------------------------------------------------------------------------------
; paging_on: PD[0] -> PT_LOW (identity map of our 1 MiB), PD[1] -> PT_WIN (empty window).
; ---------------------------------------------------------------------------------------------
paging_on:
        xor ebx, ebx
.identity:
        mov eax, ebx
        shl eax, 12
        or eax, PG_P | PG_RW
        mov [PT_LOW + ebx*4], eax
        inc ebx
        cmp ebx, MEMORY_END >> 12
        jb .identity
        mov dword [PD + 0 * 4], PT_LOW | PG_P | PG_RW
        mov dword [PD + 1 * 4], PT_WIN | PG_P | PG_RW
        mov eax, PD
        mov cr3, eax
        mov eax, cr0
        or eax, CR0_PG
        mov cr0, eax
        mov esi, msg_paging_on
        jmp puts

; ---------------------------------------------------------------------------------------------
; run_table: ESI = attack table. Entries are 6 dwords: tag text, routine, then four arguments
; the routine finds at [ESI] (ESI points at the first argument). A zero tag ends the table.
; ---------------------------------------------------------------------------------------------
run_table:
        mov [table_cursor], esi
.next:
        mov esi, [table_cursor]
        cmp dword [esi], 0
        je .done
        call run_attack
        add dword [table_cursor], 24
        jmp .next
.done:
        ret

; run_attack: ESI = table entry. Prints the tag, arms the recovery, calls the routine.
run_attack:
        push esi
        mov esi, [esi]
        call puts
        pop esi
        mov ebx, [esi + 4]
        add esi, 8                          ; the routine's arguments
        mov dword [faulted], 0
        mov [recover_esp], esp
        mov dword [recover], .resume
        call ebx                            ; returns normally if nothing faulted
.resume:
        mov esp, [recover_esp]              ; a fault leaves ESP inside the attack routine
        mov dword [recover], 0
        mov al, 10
        jmp putc

; =============================================================================================
; Fault handlers. Stubs push a dummy error code where the CPU pushes none, then the vector;
; fault_common then sees: [esp] vector, [esp+4] error code, [esp+8] EIP, [esp+12] CS,
; [esp+16] EFLAGS - after its PUSHAD everything is 32 bytes further.
; =============================================================================================
isr_de:
        push 0
        push 0
        jmp fault_common
isr_ud:
        push 0
        push 6
        jmp fault_common
isr_df:
        push 8                              ; the CPU pushed error code 0
        jmp fault_common
isr_gp:
        push 13                             ; the CPU pushed the error code
        jmp fault_common
isr_pf:
        push 14                             ; the CPU pushed the error code; CR2 = address
        jmp fault_common
isr_other:
        push 0                              ; any other vector (exceptions 9-12 and 17, which
        push OTHER_SLOT                     ; push an error code, are not expected here)
        jmp fault_common

fault_common:
        pushad
        mov ebx, [esp + 32]                 ; vector (OTHER_SLOT for the rest)
        inc dword [fault_counts + ebx*4]
        inc dword [fault_total]
        mov dword [faulted], 1
        mov al, ' '
        call putc
        mov al, [fault_letters + ebx]
        call putc
        mov esi, msg_err
        call puts
        mov eax, [esp + 36]                 ; error code
        call puthex
        cmp ebx, 14
        jne .no_cr2
        mov esi, msg_cr2
        call puts
        mov eax, cr2
        call puthex
.no_cr2:
        mov esi, msg_eip
        call puts
        mov eax, [esp + 40]                 ; the faulting instruction
        call puthex
        mov eax, [recover]
        test eax, eax
        jz .unexpected
        mov [esp + 40], eax                 ; IRETD will "return" to the recovery label
        mov dword [recover], 0
        popad
        add esp, 8                          ; vector and error code: IRETD wants EIP on top
        iretd
.unexpected:
        mov esi, msg_unexpected
        call puts
        mov esp, STACK_TOP
        jmp finish

; =============================================================================================
; Reporting tails for the attack routines (jumped to with the value in EAX)
; =============================================================================================
say_value:                                  ; " no fault, read XXXXXXXX"
        mov esi, msg_read
        call puts
        jmp puthex
say_result:                                 ; " = <signed decimal>"
        mov esi, msg_result
        call puts
        jmp putsdec
say_done:                                   ; " no fault"
        mov esi, msg_no_fault
        jmp puts

; =============================================================================================
; (0) and (a): the attack routines. ESI points at the four table arguments.
; =============================================================================================
atk_divide_by_zero:
        mov eax, 1
        xor edx, edx
        xor ecx, ecx
        div ecx
        jmp say_done

atk_read:                                   ; arg0 = address
        mov ebx, [esi]
        mov eax, [ebx]
        jmp say_value

atk_write:                                  ; arg0 = address
        mov ebx, [esi]
        mov dword [ebx], 0xbad0bad0
        jmp say_done

atk_straddle_write:                         ; a dword at 0xffffe: two bytes in, two out
        mov word [MEMORY_END - 2], 0x1111
        mov dword [MEMORY_END - 2], 0xaaaaaaaa
        jmp say_done

atk_check_straddle:
        movzx eax, word [MEMORY_END - 2]
        jmp say_value

atk_rep_off_the_end:
        mov edi, MEMORY_END - 16
        mov ecx, 16
        mov eax, 0x41414141
        rep stosd
        jmp say_done

; =============================================================================================
; (a, paged) and (b): page tables
; =============================================================================================
; map_window: EAX = frame number: PT_WIN[0] = frame | P | RW, then INVLPG the window page.
map_window:
        shl eax, 12
        or eax, PG_P | PG_RW
        mov [PT_WIN], eax
        invlpg [WINDOW]
        ret

atk_window_read:                            ; arg0 = frame number
        mov eax, [esi]
        call map_window
        mov eax, [WINDOW]
        jmp say_value

atk_window_write:                           ; arg0 = frame number
        mov eax, [esi]
        call map_window
        mov dword [WINDOW], 0xbad0bad0
        jmp say_done

atk_stale_tlb:
        mov eax, MARKER_PAGE >> 12          ; a legitimate translation, used once...
        call map_window
        mov eax, [WINDOW]
        mov dword [PT_WIN], 0x04000000 | PG_P | PG_RW   ; ...then redirected, without INVLPG
        mov eax, [WINDOW]
        jmp say_value

atk_after_invlpg:
        invlpg [WINDOW]
        mov eax, [WINDOW]
        jmp say_value

atk_foreign_page_table:
        mov dword [PD + 2 * 4], 0x04000000 | PG_P | PG_RW
        invlpg [0x800000]
        mov eax, [0x800000]
        jmp say_value

atk_large_page:                             ; arg0 = PDE 3, arg1 = linear address to read
        mov eax, cr4
        or eax, CR4_PSE
        mov cr4, eax
        mov eax, [esi]
        mov [PD + 3 * 4], eax
        invlpg [0xc00000]
        mov ebx, [esi + 4]
        invlpg [ebx]
        mov eax, [ebx]
        jmp say_value

; =============================================================================================
; (c): executing data
; =============================================================================================
atk_jump:                                   ; arg0 = target, arg1 = window frame (0: leave)
        mov eax, [esi + 4]
        test eax, eax
        jz .go
        call map_window
.go:
        mov eax, [esi]
        jmp eax                             ; never comes back: the handler resumes run_attack

; =============================================================================================
; (d): hypercalls. arg0..3 = EAX, EBX, ECX, EDX.
; =============================================================================================
atk_hypercall:
        mov eax, [esi]
        mov ebx, [esi + 4]
        mov ecx, [esi + 8]
        mov edx, [esi + 12]
        vmcall
        jmp say_result

atk_end_of_memory_text:                     ; console_io from the last 16 bytes of memory
        push esi
        mov esi, end_of_memory_text
        mov edi, MEMORY_END - 16
        mov ecx, 4
        rep movsd
        pop esi
        jmp atk_hypercall

atk_victim_read:                            ; PD[5] -> PT_VICTIM, whose PTE 0 -> the marker
        mov dword [PT_VICTIM], MARKER_PAGE | PG_P | PG_RW
        mov dword [PD + 5 * 4], PT_VICTIM | PG_P | PG_RW
        invlpg [0x1400000]
        mov eax, [0x1400000]
        jmp say_value

; =============================================================================================
; (e): privileged state. MSR routines: arg0 = EAX, arg1 = EDX, arg2 = ECX (MSR).
; =============================================================================================
atk_rdmsr:
        mov ecx, [esi + 8]
        rdmsr
        jmp say_value

atk_wrmsr:
        mov eax, [esi]
        mov edx, [esi + 4]
        mov ecx, [esi + 8]
        wrmsr
        jmp say_done

atk_out:                                    ; arg0 = port, arg1 = byte
        mov edx, [esi]
        mov eax, [esi + 4]
        out dx, al
        jmp say_done

atk_pci_config:
        mov dx, 0xcf8
        mov eax, 0x80000000                 ; bus 0, device 0, function 0, register 0
        out dx, eax
        mov dx, 0xcfc
        in eax, dx
        jmp say_value

atk_in_com1:
        mov dx, 0x3f8
        xor eax, eax
        in al, dx
        jmp say_value

atk_cpuid:
        mov eax, 0x40000000
        cpuid
        mov [cpuid_text], ebx
        mov [cpuid_text + 4], ecx
        mov [cpuid_text + 8], edx
        mov byte [cpuid_text + 12], 0
        mov esi, msg_signature
        call puts
        mov esi, cpuid_text
        jmp puts

atk_cr4_value:                              ; arg0 = value
        mov eax, [esi]
        mov cr4, eax
        jmp say_done

atk_cr4_vmxe:
        mov eax, cr4
        or eax, CR4_VMXE
        mov cr4, eax
        jmp say_done

atk_cr0_pg_without_pe:
        mov eax, cr0
        and eax, ~CR0_PE
        mov cr0, eax
        jmp say_done

atk_cr0_nw_without_cd:
        mov eax, cr0
        or eax, CR0_NW
        mov cr0, eax
        jmp say_done

atk_mov_cr1:
        db 0x0f, 0x22, 0xc8                 ; mov cr1, eax
        jmp say_done

atk_lgdt:
        db 0x0f, 0x01, 0x15                 ; lgdt [fake_gdtr]
        dd fake_gdtr
        jmp say_done

atk_vmlaunch:
        db 0x0f, 0x01, 0xc2                 ; vmlaunch
        jmp say_done

atk_int:
        int 0x82
        jmp say_done

; =============================================================================================
; Summary and shutdown (also where an unexpected fault ends up, with a fresh stack)
; =============================================================================================
finish:
        mov esi, msg_summary
        call puts
        mov eax, [fault_total]
        call putdec
        mov esi, msg_faults
        call puts
        mov ebx, summary_vectors
.vector:
        mov esi, [ebx]
        test esi, esi
        jz .done
        call puts
        mov eax, [ebx + 4]
        mov eax, [fault_counts + eax*4]
        call putdec
        add ebx, 8
        jmp .vector
.done:
        mov al, 10
        call putc
        mov eax, HYPERCALL_CONSOLE_IO       ; a well-formed console_io still works
        mov ebx, CONSOLEIO_WRITE
        mov ecx, msg_bye_end - msg_bye
        mov edx, msg_bye
        vmcall
        mov eax, HYPERCALL_SCHED_OP
        mov ebx, SCHEDOP_SHUTDOWN
        vmcall
.hang:
        hlt                                 ; IF = 0 and no timer: only if shutdown failed
        jmp .hang

; =============================================================================================
; Console output through port 0xE9. Every routine preserves all registers.
; =============================================================================================
putc:                                       ; AL
        out CONSOLE_PORT, al
        ret

puts:                                       ; ESI = NUL-terminated text
        push eax
        push esi
.next:
        mov al, [esi]
        test al, al
        jz .done
        out CONSOLE_PORT, al
        inc esi
        jmp .next
.done:
        pop esi
        pop eax
        ret

puthex:                                     ; EAX, 8 hex digits
        pushad
        mov edx, eax
        mov ecx, 8
.digit:
        rol edx, 4
        mov eax, edx
        and eax, 0x0f
        mov al, [hex_digits + eax]
        out CONSOLE_PORT, al
        loop .digit
        popad
        ret

putsdec:                                    ; EAX, signed decimal
        test eax, eax
        jns putdec
        push eax
        mov al, '-'
        out CONSOLE_PORT, al
        pop eax
        push eax
        neg eax
        call putdec
        pop eax
        ret

putdec:                                     ; EAX, unsigned decimal
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
        out CONSOLE_PORT, al
        loop .emit
        popad
        ret

; =============================================================================================
; Attack tables: dd tag, routine, arg0, arg1, arg2, arg3
; =============================================================================================
table_warmup:
        dd t00, atk_divide_by_zero, 0, 0, 0, 0
        dd 0

table_memory:
        dd ta1, atk_read, MEMORY_END, 0, 0, 0
        dd ta2, atk_write, MEMORY_END, 0, 0, 0
        dd ta3, atk_read, 0x04000000, 0, 0, 0
        dd ta4, atk_write, 0x04000000, 0, 0, 0
        dd ta5, atk_read, 0xfffffff0, 0, 0, 0
        dd ta6, atk_straddle_write, 0, 0, 0, 0
        dd ta7, atk_check_straddle, 0, 0, 0, 0
        dd ta8, atk_rep_off_the_end, 0, 0, 0, 0
        dd 0

table_paging_memory:
        dd ta9, atk_window_read, 0x100, 0, 0, 0
        dd ta10, atk_window_write, 0x4000, 0, 0, 0
        dd 0

table_page_tables:
        dd tb1, atk_window_read, 0x1ff, 0, 0, 0
        dd tb2, atk_window_read, 0x800, 0, 0, 0
        dd tb3, atk_window_read, 0xfffff, 0, 0, 0
        dd tb4, atk_window_read, 0x180, 0, 0, 0
        dd tb5, atk_window_read, MARKER_PAGE >> 12, 0, 0, 0
        dd tb6, atk_window_read, 0, 0, 0, 0
        dd tb7, atk_stale_tlb, 0, 0, 0, 0
        dd tb8, atk_after_invlpg, 0, 0, 0, 0
        dd tb9, atk_foreign_page_table, 0, 0, 0, 0
        dd tb10, atk_large_page, 0x00000000 | PG_P | PG_RW | PG_PS, 0xc00000 + MARKER_PAGE, 0, 0
        dd tb11, atk_large_page, 0x00000000 | PG_P | PG_RW | PG_PS, 0xc00000 + MEMORY_END, 0, 0
        dd tb12, atk_large_page, 0x40000000 | PG_P | PG_RW | PG_PS, 0xc00000, 0, 0
        dd 0

table_execute:
        dd tc1, atk_jump, FF_PAGE, 0, 0, 0
        dd tc2, atk_jump, random_bytes, 0, 0, 0
        dd tc3, atk_jump, 0x500000, 0, 0, 0
        dd tc4, atk_jump, WINDOW, 0x100, 0, 0
        dd 0

table_hypercalls:
        dd td1, atk_hypercall, HYPERCALL_MEMORY_OP, XENMEM_POPULATE, 0x100, 0xffffffff
        dd td2, atk_hypercall, HYPERCALL_MEMORY_OP, XENMEM_POPULATE, 0x100, 1025
        dd td3, atk_hypercall, HYPERCALL_MEMORY_OP, XENMEM_POPULATE, 0xffffffff, 1
        dd td4, atk_hypercall, HYPERCALL_MEMORY_OP, XENMEM_POPULATE, 0x80000000, 16
        dd td5, atk_hypercall, HYPERCALL_MEMORY_OP, XENMEM_POPULATE, 0xfffff, 2
        dd td6, atk_hypercall, HYPERCALL_MEMORY_OP, XENMEM_POPULATE, 0, 0
        dd td7, atk_hypercall, HYPERCALL_MEMORY_OP, XENMEM_POPULATE, 0x10, 4
        dd td8, atk_hypercall, HYPERCALL_MEMORY_OP, XENMEM_POPULATE, 0xf0, 32
        dd td9, atk_hypercall, HYPERCALL_MEMORY_OP, XENMEM_POPULATE, 0x100, 1024
        dd td10, atk_hypercall, HYPERCALL_MEMORY_OP, XENMEM_POPULATE, 0x100, 1
        dd td11, atk_window_read, 0x100, 0, 0, 0
        dd td12, atk_hypercall, HYPERCALL_MEMORY_OP, XENMEM_POPULATE, 0x100, 1
        dd td13, atk_hypercall, HYPERCALL_MEMORY_OP, XENMEM_DECREASE, 0x5000, 4
        dd td14, atk_hypercall, HYPERCALL_MEMORY_OP, XENMEM_DECREASE, 0xffffffff, 1
        dd td15, atk_hypercall, HYPERCALL_MEMORY_OP, XENMEM_DECREASE, 0x5000, 0xffffffff
        dd td16, atk_hypercall, HYPERCALL_MEMORY_OP, XENMEM_DECREASE, 0x100, 2
        dd td17, atk_after_invlpg, 0, 0, 0, 0
        dd td18, atk_hypercall, HYPERCALL_MEMORY_OP, XENMEM_DECREASE, SCRATCH_PAGE >> 12, 1
        dd td19, atk_read, SCRATCH_PAGE, 0, 0, 0
        dd td20, atk_hypercall, HYPERCALL_MEMORY_OP, XENMEM_POPULATE, SCRATCH_PAGE >> 12, 1
        dd td21, atk_read, SCRATCH_PAGE, 0, 0, 0
        dd td22, atk_victim_read, 0, 0, 0, 0
        dd td23, atk_hypercall, HYPERCALL_MEMORY_OP, XENMEM_DECREASE, PT_VICTIM >> 12, 1
        dd td24, atk_after_victim, 0, 0, 0, 0
        dd td25, atk_hypercall, 0, 0, 0, 0
        dd td26, atk_hypercall, 1, 0, 0, 0
        dd td27, atk_hypercall, 38, 0, 0, 0
        dd td28, atk_hypercall, 99, 0, 0, 0
        dd td29, atk_hypercall, 0x7fffffff, 0, 0, 0
        dd td30, atk_hypercall, 0xffffffff, 0, 0, 0
        dd td31, atk_hypercall, HYPERCALL_MEMORY_OP, 99, 0, 0
        dd td32, atk_hypercall, HYPERCALL_SCHED_OP, 99, 0, 0
        dd td33, atk_hypercall, HYPERCALL_CONSOLE_IO, 1, 16, cpuid_text
        dd td34, atk_hypercall, HYPERCALL_CONSOLE_IO, CONSOLEIO_WRITE, 0x7fffffff, 0x04000000
        dd td35, atk_end_of_memory_text, HYPERCALL_CONSOLE_IO, CONSOLEIO_WRITE, 0x7fffffff, MEMORY_END - 16
        dd td36, atk_hypercall, HYPERCALL_CONSOLE_IO, CONSOLEIO_WRITE, 32, 0xfffffff0
        dd td37, atk_end_of_memory_text, HYPERCALL_CONSOLE_IO, CONSOLEIO_WRITE, 0xffffffff, MEMORY_END - 16
        dd 0

table_privileged:
        dd te1, atk_cpuid, 0, 0, 0, 0
        dd te2, atk_rdmsr, 0, 0, 0xdeadbeef, 0
        dd te3, atk_wrmsr, 0x12345678, 0x9abcdef0, 0xdeadbeef, 0
        dd te4, atk_rdmsr, 0, 0, 0x9e, 0
        dd te5, atk_wrmsr, 0x00000006, 0, 0x1f2, 0
        dd te6, atk_wrmsr, 0, 0, 0x1b, 0
        dd te7, atk_wrmsr, 0x000c4500, 0, 0x830, 0
        dd te8, atk_rdmsr, 0, 0, 0x480, 0
        dd te9, atk_wrmsr, 0x00000005, 0, 0x3a, 0
        dd te10, atk_out, 0xcf9, 0x06, 0, 0
        dd te11, atk_out, 0x64, 0xfe, 0, 0
        dd te12, atk_out, 0x92, 0x01, 0, 0
        dd te13, atk_pci_config, 0, 0, 0, 0
        dd te14, atk_in_com1, 0, 0, 0, 0
        dd te15, atk_cr4_value, 0xffffffff, 0, 0, 0
        dd te16, atk_cr4_vmxe, 0, 0, 0, 0
        dd te17, atk_cr0_pg_without_pe, 0, 0, 0, 0
        dd te18, atk_cr0_nw_without_cd, 0, 0, 0, 0
        dd te19, atk_mov_cr1, 0, 0, 0, 0
        dd te20, atk_lgdt, 0, 0, 0, 0
        dd te21, atk_vmlaunch, 0, 0, 0, 0
        dd te22, atk_int, 0, 0, 0, 0
        dd 0

table_last_act:
        dd tf1, last_act, 0, 0, 0, 0
        dd 0

; [d24] needs its own routine: INVLPG the victim's linear page, then read through it.
atk_after_victim:
        invlpg [0x1400000]
        mov eax, [0x1400000]
        jmp say_value

; =============================================================================================
; Data (the image is writable here: the attacker does not protect itself)
; =============================================================================================
idt_descriptor:
        dw 256 * 8 - 1
        dd IDT
fake_gdtr:
        dw 0xffff
        dd 0
cpuid_text:
        times 16 db 0
end_of_memory_text:
        db `<end of memory>\n`              ; exactly 16 bytes
random_bytes:                               ; [c2] executes these
        db 0x91                             ; xchg eax, ecx
        db 0x4b                             ; dec ebx
        db 0x35, 0x5a, 0x17, 0xc3, 0x0e     ; xor eax, 0x0ec3175a
        db 0xfe, 0xff                       ; FE /7: invalid on every IA-32 CPU -> #UD
        db 0x0f, 0x22, 0xc8, 0x0f, 0x0b     ; never reached
hex_digits:
        db '0123456789abcdef'
fault_letters:                              ; per vector 0-31, then OTHER_SLOT
        db 'D?????U?F????GP'                ; 0 #DE, 6 #UD, 8 #DF, 13 #GP, 14 #PF
        times 33 - 15 db '?'
summary_vectors:
        dd s_de, 0, s_ud, 6, s_df, 8, s_gp, 13, s_pf, 14, s_other, OTHER_SLOT, 0, 0

msg_banner:
        db `attacker: starting; every attack below must end in a fault, an error code or nothing\n`
msg_banner_end:
msg_paging_on:
        db `-- paging on: PD at 0x22000, identity map of 0-1 MiB, attack window at 0x400000\n`, 0
msg_bye:
        db `attacker: still alive; shutting down\n`
msg_bye_end:
msg_err:
        db ' err=', 0
msg_cr2:
        db ' cr2=', 0
msg_eip:
        db ' eip=', 0
msg_unexpected:
        db ` UNEXPECTED FAULT (no recovery armed): giving up`, 0
msg_read:
        db ' no fault, read ', 0
msg_result:
        db ' = ', 0
msg_no_fault:
        db ' no fault', 0
msg_signature:
        db ' no fault, signature ', 0
msg_summary:
        db `\nattacker summary: `, 0
msg_faults:
        db ' faults:', 0
s_de:   db ' #DE=', 0
s_ud:   db ' #UD=', 0
s_df:   db ' #DF=', 0
s_gp:   db ' #GP=', 0
s_pf:   db ' #PF=', 0
s_other: db ' other=', 0

t00:    db '[00]  warm-up: divide by zero (expect D):', 0
ta1:    db '[a1]  read  0x00100000, first byte past our 1 MiB (expect G):', 0
ta2:    db '[a2]  write 0x00100000 (expect G):', 0
ta3:    db '[a3]  read  0x04000000, 64 MiB (expect G):', 0
ta4:    db '[a4]  write 0x04000000 (expect G):', 0
ta5:    db '[a5]  read  0xfffffff0, top of the address space (expect G):', 0
ta6:    db '[a6]  write a dword across the end of memory at 0x000ffffe (expect G):', 0
ta7:    db '[a7]  its two in-bounds bytes are unchanged (expect 00001111):', 0
ta8:    db '[a8]  rep stosd from 0x000ffff0 running off the end (expect G):', 0
ta9:    db '[a9]  window PTE -> gfn 0x100, past our memory; read (expect G or P):', 0
ta10:   db '[a10] window PTE -> gfn 0x4000, 64 MiB; write (expect G or P):', 0
tb1:    db '[b1]  PTE -> gfn 0x1ff, end of our max reservation (expect G or P):', 0
tb2:    db '[b2]  PTE -> gfn 0x800, beyond host RAM (expect G or P):', 0
tb3:    db '[b3]  PTE -> gfn 0xfffff, highest frame number (expect G or P):', 0
tb4:    db `[b4]  PTE -> frame 0x180, another domain's machine frame (expect G or P):`, 0
tb5:    db '[b5]  PTE -> frame 0x26, a Xen machine frame = our own gfn 0x26 (expect 454e494d):', 0
tb6:    db '[b6]  PTE -> frame 0, host frame 0 = our own page 0 (expect 00000000):', 0
tb7:    db '[b7]  redirect a used PTE to gfn 0x4000 without INVLPG (expect G or stale 454e494d):', 0
tb8:    db '[b8]  the same after INVLPG (expect G or P):', 0
tb9:    db '[b9]  PDE 2 -> page table at gfn 0x4000, read 0x800000 (expect G or P):', 0
tb10:   db '[b10] PSE: 4 MiB page at gpa 0, read our marker at 0xc26000 (expect 454e494d):', 0
tb11:   db '[b11] same 4 MiB page, read 0xd00000 = gpa 0x100000 (expect G or P):', 0
tb12:   db '[b12] 4 MiB page at gpa 0x40000000, read (expect G or P):', 0
tc1:    db '[c1]  jump into a page of 0xff bytes at 0x27000 (expect U):', 0
tc2:    db '[c2]  jump into random bytes (expect U at the 4th instruction):', 0
tc3:    db '[c3]  jump to 0x500000, a non-present page (expect P err=0 cr2=00500000):', 0
tc4:    db '[c4]  jump to 0x400000 mapped to gfn 0x100, not ours (expect G or P):', 0
td1:    db '[d1]  populate_physmap gfn 0x100 count 0xffffffff (expect -22):', 0
td2:    db '[d2]  populate_physmap gfn 0x100 count 1025 (expect -22):', 0
td3:    db '[d3]  populate_physmap gfn 0xffffffff count 1 (expect -22):', 0
td4:    db '[d4]  populate_physmap gfn 0x80000000 count 16 (expect -22):', 0
td5:    db '[d5]  populate_physmap gfn 0xfffff count 2 (expect -22):', 0
td6:    db '[d6]  populate_physmap gfn 0 count 0 (expect -22):', 0
td7:    db '[d7]  populate_physmap gfn 0x10 count 4, our own memory (expect -17):', 0
td8:    db '[d8]  populate_physmap gfn 0xf0 count 32, straddling our end (expect -17):', 0
td9:    db '[d9]  populate_physmap gfn 0x100 count 1024, beyond max reservation (expect -12):', 0
td10:   db '[d10] populate_physmap gfn 0x100 count 1, legitimate (expect 1):', 0
td11:   db '[d11] read the new frame: it must be zeroed (expect 00000000):', 0
td12:   db '[d12] populate_physmap gfn 0x100 count 1 again (expect -17):', 0
td13:   db '[d13] decrease_reservation gfn 0x5000 count 4, not ours (expect 0):', 0
td14:   db '[d14] decrease_reservation gfn 0xffffffff count 1 (expect 0 or -22):', 0
td15:   db '[d15] decrease_reservation gfn 0x5000 count 0xffffffff (expect 0 or -22):', 0
td16:   db '[d16] decrease_reservation gfn 0x100 count 2, ours then not (expect 1):', 0
td17:   db '[d17] read the released gfn 0x100 through the window (expect G or P):', 0
td18:   db '[d18] decrease_reservation gfn 0x28, our scratch page (expect 1):', 0
td19:   db '[d19] read 0x28000 after giving it back (expect G):', 0
td20:   db '[d20] populate_physmap gfn 0x28 count 1 (expect 1):', 0
td21:   db '[d21] read 0x28000 again (expect 00000000; vanilla: maybe our own 21444c4f):', 0
td22:   db '[d22] read 0x1400000 through page table gfn 0x25 (expect 454e494d):', 0
td23:   db '[d23] decrease_reservation gfn 0x25, that page table (expect 1):', 0
td24:   db '[d24] read 0x1400000 again after INVLPG (expect G or P):', 0
td25:   db '[d25] hypercall 0 (expect -38):', 0
td26:   db '[d26] hypercall 1 (expect -38):', 0
td27:   db '[d27] hypercall 38 (expect -38):', 0
td28:   db '[d28] hypercall 99 (expect -38):', 0
td29:   db '[d29] hypercall 0x7fffffff (expect -38):', 0
td30:   db '[d30] hypercall 0xffffffff (expect -38):', 0
td31:   db '[d31] memory_op subop 99 (expect -38):', 0
td32:   db '[d32] sched_op subop 99 (expect -38):', 0
td33:   db '[d33] console_io subop 1, read (expect -38):', 0
td34:   db '[d34] console_io length 0x7fffffff at 0x04000000 (expect < 0, no text):', 0
td35:   db '[d35] console_io length 0x7fffffff at 0x000ffff0 (expect < 0, at most 16 bytes):', 0
td36:   db '[d36] console_io length 32 at 0xfffffff0 (expect < 0):', 0
td37:   db '[d37] console_io length 0xffffffff at 0x000ffff0 (expect < 0):', 0
te1:    db '[e1]  cpuid 0x40000000 (expect XenVMMXenVMM):', 0
te2:    db '[e2]  rdmsr 0xdeadbeef (expect G):', 0
te3:    db '[e3]  wrmsr 0xdeadbeef (expect G):', 0
te4:    db '[e4]  rdmsr 0x9e IA32_SMBASE (expect G):', 0
te5:    db '[e5]  wrmsr 0x1f2 IA32_SMRR_PHYSBASE (expect G):', 0
te6:    db '[e6]  wrmsr 0x1b IA32_APIC_BASE = 0 (expect G):', 0
te7:    db '[e7]  wrmsr 0x830 x2APIC ICR, INIT to all others (expect G):', 0
te8:    db '[e8]  rdmsr 0x480 IA32_VMX_BASIC (expect G):', 0
te9:    db '[e9]  wrmsr 0x3a IA32_FEATURE_CONTROL (expect G):', 0
te10:   db '[e10] out 0xcf9 <- 0x06, hard reset (expect no fault, no reset):', 0
te11:   db '[e11] out 0x64 <- 0xfe, keyboard controller reset (expect no fault):', 0
te12:   db '[e12] out 0x92 <- 0x01, fast reset (expect no fault):', 0
te13:   db '[e13] PCI config read via 0xcf8/0xcfc (expect no fault):', 0
te14:   db '[e14] in al, 0x3f8 (expect no fault):', 0
te15:   db '[e15] mov cr4, 0xffffffff (expect G):', 0
te16:   db '[e16] mov cr4, cr4|VMXE (expect G):', 0
te17:   db '[e17] mov cr0, PG without PE (expect G):', 0
te18:   db '[e18] mov cr0, NW without CD (expect G):', 0
te19:   db '[e19] mov cr1, eax (expect U):', 0
te20:   db '[e20] lgdt (expect U):', 0
te21:   db '[e21] vmlaunch (expect U):', 0
te22:   db '[e22] int 0x82 into our own IDT (expect ?):', 0
tf1:    db '[f1]  decrease_reservation of the page we run from (expect G after the VMCALL):', 0

; =============================================================================================
; The last act, alone on the image's last page: it gives its own frame back to Xen. VMCALL
; returns (EAX = 1), and fetching the next instruction finds no frame: #GP (EPT violation)
; with EIP = the address after the VMCALL. The handler, on an earlier page, resumes run_attack.
; =============================================================================================
        times (0x1000 - ($ - $$) % 0x1000) % 0x1000 db 0
last_act:
        mov eax, HYPERCALL_MEMORY_OP
        mov ebx, XENMEM_DECREASE
        mov ecx, (IMAGE_BASE + (last_act - $$)) >> 12
        mov edx, 1
        vmcall
        mov esi, msg_still_here             ; only if the frame is still ours
        call puts
        jmp say_result
msg_still_here:
        db ' frame not released, still running from it', 0
image_end:
        times -(((LAYOUT_START - IMAGE_BASE) - (image_end - $$)) >> 63) db 0   ; image < 0x20000
