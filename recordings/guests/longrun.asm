; =============================================================================================
; longrun.asm - a workload for long recordings: compute, page faults, address-space switches
; and UDP traffic through the NIC's virtual function, round after round
; =============================================================================================
;
; What it is for: recordings of any length from one scenario (recordings/long.yaml), with every
; part of the machine busy, so that a 100-million-event recording is one command:
;     npx chronovisor run recordings/long.yaml --max-events 100000000
; It runs ROUNDS rounds (a define; 0: until the recording is stopped). Each round:
;   1. compute: a bitwise CRC-32 of CRC_BYTES bytes of its data, seeded with the round number,
;      and the result stored back into the data (so each round reads other bytes);
;   2. page faults: WINDOW_TOUCHES of the 16 pages of a window at linear 0x400000 are touched
;      (a store, then a load); the window starts unmapped, so each store takes a #PF, whose
;      handler maps the page from this address space's pool and IRETDs (the store is retried);
;      then the pages are unmapped again (PTE = 0, INVLPG);
;   3. an address-space switch: MOV CR3 to the other of two page directories (A and B), each
;      with its own window page table and pool;
;   4. networking through the VF (the driver of netkernel.asm): the sender (ROLE 1) sends one
;      UDP datagram "round <n> from <MY_IP>" to PEER_IP:7 when a tx descriptor is free; the echo
;      (ROLE 2) sends every datagram for MY_IP back; both poll their rx ring (DMA through VT-d
;      in the secure profile, an MSI-X interrupt per received frame);
;   5. every REPORT_EVERY rounds, one console line:
;        longrun sender 10.0.0.1: round 1024, 1024 sent, 1019 received, 4096 page faults, crc 5f0e2c1a
;      (the echo says "echo" and counts echoed datagrams as sent).
; A periodic local APIC timer (vector 0x20) interrupts it all along. After ROUNDS rounds it
; stops its timer and queues, prints the line once more and shuts down.
;
; About 2,900 instructions per round, and about 1.24 events per instruction in the secure
; profile (every store, CALL and PUSH included, is encrypted: mem.encrypt and mem.write), so a
; round of each guest is about 7,100 events and 100 million events are about 14,000 rounds.
;
; Defines (all required):
;   ROLE      1 sender, 2 echo
;   MY_IP     this guest's IPv4 address as a number, e.g. 0x0a000001 for 10.0.0.1
;   PEER_IP   the other end (the sender sends there; the echo only names it)
;   PEER_MAC  the other end's MAC as a 48-bit number, e.g. 0x020000000002
;   ROUNDS    rounds to run, 0 for no end
;
; Guest ABI used (README.md): org 0x1000, 32-bit protected mode, paging off at entry;
; console_io and sched_op hypercalls; the x2APIC timer MSRs; the VF at 00:04.0. Needs 512 KiB.
;
; Guest-physical memory map (identity-mapped once paging is on; page 0 left unmapped):
;   0x01000-...      this image (must end below 0x8000)
;   0x08000          data page: variables, the console line
;   0x09000          IDT: 256 gates, each to its own 5-byte stub (CALL irq_entry)
;   0x0a000          PD_A: [0] PT_LOW, [1] PT_WIN_A, [0x3c0] PT_MMIO
;   0x0b000          PT_LOW: identity map of 0x1000-0xfffff
;   0x0c000          PT_MMIO: linear 0xF0000000-0xF0007FFF -> the VF's BAR0 and BAR3 windows
;   0x0d000          tx ring, 0x0d100 rx ring: 8 descriptors each
;   0x10000-0x17fff  tx and rx buffers, 2 KiB each
;   0x18000-0x1ffff  stack (ESP = 0x20000)
;   0x20000          PD_B: [0] PT_LOW, [1] PT_WIN_B, [0x3c0] PT_MMIO
;   0x21000          PT_WIN_A, 0x22000 PT_WIN_B: the window at linear 0x400000 in A and in B
;   0x23000          the data the CRC reads (CRC_BYTES bytes)
;   0x40000-0x4ffff  POOL_A: window page k of space A is backed by 0x40000 + k * 0x1000
;   0x50000-0x5ffff  POOL_B: the same for space B
; =============================================================================================

