; =============================================================================================
; io-attacker.asm - a hostile guest with a VF of its own: attacks through the device
; =============================================================================================
;
; What it demonstrates: what a ring-0 guest can try once Xen has given it a real device. The
; CPU-side attacks of attacker.asm are answered by EPT and the hypervisor; here the guest
; programs the NIC's virtual function to do the work for it: DMA to and from memory it does not
; own, DMA into the interrupt window (an MSI forged by DMA), frames with a stolen source MAC or
; its own VLAN tag, and writes to registers and tables it may not change. In the secure profile
; VT-d (DMA and interrupt remapping), the embedded switch (anti-spoofing, port VLANs) and the
; security groups must stop every one; forked to vanilla (dom0's bridge and netback, no
; interrupt remapping), some get through - compare the two runs' net.frame, dma.request and msi
; events (`chronovisor log DB --kind net --kind dma --kind msi`).
;
; The driver is netkernel.asm's (PCI config, BARs at 0xF0000000/0xF0004000 mapped by a page
; table of their own, MSI-X entry 0 = vector 0x41, 8 + 8 legacy descriptors), with one
; difference: the rx ring starts with no descriptor given to the device; each rx attack gives
; exactly one, the one at RDH, with the buffer address under test.
;
; How it makes the device DMA into its rx ring: the switch never loops a frame back to its
; sender, so it asks someone else to send. The reflector (bob, an echo on the same VLAN)
; answers any datagram to its sender's MAC and IP, so the attacker sends bob a datagram from
; its own MAC (anti-spoofing passes) but with the victim's IP and port 40000 (bob's security
; group lets the victim talk to bob): bob's echo comes back to the attacker's MAC. Its first
; four bytes are the attacker's MAC, 42:00:00:00 - which, written by DMA at 0xFEE00000, is a
; compatibility-format MSI with data 0x00000042: vector 0x42.
;
; Each line is "[tag] what (expect): outcome". Expectations are the secure profile's; the
; outcome is what the guest can see (descriptor status, RDH/TDH, interrupts by vector). What the
; device and the switch did is in the recording: net.frame events carry the switch's verdict
; (spoof, vlan, security-group, dma-fault...), dma.request the VT-d translation or its fault,
; msi the interrupt remapping unit's answer.
;
;   [f1] UDP from its own MAC and IP to the reflector                  security group drops it
;   [f2] the victim's source MAC and IP, to the reflector, "forged by mallory, as alice"
;                                                                      anti-spoofing drops it
;        (without anti-spoofing the reflector echoes it to the victim, who prints it)
;   [f3] its own 802.1Q tag (HOP_VLAN) inside the frame                 VLAN hopping dropped
;   [r1] rx buffer at 0x00800000 (8 MiB, not its memory)               DMA fault, RDH stays
;   [r2] rx buffer at 0xFEE00000: a compatibility-format MSI by DMA,
;        data 0x00000042 = vector 0x42                                 blocked (VT-d fault 0x25)
;   [r3] rx buffer at 0xFEE00010: remappable format, handle 0, the IRTE
;        Xen gave the first VF it set up (the victim's)                blocked (source-id, 0x26)
;   [r4] rx buffer at 0xFFFFF000 (top of the address space)            DMA fault
;   [r5] control: rx buffer in its own memory                          the echo arrives
;   [p1] config read of 00:05.0, a function it was not given          ffffffff
;   [p2] config read of bus 2, device 0 (where the host's PF sits)    ffffffff
;   [p3] write 0xf0100000 into BAR0 (config 0x10) to move its window  reads 0: the window stays
;   [c1] VFMACL/VFMACH <- the victim's MAC (read-only registers)       MAC unchanged
;   [m1] MSI-X entry 0 address <- 0xFEE00010: remappable format, handle 0; Xen keeps its own
;        message in the real table                                    reads back its own value;
;                                                                      interrupts stay its own
;   [t1] tx buffer at 0x00040000 (the first byte past its 256 KiB)     DMA fault, queue stalls
;   [t2] tx buffer at 0x00800000                                       DMA fault
;   [t3] tx buffer at 0xFFFFF000                                       DMA fault
;   [t4] tx descriptor ring at 0x00800000                              DMA fault
; The frame and rx attacks come first, while the victim still runs (its IRTE is live for [r3],
; and in vanilla it receives the echo of [f2]).
; After each tx attack the queues are reset (VFCTRL.RST) and set up again, since a faulting
; descriptor stalls its queue. Then a summary: interrupts by vector (0x20 the timer, 0x41 its
; own NIC vector; any other is foreign), exceptions, and shutdown.
;
; Defines (all required):
;   MY_IP          its own address, e.g. 0x0a000042 for 10.0.0.66 (the MAC comes from VFMACL)
;   VICTIM_IP      whose address it borrows, e.g. 0x0a000001
;   VICTIM_MAC     whose MAC it steals, as a 48-bit number, e.g. 0x020000000001
;   REFLECTOR_IP   the echo it bounces datagrams off, e.g. 0x0a000002
;   REFLECTOR_MAC  e.g. 0x020000000002
;   HOP_VLAN       the VLAN id it writes into its own 802.1Q tag, e.g. 20
;
; Guest ABI and memory map: as netkernel.asm (needs 128 KiB; the demo gives 256 KiB), except
; that the rx buffers at 0x14000 are the "own memory" buffers of [r5].
; =============================================================================================

bits 32
org 0x1000

; The defines, all named once up front: without one, assembly stops here, naming it.
DEFINES_GIVEN           equ MY_IP + VICTIM_IP + VICTIM_MAC + REFLECTOR_IP + REFLECTOR_MAC + HOP_VLAN

; ---- the machine ABI and x86 constants -------------------------------------------------------
%include "lib/abi.inc"                      ; hypercalls, console port, x2APIC MSRs
%include "lib/x86.inc"                      ; paging bits, CR0/CR4, gates

; ---- PCI, the VF and frames ---------------------------------------------------------------------
%include "lib/vf.inc"                       ; PCI config, VF registers, descriptor bits, NIC_VECTOR
%include "lib/net.inc"                      ; Ethernet / IPv4 / UDP offsets, NET_IPV4
OTHER_CONFIG            equ PCI_ENABLE | (5 << 11)          ; 00:05.0
PF_CONFIG               equ PCI_ENABLE | (2 << 16)          ; 02:00.0
MSI_REMAPPABLE_HANDLE_0 equ 0xfee00010              ; bit 4: remappable format; handle 0
NET_VLAN                equ 0x0081                  ; ethertype 0x8100, as a little-endian word
SPORT_NET               equ 0x409c                  ; 40000 in network order
DPORT_NET               equ 0x0700                  ; 7 in network order
MY_IP_NET               equ ((MY_IP >> 24) & 0xff) | ((MY_IP >> 8) & 0xff00) | ((MY_IP << 8) & 0xff0000) | ((MY_IP << 24) & 0xff000000)
VICTIM_IP_NET           equ ((VICTIM_IP >> 24) & 0xff) | ((VICTIM_IP >> 8) & 0xff00) | ((VICTIM_IP << 8) & 0xff0000) | ((VICTIM_IP << 24) & 0xff000000)
REFLECTOR_IP_NET        equ ((REFLECTOR_IP >> 24) & 0xff) | ((REFLECTOR_IP >> 8) & 0xff00) | ((REFLECTOR_IP << 8) & 0xff0000) | ((REFLECTOR_IP << 24) & 0xff000000)

; ---- tunables -------------------------------------------------------------------------------------
TIMER_VECTOR            equ 0x20
TIMER_PERIOD            equ 1000                    ; ticks
START_DELAY             equ 4                       ; periods: the others boot meanwhile
SETTLE                  equ 3                       ; periods to wait after each attack
SHOW_MAX                equ 48

; ---- layout (as netkernel.asm) ---------------------------------------------------------------------
%include "lib/net-layout.inc"
MEMORY_END              equ 0x40000                 ; the demo's 256 KiB

; ---- variables ------------------------------------------------------------------------------------
ticks                   equ KDATA + 0x00
nic_irqs                equ KDATA + 0x04
eicr_seen               equ KDATA + 0x0c
faults                  equ KDATA + 0x10            ; exceptions taken during attacks
tx_next                 equ KDATA + 0x14
recover                 equ KDATA + 0x18            ; where an exception resumes (0: none armed)
recover_esp             equ KDATA + 0x1c
msix_cap                equ KDATA + 0x40
cursor                  equ KDATA + 0x44
cursor_end              equ KDATA + 0x4c
my_mac                  equ KDATA + 0x50            ; 6 bytes
f_dst_mac               equ KDATA + 0x58            ; the frame build_udp builds: 6 bytes
f_src_mac               equ KDATA + 0x60            ; 6 bytes
f_src_ip                equ KDATA + 0x68            ; network order
f_dst_ip                equ KDATA + 0x6c
seen_41                 equ KDATA + 0x70            ; interrupt counts when an rx attack began
seen_42                 equ KDATA + 0x74
seen_total              equ KDATA + 0x78
irq_total               equ KDATA + 0x7c            ; every interrupt but the timer's
rx_desc                 equ KDATA + 0x80            ; the descriptor an rx attack armed
vectors                 equ KDATA + 0x400           ; dd [256]: interrupts by vector
out_buf                 equ KDATA + 0x800
OUT_MAX                 equ 0x800

; ====================================================================================================
; Boot: as netkernel.asm
; ====================================================================================================
start:
%include "lib/net-boot.inc"                 ; IDT, paging, the VF (nic_init), the timer; IF = 0
        sti

        mov esi, msg_hello
        call puts
        mov eax, MY_IP
        call putip
        mov esi, msg_victim
        call puts
        mov eax, VICTIM_IP
        call putip
        mov esi, msg_open
        call puts
        mov esi, victim_mac
        call putmac
        mov esi, msg_reflector
        call puts
        mov eax, REFLECTOR_IP
        call putip
        mov esi, msg_open
        call puts
        mov esi, reflector_mac
        call putmac
        mov esi, msg_close_nl
        call puts
        call flush
        mov eax, START_DELAY
        call wait_periods

        ; ---- the attacks, in order: each one runs with a recovery point armed -----------------------
        mov esi, attacks
.next_attack:
        mov ebx, [esi]
        test ebx, ebx
        jz .summary
        push esi
        call run_attack
        pop esi
        add esi, 4
        jmp .next_attack
.summary:
        mov eax, SETTLE
        call wait_periods
        jmp finish

attacks:
        dd attack_f1, attack_f2, attack_f3
        dd attack_r1, attack_r2, attack_r3, attack_r4, attack_r5
        dd attack_p1, attack_p2, attack_p3, attack_c1, attack_m1
        dd attack_t1, attack_t2, attack_t3, attack_t4, 0

; run_attack: EBX = the attack routine. An exception inside it is printed and resumes here.
run_attack:
        mov [recover_esp], esp
        mov dword [recover], .resume
        call ebx
.resume:
        mov esp, [recover_esp]
        mov dword [recover], 0
        mov al, 10
        call putc
        jmp flush

; wait_periods: EAX = timer periods to sleep (IF = 1).
wait_periods:
        push eax
        add eax, [ticks]
.sleep:
        hlt
        cmp [ticks], eax
        jb .sleep
        pop eax
        ret

; ====================================================================================================
; The attacks. Each prints its line (without the newline, which run_attack adds).
; ====================================================================================================

; ---- PCI configuration space -----------------------------------------------------------------------
attack_p1:
        mov esi, msg_p1
        call puts
        mov eax, OTHER_CONFIG
        jmp config_probe
attack_p2:
        mov esi, msg_p2
        call puts
        mov eax, PF_CONFIG
config_probe:                               ; EAX = CONFIG_ADDRESS of register 0: print what reads
        mov dx, PCI_CONFIG_ADDRESS
        out dx, eax
        mov dx, PCI_CONFIG_DATA
        in eax, dx
        mov ecx, 8
        jmp puthex

attack_p3:
        mov esi, msg_p3
        call puts
        mov ecx, PCI_BASE_ADDRESS_0
        mov eax, 0xf0100000
        call pci_write32
        call pci_read32
        mov ecx, 8
        call puthex
        mov esi, msg_p3_after
        call puts
        mov ecx, VFSTATUS                   ; the registers still answer at the old window?
        call nic_read
        mov ecx, 8
        jmp puthex

; ---- registers and the MSI-X table ------------------------------------------------------------------
attack_c1:
        mov esi, msg_c1
        call puts
        mov eax, [victim_mac]
        mov ecx, VFMACL
        call nic_write
        movzx eax, word [victim_mac + 4]
        mov ecx, VFMACH
        call nic_write
        mov ecx, VFMACL
        call nic_read
        mov [f_src_mac], eax
        mov ecx, VFMACH
        call nic_read
        mov [f_src_mac + 4], ax
        mov esi, f_src_mac
        jmp putmac

attack_m1:
        mov esi, msg_m1
        call puts
        mov ecx, BAR3_OFFSET + 0
        mov eax, MSI_REMAPPABLE_HANDLE_0
        call nic_write
        mov ecx, BAR3_OFFSET + 0
        call nic_read
        mov ecx, 8
        call puthex
        mov esi, msg_m1_after
        jmp puts

; ---- frames ----------------------------------------------------------------------------------------
attack_f1:                                  ; our own addresses: the security group
        mov esi, msg_f1
        call puts
        call frame_to_reflector
        mov esi, text_f1
        call build_udp
        jmp send_and_report

attack_f2:                                  ; the victim's MAC and IP: anti-spoofing
        mov esi, msg_f2
        call puts
        call frame_to_reflector
        mov eax, [victim_mac]
        mov [f_src_mac], eax
        mov ax, [victim_mac + 4]
        mov [f_src_mac + 4], ax
        mov dword [f_src_ip], VICTIM_IP_NET
        mov esi, text_f2
        call build_udp
        jmp send_and_report

attack_f3:                                  ; our own 802.1Q tag: VLAN hopping
        mov esi, msg_f3
        call puts
        call frame_to_reflector
        mov esi, text_f3
        call build_udp
        ; make room for the tag after the MACs: move bytes 12.. up by 4, from the end
        mov esi, ecx
.move:
        dec esi
        mov al, [edi + esi]
        mov [edi + esi + 4], al
        cmp esi, ETH_TYPE
        ja .move
        mov word [edi + ETH_TYPE], NET_VLAN
        mov byte [edi + ETH_TYPE + 2], (HOP_VLAN >> 8) & 0x0f
        mov byte [edi + ETH_TYPE + 3], HOP_VLAN & 0xff
        add ecx, 4
        jmp send_and_report

; frame_to_reflector: the default frame: our MAC and IP, to the reflector's, ports 40000 -> 7.
frame_to_reflector:
        mov eax, [reflector_mac]
        mov [f_dst_mac], eax
        mov ax, [reflector_mac + 4]
        mov [f_dst_mac + 4], ax
        mov eax, [my_mac]
        mov [f_src_mac], eax
        mov ax, [my_mac + 4]
        mov [f_src_mac + 4], ax
        mov dword [f_src_ip], MY_IP_NET
        mov dword [f_dst_ip], REFLECTOR_IP_NET
        ret

; send_and_report: EDI = frame, ECX = length. Sends it, waits, and prints what the guest can
; see of it: the descriptor's DD and TDH.
send_and_report:
        call tx_send
        mov eax, SETTLE
        call wait_periods
        mov esi, msg_sent_dd
        call puts
        movzx eax, byte [ebx + 12]          ; tx_send left EBX = the descriptor
        and eax, TXD_STA_DD
        call putdec
        mov esi, msg_tdh
        call puts
        mov ecx, VFTDH
        call nic_read
        call putdec
        mov esi, msg_see_log
        jmp puts

; ---- rx DMA: one descriptor (the one at RDH) with the buffer under test, then a reflection --------
attack_r1:
        mov esi, msg_r1
        call puts
        mov eax, 0x00800000
        jmp rx_attack
attack_r2:
        mov esi, msg_r2
        call puts
        mov eax, MSI_ADDRESS
        jmp rx_attack
attack_r3:
        mov esi, msg_r3
        call puts
        mov eax, MSI_REMAPPABLE_HANDLE_0
        jmp rx_attack
attack_r4:
        mov esi, msg_r4
        call puts
        mov eax, 0xfffff000
        jmp rx_attack
attack_r5:
        mov esi, msg_r5
        call puts
        mov eax, RX_BUFS                    ; our own memory (the real buffer of the control)
rx_attack:                                  ; EAX = the buffer address for the descriptor at RDH
        push eax
        mov ecx, VFRDH
        call nic_read
        and eax, RX_DESCS - 1
        mov [rx_desc], eax
        shl eax, 4
        lea ebx, [RX_RING + eax]
        pop eax
        mov [ebx], eax                      ; buffer
        xor eax, eax
        mov [ebx + 4], eax
        mov [ebx + 8], eax                  ; length, checksum
        mov [ebx + 12], eax                 ; status, errors, VLAN
        mov eax, [rx_desc]                  ; give the device exactly this one
        inc eax
        and eax, RX_DESCS - 1
        mov ecx, VFRDT
        call nic_write
        mov eax, [vectors + NIC_VECTOR * 4]
        mov [seen_41], eax
        mov eax, [vectors + 0x42 * 4]
        mov [seen_42], eax
        mov eax, [irq_total]
        mov [seen_total], eax
        ; the reflection: to bob from our MAC, with the victim's IP and port
        call frame_to_reflector
        mov dword [f_src_ip], VICTIM_IP_NET
        mov esi, text_reflect
        call build_udp
        call tx_send
        mov eax, SETTLE
        call wait_periods
        ; what landed
        mov esi, msg_rx_status
        call puts
        mov ebx, [rx_desc]
        shl ebx, 4
        add ebx, RX_RING
        movzx eax, byte [ebx + 12]
        mov ecx, 2
        call puthex
        mov esi, msg_rx_len
        call puts
        movzx eax, word [ebx + 8]
        call putdec
        mov esi, msg_rdh
        call puts
        mov ecx, VFRDH
        call nic_read
        call putdec
        mov esi, msg_irq_41
        call puts
        mov eax, [vectors + NIC_VECTOR * 4]
        sub eax, [seen_41]
        call putdec
        mov esi, msg_irq_42
        call puts
        mov eax, [vectors + 0x42 * 4]
        sub eax, [seen_42]
        call putdec
        mov esi, msg_irq_other
        call puts
        mov eax, [irq_total]
        sub eax, [seen_total]
        sub eax, [vectors + NIC_VECTOR * 4]
        add eax, [seen_41]
        call putdec
        test byte [ebx + 12], RXD_STA_DD    ; a frame in our own buffer: show it
        jz .done
        mov esi, [ebx]
        cmp esi, MEMORY_END
        jae .done
        movzx ecx, word [ebx + 8]
        mov al, ' '
        call putc
        call put_sender
        mov al, ' '
        call putc
        call put_payload
.done:
        ret

; ---- tx DMA from addresses that are not ours (each stalls the queue: reset afterwards) ------------
attack_t1:
        mov esi, msg_t1
        call puts
        mov eax, MEMORY_END
        jmp tx_attack
attack_t2:
        mov esi, msg_t2
        call puts
        mov eax, 0x00800000
        jmp tx_attack
attack_t3:
        mov esi, msg_t3
        call puts
        mov eax, 0xfffff000
tx_attack:                                  ; EAX = the buffer address of a 64-byte frame
        mov ebx, [tx_next]
        shl ebx, 4
        add ebx, TX_RING
        mov [ebx], eax
        mov dword [ebx + 4], 0
        mov dword [ebx + 8], 64 | (TXD_CMD << 24)
        mov dword [ebx + 12], 0
        mov eax, [tx_next]
        inc eax
        and eax, TX_DESCS - 1
        mov [tx_next], eax
        mov ecx, VFTDT
        call nic_write
        jmp tx_report

attack_t4:
        mov esi, msg_t4
        call puts
        mov ecx, VFTDBAL
        mov eax, 0x00800000
        call nic_write
        mov ebx, [tx_next]                  ; (what we would have used: our own descriptor)
        shl ebx, 4
        add ebx, TX_RING
        mov dword [ebx + 12], 0
        mov eax, [tx_next]
        inc eax
        and eax, TX_DESCS - 1
        mov ecx, VFTDT
        call nic_write
tx_report:                                  ; EBX = the descriptor in our ring
        mov eax, SETTLE
        call wait_periods
        mov esi, msg_tx_dd
        call puts
        movzx eax, byte [ebx + 12]
        and eax, TXD_STA_DD
        call putdec
        mov esi, msg_tdh
        call puts
        mov ecx, VFTDH
        call nic_read
        call putdec
        mov esi, msg_reset
        call puts
        jmp queues_setup                    ; the queue is stalled: reset the VF's queues

; ====================================================================================================
; Frames
; ====================================================================================================

; build_udp: ESI = NUL-terminated payload; the addresses from f_dst_mac, f_src_mac, f_src_ip,
; f_dst_ip, ports 40000 -> 7. Returns EDI = the next tx buffer (always free: one frame at a
; time) and ECX = the frame length.
build_udp:
        push eax
        mov edi, [tx_next]
        shl edi, 11
        add edi, TX_BUFS
        mov eax, [f_dst_mac]
        mov [edi + ETH_DST], eax
        mov ax, [f_dst_mac + 4]
        mov [edi + ETH_DST + 4], ax
        mov eax, [f_src_mac]
        mov [edi + ETH_SRC], eax
        mov ax, [f_src_mac + 4]
        mov [edi + ETH_SRC + 4], ax
        mov eax, [f_src_ip]
        mov [edi + IP_SRC], eax
        mov eax, [f_dst_ip]
        mov [edi + IP_DST], eax
        mov word [edi + UDP_SPORT], SPORT_NET
        mov word [edi + UDP_DPORT], DPORT_NET
        xor ecx, ecx
.copy:
        mov al, [esi + ecx]
        mov [edi + PAYLOAD + ecx], al
        inc ecx
        test al, al
        jnz .copy
        dec ecx                             ; the NUL is not sent
        call udp_headers
        pop eax
        ret

; tx_send: EDI = buffer, ECX = length. Fills the descriptor at tx_next and rings the doorbell.
; Returns EBX = the descriptor.
tx_send:
        push eax
        push ecx
        mov ebx, [tx_next]
        shl ebx, 4
        add ebx, TX_RING
        mov [ebx], edi
        mov dword [ebx + 4], 0
        mov eax, ecx
        or eax, TXD_CMD << 24
        mov [ebx + 8], eax
        mov dword [ebx + 12], 0
        mov eax, [tx_next]
        inc eax
        and eax, TX_DESCS - 1
        mov [tx_next], eax
        mov ecx, VFTDT
        call nic_write
        pop ecx
        pop eax
        ret

; ====================================================================================================
; The driver (netkernel.asm's, with the queues set up by queues_setup so that they can be reset)
; ====================================================================================================

; nic_init: EAX = 1, or 0 when there is no VF to drive (after saying so).
nic_init:
%include "lib/nic-init-pci.inc"             ; the VF on PCI, MSI-X on; EAX = 0 and RET if none
%include "lib/nic-init-msix.inc"            ; my_mac from VFMACL/VFMACH; MSI-X entry 0

        call queues_setup

%include "lib/nic-init-report.inc"          ; prints the MAC and the link; EAX = 1, RET

; queues_setup: VF reset (head and tail back to 0), then both rings on: tx empty, rx with NO
; descriptor given (each rx attack gives exactly one). Interrupts: rx.
queues_setup:
        pushad
        mov ecx, VFCTRL
        mov eax, VFCTRL_RST
        call nic_write
        mov edi, TX_RING                    ; both rings back to zeros
        mov ecx, 2 * 128 / 4
        xor eax, eax
        rep stosd
        mov dword [tx_next], 0
%include "lib/nic-rx-queue.inc"             ; rx ring base and length, queue on
%include "lib/nic-tx-queue.inc"             ; tx ring base and length, queue on
        mov ecx, VFEIMS
        mov eax, EICR_RX
        call nic_write
        popad
        ret

; finish: timer and queues off, the summary, shutdown.
finish:
        cli
        mov ecx, MSR_X2APIC_INIT_COUNT
        xor eax, eax
        xor edx, edx
        wrmsr
        mov ecx, VFRXDCTL
        xor eax, eax
        call nic_write
        mov ecx, VFTXDCTL
        call nic_write
        mov esi, msg_summary
        call puts
        xor ebx, ebx                        ; every vector that fired, with its count
.vector:
        mov eax, [vectors + ebx*4]
        test eax, eax
        jz .skip
        mov esi, msg_vector
        call puts
        mov eax, ebx
        mov ecx, 2
        call puthex
        mov al, ':'
        call putc
        mov al, ' '
        call putc
        mov eax, [vectors + ebx*4]
        call putdec
.skip:
        inc ebx
        cmp ebx, 256
        jb .vector
        mov esi, msg_faults
        call puts
        mov eax, [faults]
        call putdec
        mov esi, msg_bye
        call puts
        call flush
%include "lib/shutdown.inc"                 ; shutdown: sched_op(shutdown)

; ====================================================================================================
; Interrupts and exceptions: vector v enters at irq_stubs + 5 * v (CALL irq_entry). Interrupts
; are counted by vector (the timer's, our NIC's, and any other: a forged MSI would show here).
; ====================================================================================================
irq_entry:
%include "lib/irq-vector.inc"               ; EAX = the vector; exceptions go to exception
        inc dword [vectors + eax*4]
        cmp eax, TIMER_VECTOR
        je .timer
        inc dword [irq_total]
        cmp eax, NIC_VECTOR
        jne .eoi
        inc dword [nic_irqs]
        mov ecx, VFEICR
        call nic_read
        or [eicr_seen], eax
        jmp .eoi
.timer:
        inc dword [ticks]
.eoi:
%include "lib/irq-eoi.inc"                  ; EOI, POPAD, the stub's return address off, IRETD

; An exception: printed; with a recovery point armed the attack is abandoned there, otherwise
; it is fatal. EAX = vector; [esp + 36] is the error code (8, 10-14, 17) or the EIP.
exception:
        mov ebx, eax
        lea ebp, [esp + 36]
        inc dword [faults]
        mov esi, msg_exception
        call puts
%include "lib/exception-report.inc"         ; the vector, error code, EIP, CR2
        mov eax, [recover]
        test eax, eax
        jz .fatal
        mov dword [recover], 0
        mov esp, [recover_esp]
        sti                                 ; the gate cleared IF; the attacks run with it set
        jmp eax
.fatal:
        mov al, 10
        call putc
        call flush
        jmp shutdown

%include "lib/irq-stubs.inc"                ; irq_stubs: 256 x CALL irq_entry

%include "lib/nic-access.inc"               ; nic_read, nic_write, pci_select, pci_read32/16/8, pci_write16
; pci_write32: ECX = register offset of 00:04.0, EAX = the value. EDX is clobbered.
pci_write32:
        call pci_select
        out dx, eax
        ret

%include "lib/udp.inc"                      ; udp_headers

%include "lib/net-console.inc"              ; putc, puts, puthex, putdec, putip, putmac, put_sender,
                                            ; put_payload, put_frame_summary, net_to_host, flush

; ====================================================================================================
; Read-only data
; ====================================================================================================
idt_descriptor:
        dw 256 * 8 - 1
        dd IDT
victim_mac:
        db (VICTIM_MAC >> 40) & 0xff, (VICTIM_MAC >> 32) & 0xff, (VICTIM_MAC >> 24) & 0xff
        db (VICTIM_MAC >> 16) & 0xff, (VICTIM_MAC >> 8) & 0xff, VICTIM_MAC & 0xff, 0, 0
reflector_mac:
        db (REFLECTOR_MAC >> 40) & 0xff, (REFLECTOR_MAC >> 32) & 0xff, (REFLECTOR_MAC >> 24) & 0xff
        db (REFLECTOR_MAC >> 16) & 0xff, (REFLECTOR_MAC >> 8) & 0xff, REFLECTOR_MAC & 0xff, 0, 0
hex_digits:
        db '0123456789abcdef'
msg_found:
        db 'io-attacker: VF 8086:10ed at 00:04.0, MSI-X capability at 0x', 0
msg_no_vf:
        db 'io-attacker: no VF at 00:04.0 (ids ', 0
msg_no_vf_tail:
        db `): nothing to attack with, shutting down\n`, 0
msg_no_msix:
        db `io-attacker: the VF has no MSI-X capability, shutting down\n`, 0
msg_mac:
        db 'io-attacker: MAC ', 0
msg_link_up:
        db ', link up', 0
msg_link_down:
        db ', link DOWN', 0
msg_rings:
        db `, 8 tx + 8 rx descriptors (no rx descriptor given yet), MSI-X vector 0x41\n`, 0
msg_hello:
        db 'io-attacker: I am ', 0
msg_victim:
        db '; victim ', 0
msg_reflector:
        db '), reflector ', 0
msg_open:
        db ' (', 0
msg_close_nl:
        db `)\n`, 0
msg_arrow:
        db ' -> ', 0
msg_p1:
        db '[p1] config read of 00:05.0, a function we were not given (expect ffffffff): ', 0
msg_p2:
        db '[p2] config read of 02:00.0, where the host', 0x27, 's PF sits (expect ffffffff): ', 0
msg_p3:
        db '[p3] BAR0 <- f0100000 to move our register window (expect it to read 0, window unmoved): BAR0 reads ', 0
msg_p3_after:
        db ', VFSTATUS at the old window ', 0
msg_c1:
        db '[c1] VFMACL/VFMACH <- the victim', 0x27, 's MAC (read-only; expect our MAC unchanged): MAC now ', 0
msg_m1:
        db '[m1] MSI-X entry 0 address <- fee00010, remappable format, handle 0 = another device', 0x27, 's IRTE (expect Xen to keep its own message; our interrupts stay ours): we read back ', 0
msg_m1_after:
        db ' (our view only)', 0
msg_f1:
        db '[f1] UDP from our own MAC and IP to the reflector:7 (expect: its security group drops it)', 0
msg_f2:
        db '[f2] UDP with the victim', 0x27, 's source MAC and IP to the reflector (expect: anti-spoofing drops it; if not, the echo goes to the victim)', 0
msg_f3:
        db '[f3] our own 802.1Q tag for another VLAN in the frame (expect: VLAN hopping dropped)', 0
msg_sent_dd:
        db ': sent, DD=', 0
msg_tdh:
        db ' TDH=', 0
msg_see_log:
        db ' (the verdict is in the net.frame events)', 0
msg_r1:
        db '[r1] rx DMA into 0x00800000, 8 MiB, not our memory (expect: DMA fault, RDH stays)', 0
msg_r2:
        db '[r2] rx DMA into 0xfee00000: a compatibility-format MSI forged by DMA, data = the frame', 0x27, 's first dword = vector 0x42 (expect: blocked by interrupt remapping)', 0
msg_r3:
        db '[r3] rx DMA into 0xfee00010: remappable format, handle 0, another device', 0x27, 's IRTE (expect: blocked, source-id check)', 0
msg_r4:
        db '[r4] rx DMA into 0xfffff000, the top of the address space (expect: DMA fault)', 0
msg_r5:
        db '[r5] control: rx DMA into our own buffer (expect: the echo arrives)', 0
msg_rx_status:
        db ': status ', 0
msg_rx_len:
        db ' len ', 0
msg_rdh:
        db ' RDH=', 0
msg_irq_41:
        db ', interrupts: 0x41 x', 0
msg_irq_42:
        db ' 0x42 x', 0
msg_irq_other:
        db ' others x', 0
msg_t1:
        db '[t1] tx DMA from 0x00040000, the first byte past our memory (expect: DMA fault, queue stalls)', 0
msg_t2:
        db '[t2] tx DMA from 0x00800000 (expect: DMA fault)', 0
msg_t3:
        db '[t3] tx DMA from 0xfffff000 (expect: DMA fault)', 0
msg_t4:
        db '[t4] tx descriptor ring at 0x00800000 (expect: DMA fault on the descriptor fetch)', 0
msg_tx_dd:
        db ': DD=', 0
msg_reset:
        db '; queues reset', 0
text_f1:
        db 'hello bob, this is mallory', 0
text_f2:
        db 'forged by mallory, as alice', 0
text_f3:
        db 'mallory hops to another VLAN', 0
text_reflect:
        db 'bounce this back to mallory', 0
msg_summary:
        db 'io-attacker: interrupts by vector:', 0
msg_vector:
        db ' 0x', 0
msg_faults:
        db '; exceptions ', 0
msg_bye:
        db `; shutting down\n`, 0
%include "lib/frame-text.inc"               ; the texts of put_frame_summary
msg_exception:
        db ' -> exception 0x', 0
%include "lib/panic-text.inc"               ; msg_panic_error, msg_panic_eip, msg_panic_cr2

image_end:
; The image must end below the data page.
        times -(((KDATA - IMAGE_BASE) - (image_end - $$)) >> 63) db 0
