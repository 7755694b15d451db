import SwiftletCore

/// Little-endian register access helpers for MMIO devices with 32-bit registers: any
/// access width is accepted; bytes past 4 read as zero and are ignored on write.
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

/// PrimeCell peripheral and cell ID registers live at 0xFE0-0xFFC: four peripheral ID
/// bytes (part number, designer, revision) and the fixed cell ID 0x0D, 0xF0, 0x05, 0xB1.
@inline(__always)
func primeCellID(offset: UInt64, peripheral: (UInt32, UInt32, UInt32, UInt32)) -> UInt32? {
    guard offset >= 0xFE0, offset <= 0xFFC, offset % 4 == 0 else { return nil }
    switch (offset - 0xFE0) / 4 {
    case 0: return peripheral.0
    case 1: return peripheral.1
    case 2: return peripheral.2
    case 3: return peripheral.3
    case 4: return 0x0D
    case 5: return 0xF0
    case 6: return 0x05
    default: return 0xB1
    }
}

/// A byte-wide ISA device (16550, i8042, CMOS). A wider port access reaches consecutive
/// ports one byte at a time, lowest first, as the PC's bus splits it for an 8-bit device:
/// `out dx, ax` to 0x70 selects a CMOS register with AL and writes AH to it.
public protocol ByteWideDevice: BusDevice {
    func readByte(at offset: UInt64) -> UInt8
    func writeByte(_ value: UInt8, at offset: UInt64)
}

extension ByteWideDevice {
    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        for i in 0..<data.count {
            let (port, past) = offset.addingReportingOverflow(UInt64(i))
            data[i] = past ? 0 : readByte(at: port)
        }
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        for i in 0..<data.count {
            let (port, past) = offset.addingReportingOverflow(UInt64(i))
            if !past { writeByte(data[i], at: port) }
        }
    }
}