bits 32
org 0x1000

; The defines, all named once up front: without one, assembly stops here, naming it.
DEFINES_GIVEN           equ ROLE + MY_IP + PEER_IP + PEER_MAC + ROUNDS

%include "lib/abi.inc"                      ; hypercalls, console port, x2APIC MSRs
%include "lib/x86.inc"                      ; paging bits, CR0/CR4, gates
%include "lib/vf.inc"                       ; PCI config, VF registers, descriptor bits, NIC_VECTOR
%include "lib/net.inc"                      ; Ethernet / IPv4 / UDP offsets, NET_IPV4
SEND_PORT               equ 40000
ECHO_PORT               equ 7
; Numbers in network byte order, as a little-endian load or store sees them.
MY_IP_NET               equ ((MY_IP >> 24) & 0xff) | ((MY_IP >> 8) & 0xff00) | ((MY_IP << 8) & 0xff0000) | ((MY_IP << 24) & 0xff000000)
PEER_IP_NET             equ ((PEER_IP >> 24) & 0xff) | ((PEER_IP >> 8) & 0xff00) | ((PEER_IP << 8) & 0xff0000) | ((PEER_IP << 24) & 0xff000000)
PEER_MAC_0_3            equ ((PEER_MAC >> 40) & 0xff) | (((PEER_MAC >> 32) & 0xff) << 8) | (((PEER_MAC >> 24) & 0xff) << 16) | (((PEER_MAC >> 16) & 0xff) << 24)
PEER_MAC_4_5            equ ((PEER_MAC >> 8) & 0xff) | ((PEER_MAC & 0xff) << 8)
SEND_PORT_NET           equ ((SEND_PORT >> 8) & 0xff) | ((SEND_PORT & 0xff) << 8)
ECHO_PORT_NET           equ ((ECHO_PORT >> 8) & 0xff) | ((ECHO_PORT & 0xff) << 8)

; ---- tunables -------------------------------------------------------------------------------------
ROLE_SENDER             equ 1
ROLE_ECHO               equ 2
TIMER_VECTOR            equ 0x20
TIMER_PERIOD            equ 5000                    ; ticks
CRC_BYTES               equ 32                      ; power of two
CRC_POLY                equ 0xedb88320
WINDOW                  equ 0x400000                ; PDE 1: the faulting window
WINDOW_PAGES            equ 16                      ; pages in the window (and in each pool)
WINDOW_TOUCHES          equ 4                       ; pages touched per round: (round + 5k) mod 16
REPORT_EVERY            equ 1024                    ; rounds between console lines; power of two
SHOW_MAX                equ 48                      ; payload bytes put_payload would quote

; ---- layout ---------------------------------------------------------------------------------------
%include "lib/net-layout.inc"               ; KDATA, IDT, PD, PT_LOW, PT_MMIO, rings, buffers, stack
PD_A                    equ PD
PD_B                    equ 0x20000
PT_WIN_A                equ 0x21000
PT_WIN_B                equ 0x22000
CRC_DATA                equ 0x23000
SPACES_END              equ 0x24000                 ; boot zeroes PD_B..SPACES_END
POOL_A                  equ 0x40000
POOL_B                  equ 0x50000

