; =============================================================================================
; netkernel.asm - a tiny guest kernel with a driver for the SR-IOV NIC's virtual function
; =============================================================================================
;
; What it demonstrates: a guest that owns a piece of real hardware. Xen assigns one virtual
; function (VF) of the 82599-like NIC to the domain; the guest finds it on its virtual PCI bus,
; maps its registers, builds descriptor rings in its own memory and lets the device move frames
; in and out of that memory by DMA - DMA that goes through VT-d, whose tables say which host
; frames this device may touch (only the domain's own), and interrupts that go through VT-d's
; interrupt remapping (only the vector Xen set up for this VF, only to this domain).
;
;   * The driver (the same code in io-attacker.asm):
;     - PCI configuration mechanism #1 (ports 0xCF8/0xCFC): reads the ids of 00:04.0 (vendor
;       0x8086, device 0x10ED, the 82599 VF), sets COMMAND.MSE|BME, walks the capability list
;       from 0x34 to the MSI-X capability (id 0x11) and sets MSI-X Enable (bit 15 of its
;       message control);
;     - the VF's BAR0 (registers) at guest-physical 0xF0000000 and BAR3 (MSI-X table) at
;       0xF0004000, mapped through a page table of their own (PCD|PWT); every access is a
;       plain 32-bit MOV, which exits to the hypervisor and is emulated there;
;     - a VF reset, the MAC the PF forced (VFMACL/VFMACH), link status;
;     - MSI-X table entry 0: address 0xFEE00000 (x2APIC 0), data = vector 0x41, unmasked;
;     - 8 tx and 8 rx legacy descriptors (16 bytes each), rx buffers of 2 KiB, VFEIMS = rx;
;     - an interrupt handler that reads VFEICR (read to clear) and signals EOI; the main loop
;       polls the rx ring after every wake-up (interrupt or timer), so a lost interrupt costs a
;       timer period, never a frame.
;   * Two roles, chosen at assembly time by the scenario's `defines`:
;     - ROLE 1, the pinger: sends COUNT UDP datagrams "ping <n> from <MY_IP>" from port 40000 to
;       PEER_IP:7 (Ethernet destination PEER_MAC), one at a time: the next one goes when the
;       previous one was answered, or after RETRY_PERIODS timer periods. It counts replies
;       (each sequence number once, with its round trip in ticks) and prints anything else it
;       receives. It shuts down after COUNT replies, or after TIMEOUT timer periods.
;     - ROLE 2, the echo: answers every IPv4/UDP datagram addressed to MY_IP back to its sender
;       (Ethernet and IP addresses and UDP ports swapped, the payload unchanged; both checksums
;       stay valid since both are sums that do not depend on the order). Anything else is
;       printed and dropped. It shuts down after TIMEOUT timer periods.
;   * A periodic local APIC timer (vector 0x20, TIMER_PERIOD ticks) paces the pinger and
;     measures both timeouts; the vCPU sleeps in HLT between events.
;   * Before shutting down the driver disables both queues (a driver stops its DMA first).
;
; Defines (all required: the file does not assemble without them; the echo ignores PEER_IP,
; PEER_MAC and COUNT apart from saying whether a sender is its peer):
;   ROLE      1 pinger, 2 echo
;   MY_IP     this guest's IPv4 address as a number, e.g. 0x0a000001 for 10.0.0.1
;   PEER_IP   the other end, e.g. 0x0a000002
;   PEER_MAC  the other end's MAC as a 48-bit number, e.g. 0x020000000002 for 02:00:00:00:00:02
;   COUNT     datagrams the pinger sends (1..31)
;   TIMEOUT   timer periods before giving up (pinger) or stopping (echo)
; Its own MAC is not a define: the driver reads the one the PF forced from VFMACL/VFMACH.
; A scenario passes them as `x86: { source: guests/netkernel.asm, defines: { ROLE: 1, ... } }`;
; nasm takes them as -DROLE=1 ... (see test/guests-assemble.test.ts).
;
; Guest ABI used (README.md): org 0x1000, 32-bit protected mode, paging off, IF = 0 at entry;
; console_io and sched_op hypercalls; x2APIC MSRs 0x832 (LVT timer), 0x838 (initial count),
; 0x80B (EOI); the VF at 00:04.0 as README.md "The NIC" describes. Needs 128 KiB of memory
; (everything it uses is below 0x20000); the demo gives it 256 KiB.
;
; Guest-physical memory map (identity-mapped once paging is on; page 0 is left unmapped):
;   0x01000-...      this image (must end below 0x8000)
;   0x08000          data page: variables, the text line being built
;   0x09000          IDT: 256 gates, each to its own 5-byte stub (CALL irq_entry)
;   0x0a000          PD: [0] PT_LOW, [0x3c0] PT_MMIO
;   0x0b000          PT_LOW: identity map of 0x1000-0xfffff
;   0x0c000          PT_MMIO: linear 0xF0000000-0xF0007FFF -> the VF's BAR0 and BAR3 windows
;   0x0d000          tx ring: 8 descriptors (128 bytes)
;   0x0d100          rx ring: 8 descriptors (128 bytes)
;   0x10000-0x13fff  tx buffers, 2 KiB each
;   0x14000-0x17fff  rx buffers, 2 KiB each
;   0x18000-0x1ffff  stack (ESP = 0x20000)
;
; Expected console output of the pinger in recordings/network.yaml (alice, secure profile;
; the round trips depend on scheduling):
;   netkernel: paging on, VF 8086:10ed at 00:04.0, MSI-X capability at 0x70
;   netkernel: MAC 02:00:00:00:00:01, link up, 8 tx + 8 rx descriptors, MSI-X vector 0x41
;   pinger: 10.0.0.1 -> 10.0.0.2 (02:00:00:00:00:02), 16 datagrams
;   pinger: reply 1 from 10.0.0.2:7 (02:00:00:00:00:02) 'ping 1 from 10.0.0.1', rtt 3631 ticks
;   ... (replies 2 to 16)
;   pinger: 16 of 16 replies, 16 sent
;   netkernel: 16 frames sent, 16 received (0 not for us), 16 NIC interrupts (EICR 0x03), 0 stray
;   interrupts; queues off, shutting down
; and of the echo (bob), one line per datagram, then its counters:
;   echo: 62 bytes from 10.0.0.1:40000 (02:00:00:00:00:01) [peer] 'ping 1 from 10.0.0.1' -> sent back
; In vanilla the pinger also prints mallory's forged datagram, echoed by bob:
;   pinger: not a reply: 69 bytes, 02:00:00:00:00:02 -> 02:00:00:00:00:01, type 0800, UDP from
;   10.0.0.2:7 (02:00:00:00:00:02) to 10.0.0.1 'forged by mallory, as alice'
; About 55,000 instructions for 16 pings, most of them printing; the echo about 61,000.
; =============================================================================================

