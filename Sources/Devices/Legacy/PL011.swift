import SwiftletCore

// ARM PrimeCell UART (PL011) register map, from the PL011 TRM (ARM DDI 0183).
private let UARTDR: UInt64 = 0x000
private let UARTRSR: UInt64 = 0x004     // receive status (read) / error clear (write)
private let UARTFR: UInt64 = 0x018      // flags
private let UARTILPR: UInt64 = 0x020
private let UARTIBRD: UInt64 = 0x024
private let UARTFBRD: UInt64 = 0x028
private let UARTLCR_H: UInt64 = 0x02C
private let UARTCR: UInt64 = 0x030
private let UARTIFLS: UInt64 = 0x034
private let UARTIMSC: UInt64 = 0x038
private let UARTRIS: UInt64 = 0x03C
private let UARTMIS: UInt64 = 0x040
private let UARTICR: UInt64 = 0x044
private let UARTDMACR: UInt64 = 0x048

private let FR_RXFE: UInt32 = 1 << 4    // receive FIFO empty
private let FR_TXFF: UInt32 = 1 << 5    // transmit FIFO full
private let FR_RXFF: UInt32 = 1 << 6    // receive FIFO full
private let FR_TXFE: UInt32 = 1 << 7    // transmit FIFO empty
private let LCR_H_FEN: UInt32 = 1 << 4  // FIFOs enabled (else one-character holding registers)
private let INT_RX: UInt32 = 1 << 4     // receive (FIFO at or over its trigger level)
private let INT_TX: UInt32 = 1 << 5     // transmit (FIFO at or under its trigger level)
private let INT_RT: UInt32 = 1 << 6     // receive timeout (data waiting)
private let INT_ALL: UInt32 = 0x7FF

/// PL011 r1p4 as QEMU models it: peripheral ID 0x00141011 (Linux picks a 16-entry FIFO).
private let peripheralID: (UInt32, UInt32, UInt32, UInt32) = (0x11, 0x10, 0x14, 0x00)

/// PL011 UART. Transmit goes straight to the console sink, so the TX FIFO is always empty;
/// host input fills a 16-entry RX FIFO with RX and receive-timeout interrupts.
public final class PL011: BusDevice, ConsoleInput {
    public static let size: UInt64 = 0x1000
    public static let fifoDepth = 16

    private let output: any ConsoleSink
    private let irq: any InterruptLine
    private let lock = Lock()
    private var rxFIFO = InputFIFO(depth: PL011.fifoDepth)
    private var ibrd: UInt32 = 0
    private var fbrd: UInt32 = 0
    private var lcrH: UInt32 = 0
    private var cr: UInt32 = 0x300        // TXE | RXE
    private var ifls: UInt32 = 0x12       // both FIFOs at half
    private var imsc: UInt32 = 0
    private var ris: UInt32 = 0
    private var ilpr: UInt32 = 0
    private var dmacr: UInt32 = 0
    private var irqLevel = false
    private let spaceNotifier: EventNotifier?

    public init(output: any ConsoleSink, irq: any InterruptLine = UnconnectedInterruptLine(),
                spaceNotifier: EventNotifier? = nil) {
        self.output = output
        self.irq = irq
        self.spaceNotifier = spaceNotifier
    }

    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        var freedSpace = false
        let value = lock.withLock { () -> UInt32 in
            if offset == UARTDR {
                let byte = rxFIFO.pop()
                freedSpace = rxFIFO.takeSpaceNotice(capacity: rxCapacity)
                updateRX()
                return UInt32(byte ?? 0)
            }
            return readRegister(offset)
        }
        store(value, into: data)
        if freedSpace { spaceNotifier?.notify() }
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        let value = load(data)
        if offset == UARTDR {
            output.write(UInt8(truncatingIfNeeded: value))
            // The byte left at once, so the TX FIFO is at/under any trigger level again.
            lock.withLock { ris |= INT_TX; updateIRQ() }
            return
        }
        lock.withLock {
            switch offset {
            case UARTILPR: ilpr = value & 0xFF
            case UARTIBRD: ibrd = value & 0xFFFF
            case UARTFBRD: fbrd = value & 0x3F
            case UARTLCR_H:
                lcrH = value & 0xFF
                updateRX()
            case UARTCR: cr = value & 0xFF87
            case UARTIFLS:
                ifls = value & 0x3F
                updateRX()
            case UARTIMSC:
                imsc = value & INT_ALL
                updateIRQ()
            case UARTICR:
                ris &= ~value
                updateRX()
            case UARTDMACR: dmacr = value & 0x7
            default: break  // RSR error clear: no errors are ever flagged
            }
        }
    }

    // MARK: ConsoleInput

    /// Queues host input; returns how many bytes fitted. The rest must wait for `notify`.
    public func push(_ bytes: UnsafeRawBufferPointer) -> Int {
        lock.withLock {
            let accepted = rxFIFO.push(bytes, capacity: rxCapacity)
            if accepted > 0 {
                // No more is coming in this burst, so the receive timeout is due at once.
                ris |= INT_RT
                updateRX()
            }
            return accepted
        }
    }

    public var hasSpace: Bool { lock.withLock { rxFIFO.count < rxCapacity } }

    // MARK: internals (called with the lock held)

    private var rxCapacity: Int { lcrH & LCR_H_FEN != 0 ? PL011.fifoDepth : 1 }


    /// RX trigger level from IFLS.RXIFLSEL: 1/8, 1/4, 1/2, 3/4 or 7/8 of the FIFO.
    private var rxTrigger: Int {
        guard lcrH & LCR_H_FEN != 0 else { return 1 }
        switch (ifls >> 3) & 0x7 {
        case 0: return 2
        case 1: return 4
        case 2: return 8
        case 3: return 12
        default: return 14
        }
    }

    private func updateRX() {
        if rxFIFO.count >= rxTrigger { ris |= INT_RX } else { ris &= ~INT_RX }
        if rxFIFO.count == 0 { ris &= ~INT_RT }
        updateIRQ()
    }

    private func updateIRQ() {
        let level = ris & imsc != 0
        if level != irqLevel {
            irqLevel = level
            irq.setLevel(level)
        }
    }

    private func readRegister(_ offset: UInt64) -> UInt32 {
        switch offset {
        case UARTRSR: return 0
        case UARTFR:
            var flags = FR_TXFE
            if rxFIFO.count == 0 { flags |= FR_RXFE }
            if rxFIFO.count >= rxCapacity { flags |= FR_RXFF }
            return flags
        case UARTILPR: return ilpr
        case UARTIBRD: return ibrd
        case UARTFBRD: return fbrd
        case UARTLCR_H: return lcrH
        case UARTCR: return cr
        case UARTIFLS: return ifls
        case UARTIMSC: return imsc
        case UARTRIS: return ris
        case UARTMIS: return ris & imsc
        case UARTDMACR: return dmacr
        default: return primeCellID(offset: offset, peripheral: peripheralID) ?? 0
        }
    }
}