; ---- variables (data page) ------------------------------------------------------------------------
ticks                   equ KDATA + 0x00            ; timer interrupts
nic_irqs                equ KDATA + 0x04
eicr_seen               equ KDATA + 0x08
round                   equ KDATA + 0x0c            ; rounds done
tx_next                 equ KDATA + 0x10
rx_next                 equ KDATA + 0x14
sent                    equ KDATA + 0x18            ; datagrams sent (the echo: echoed)
tx_frames               equ sent                    ; counted by tx_submit (lib/nic-tx.inc)
received                equ KDATA + 0x1c            ; the sender: replies; the echo: datagrams for it
others                  equ KDATA + 0x20            ; frames neither for the role nor a reply
tx_full                 equ KDATA + 0x24
page_faults             equ KDATA + 0x28
crc                     equ KDATA + 0x2c            ; the last round's CRC
cur_space               equ KDATA + 0x30            ; 0: A, 1: B
cur_pt                  equ KDATA + 0x34            ; the window page table of the current space
cur_pool                equ KDATA + 0x38            ; ... and its pool
msix_cap                equ KDATA + 0x40
cursor                  equ KDATA + 0x44            ; where the put* routines append...
cursor_end              equ KDATA + 0x4c            ; ...up to here
my_mac                  equ KDATA + 0x50            ; 6 bytes (+2 padding)
out_buf                 equ KDATA + 0x400           ; the console line being built
OUT_MAX                 equ 0x800

; ====================================================================================================
; Boot
; ====================================================================================================
start:
%include "lib/net-boot.inc"                 ; IDT, paging (PD_A), the VF (nic_init), the timer; IF = 0

        mov edi, PD_B                       ; space B, the window tables and the CRC data: zeros
        mov ecx, (SPACES_END - PD_B) / 4
        xor eax, eax
        rep stosd
        mov dword [PD_A + 4], PT_WIN_A | PG_P | PG_RW
        mov dword [PD_B], PT_LOW | PG_P | PG_RW
        mov dword [PD_B + 4], PT_WIN_B | PG_P | PG_RW
        mov dword [PD_B + (NIC_BAR0 >> 22) * 4], PT_MMIO | PG_P | PG_RW
        mov dword [cur_pt], PT_WIN_A
        mov dword [cur_pool], POOL_A
        call report
        sti

; ====================================================================================================
; The rounds
; ====================================================================================================
main:
        call compute
        call touch_window
        call switch_space
        mov eax, ROLE
        cmp eax, ROLE_SENDER
        jne .poll
        call send_datagram
.poll:
        call rx_poll
        inc dword [round]
        test dword [round], REPORT_EVERY - 1
        jnz .next
        call report
.next:
        mov eax, ROUNDS
        test eax, eax
        jz main                             ; no end
        cmp [round], eax
        jb main
        jmp finish

; compute: [crc] = CRC-32 (bitwise, reflected) of CRC_DATA, seeded with the round number; the
; CRC is stored back into the data, one dword per round.
compute:
        mov eax, [round]
        not eax
        mov esi, CRC_DATA
        mov ecx, CRC_BYTES
.byte:
        movzx edx, byte [esi]
        xor eax, edx
        inc esi
        mov ebx, 8
.bit:
        mov edx, eax
        and edx, 1
        neg edx
        and edx, CRC_POLY
        shr eax, 1
        xor eax, edx
        dec ebx
        jnz .bit
        loop .byte
        not eax
        mov [crc], eax
        mov ebx, [round]
        and ebx, CRC_BYTES / 4 - 1
        mov [CRC_DATA + ebx*4], eax
        ret

; touch_window: pages (round + 5k) mod 16, k = 0..WINDOW_TOUCHES-1, of the window: a store (a #PF
; maps the page), a load back; then each is unmapped again (PTE = 0, INVLPG).
touch_window:
        xor ebp, ebp
.touch:
        call window_page                    ; EDX = the page's offset in the window
        mov eax, [round]
        mov [WINDOW + edx], eax             ; #PF (not present, write) -> mapped -> retried
        add eax, [WINDOW + edx]
        mov [WINDOW + edx + 4], eax
        inc ebp
        cmp ebp, WINDOW_TOUCHES
        jb .touch
        xor ebp, ebp
