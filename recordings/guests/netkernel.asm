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

; ---- the machine ABI and x86 constants -------------------------------------------------------
%include "lib/abi.inc"                      ; hypercalls, console port, x2APIC MSRs
%include "lib/x86.inc"                      ; paging bits, CR0/CR4, gates

; ---- PCI, the VF and frames ---------------------------------------------------------------------
%include "lib/vf.inc"                       ; PCI config, VF registers, descriptor bits, NIC_VECTOR
%include "lib/net.inc"                      ; Ethernet / IPv4 / UDP offsets, NET_IPV4
PING_PORT               equ 40000
ECHO_PORT               equ 7
; Numbers in network byte order, as a little-endian load or store sees them.
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
SHOW_MAX                equ 48                      ; payload bytes quoted on the console

; ---- layout ---------------------------------------------------------------------------------------
%include "lib/net-layout.inc"               ; the memory map above, ring and buffer sizes

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
%include "lib/net-boot.inc"                 ; IDT, paging, the VF (nic_init), the timer; IF = 0

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
%include "lib/udp-turn-around.inc"          ; the frame copied to EDI, addresses and ports swapped
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
%include "lib/nic-rx-recycle.inc"          ; .handled: the descriptor back to the device, .next; .done

%include "lib/nic-tx.inc"                   ; tx_alloc, tx_submit (counting tx_frames)

%include "lib/udp.inc"                      ; udp_headers

; ====================================================================================================
; The driver
; ====================================================================================================

; nic_init: EAX = 1, or 0 when there is no VF to drive (after saying so).
nic_init:
%include "lib/nic-init-pci.inc"             ; the VF on PCI, MSI-X on; EAX = 0 and RET if none
        mov ecx, VFCTRL                     ; reset the VF's queues
        mov eax, VFCTRL_RST
        call nic_write
%include "lib/nic-init-msix.inc"            ; my_mac from VFMACL/VFMACH; MSI-X entry 0

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
%include "lib/nic-rx-queue.inc"             ; rx ring base and length, queue on
        mov ecx, VFRDT
        mov eax, RX_DESCS - 1
        call nic_write
        ; tx ring: empty (head = tail = 0)
%include "lib/nic-tx-queue.inc"             ; tx ring base and length, queue on
        mov ecx, VFTDT
        xor eax, eax
        call nic_write
        mov ecx, VFEIMS                     ; interrupts: rx
        mov eax, EICR_RX
        call nic_write

%include "lib/nic-init-report.inc"          ; prints the MAC and the link; EAX = 1, RET

; nic_stop: both queues off, interrupts masked.
nic_stop:
        mov ecx, VFRXDCTL
        xor eax, eax
        call nic_write
        mov ecx, VFTXDCTL
        call nic_write
        ret

%include "lib/nic-access.inc"               ; nic_read, nic_write, pci_select, pci_read32/16/8, pci_write16

; ====================================================================================================
; Interrupts and exceptions. Vector v enters at irq_stubs + 5 * v, a CALL to irq_entry: the
; return address it pushes names the vector.
; ====================================================================================================
irq_entry:
%include "lib/irq-vector.inc"               ; EAX = the vector; exceptions go to exception
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
%include "lib/irq-eoi.inc"                  ; EOI, POPAD, the stub's return address off, IRETD

; An exception: print it and shut down. EAX = vector; [esp + 36] is the error code for 8, 10-14
; and 17, else the EIP.
exception:
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

%include "lib/net-console.inc"              ; putc, puts, puthex, putdec, putip, putmac, put_sender,
                                            ; put_payload, put_frame_summary, net_to_host, flush

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
%include "lib/frame-text.inc"               ; the texts of put_frame_summary
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
%include "lib/panic-text.inc"               ; msg_panic_error, msg_panic_eip, msg_panic_cr2

image_end:
; COUNT must be 1..31 (one bit per ping in "answered"); the image must end below the data page.
COUNT_TOO_BIG           equ (31 - COUNT) >> 63
COUNT_TOO_SMALL         equ (COUNT - 1) >> 63
        times -COUNT_TOO_BIG db 0
        times -COUNT_TOO_SMALL db 0
        times -(((KDATA - IMAGE_BASE) - (image_end - $$)) >> 63) db 0
