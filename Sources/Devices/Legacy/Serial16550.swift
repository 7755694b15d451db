import SwiftletCore

// 16550A UART register map (offsets from the base port, 0x3F8 for COM1).
// With LCR.DLAB set, offsets 0 and 1 are the divisor latch instead of THR/RBR and IER.
private let RBR_THR: UInt64 = 0   // receive buffer (read) / transmit holding (write)
private let IER: UInt64 = 1       // interrupt enable
private let IIR_FCR: UInt64 = 2   // interrupt identification (read) / FIFO control (write)
private let LCR: UInt64 = 3       // line control
private let MCR: UInt64 = 4       // modem control
private let LSR: UInt64 = 5       // line status
private let MSR: UInt64 = 6       // modem status
private let SCR: UInt64 = 7       // scratch

private let LCR_DLAB: UInt8 = 0x80
private let LSR_DR: UInt8 = 0x01      // data ready
private let LSR_THRE: UInt8 = 0x20    // transmit holding register empty
private let LSR_TEMT: UInt8 = 0x40    // transmitter empty
private let IIR_NO_INTERRUPT: UInt8 = 0x01
private let IIR_FIFO_ENABLED: UInt8 = 0xC0
private let MSR_DCD_DSR_CTS: UInt8 = 0xB0

/// A 16550A UART: transmit goes straight to the console sink, so the transmitter is always
/// empty. Eight ports wide; accesses wider than a byte use their low byte.
public final class Serial16550: BusDevice {
    public static let size: UInt64 = 8

    private let output: any ConsoleSink
    private let lock = Lock()
    private var ier: UInt8 = 0
    private var lcr: UInt8 = 0x03   // 8N1
    private var mcr: UInt8 = 0x08   // OUT2
    private var scr: UInt8 = 0
    private var divisorLow: UInt8 = 0x0C  // 9600 baud
    private var divisorHigh: UInt8 = 0
    private var fifoEnabled = false

    public init(output: any ConsoleSink) { self.output = output }

    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        guard data.count > 0 else { return }
        for i in 0..<data.count { data[i] = 0 }
        data[0] = lock.withLock { readRegister(offset) }
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        guard data.count > 0 else { return }
        let value = data[0]
        var transmit = false
        lock.withLock {
            let dlab = lcr & LCR_DLAB != 0
            switch offset {
            case RBR_THR: if dlab { divisorLow = value } else { transmit = true }
            case IER: if dlab { divisorHigh = value } else { ier = value & 0x0F }
            case IIR_FCR: fifoEnabled = value & 0x01 != 0
            case LCR: lcr = value
            case MCR: mcr = value & 0x1F
            case SCR: scr = value
            default: break  // LSR and MSR are read-only
            }
        }
        // Outside the lock: the sink may block on a slow reader.
        if transmit { output.write(value) }
    }

    private func readRegister(_ offset: UInt64) -> UInt8 {
        let dlab = lcr & LCR_DLAB != 0
        switch offset {
        case RBR_THR: return dlab ? divisorLow : 0
        case IER: return dlab ? divisorHigh : ier
        case IIR_FCR: return IIR_NO_INTERRUPT | (fifoEnabled ? IIR_FIFO_ENABLED : 0)
        case LCR: return lcr
        case MCR: return mcr
        case LSR: return LSR_THRE | LSR_TEMT
        case MSR: return MSR_DCD_DSR_CTS
        case SCR: return scr
        default: return 0
        }
    }
}