.unmap:
        call window_page
        mov ebx, edx
        shr ebx, 12
        mov eax, [cur_pt]
        mov dword [eax + ebx*4], 0
        invlpg [WINDOW + edx]
        inc ebp
        cmp ebp, WINDOW_TOUCHES
        jb .unmap
        ret

; window_page: EBP = k -> EDX = ((round + 5k) mod 16) * 4096. Clobbers nothing else.
window_page:
        lea edx, [ebp + ebp*4]
        add edx, [round]
        and edx, WINDOW_PAGES - 1
        shl edx, 12
        ret

; switch_space: CR3 := the other page directory; the window's table and pool follow.
switch_space:
        xor dword [cur_space], 1
        jz .a
        mov dword [cur_pt], PT_WIN_B
        mov dword [cur_pool], POOL_B
        mov eax, PD_B
        mov cr3, eax
        ret
.a:
        mov dword [cur_pt], PT_WIN_A
        mov dword [cur_pool], POOL_A
        mov eax, PD_A
        mov cr3, eax
        ret

; report: "longrun <role> <MY_IP>: round N, N sent, N received, N page faults, crc X" on the console.
report:
        pushad
        mov esi, msg_longrun
        call puts
        mov esi, msg_sender
        mov eax, ROLE
        cmp eax, ROLE_SENDER
        je .role
        mov esi, msg_echo
.role:
        call puts
        mov eax, MY_IP
        call putip
        mov esi, msg_round
        call puts
        mov eax, [round]
        call putdec
        mov esi, msg_comma
        call puts
        mov eax, [sent]
        call putdec
        mov esi, msg_sent
        call puts
        mov eax, [received]
        call putdec
        mov esi, msg_received
        call puts
        mov eax, [page_faults]
        call putdec
        mov esi, msg_faults
        call puts
        mov eax, [crc]
        mov ecx, 8
        call puthex
        mov al, 10
        call putc
        call flush
        popad
        ret

; send_datagram: "round <n> from <MY_IP>" from MY_IP:40000 to PEER_IP:7, if a descriptor is free.
send_datagram:
        pushad
        call tx_alloc
        test edi, edi
        jz .out
        mov dword [edi + ETH_DST], PEER_MAC_0_3
        mov word [edi + ETH_DST + 4], PEER_MAC_4_5
        mov eax, [my_mac]
        mov [edi + ETH_SRC], eax
        mov ax, [my_mac + 4]
        mov [edi + ETH_SRC + 4], ax
        mov dword [edi + IP_SRC], MY_IP_NET
        mov dword [edi + IP_DST], PEER_IP_NET
        mov word [edi + UDP_SPORT], SEND_PORT_NET
        mov word [edi + UDP_DPORT], ECHO_PORT_NET
        push edi                            ; the payload, built with the console routines
        lea eax, [edi + PAYLOAD]
        mov [cursor], eax
        lea eax, [edi + BUFFER_BYTES]
        mov [cursor_end], eax
        mov esi, msg_round_word
        call puts
        mov eax, [round]
        call putdec
        mov esi, msg_from
        call puts
        mov eax, MY_IP
        call putip
        mov ecx, [cursor]
        mov dword [cursor], out_buf
        mov dword [cursor_end], out_buf + OUT_MAX
        pop edi
        sub ecx, edi
        sub ecx, PAYLOAD                    ; ECX = payload length
        call udp_headers                    ; ECX = frame length
        call tx_submit
.out:
        popad
        ret

; sender_frame: ESI = frame, ECX = length. Counts an echo of ours, or another frame.
sender_frame:
        cmp ecx, PAYLOAD
        jb .other
        cmp word [esi + ETH_TYPE], NET_IPV4
        jne .other
        cmp byte [esi + IP_PROTO], IP_PROTO_UDP
        jne .other
        cmp dword [esi + IP_SRC], PEER_IP_NET
        jne .other
        cmp word [esi + UDP_SPORT], ECHO_PORT_NET
        jne .other
        inc dword [received]
        ret
