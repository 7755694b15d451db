import SwiftletCore

// Intel MultiProcessor Specification 1.4 tables: how a guest without ACPI finds its CPUs,
// its I/O APIC and how ISA interrupts are wired.
private let MPC_PROCESSOR: UInt8 = 0
private let MPC_BUS: UInt8 = 1
private let MPC_IOAPIC: UInt8 = 2
private let MPC_INTSRC: UInt8 = 3
private let MPC_LINTSRC: UInt8 = 4
private let CPU_ENABLED: UInt8 = 1
private let CPU_BOOTPROCESSOR: UInt8 = 2
private let MP_INT: UInt8 = 0
private let MP_NMI: UInt8 = 1
private let MP_EXTINT: UInt8 = 3
private let APIC_VERSION: UInt8 = 0x14
private let IOAPIC_VERSION: UInt8 = 0x11

public enum MPTable {
    public static let ioapicAddress: UInt32 = 0xFEC0_0000
    public static let lapicAddress: UInt32 = 0xFEE0_0000
    /// Every pin of the I/O APIC is listed: 0–15 for the ISA devices, the rest for
    /// virtio-mmio (bus ISA, default polarity and trigger, as Firecracker's table does).
    static let ioapicPins = 24

    /// The floating pointer structure followed by the configuration table, for placement at
    /// `address` (in the EBDA, where Linux's MP scan looks).
    public static func make(cpus: Int, at address: UInt64) -> [UInt8] {
        let ioapicID = UInt8(cpus)
        var table: [UInt8] = []
        // Configuration table header (44 bytes); length and checksum patched below.
        table += Array("PCMP".utf8) + [0, 0, 4, 0] + Array("SWIFTLET".utf8) + Array("000000000000".utf8)
        table += [0, 0, 0, 0, 0, 0] // OEM table pointer, size
        table += [0, 0]             // entry count, patched
        table += littleEndianBytes(lapicAddress) + [0, 0, 0, 0] // LAPIC address, extended length/checksum/reserved
        var entries = 0
        for cpu in 0..<cpus {
            var flags = CPU_ENABLED
            if cpu == 0 { flags |= CPU_BOOTPROCESSOR }
            // Signature: family 6, model 0x3A; features: FPU, APIC.
            table += [MPC_PROCESSOR, UInt8(cpu), APIC_VERSION, flags] + littleEndianBytes(UInt32(0x0006_00A0)) + littleEndianBytes(UInt32(0x201)) + [UInt8](repeating: 0, count: 8)
            entries += 1
        }
        table += [MPC_BUS, 0] + Array("ISA   ".utf8)
        table += [MPC_IOAPIC, ioapicID, IOAPIC_VERSION, 1] + littleEndianBytes(ioapicAddress)
        entries += 2
        for irq in 0..<ioapicPins {
            // Each IRQ to the same I/O APIC pin, bus-default polarity and trigger.
            table += [MPC_INTSRC, MP_INT, 0, 0, 0, UInt8(irq), ioapicID, UInt8(irq)]
            entries += 1
        }
        table += [MPC_LINTSRC, MP_EXTINT, 0, 0, 0, 0, 0xFF, 0]
        table += [MPC_LINTSRC, MP_NMI, 0, 0, 0, 0, 0xFF, 1]
        entries += 2
        table[4] = UInt8(truncatingIfNeeded: table.count)
        table[5] = UInt8(truncatingIfNeeded: table.count >> 8)
        table[34] = UInt8(truncatingIfNeeded: entries)
        table[35] = UInt8(truncatingIfNeeded: entries >> 8)
        table[7] = checksum(table)

        // Floating pointer (16 bytes): points at the table right after it.
        var pointer = Array("_MP_".utf8) + littleEndianBytes(UInt32(truncatingIfNeeded: address + 16)) + [1, 4, 0, 0, 0, 0, 0, 0]
        pointer[10] = checksum(pointer)
        return pointer + table
    }

    /// The byte that makes all bytes sum to zero.
    static func checksum(_ bytes: [UInt8]) -> UInt8 {
        var sum: UInt8 = 0
        for byte in bytes { sum &+= byte }
        return 0 &- sum
    }
}
