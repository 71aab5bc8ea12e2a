; =============================================================================================
; kernel.asm - a tiny preemptive guest kernel for chronovisor
; =============================================================================================
;
; What it demonstrates (and why it is worth simulating):
;
;   * An IDT built at run time: 32-bit interrupt gates for #DE, #UD, #DF, #GP, #PF, the APIC
;     timer (vector 0x20) and a default handler for everything else. Exceptions other than
;     the one planned #PF are fatal: the kernel prints a panic line and shuts the domain down,
;     so a modelling mistake in the CPU shows up as a readable message, not a silent hang.
;   * Its own two-level paging: a kernel page directory that identity-maps the first 1 MiB
;     (page 0 left out as a null guard, the kernel image and the IDT read-only), and one page
;     directory per task. The tasks share a small "kernel" page table (image read-only, kernel
;     data page read-write, nothing else) and each has a private page table for the window at
;     linear 0x400000. Both tasks use the SAME linear addresses for their data page and their
;     stack (0x400000 and 0x402000-0x403000), backed by DIFFERENT guest-physical frames: only
;     the CR3 load in the timer handler tells the two apart. Paging is enabled with CR0.WP, and
;     a self-test writes to the read-only image to prove that supervisor writes are checked
;     (expected: #PF with error code 3 = present|write, CR2 = the address written).
;   * Preemptive multitasking driven by the local APIC timer (x2APIC MSRs, periodic, 200 ticks):
;     the timer handler saves all registers (PUSHAD) on the interrupted task's stack, swaps the
;     saved ESP and CR3 between the two task slots, signals EOI and resumes the other task with
;     POPAD + IRETD. A task never knows it was interrupted.
;   * Task A computes Fibonacci numbers twice, in registers and in its private page, and checks
;     every 4 steps that both agree: a context switch that lost or mixed up a register (or a
;     CR3 switch that showed task A the wrong frame) is counted as a failed check.
;     Task B copies 128 bytes with REP MOVSD between two private pages over and over, changing
;     one source dword before each copy, and checks that the copy arrived.
;     A prints 'A' every 4 steps, B prints 'B' every 2 copies, through port 0xE9.
;   * After 20 task switches the timer handler stops the timer, returns to the kernel address
;     space, prints a summary through the console_io hypercall and shuts down with
;     sched_op(shutdown): the run ends by itself.
;
; Guest ABI used (see README.md): loaded at org 0x1000, started in 32-bit protected mode with
; paging off and IF = 0; out 0xE9 prints a byte; VMCALL with EAX = hypercall number; x2APIC
; timer MSRs 0x832 (LVT), 0x838 (initial count), 0x80B (EOI). Needs at least 96 KiB of guest
; memory (everything it uses is below 0x18000); it is meant for a 1 MiB domain.
;
; Guest-physical memory map (all addresses below are guest-physical; with paging on, the
; kernel address space maps them 1:1):
;
;   0x00000-0x00fff  page 0: never mapped (catches null pointers)
;   0x01000-...      this image: code and read-only data (mapped read-only; must end < 0x8000)
;   0x08000          kernel data page (variables, task slots, text buffer)     read-write
;   0x09000          IDT: 256 gates x 8 bytes = 2 KiB                          read-only once loaded
;   0x0a000          PD_K   kernel page directory (used at boot and for the summary)
;   0x0b000          PT_ID  kernel page table: identity map of 0-1 MiB
;   0x0c000          PT_SHARED  the tasks' view of linear 0-4 MiB: image (ro), kernel data (rw), IDT (ro)
;   0x0d000          PD_A   task A's page directory: [0] = PT_SHARED, [1] = PT_A
;   0x0e000          PD_B   task B's page directory: [0] = PT_SHARED, [1] = PT_B
;   0x0f000          PT_A   task A's window at linear 0x400000
;   0x10000          PT_B   task B's window at linear 0x400000
;   0x11000          task A data page   (linear 0x400000 in A's address space)
;   0x12000          task A stack page  (linear 0x402000-0x402fff in A's address space)
;   0x13000          task B data page   (linear 0x400000 in B's address space)
;   0x14000          task B stack page  (linear 0x402000-0x402fff in B's address space)
;   0x15000          task B copy source       (linear 0x403000 in B's address space)
;   0x16000          task B copy destination  (linear 0x404000 in B's address space)
;   0x17000-0x17fff  kernel stack (ESP = 0x18000), used at boot and for the summary
;
; Each task's window (linear 0x400000-0x7fffff, private page table):
;   0x400000 data page, 0x401000 not present (stack guard), 0x402000 stack page (top 0x403000),
;   task B only: 0x403000 copy source, 0x404000 copy destination. Everything else not present.
;
; Task slots: task_esp[2] and task_cr3[2] in the kernel data page; "current" is 0 (A) or 1 (B).
; A suspended task's stack holds, from its saved ESP upwards: the PUSHAD frame (EDI ESI EBP
; ESP EBX EDX ECX EAX) and the interrupt frame (EIP, CS, EFLAGS) - 44 bytes. A task that has
; never run gets the same 44 bytes built by hand (registers 0, EIP = entry, CS = 0x08,
; EFLAGS = 0x202: IF set), so starting a task and resuming one are the same code path.
;
; Expected console output (letters depend on where exactly the timer fires, so the counts
; below are approximate; the text lines are exact):
;
;   chronovisor kernel: IDT loaded, paging on (CR0.PG|WP), 2 tasks, timer vector 0x20 every 200 ticks
;   write-protect self-test: #PF error 00000003 at CR2 0000163e: ok      (CR2 = wp_probe)
;   AAAAABBAAABBAAABBAAABBAAABBAAABAAABBAAABBAAABB   (A and B alternating)
;   kernel: 20 task switches
;     task A: 116 Fibonacci steps, fib(116) = 0x287bce2d, 0 failed checks
;     task B: 34 copies of 128 bytes, 0 failed checks
;   kernel: shutting down
;
; The counts are from a run of chronovisor's model under EPT, where each REP iteration is
; one tick. Under shadow paging the timer fires at slightly different points (113 steps,
; fib(112) = 0x01d6999b, 33 copies). If a whole REP instruction were one tick, task B would
; make about 93 copies. fib(n) must always be the n-th Fibonacci number modulo 2^32, and both
; failed-check counts must be 0.
;
; Runs about 31,000 instructions if each REP iteration counts as one (the boot clears 64 KiB
; with REP STOSD), about 14,500 if a REP instruction counts once.
; =============================================================================================

bits 32
org 0x1000

; ---- the machine ABI and x86 constants -------------------------------------------------------
%include "lib/abi.inc"                      ; hypercalls, console port, x2APIC MSRs
%include "lib/x86.inc"                      ; paging bits, CR0/CR4, gates

; ---- tunables ---------------------------------------------------------------------------------
TIMER_VECTOR            equ 0x20
TIMER_PERIOD            equ 200                     ; ticks (retired instructions)
SWITCHES                equ 20                      ; task switches before the summary
A_PRINT_EVERY           equ 4                       ; power of two
B_PRINT_EVERY           equ 2                       ; power of two
COPY_DWORDS             equ 32                      ; task B copies 128 bytes; power of two

; ---- guest-physical layout (see the map above) -----------------------------------------------
IMAGE_BASE              equ 0x1000                  ; = org (org itself must be a literal)
KDATA                   equ 0x08000
IDT                     equ 0x09000
PD_K                    equ 0x0a000
PT_ID                   equ 0x0b000
PT_SHARED               equ 0x0c000
PD_A                    equ 0x0d000
PD_B                    equ 0x0e000
PT_A                    equ 0x0f000
PT_B                    equ 0x10000
A_DATA_FRAME            equ 0x11000
A_STACK_FRAME           equ 0x12000
B_DATA_FRAME            equ 0x13000
B_STACK_FRAME           equ 0x14000
B_SRC_FRAME             equ 0x15000
B_DST_FRAME             equ 0x16000
KSTACK_TOP              equ 0x18000
LAYOUT_END              equ 0x18000

; ---- the task window (linear, the same in both task address spaces) -------------------------
TASK_PAGE               equ 0x400000                ; PDE 1, PTE 0
TASK_STACK_TOP          equ 0x403000                ; stack page is PTE 2; PTE 1 is the guard
B_SRC                   equ 0x403000                ; PTE 3
B_DST                   equ 0x404000                ; PTE 4
INITIAL_FRAME_BYTES     equ 44                      ; PUSHAD (32) + EIP, CS, EFLAGS (12)

; task data page fields (offsets from TASK_PAGE)
T_COUNT                 equ 0                       ; A: Fibonacci steps, B: copies
T_ERRORS                equ 4                       ; failed self-checks
T_SNAP_N                equ 8                       ; A: n at the last checkpoint
T_SNAP_F                equ 12                      ; A: fib(n) at the last checkpoint
T_FA                    equ 16                      ; A: memory copy of fib(n)
T_FB                    equ 20                      ; A: memory copy of fib(n+1)

; ---- kernel variables (in the kernel data page) ----------------------------------------------
switch_count            equ KDATA + 0x00
current                 equ KDATA + 0x04            ; 0 = task A, 1 = task B
task_esp                equ KDATA + 0x08            ; dd [2]: saved ESP of each task
task_cr3                equ KDATA + 0x10            ; dd [2]: page directory of each task
pf_recover              equ KDATA + 0x18            ; nonzero: a #PF resumes here (self-test)
pf_err                  equ KDATA + 0x1c
pf_cr2                  equ KDATA + 0x20
panic_vector            equ KDATA + 0x24
panic_error             equ KDATA + 0x28
panic_eip               equ KDATA + 0x2c
out_len                 equ KDATA + 0x30
out_buf                 equ KDATA + 0x100           ; text assembled for console_io
OUT_MAX                 equ 0x400

; =============================================================================================
; Boot: paging off, IF = 0, flat segments, CPL 0.
; =============================================================================================
kernel_entry:
        cli                                 ; the ABI starts us with IF = 0; say so anyway
        mov esp, KSTACK_TOP                 ; our own stack, whatever the loader chose

        ; Zero every page the kernel uses (IDT, tables, task pages, stacks). DF is 0 after
        ; reset and nothing here sets it, so no CLD is needed.
        mov edi, KDATA
        mov ecx, (LAYOUT_END - KDATA) / 4
        xor eax, eax
        rep stosd

        ; ---- IDT: every vector to the default handler, then the ones we know ----------------
        xor ebx, ebx
.idt_fill:
        mov eax, isr_default
        call set_gate
        inc ebx
        cmp ebx, 256
        jb .idt_fill

        mov ebx, 0                          ; #DE divide error
        mov eax, isr_de
        call set_gate
        mov ebx, 6                          ; #UD invalid opcode
        mov eax, isr_ud
        call set_gate
        mov ebx, 8                          ; #DF double fault (pushes an error code, always 0)
        mov eax, isr_df
        call set_gate
        mov ebx, 13                         ; #GP general protection (pushes an error code)
        mov eax, isr_gp
        call set_gate
        mov ebx, 14                         ; #PF page fault (pushes an error code; CR2 = address)
        mov eax, isr_pf
        call set_gate
        mov ebx, TIMER_VECTOR               ; local APIC timer
        mov eax, isr_timer
        call set_gate
        lidt [idt_descriptor]

        ; ---- page tables (still physical addresses: paging is off) --------------------------
        ; PT_ID: identity map of the first 1 MiB (256 PTEs), read-write...
        xor ebx, ebx
.identity:
        mov eax, ebx
        shl eax, 12
        or eax, PG_P | PG_RW
        mov [PT_ID + ebx*4], eax
        inc ebx
        cmp ebx, 256
        jb .identity
        ; ...except page 0 (not present: a null pointer faults)...
        mov dword [PT_ID], 0
        ; ...and the image pages, read-only in both the kernel's and the tasks' tables.
        mov ebx, IMAGE_BASE >> 12
.image_pages:
        mov eax, ebx
        shl eax, 12
        or eax, PG_P
        mov [PT_ID + ebx*4], eax
        mov [PT_SHARED + ebx*4], eax
        inc ebx
        cmp ebx, IMAGE_END_PAGE
        jb .image_pages
        ; The IDT is only ever read by the CPU once loaded: read-only for everybody.
        mov dword [PT_ID + (IDT >> 12) * 4], IDT | PG_P
        mov dword [PT_SHARED + (IDT >> 12) * 4], IDT | PG_P
        ; The kernel data page is shared read-write: the timer handler runs on the tasks'
        ; page tables and must update the task slots.
        mov dword [PT_SHARED + (KDATA >> 12) * 4], KDATA | PG_P | PG_RW
        ; Private windows. PTE 1 stays empty in both: a guard page below each stack.
        mov dword [PT_A + 0 * 4], A_DATA_FRAME | PG_P | PG_RW
        mov dword [PT_A + 2 * 4], A_STACK_FRAME | PG_P | PG_RW
        mov dword [PT_B + 0 * 4], B_DATA_FRAME | PG_P | PG_RW
        mov dword [PT_B + 2 * 4], B_STACK_FRAME | PG_P | PG_RW
        mov dword [PT_B + 3 * 4], B_SRC_FRAME | PG_P | PG_RW
        mov dword [PT_B + 4 * 4], B_DST_FRAME | PG_P | PG_RW
        ; Page directories: PDE 0 covers linear 0-4 MiB, PDE 1 covers 4-8 MiB (the window).
        mov dword [PD_K + 0 * 4], PT_ID | PG_P | PG_RW
        mov dword [PD_A + 0 * 4], PT_SHARED | PG_P | PG_RW
        mov dword [PD_A + 1 * 4], PT_A | PG_P | PG_RW
        mov dword [PD_B + 0 * 4], PT_SHARED | PG_P | PG_RW
        mov dword [PD_B + 1 * 4], PT_B | PG_P | PG_RW

        ; ---- paging on: CR3 first, then CR0.PG together with CR0.WP -------------------------
        mov eax, PD_K
        mov cr3, eax
        mov eax, cr0
        or eax, CR0_PG | CR0_WP
        mov cr0, eax
        ; The next fetch already goes through PT_ID; the identity map makes that seamless.

        mov esi, msg_banner
        call puts
        call flush

        ; ---- write-protect self-test ---------------------------------------------------------
        ; wp_probe is in the read-only image. With CR0.WP set, even ring 0 must take a #PF with
        ; error code 3 (present, write) and CR2 = wp_probe. isr_pf sees pf_recover set, records
        ; the error code and CR2, and resumes at .wp_done instead of retrying the write.
        mov dword [pf_err], 0xffffffff      ; "no fault seen"
        mov dword [pf_recover], .wp_done
        mov dword [wp_probe], 0x0badc0de
.wp_done:
        mov dword [pf_recover], 0
        mov esi, msg_wp
        call puts
        cmp dword [pf_err], 0xffffffff
        je .wp_no_fault
        mov eax, [pf_err]
        call puthex8
        mov esi, msg_wp_cr2
        call puts
        mov eax, [pf_cr2]
        call puthex8
        cmp dword [pf_err], 3
        jne .wp_wrong
        cmp dword [pf_cr2], wp_probe
        jne .wp_wrong
        mov esi, msg_ok
        jmp .wp_report
.wp_wrong:
        mov esi, msg_wp_unexpected
        jmp .wp_report
.wp_no_fault:
        mov esi, msg_wp_missing
.wp_report:
        call puts
        call flush

        ; ---- the two tasks: fake "interrupted" frames on their stacks ------------------------
        ; The stack frames are written through the kernel's identity map (physical address);
        ; the saved ESP is the linear address the task will see in its own address space.
        mov eax, A_STACK_FRAME
        mov ebx, task_a
        mov ecx, 0
        mov edx, PD_A
        call init_task
        mov eax, B_STACK_FRAME
        mov ebx, task_b
        mov ecx, 1
        mov edx, PD_B
        call init_task

        ; ---- the timer: periodic, vector 0x20, TIMER_PERIOD ticks ----------------------------
        ; A tick may expire before the IRETD below; the interrupt then stays pending (IF = 0)
        ; and is taken right after the IRETD sets IF: harmless, task A is simply preempted
        ; at its first instruction.
%include "lib/apic-timer.inc"               ; periodic, TIMER_VECTOR, every TIMER_PERIOD ticks

        ; ---- start task A exactly as the timer handler resumes a task -------------------------
        mov dword [current], 0
        mov eax, [task_cr3]
        mov cr3, eax                        ; task A's address space (this code stays mapped)
        mov esp, [task_esp]                 ; task A's stack, which exists only in that space
        popad
        iretd                               ; EIP = task_a, CS = 0x08, EFLAGS = IF

%include "lib/set-gate.inc"                 ; set_gate: EBX = vector, EAX = handler (clobbered)

; ---------------------------------------------------------------------------------------------
; init_task: EAX = stack frame (physical), EBX = entry point, ECX = slot, EDX = page directory.
; The stack page is already zero, so the eight PUSHAD registers start as 0.
; ---------------------------------------------------------------------------------------------
init_task:
        mov [eax + 0x1000 - 12], ebx        ; EIP
        mov dword [eax + 0x1000 - 8], KERNEL_CS
        mov dword [eax + 0x1000 - 4], EFLAGS_IF
        mov dword [task_esp + ecx*4], TASK_STACK_TOP - INITIAL_FRAME_BYTES
        mov [task_cr3 + ecx*4], edx
        ret

; =============================================================================================
; The timer interrupt: the scheduler. Entered through an interrupt gate (IF = 0) on the
; interrupted task's stack, which holds EFLAGS, CS, EIP (no error code for interrupts).
; =============================================================================================
isr_timer:
        pushad
        mov eax, [current]
        mov [task_esp + eax*4], esp         ; the interrupted task is now fully saved
        inc dword [switch_count]
        xor eax, 1                          ; the other task
        mov [current], eax
        mov ebx, [task_cr3 + eax*4]
        mov cr3, ebx                        ; its address space first (this code is shared)...
        mov esp, [task_esp + eax*4]         ; ...then its stack: same linear range, other frame
        mov ecx, MSR_X2APIC_EOI             ; end of interrupt (EAX and EDX are restored below)
        xor eax, eax
        xor edx, edx
        wrmsr
        cmp dword [switch_count], SWITCHES
        jae kernel_finish
        popad
        iretd                               ; EIP, CS, EFLAGS of the other task: IF = 1 again

; =============================================================================================
; Task A (runs in its own address space, IF = 1): Fibonacci, in registers and in memory.
; =============================================================================================
task_a:
        xor eax, eax                        ; a = fib(0)
        mov ebx, 1                          ; b = fib(1)
        xor ecx, ecx                        ; n
        mov [TASK_PAGE + T_FA], eax
        mov [TASK_PAGE + T_FB], ebx
.step:
        lea edx, [eax + ebx]                ; registers: (a, b) <- (b, a + b)
        mov eax, ebx
        mov ebx, edx
        inc ecx
        mov edx, [TASK_PAGE + T_FA]         ; the same step on the copy in the private page
        add edx, [TASK_PAGE + T_FB]
        mov esi, [TASK_PAGE + T_FB]
        mov [TASK_PAGE + T_FA], esi
        mov [TASK_PAGE + T_FB], edx
        inc dword [TASK_PAGE + T_COUNT]
        test ecx, A_PRINT_EVERY - 1
        jnz .step
        ; checkpoint: registers and memory must agree
        cmp eax, [TASK_PAGE + T_FA]
        jne .bad
        cmp ebx, [TASK_PAGE + T_FB]
        jne .bad
        cmp ecx, [TASK_PAGE + T_COUNT]
        je .good
.bad:
        inc dword [TASK_PAGE + T_ERRORS]
.good:
        cli                                 ; publish (n, fib(n)) as one unit: no timer between
        mov [TASK_PAGE + T_SNAP_N], ecx
        mov [TASK_PAGE + T_SNAP_F], eax
        sti                                 ; (STI takes effect after the next instruction)
        mov edx, eax
        mov al, 'A'
        out CONSOLE_PORT, al
        mov eax, edx
        jmp .step

; =============================================================================================
; Task B (its own address space, IF = 1): REP MOVSD between two private pages.
; =============================================================================================
task_b:
        mov edi, B_SRC                      ; a recognisable source pattern
        mov eax, 0x12345678
        mov ecx, COPY_DWORDS
.fill:
        stosd
        add eax, 0x9e3779b9
        loop .fill
.round:
        mov ebx, [TASK_PAGE + T_COUNT]      ; change one source dword: src[n % 32] ^= n
        mov edx, ebx
        and edx, COPY_DWORDS - 1
        xor [B_SRC + edx*4], ebx
        mov esi, B_SRC                      ; the copy
        mov edi, B_DST
        mov ecx, COPY_DWORDS
        rep movsd
        mov eax, [B_SRC + edx*4]            ; the changed dword and the last one must match
        cmp eax, [B_DST + edx*4]
        jne .bad
        mov eax, [B_SRC + (COPY_DWORDS - 1) * 4]
        cmp eax, [B_DST + (COPY_DWORDS - 1) * 4]
        je .good
.bad:
        inc dword [TASK_PAGE + T_ERRORS]
.good:
        inc dword [TASK_PAGE + T_COUNT]
        test dword [TASK_PAGE + T_COUNT], B_PRINT_EVERY - 1
        jnz .round
        mov al, 'B'
        out CONSOLE_PORT, al
        jmp .round

; =============================================================================================
; The end: reached from isr_timer with IF = 0, EOI sent, on some task's stack and CR3.
; =============================================================================================
kernel_finish:
        mov ecx, MSR_X2APIC_INIT_COUNT      ; initial count 0 stops the timer
        xor eax, eax
        xor edx, edx
        wrmsr
        mov eax, PD_K                       ; back to the kernel address space and stack: the
        mov cr3, eax                        ; task frames are readable there through the
        mov esp, KSTACK_TOP                 ; identity map

        mov esi, msg_summary
        call puts
        mov eax, [switch_count]
        call putdec
        mov esi, msg_switches
        call puts

        mov esi, msg_task_a                 ; task A
        call puts
        mov eax, [A_DATA_FRAME + T_COUNT]
        call putdec
        mov esi, msg_fib
        call puts
        mov eax, [A_DATA_FRAME + T_SNAP_N]
        call putdec
        mov esi, msg_fib_is
        call puts
        mov eax, [A_DATA_FRAME + T_SNAP_F]
        call puthex8
        mov esi, msg_comma
        call puts
        mov eax, [A_DATA_FRAME + T_ERRORS]
        call putdec
        mov esi, msg_failed
        call puts

        mov esi, msg_task_b                 ; task B
        call puts
        mov eax, [B_DATA_FRAME + T_COUNT]
        call putdec
        mov esi, msg_copies
        call puts
        mov eax, [B_DATA_FRAME + T_ERRORS]
        call putdec
        mov esi, msg_failed
        call puts
        mov esi, msg_bye
        call puts
        call flush

%include "lib/shutdown.inc"                 ; shutdown: sched_op(shutdown)

; =============================================================================================
; Exception handlers. The CPU pushes EFLAGS, CS, EIP and, for #DF, #GP and #PF, an error code.
; Each stub pushes a dummy error code where the CPU did not, then the vector, so that
; panic always sees [esp] = vector, [esp+4] = error code, [esp+8] = EIP.
; =============================================================================================
isr_de:
        push 0
        push 0
        jmp panic
isr_ud:
        push 0
        push 6
        jmp panic
isr_df:
        push 8                              ; error code already pushed (0)
        jmp panic
isr_gp:
        push 13                             ; error code already pushed
        jmp panic
isr_default:
        push 0
        push 0xff                           ; "some other vector"
        jmp panic

; #PF: [esp] = error code, [esp+4] = EIP, [esp+8] = CS, [esp+12] = EFLAGS.
isr_pf:
        cmp dword [pf_recover], 0
        je .fatal
        push eax                            ; an expected fault (the WP self-test)
        mov eax, [esp + 4]
        mov [pf_err], eax
        mov eax, cr2
        mov [pf_cr2], eax
        mov eax, [pf_recover]
        mov [esp + 8], eax                  ; resume at the recovery label, not at the write
        mov dword [pf_recover], 0
        pop eax
        add esp, 4                          ; pop the error code: IRETD wants EIP on top
        iretd
.fatal:
        push 14
        jmp panic

panic:
        pop dword [panic_vector]
        pop dword [panic_error]
        pop dword [panic_eip]
        mov dword [out_len], 0              ; drop any half-built line
        mov esi, msg_panic
        call puts
        mov eax, [panic_vector]
        call puthex8
        mov esi, msg_panic_error
        call puts
        mov eax, [panic_error]
        call puthex8
        mov esi, msg_panic_eip
        call puts
        mov eax, [panic_eip]
        call puthex8
        mov esi, msg_panic_cr2
        call puts
        mov eax, cr2
        call puthex8
        mov al, 10
        call putc
        call flush
        jmp shutdown

; =============================================================================================
; Text output: an append buffer in the kernel data page, written with one console_io call.
; All routines preserve every register except where noted.
; =============================================================================================
%include "lib/console.inc"                  ; putc, puts, puthex8, putdec, flush (out_buf, out_len)

; =============================================================================================
; Read-only data (in the image, mapped read-only once paging is on)
; =============================================================================================
idt_descriptor:                             ; LIDT operand: limit, then base
        dw 256 * 8 - 1
        dd IDT
wp_probe:
        dd 0                                ; the write-protect self-test writes here
hex_digits:
        db '0123456789abcdef'
msg_banner:
        db `chronovisor kernel: IDT loaded, paging on (CR0.PG|WP), 2 tasks, timer vector 0x20 every 200 ticks\n`, 0
msg_wp:
        db 'write-protect self-test: #PF error ', 0
msg_wp_cr2:
        db ' at CR2 ', 0
msg_ok:
        db `: ok\n`, 0
msg_wp_unexpected:
        db `: UNEXPECTED (wanted error 00000003 at the probe)\n`, 0
msg_wp_missing:
        db `none: the write to a read-only page went through (CR0.WP not honoured)\n`, 0
msg_summary:
        db `\nkernel: `, 0
msg_switches:
        db ` task switches\n`, 0
msg_task_a:
        db '  task A: ', 0
msg_fib:
        db ' Fibonacci steps, fib(', 0
msg_fib_is:
        db ') = 0x', 0
msg_comma:
        db ', ', 0
msg_failed:
        db ` failed checks\n`, 0
msg_task_b:
        db '  task B: ', 0
msg_copies:
        db ' copies of 128 bytes, ', 0
msg_bye:
        db `kernel: shutting down\n`, 0
msg_panic:
        db `\nkernel panic: vector `, 0
%include "lib/panic-text.inc"               ; msg_panic_error, msg_panic_eip, msg_panic_cr2

image_end:
; The image must stay below the kernel data page (it is mapped read-only page by page).
IMAGE_END_PAGE          equ (IMAGE_BASE + (image_end - $$) + 0xfff) >> 12
        times -(((KDATA - IMAGE_BASE) - (image_end - $$)) >> 63) db 0   ; fails to assemble if too big