.other:
        inc dword [others]
        ret

; echo_frame: ESI = frame, ECX = length. Sends an IPv4/UDP datagram for us back.
echo_frame:
        cmp ecx, PAYLOAD
        jb .other
        cmp word [esi + ETH_TYPE], NET_IPV4
        jne .other
        cmp byte [esi + IP_PROTO], IP_PROTO_UDP
        jne .other
        cmp dword [esi + IP_DST], MY_IP_NET
        jne .other
        inc dword [received]
        call tx_alloc
        test edi, edi
        jz .full
%include "lib/udp-turn-around.inc"          ; the frame copied to EDI, addresses and ports swapped
        call tx_submit                      ; counts it in sent
        ret
.full:
        inc dword [tx_full]
        ret
.other:
        inc dword [others]
        ret

; finish: stop the timer and the queues, say where it got to, shut down.
finish:
        cli
        mov ecx, MSR_X2APIC_INIT_COUNT
        xor eax, eax
        xor edx, edx
        wrmsr
        call nic_stop
        call report
%include "lib/shutdown.inc"                 ; shutdown: sched_op(shutdown)

; rx_poll: hands every completed rx descriptor (DD set) to the role's frame handler, then gives
; it back to the device (status cleared, VFRDT = its index).
rx_poll:
        pushad
.next:
        mov ebx, [rx_next]
        mov edi, ebx
        shl edi, 4
        add edi, RX_RING
        test byte [edi + 12], RXD_STA_DD
        jz .done
        movzx ecx, word [edi + 8]           ; the length the device wrote back
        mov esi, ebx
        shl esi, 11
        add esi, RX_BUFS
        push edi
        push ebx
        cmp ecx, BUFFER_BYTES
        jbe .length_ok
        mov ecx, BUFFER_BYTES
.length_ok:
        mov eax, ROLE
        cmp eax, ROLE_SENDER
        jne .echo
        call sender_frame
        jmp .handled
.echo:
        call echo_frame
%include "lib/nic-rx-recycle.inc"          ; .handled: the descriptor back to the device, .next; .done

%include "lib/nic-tx.inc"                   ; tx_alloc, tx_submit (counting sent)

%include "lib/udp.inc"                      ; udp_headers

; ====================================================================================================
; The driver (as in netkernel.asm)
; ====================================================================================================

; nic_init: EAX = 1, or 0 when there is no VF to drive (after saying so).
nic_init:
%include "lib/nic-init-pci.inc"             ; the VF on PCI, MSI-X on; EAX = 0 and RET if none
        mov ecx, VFCTRL                     ; reset the VF's queues
        mov eax, VFCTRL_RST
        call nic_write
%include "lib/nic-init-msix.inc"            ; my_mac from VFMACL/VFMACH; MSI-X entry 0
        xor ebx, ebx                        ; rx ring: every descriptor gets its buffer
.rx_desc:
        mov edi, ebx
        shl edi, 4
        mov eax, ebx
        shl eax, 11
        add eax, RX_BUFS
        mov [RX_RING + edi], eax
        inc ebx
        cmp ebx, RX_DESCS
        jb .rx_desc
%include "lib/nic-rx-queue.inc"             ; rx ring base and length, queue on
        mov ecx, VFRDT
        mov eax, RX_DESCS - 1
        call nic_write
%include "lib/nic-tx-queue.inc"             ; tx ring base and length, queue on
        mov ecx, VFTDT
        xor eax, eax
        call nic_write
        mov ecx, VFEIMS                     ; interrupts: rx
        mov eax, EICR_RX
        call nic_write
%include "lib/nic-init-report.inc"          ; prints the MAC and the link; EAX = 1, RET

; nic_stop: both queues off.
nic_stop:
        mov ecx, VFRXDCTL
        xor eax, eax
        call nic_write
        mov ecx, VFTXDCTL
        call nic_write
        ret