bits 32
org 0x1000

; The defines, all named once up front: without one, assembly stops here, naming it.
DEFINES_GIVEN           equ ROLE + MY_IP + PEER_IP + PEER_MAC + COUNT + TIMEOUT

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

; ---- PCI (configuration mechanism #1) and the VF ------------------------------------------------
PCI_CONFIG_ADDRESS      equ 0xcf8
PCI_CONFIG_DATA         equ 0xcfc
PCI_ENABLE              equ 0x80000000
VF_DEVICE               equ 4                       ; 00:04.0 on the guest's bus
VF_CONFIG               equ PCI_ENABLE | (VF_DEVICE << 11)
VF_IDS                  equ 0x10ed8086              ; device 0x10ED, vendor 0x8086
PCI_COMMAND             equ 0x04
PCI_COMMAND_MEMORY      equ 1 << 1
PCI_COMMAND_MASTER      equ 1 << 2
PCI_STATUS              equ 0x06
PCI_STATUS_CAP_LIST     equ 1 << 4
PCI_CAPABILITY_LIST     equ 0x34
PCI_CAP_ID_MSIX         equ 0x11
MSIX_FLAGS_ENABLE       equ 1 << 15

NIC_BAR0                equ 0xf0000000              ; nic-regs.ts NIC_GUEST_BAR0
NIC_BAR3                equ 0xf0004000              ; nic-regs.ts NIC_GUEST_BAR3 (MSI-X table)
BAR3_OFFSET             equ NIC_BAR3 - NIC_BAR0     ; nic_write reaches BAR3 through BAR0
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
MSI_ADDRESS             equ 0xfee00000              ; compatibility format, destination 0
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
PING_PORT               equ 40000
ECHO_PORT               equ 7
; Numbers in network byte order, as a little-endian load or store sees them.
NET_IPV4                equ 0x0008                  ; ethertype 0x0800
MY_IP_NET               equ ((MY_IP >> 24) & 0xff) | ((MY_IP >> 8) & 0xff00) | ((MY_IP << 8) & 0xff0000) | ((MY_IP << 24) & 0xff000000)
PEER_IP_NET             equ ((PEER_IP >> 24) & 0xff) | ((PEER_IP >> 8) & 0xff00) | ((PEER_IP << 8) & 0xff0000) | ((PEER_IP << 24) & 0xff000000)
PEER_MAC_0_3            equ ((PEER_MAC >> 40) & 0xff) | (((PEER_MAC >> 32) & 0xff) << 8) | (((PEER_MAC >> 24) & 0xff) << 16) | (((PEER_MAC >> 16) & 0xff) << 24)
PEER_MAC_4_5            equ ((PEER_MAC >> 8) & 0xff) | ((PEER_MAC & 0xff) << 8)
PING_PORT_NET           equ ((PING_PORT >> 8) & 0xff) | ((PING_PORT & 0xff) << 8)
ECHO_PORT_NET           equ ((ECHO_PORT >> 8) & 0xff) | ((ECHO_PORT & 0xff) << 8)

; ---- tunables -------------------------------------------------------------------------------------
ROLE_PINGER             equ 1
ROLE_ECHO               equ 2
TIMER_VECTOR            equ 0x20
TIMER_PERIOD            equ 1000                    ; ticks
START_DELAY             equ 2                       ; periods before the first ping (the peer boots)
RETRY_PERIODS           equ 3                       ; periods before a ping counts as lost
TX_DESCS                equ 8                       ; power of two
RX_DESCS                equ 8                       ; power of two
BUFFER_BYTES            equ 2048
SHOW_MAX                equ 48                      ; payload bytes quoted on the console

; ---- layout ---------------------------------------------------------------------------------------
IMAGE_BASE              equ 0x1000
KDATA                   equ 0x08000
IDT                     equ 0x09000
PD                      equ 0x0a000
PT_LOW                  equ 0x0b000
PT_MMIO                 equ 0x0c000
TX_RING                 equ 0x0d000
RX_RING                 equ 0x0d100
CLEAR_END               equ 0x0e000                 ; boot zeroes KDATA..CLEAR_END
TX_BUFS                 equ 0x10000
RX_BUFS                 equ 0x14000
STACK_TOP               equ 0x20000

; ---- variables (data page) ------------------------------------------------------------------------
ticks                   equ KDATA + 0x00            ; timer interrupts
nic_irqs                equ KDATA + 0x04            ; NIC interrupts (vector 0x41)
nic_pending             equ KDATA + 0x08            ; set by the NIC interrupt, cleared by the loop
eicr_seen               equ KDATA + 0x0c            ; causes read from VFEICR, ORed
stray_irqs              equ KDATA + 0x10            ; interrupts on other vectors
tx_next                 equ KDATA + 0x14
rx_next                 equ KDATA + 0x18
tx_frames               equ KDATA + 0x1c
rx_frames               equ KDATA + 0x20
sent                    equ KDATA + 0x24            ; pinger: pings sent (= the last sequence number)
replies                 equ KDATA + 0x28
answered                equ KDATA + 0x2c            ; pinger: bit n = ping n was answered
last_send               equ KDATA + 0x30            ; pinger: ticks at the last ping
others                  equ KDATA + 0x34            ; frames that were not a reply / not echoed
echoed                  equ KDATA + 0x38
tx_full                 equ KDATA + 0x3c
msix_cap                equ KDATA + 0x40
cursor                  equ KDATA + 0x44            ; where the put* routines append...
cursor_end              equ KDATA + 0x4c            ; ...up to here
my_mac                  equ KDATA + 0x50            ; 6 bytes (+2 padding)
sent_at                 equ KDATA + 0x80            ; pinger: dd [32], rdtsc at each send
out_buf                 equ KDATA + 0x400           ; the console line being built
OUT_MAX                 equ 0x800

; ====================================================================================================
; Boot
; ====================================================================================================
start:
        cli
        mov esp, STACK_TOP
        mov edi, KDATA                      ; data, IDT, page tables and rings start as zeros
        mov ecx, (CLEAR_END - KDATA) / 4
        xor eax, eax
        rep stosd
        mov dword [cursor], out_buf
        mov dword [cursor_end], out_buf + OUT_MAX

        ; ---- IDT: every vector to its own stub; irq_entry tells them apart --------------------------
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

        ; ---- paging: identity map of the low 1 MiB (page 0 left out), the VF's BARs ------------------
        mov ebx, 1
.low:
        mov eax, ebx
        shl eax, 12
        or eax, PG_P | PG_RW
        mov [PT_LOW + ebx*4], eax
        inc ebx
        cmp ebx, 256
        jb .low
        xor ebx, ebx                        ; 8 pages: BAR0 (16 KiB) and BAR3 (16 KiB), uncached
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

        call nic_init                       ; prints what it found; EAX = 0: no VF to drive
        test eax, eax
        jz shutdown

        ; ---- the timer, then interrupts on -----------------------------------------------------------
        mov ecx, MSR_X2APIC_LVT_TIMER
        mov eax, TIMER_VECTOR | LVT_TIMER_PERIODIC
        xor edx, edx
        wrmsr
        mov ecx, MSR_X2APIC_INIT_COUNT
        mov eax, TIMER_PERIOD
        xor edx, edx
        wrmsr

        mov eax, ROLE
        cmp eax, ROLE_PINGER
        je pinger
        cmp eax, ROLE_ECHO
        je echo
        mov esi, msg_bad_role
        call puts
        call flush
        jmp finish

; ====================================================================================================
; The pinger
; ====================================================================================================
pinger:
        mov esi, msg_pinger
        call puts
        mov eax, MY_IP
        call putip
        mov esi, msg_arrow
        call puts
        mov eax, PEER_IP
        call putip
        mov esi, msg_open
        call puts
        mov esi, peer_mac
        call putmac
        mov esi, msg_close_comma
        call puts
        mov eax, COUNT
        call putdec
        mov esi, msg_datagrams
        call puts
        call flush
        sti
.loop:
        mov dword [nic_pending], 0
        call rx_poll
        cmp dword [replies], COUNT
        jae .done
        mov eax, [ticks]
        cmp eax, TIMEOUT
        jae .timeout
        cmp dword [sent], COUNT
        jae .sleep
        cmp eax, START_DELAY
        jb .sleep
        mov ecx, [sent]                     ; was the last ping answered (or none sent yet)?
        test ecx, ecx
        jz .send
        mov edx, 1
        shl edx, cl
        test [answered], edx
        jnz .send
        sub eax, [last_send]                ; unanswered: wait RETRY_PERIODS, then go on
        cmp eax, RETRY_PERIODS
        jb .sleep
        mov esi, msg_lost
        call puts
        mov eax, [sent]
        call putdec
        mov esi, msg_lost_tail
        call puts
        call flush
.send:
        call send_ping
.sleep:
        call sleep
        jmp .loop
.timeout:
        mov esi, msg_timeout
        call puts
        call flush
.done:
        mov esi, msg_pinger_done
        call puts
        mov eax, [replies]
        call putdec
        mov esi, msg_of
        call puts
        mov eax, COUNT
        call putdec
        mov esi, msg_replies
        call puts
        mov eax, [sent]
        call putdec
        mov esi, msg_sent
        call puts
        jmp finish

; send_ping: the next sequence number, to PEER_IP:7 from MY_IP:40000.
send_ping:
        pushad
        call tx_alloc
        test edi, edi
        jz .out
        inc dword [sent]
        mov eax, [ticks]
        mov [last_send], eax
        mov ebx, [sent]
        rdtsc
        mov [sent_at + ebx*4], eax
        mov dword [edi + ETH_DST], PEER_MAC_0_3
        mov word [edi + ETH_DST + 4], PEER_MAC_4_5
        mov eax, [my_mac]
        mov [edi + ETH_SRC], eax
        mov ax, [my_mac + 4]
        mov [edi + ETH_SRC + 4], ax
        mov dword [edi + IP_SRC], MY_IP_NET
        mov dword [edi + IP_DST], PEER_IP_NET
        mov word [edi + UDP_SPORT], PING_PORT_NET
        mov word [edi + UDP_DPORT], ECHO_PORT_NET
        push edi                            ; the payload: "ping <n> from <MY_IP>"
        lea eax, [edi + PAYLOAD]
        mov [cursor], eax
        lea eax, [edi + BUFFER_BYTES]
        mov [cursor_end], eax
        mov esi, msg_ping
        call puts
        mov eax, ebx
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

; pinger_frame: ESI = frame, ECX = length. Counts a reply, or prints what else came.
pinger_frame:
        cmp ecx, PAYLOAD + 5
        jb .other
        cmp word [esi + ETH_TYPE], NET_IPV4
        jne .other
        cmp byte [esi + IP_PROTO], IP_PROTO_UDP
        jne .other
        cmp dword [esi + IP_SRC], PEER_IP_NET
        jne .other
        cmp dword [esi + IP_DST], MY_IP_NET
        jne .other
        cmp word [esi + UDP_SPORT], ECHO_PORT_NET
        jne .other
        cmp dword [esi + PAYLOAD], 'ping'
        jne .other
        cmp byte [esi + PAYLOAD + 4], ' '
        jne .other
        xor eax, eax                        ; the sequence number: decimal after "ping "
        lea edi, [esi + PAYLOAD + 5]
.digit:
        movzx edx, byte [edi]
        sub edx, '0'
        cmp edx, 9
        ja .parsed
        imul eax, eax, 10
        add eax, edx
        inc edi
        cmp eax, 1000
        jb .digit
.parsed:
        test eax, eax
        jz .other
        cmp eax, [sent]
        ja .other                           ; never sent: not a reply
        mov ebx, eax
        push ecx
        mov ecx, ebx
        mov edx, 1
        shl edx, cl
        pop ecx
        test [answered], edx
        jnz .duplicate
        or [answered], edx
        inc dword [replies]
        push esi
        mov esi, msg_reply
        call puts
        mov eax, ebx
        call putdec
        mov esi, msg_reply_from
        call puts
        pop esi
        call put_sender
        mov al, ' '
        call putc
        call put_payload
        mov esi, msg_rtt
        call puts
        rdtsc
        sub eax, [sent_at + ebx*4]
        call putdec
        mov esi, msg_ticks
        call puts
        jmp flush
.duplicate:
        push esi
        mov esi, msg_duplicate
        call puts
        pop esi
        call put_payload
        mov al, 10
        call putc
        jmp flush
.other:
        inc dword [others]
        push esi
        mov esi, msg_pinger_other
        call puts
        pop esi
        jmp put_frame_summary

; ====================================================================================================
; The echo
; ====================================================================================================
echo:
        mov esi, msg_echo
        call puts
        mov eax, MY_IP
        call putip
        mov esi, msg_echo_port
        call puts
        mov eax, TIMEOUT
        call putdec
        mov esi, msg_periods
        call puts
        call flush
        sti
.loop:
        mov dword [nic_pending], 0
        call rx_poll
        cmp dword [ticks], TIMEOUT
        jae .done
        call sleep
        jmp .loop
.done:
        mov esi, msg_echo_done
        call puts
        mov eax, [echoed]
        call putdec
        mov esi, msg_echoed
        call puts
        jmp finish

; echo_frame: ESI = frame, ECX = length. Sends an IPv4/UDP datagram for us back, drops the rest.
echo_frame:
        cmp ecx, PAYLOAD
        jb .other
        cmp word [esi + ETH_TYPE], NET_IPV4
        jne .other
        cmp byte [esi + IP_PROTO], IP_PROTO_UDP
        jne .other
        cmp dword [esi + IP_DST], MY_IP_NET
        jne .other
        push esi
        mov esi, msg_echo_got
        call puts
        pop esi
        mov eax, ecx
        call putdec
        push esi
        mov esi, msg_bytes_from
        call puts
        pop esi
        call put_sender
        push esi
        cmp dword [esi + IP_SRC], PEER_IP_NET
        mov esi, msg_peer
        je .say
        mov esi, msg_stranger
.say:
        call puts
        pop esi
        call put_payload
        call tx_alloc
        test edi, edi
        jz .full
        push ecx                            ; copy the frame, then turn it around
        push esi
        rep movsb
        pop esi
        pop ecx
        sub edi, ecx
        mov eax, [esi + ETH_SRC]            ; Ethernet: back to the sender, from our own MAC
        mov [edi + ETH_DST], eax
        mov ax, [esi + ETH_SRC + 4]
        mov [edi + ETH_DST + 4], ax
        mov eax, [my_mac]
        mov [edi + ETH_SRC], eax
        mov ax, [my_mac + 4]
        mov [edi + ETH_SRC + 4], ax
        mov eax, [esi + IP_SRC]             ; IP addresses and UDP ports swapped
        mov edx, [esi + IP_DST]
        mov [edi + IP_DST], eax
        mov [edi + IP_SRC], edx
        mov ax, [esi + UDP_SPORT]
        mov dx, [esi + UDP_DPORT]
        mov [edi + UDP_DPORT], ax
        mov [edi + UDP_SPORT], dx
        call tx_submit
        inc dword [echoed]
        mov esi, msg_sent_back
        call puts
        jmp flush
.full:
        mov esi, msg_dropped_full
        call puts
        jmp flush
.other:
        inc dword [others]
        push esi
        mov esi, msg_echo_other
        call puts
        pop esi
        jmp put_frame_summary

; ====================================================================================================
; Common to both roles
; ====================================================================================================

; sleep: HLT until an interrupt, unless the NIC already signalled one (STI; HLT is atomic).
sleep:
        cli
        cmp dword [nic_pending], 0
        jne .awake
        sti
        hlt
        ret
.awake:
        sti
        ret

; finish: stop the timer and the queues, print the counters, shut down.
finish:
        cli
        mov ecx, MSR_X2APIC_INIT_COUNT
        xor eax, eax
        xor edx, edx
        wrmsr
        call nic_stop
        mov esi, msg_counters
        call puts
        mov eax, [tx_frames]
        call putdec
        mov esi, msg_tx
        call puts
        mov eax, [rx_frames]
        call putdec
        mov esi, msg_rx
        call puts
        mov eax, [others]
        call putdec
        mov esi, msg_others
        call puts
        mov eax, [nic_irqs]
        call putdec
        mov esi, msg_irqs
        call puts
        mov eax, [eicr_seen]
        mov ecx, 2
        call puthex
        mov esi, msg_stray
        call puts
        mov eax, [stray_irqs]
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
        inc dword [rx_frames]
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
        cmp eax, ROLE_PINGER
        jne .echo
        call pinger_frame
        jmp .handled
.echo:
        call echo_frame
.handled:
        pop ebx
        pop edi
        mov eax, ebx                        ; the descriptor again as at init: buffer, no status
        shl eax, 11
        add eax, RX_BUFS
        mov [edi], eax
        xor eax, eax
        mov [edi + 4], eax
        mov [edi + 8], eax
        mov [edi + 12], eax
        mov eax, ebx
        mov ecx, VFRDT
        call nic_write
        inc ebx
        and ebx, RX_DESCS - 1
        mov [rx_next], ebx
        jmp .next
.done:
        popad
        ret

; tx_alloc: EDI = the next tx buffer, or 0 when the device still owns it.
tx_alloc:
        push eax
        push ebx
        mov ebx, [tx_next]
        mov eax, ebx
        shl eax, 4
        add eax, TX_RING
        cmp dword [eax + 8], 0              ; never used
        je .free
        test byte [eax + 12], TXD_STA_DD    ; written back: the device is done with it
        jnz .free
        inc dword [tx_full]
        xor edi, edi
        pop ebx
        pop eax
        ret
.free:
        mov edi, ebx
        shl edi, 11
        add edi, TX_BUFS
        pop ebx
        pop eax
        ret

; tx_submit: EDI = the buffer tx_alloc gave, ECX = frame length. Fills the descriptor and rings
; the doorbell (VFTDT).
tx_submit:
        pushad
        mov ebx, [tx_next]
        mov edx, ebx
        shl edx, 4
        add edx, TX_RING
        mov [edx], edi                      ; buffer address (guest-physical: an IOVA)
        mov dword [edx + 4], 0
        mov eax, ecx                        ; length, CSO 0, CMD EOP|IFCS|RS
        or eax, TXD_CMD << 24
        mov [edx + 8], eax
        mov dword [edx + 12], 0             ; STA (DD comes back here), CSS, VLAN
        inc ebx
        and ebx, TX_DESCS - 1
        mov [tx_next], ebx
        inc dword [tx_frames]
        mov eax, ebx
        mov ecx, VFTDT
        call nic_write
        popad
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
; The driver
; ====================================================================================================

; nic_init: EAX = 1, or 0 when there is no VF to drive (after saying so).
nic_init:
        mov ecx, 0                          ; vendor and device ids
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
        mov ecx, PCI_COMMAND                ; memory space and bus master on
        call pci_read16
        or eax, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER
        call pci_write16
        mov ecx, PCI_STATUS                 ; a capability list?
        call pci_read16
        test eax, PCI_STATUS_CAP_LIST
        jz .no_msix
        mov ecx, PCI_CAPABILITY_LIST
        call pci_read8
        mov ebx, 48                         ; at most 48 capabilities: a loop guard
.cap:
        and eax, 0xfc
        jz .no_msix
        mov ecx, eax
        call pci_read32                     ; id in bits 7:0, next in 15:8
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
        add ecx, 2                          ; message control: MSI-X Enable
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

        mov ecx, VFCTRL                     ; reset the VF's queues
        mov eax, VFCTRL_RST
        call nic_write
        mov ecx, VFMACL                     ; the MAC the PF forced
        call nic_read
        mov [my_mac], eax
        mov ecx, VFMACH
        call nic_read
        mov [my_mac + 4], ax

        ; MSI-X table entry 0: address, upper address, data (the vector), vector control (unmasked)
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

        ; rx ring: every descriptor gets its buffer; the device is given all but one
        xor ebx, ebx
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
        mov ecx, VFRDT
        mov eax, RX_DESCS - 1
        call nic_write
        ; tx ring: empty (head = tail = 0)
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
        mov ecx, VFTDT
        xor eax, eax
        call nic_write
        mov ecx, VFEIMS                     ; interrupts: rx
        mov eax, EICR_RX
        call nic_write

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

; nic_stop: both queues off, interrupts masked.
nic_stop:
        mov ecx, VFRXDCTL
        xor eax, eax
        call nic_write
        mov ecx, VFTXDCTL
        call nic_write
        ret

; nic_read: ECX = register offset in BAR0 -> EAX. nic_write: ECX = offset, EAX = value.
; One plain 32-bit MOV each: the access exits and the hypervisor emulates it.
nic_read:
        mov eax, [NIC_BAR0 + ecx]
        ret
nic_write:
        mov [NIC_BAR0 + ecx], eax
        ret

; PCI configuration space of 00:04.0. ECX = register offset; pci_read* return EAX (zero-
; extended), pci_write16 writes AX. EDX is clobbered.
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

; ====================================================================================================
; Interrupts and exceptions. Vector v enters at irq_stubs + 5 * v, a CALL to irq_entry: the
; return address it pushes names the vector.
; ====================================================================================================
irq_entry:
        pushad
        mov eax, [esp + 32]                 ; irq_stubs + 5 * (vector + 1)
        sub eax, irq_stubs + 5
        xor edx, edx
        mov ecx, 5
        div ecx                             ; EAX = vector
        cmp eax, 32
        jb exception
        cmp eax, TIMER_VECTOR
        je .timer
        cmp eax, NIC_VECTOR
        je .nic
        inc dword [stray_irqs]
        jmp .eoi
.timer:
        inc dword [ticks]
        jmp .eoi
.nic:
        inc dword [nic_irqs]
        mov dword [nic_pending], 1
        mov ecx, VFEICR                     ; read to clear
        call nic_read
        or [eicr_seen], eax
.eoi:
        mov ecx, MSR_X2APIC_EOI
        xor eax, eax
        xor edx, edx
        wrmsr
        popad
        add esp, 4                          ; the stub's return address
        iretd

; An exception: print it and shut down. EAX = vector; [esp + 36] is the error code for 8, 10-14
; and 17, else the EIP.
exception:
        mov ebx, eax
        lea ebp, [esp + 36]                 ; EBP -> error code or EIP
        mov dword [cursor], out_buf
        mov dword [cursor_end], out_buf + OUT_MAX
        mov esi, msg_panic
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
        mov al, 10
        call putc
        call flush
        jmp shutdown

irq_stubs:
        times 256 call irq_entry

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
peer_mac:
        db (PEER_MAC >> 40) & 0xff, (PEER_MAC >> 32) & 0xff, (PEER_MAC >> 24) & 0xff
        db (PEER_MAC >> 16) & 0xff, (PEER_MAC >> 8) & 0xff, PEER_MAC & 0xff
hex_digits:
        db '0123456789abcdef'
msg_found:
        db 'netkernel: paging on, VF 8086:10ed at 00:04.0, MSI-X capability at 0x', 0
msg_no_vf:
        db 'netkernel: no VF at 00:04.0 (ids ', 0
msg_no_vf_tail:
        db `): nothing to drive, shutting down\n`, 0
msg_no_msix:
        db `netkernel: the VF has no MSI-X capability, shutting down\n`, 0
msg_mac:
        db 'netkernel: MAC ', 0
msg_link_up:
        db ', link up', 0
msg_link_down:
        db ', link DOWN', 0
msg_rings:
        db `, 8 tx + 8 rx descriptors, MSI-X vector 0x41\n`, 0
msg_bad_role:
        db `netkernel: ROLE must be 1 (pinger) or 2 (echo)\n`, 0
msg_pinger:
        db 'pinger: ', 0
msg_arrow:
        db ' -> ', 0
msg_open:
        db ' (', 0
msg_close_comma:
        db '), ', 0
msg_datagrams:
        db ` datagrams\n`, 0
msg_ping:
        db 'ping ', 0
msg_from:
        db ' from ', 0
msg_lost:
        db 'pinger: no reply to ping ', 0
msg_lost_tail:
        db ` yet, going on\n`, 0
msg_timeout:
        db `pinger: timeout\n`, 0
msg_pinger_done:
        db 'pinger: ', 0
msg_of:
        db ' of ', 0
msg_replies:
        db ' replies, ', 0
msg_sent:
        db ` sent\n`, 0
msg_reply:
        db 'pinger: reply ', 0
msg_reply_from:
        db ' from ', 0
msg_rtt:
        db ', rtt ', 0
msg_ticks:
        db ` ticks\n`, 0
msg_duplicate:
        db 'pinger: duplicate reply ', 0
msg_pinger_other:
        db 'pinger: not a reply: ', 0
msg_echo:
        db 'echo: answering UDP to ', 0
msg_echo_port:
        db ' for ', 0
msg_periods:
        db ` timer periods\n`, 0
msg_echo_got:
        db 'echo: ', 0
msg_bytes_from:
        db ' bytes from ', 0
msg_peer:
        db ' [peer] ', 0
msg_stranger:
        db ' [not the peer] ', 0
msg_sent_back:
        db ` -> sent back\n`, 0
msg_dropped_full:
        db ` -> dropped (tx ring full)\n`, 0
msg_echo_other:
        db 'echo: dropped ', 0
msg_echo_done:
        db 'echo: done, ', 0
msg_echoed:
        db ` datagrams echoed\n`, 0
msg_bytes_comma:
        db ' bytes, ', 0
msg_type:
        db ', type ', 0
msg_udp_from:
        db ', UDP from ', 0
msg_to:
        db ' to ', 0
msg_counters:
        db 'netkernel: ', 0
msg_tx:
        db ' frames sent, ', 0
msg_rx:
        db ' received (', 0
msg_others:
        db ' not for us), ', 0
msg_irqs:
        db ' NIC interrupts (EICR 0x', 0
msg_stray:
        db '), ', 0
msg_bye:
        db ` stray interrupts; queues off, shutting down\n`, 0
msg_panic:
        db `\nnetkernel panic: vector 0x`, 0
msg_panic_error:
        db ' error ', 0
msg_panic_eip:
        db ' eip ', 0
msg_panic_cr2:
        db ' cr2 ', 0

image_end:
; COUNT must be 1..31 (one bit per ping in "answered"); the image must end below the data page.
COUNT_TOO_BIG           equ (31 - COUNT) >> 63
COUNT_TOO_SMALL         equ (COUNT - 1) >> 63
        times -COUNT_TOO_BIG db 0
        times -COUNT_TOO_SMALL db 0
        times -(((KDATA - IMAGE_BASE) - (image_end - $$)) >> 63) db 0
