import SwiftletCore

// 16550A UART register map (offsets from the base port, 0x3F8 for COM1), from the
// National Semiconductor PC16550D datasheet. With LCR.DLAB set, offsets 0 and 1 are the
// divisor latch instead of RBR/THR and IER.
private let RBR_THR: UInt64 = 0   // receive buffer (read) / transmit holding (write)
private let IER: UInt64 = 1       // interrupt enable
private let IIR_FCR: UInt64 = 2   // interrupt identification (read) / FIFO control (write)
private let LCR: UInt64 = 3       // line control
private let MCR: UInt64 = 4       // modem control
private let LSR: UInt64 = 5       // line status
private let MSR: UInt64 = 6       // modem status
private let SCR: UInt64 = 7       // scratch

private let IER_RDI: UInt8 = 0x01     // received data available
private let IER_THRI: UInt8 = 0x02    // transmit holding register empty
private let IIR_NO_INTERRUPT: UInt8 = 0x01
private let IIR_THRI: UInt8 = 0x02
private let IIR_RDI: UInt8 = 0x04
private let IIR_FIFO_ENABLED: UInt8 = 0xC0
private let FCR_ENABLE_FIFO: UInt8 = 0x01
private let FCR_CLEAR_RX: UInt8 = 0x02
private let LCR_DLAB: UInt8 = 0x80
private let MCR_LOOP: UInt8 = 0x10
private let LSR_DR: UInt8 = 0x01      // data ready
private let LSR_THRE: UInt8 = 0x20    // transmit holding register empty
private let LSR_TEMT: UInt8 = 0x40    // transmitter empty
private let MSR_DCD_DSR_CTS: UInt8 = 0xB0

/// A 16550A UART. Transmit goes straight to the console sink, so the transmitter is always
/// empty; host input fills a 16-byte receive FIFO. Interrupts follow the datasheet's
/// priorities (received data, then THR empty); the THR-empty interrupt is re-armed after
/// every transmitted byte, which is what Linux's interrupt-driven 8250 driver waits for.
public final class Serial16550: ByteWideDevice, ConsoleInput {
    public static let size: UInt64 = 8
    public static let fifoDepth = 16

    private let output: any ConsoleSink
    private let irq: any InterruptLine
    private let spaceNotifier: EventNotifier?
    private let lock = Lock()
    private var rxFIFO = InputFIFO(depth: Serial16550.fifoDepth)
    private var ier: UInt8 = 0
    private var lcr: UInt8 = 0x03   // 8N1
    private var mcr: UInt8 = 0x08   // OUT2
    private var scr: UInt8 = 0
    private var divisorLow: UInt8 = 0x0C  // 9600 baud
    private var divisorHigh: UInt8 = 0
    private var fifoEnabled = false
    private var thrEmptyPending = false
    private var irqLevel = false

    public init(output: any ConsoleSink, irq: any InterruptLine = UnconnectedInterruptLine(),
                spaceNotifier: EventNotifier? = nil) {
        self.output = output
        self.irq = irq
        self.spaceNotifier = spaceNotifier
    }

    public func readByte(at offset: UInt64) -> UInt8 {
        var freedSpace = false
        let value = lock.withLock { () -> UInt8 in
            let dlab = lcr & LCR_DLAB != 0
            switch offset {
            case RBR_THR:
                if dlab { return divisorLow }
                let byte = rxFIFO.pop() ?? 0
                freedSpace = rxFIFO.takeSpaceNotice(capacity: rxCapacity)
                updateIRQ()
                return byte
            case IER: return dlab ? divisorHigh : ier
            case IIR_FCR:
                let identification = pendingInterrupt
                // Reading IIR while it reports THR empty acknowledges that interrupt.
                if identification == IIR_THRI { thrEmptyPending = false; updateIRQ() }
                return identification | (fifoEnabled ? IIR_FIFO_ENABLED : 0)
            case LCR: return lcr
            case MCR: return mcr
            case LSR: return LSR_THRE | LSR_TEMT | (rxFIFO.count > 0 ? LSR_DR : 0)
            case MSR: return MSR_DCD_DSR_CTS
            case SCR: return scr
            default: return 0
            }
        }
        if freedSpace { spaceNotifier?.notify() }
        return value
    }

    public func writeByte(_ value: UInt8, at offset: UInt64) {
        var transmit = false
        var freedSpace = false
        lock.withLock {
            let dlab = lcr & LCR_DLAB != 0
            switch offset {
            case RBR_THR:
                if dlab { divisorLow = value; return }
                transmit = true
                // The THR fills and drains at once: the interrupt line falls and rises
                // again, giving edge-triggered PIC/IOAPIC inputs a fresh edge.
                thrEmptyPending = false
                updateIRQ()
                thrEmptyPending = true
            case IER:
                if dlab { divisorHigh = value; return }
                let enablingTHRI = value & IER_THRI != 0 && ier & IER_THRI == 0
                ier = value & 0x0F
                if enablingTHRI { thrEmptyPending = true }
            case IIR_FCR:
                fifoEnabled = value & FCR_ENABLE_FIFO != 0
                if value & FCR_CLEAR_RX != 0 { rxFIFO.removeAll() }
                freedSpace = rxFIFO.takeSpaceNotice(capacity: rxCapacity)
            case LCR: lcr = value
            case MCR: mcr = value & 0x1F
            case SCR: scr = value
            default: break  // LSR and MSR are read-only
            }
            updateIRQ()
        }
        // Outside the lock: the sink takes its own. In loopback mode the byte goes nowhere
        // (Linux uses loopback only to probe).
        if transmit && mcr & MCR_LOOP == 0 { output.write(value) }
        if freedSpace { spaceNotifier?.notify() }
    }

    // MARK: ConsoleInput

    public func push(_ bytes: UnsafeRawBufferPointer) -> Int {
        lock.withLock {
            let accepted = rxFIFO.push(bytes, capacity: rxCapacity)
            updateIRQ()
            return accepted
        }
    }

    public var hasSpace: Bool { lock.withLock { rxFIFO.count < rxCapacity } }

    // MARK: internals (lock held)

    private var rxCapacity: Int { fifoEnabled ? Serial16550.fifoDepth : 1 }


    private var pendingInterrupt: UInt8 {
        if ier & IER_RDI != 0 && rxFIFO.count > 0 { return IIR_RDI }
        if ier & IER_THRI != 0 && thrEmptyPending { return IIR_THRI }
        return IIR_NO_INTERRUPT
    }

    private func updateIRQ() {
        let level = pendingInterrupt != IIR_NO_INTERRUPT
        if level != irqLevel {
            irqLevel = level
            irq.setLevel(level)
        }
    }
}