%include "lib/nic-access.inc"               ; nic_read, nic_write, pci_select, pci_read32/16/8, pci_write16

; ====================================================================================================
; Interrupts and exceptions. Vector v enters at irq_stubs + 5 * v, a CALL to irq_entry.
; ====================================================================================================
irq_entry:
%include "lib/irq-vector.inc"               ; EAX = the vector; exceptions go to exception
        cmp eax, TIMER_VECTOR
        je .timer
        cmp eax, NIC_VECTOR
        jne .eoi
        inc dword [nic_irqs]
        mov ecx, VFEICR                     ; read to clear
        call nic_read
        or [eicr_seen], eax
        jmp .eoi
.timer:
        inc dword [ticks]
.eoi:
%include "lib/irq-eoi.inc"                  ; EOI, POPAD, the stub's return address off, IRETD

; An exception. EAX = vector; [esp + 36] is the error code for 8, 10-14 and 17, else the EIP.
; A #PF in the window maps the page from the current space's pool and retries the access;
; anything else is printed, and the guest shuts down.
exception:
        cmp eax, 14
        jne .panic
        mov edx, cr2
        sub edx, WINDOW
        cmp edx, WINDOW_PAGES * 4096
        jae .panic
        shr edx, 12
        mov eax, edx
        shl eax, 12
        add eax, [cur_pool]
        or eax, PG_P | PG_RW
        mov ebx, [cur_pt]
        mov [ebx + edx*4], eax
        inc dword [page_faults]
        popad
        add esp, 8                          ; the stub's return address and the error code
        iretd
.panic:
        mov ebx, eax
        lea ebp, [esp + 36]                 ; EBP -> error code or EIP
        mov dword [cursor], out_buf
        mov dword [cursor_end], out_buf + OUT_MAX
        mov esi, msg_panic
        call puts
%include "lib/exception-report.inc"         ; the vector, error code, EIP, CR2
        mov al, 10
        call putc
        call flush
        jmp shutdown

%include "lib/irq-stubs.inc"                ; irq_stubs: 256 x CALL irq_entry

%include "lib/net-console.inc"              ; putc, puts, puthex, putdec, putip, putmac, flush, ...

; ====================================================================================================
; Read-only data
; ====================================================================================================
idt_descriptor:
        dw 256 * 8 - 1
        dd IDT
hex_digits:
        db '0123456789abcdef'
msg_found:
        db 'longrun: paging on, VF 8086:10ed at 00:04.0, MSI-X capability at 0x', 0
msg_no_vf:
        db 'longrun: no VF at 00:04.0 (ids ', 0
msg_no_vf_tail:
        db `): nothing to drive, shutting down\n`, 0
msg_no_msix:
        db `longrun: the VF has no MSI-X capability, shutting down\n`, 0
msg_mac:
        db 'longrun: MAC ', 0
msg_link_up:
        db ', link up', 0
msg_link_down:
        db ', link DOWN', 0
msg_rings:
        db `, 8 tx + 8 rx descriptors, MSI-X vector 0x41\n`, 0
msg_longrun:
        db 'longrun ', 0
msg_sender:
        db 'sender ', 0
msg_echo:
        db 'echo ', 0
msg_round:
        db ': round ', 0
msg_comma:
        db ', ', 0
msg_sent:
        db ' sent, ', 0
msg_received:
        db ' received, ', 0
msg_faults:
        db ' page faults, crc ', 0
msg_round_word:
        db 'round ', 0
msg_from:
        db ' from ', 0
msg_arrow:
        db ' -> ', 0
%include "lib/frame-text.inc"               ; the texts of put_frame_summary
msg_panic:
        db `\nlongrun panic: vector 0x`, 0
%include "lib/panic-text.inc"               ; msg_panic_error, msg_panic_eip, msg_panic_cr2

image_end:
; The image must end below the data page.
        times -(((KDATA - IMAGE_BASE) - (image_end - $$)) >> 63) db 0
