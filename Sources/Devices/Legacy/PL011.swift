import SwiftletCore

// ARM PrimeCell UART (PL011) register map, from the PL011 TRM (DDI 0183).
private let UARTDR: UInt64 = 0x000
private let UARTRSR: UInt64 = 0x004     // receive status / error clear
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
private let UARTPeriphID0: UInt64 = 0xFE0

private let FR_RXFE: UInt32 = 1 << 4   // receive FIFO empty
private let FR_TXFE: UInt32 = 1 << 7   // transmit FIFO empty

// PrimeCell identification registers 0xFE0-0xFFC. Linux's AMBA bus reads them to match
// the driver; a UART that answers zeros is never probed.
private let primeCellID: [UInt32] = [0x11, 0x10, 0x14, 0x00, 0x0D, 0xF0, 0x05, 0xB1]

/// PL011 UART. Transmit goes straight to the console sink (the TX FIFO is always empty).
public final class PL011: BusDevice {
    public static let size: UInt64 = 0x1000

    private let output: any ConsoleSink
    private let lock = Lock()
    private var ibrd: UInt32 = 0
    private var fbrd: UInt32 = 0
    private var lcrH: UInt32 = 0
    private var cr: UInt32 = 0x300        // TXE | RXE
    private var ifls: UInt32 = 0x12       // both FIFOs at half
    private var imsc: UInt32 = 0
    private var ilpr: UInt32 = 0
    private var dmacr: UInt32 = 0

    public init(output: any ConsoleSink) { self.output = output }

    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        let value = lock.withLock { readRegister(offset) }
        store(value, into: data)
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        let value = load(data)
        if offset == UARTDR {
            output.write(UInt8(truncatingIfNeeded: value))
            return
        }
        lock.withLock {
            switch offset {
            case UARTILPR: ilpr = value & 0xFF
            case UARTIBRD: ibrd = value & 0xFFFF
            case UARTFBRD: fbrd = value & 0x3F
            case UARTLCR_H: lcrH = value & 0xFF
            case UARTCR: cr = value & 0xFF87
            case UARTIFLS: ifls = value & 0x3F
            case UARTIMSC: imsc = value & 0x7FF
            case UARTDMACR: dmacr = value & 0x7
            default: break  // RSR writes clear errors (none kept); ICR: no pending state yet
            }
        }
    }

    private func readRegister(_ offset: UInt64) -> UInt32 {
        switch offset {
        case UARTDR, UARTRSR, UARTRIS, UARTMIS: return 0
        case UARTFR: return FR_RXFE | FR_TXFE
        case UARTILPR: return ilpr
        case UARTIBRD: return ibrd
        case UARTFBRD: return fbrd
        case UARTLCR_H: return lcrH
        case UARTCR: return cr
        case UARTIFLS: return ifls
        case UARTIMSC: return imsc
        case UARTDMACR: return dmacr
        case UARTPeriphID0...0xFFC where offset % 4 == 0:
            return primeCellID[Int((offset - UARTPeriphID0) / 4)]
        default: return 0
        }
    }
}

/// Little-endian register value helpers shared by the MMIO devices: any access width is
/// accepted; bytes past 4 read as zero and are ignored on write.
@inline(__always)
func store(_ value: UInt32, into data: UnsafeMutableRawBufferPointer) {
    for i in 0..<data.count { data[i] = i < 4 ? UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) : 0 }
}

@inline(__always)
func load(_ data: UnsafeRawBufferPointer) -> UInt32 {
    var value: UInt32 = 0
    for i in 0..<min(4, data.count) { value |= UInt32(data[i]) << (8 * UInt32(i)) }
    return value
}
