import SwiftletCore

// The ACPI tables of the x86_64 machine (ACPI 6.5 chapter 5): how Linux finds the CPUs, the
// I/O APIC and the devices it cannot probe — above all virtio-mmio, which Debian's kernel
// only matches through ACPI (_HID "LNRO0005"), as on QEMU's microvm and Firecracker.
// The machine is "hardware-reduced" (FADT flag HW_REDUCED_ACPI), like theirs: no PM1 event
// and control blocks, no SCI, no PM timer, no GPEs to emulate.

/// A device the DSDT describes.
public enum ACPIDevice: Equatable {
    /// A 16550 COM port (PNP0501): 8 I/O ports from `port`.
    case serial(port: UInt16, irq: UInt32)
    /// The CMOS real-time clock (PNP0B00): 2 I/O ports from `port`. Linux's rtc_cmos binds
    /// through it; without the legacy PIC of a hardware-reduced machine, the raw ISA IRQ 8
    /// of its fallback platform device cannot be requested.
    case rtc(port: UInt16, irq: UInt32)
    /// The i8042 keyboard controller (PNP0303).
    case keyboard(dataPort: UInt16, commandPort: UInt16, irq: UInt32)
    /// A virtio-mmio transport (LNRO0005); `gsi` is signalled edge-triggered (KVM irqfd).
    case virtioMMIO(base: UInt64, size: UInt64, gsi: UInt32)
    /// The one-byte sleep control and status register at I/O `port`: the FADT points both
    /// SLEEP_CONTROL_REG and SLEEP_STATUS_REG at it and the DSDT gets \_S5_, which is what
    /// makes Linux's `poweroff` an ACPI soft-off instead of a halt.
    /// `softOffType` is the SLP_TYP value the register takes for S5.
    case sleepControl(port: UInt16, softOffType: UInt8)
}

// Identity in every table header.
private let OEM_ID = "SWIFTL"
private let OEM_TABLE_ID = "SWIFTLET"
private let OEM_REVISION: UInt32 = 1
private let CREATOR_ID = "SWFT"
private let CREATOR_REVISION: UInt32 = 1
private let HYPERVISOR_VENDOR_IDENTITY = "SWIFTLET"

// §5.2.5.3 RSDP, §5.2.6 System Description Table Header.
private let RSDP_SIGNATURE = "RSD PTR "
private let RSDP_REVISION: UInt8 = 2        // ACPI 2.0+: has the XSDT address
private let RSDP_LENGTH = 36
private let RSDP_CHECKSUM = 8               // over the first 20 bytes (ACPI 1.0 part)
private let RSDP_V1_LENGTH = 20
private let RSDP_EXTENDED_CHECKSUM = 32     // over all 36 bytes
private let HEADER_LENGTH = 36
private let HEADER_CHECKSUM = 9

// §5.2.9 FADT, revision 6.5.
private let FADT_REVISION: UInt8 = 6
private let FADT_MINOR_VERSION: UInt8 = 5
private let FADT_LENGTH = 276
private let FADT_DSDT = 40
private let FADT_IAPC_BOOT_ARCH = 109
private let FADT_FLAGS = 112
private let FADT_MINOR_VERSION_OFFSET = 131
private let FADT_X_DSDT = 140
private let FADT_SLEEP_CONTROL_REG = 244
private let FADT_SLEEP_STATUS_REG = 256
private let FADT_HYPERVISOR_VENDOR_IDENTITY = 268
/// Linux takes the i8042 as absent without it (arch/x86/kernel/acpi/boot.c acpi_parse_fadt),
/// and Swiftlet's reset and Ctrl-Alt-Del go through the i8042.
private let IAPC_BOOT_ARCH_8042: UInt16 = 1 << 1
private let HW_REDUCED_ACPI: UInt32 = 1 << 20
// §5.2.3.2 Generic Address Structure: a byte register in system I/O space.
private let GAS_SYSTEM_IO: UInt8 = 1
private let GAS_ACCESS_BYTE: UInt8 = 1
private let GAS_BIT_WIDTH_BYTE: UInt8 = 8

// §5.2.12 MADT.
private let MADT_REVISION: UInt8 = 5
private let PCAT_COMPAT: UInt32 = 1 << 0     // dual 8259s present (KVM's in-kernel irqchip has them)
private let MADT_PROCESSOR_LOCAL_APIC: UInt8 = 0
private let MADT_IO_APIC: UInt8 = 1
private let LOCAL_APIC_ENABLED: UInt32 = 1 << 0

private let XSDT_REVISION: UInt8 = 1
private let DSDT_REVISION: UInt8 = 2         // 64-bit AML integers
private let TABLE_ALIGNMENT: UInt64 = 16     // the RSDP must be; the others need only 8

public enum ACPITables {
    /// The most the tables may take at `Layout.acpiTables` and stay below 1 MiB, inside the
    /// range e820 reserves and Linux's legacy RSDP scan (0xE0000–0xFFFFF) covers.
    public static let maxSize = Int(BootParams.biosEnd - Layout.acpiTables)

    /// Tables placed from `base` (RSDP first, 16-byte aligned), with every checksum and
    /// pointer filled in; returns the bytes and the RSDP's guest-physical address.
    ///
    /// The bytes are to be copied to guest memory at `base`; an unaligned `base` is padded up
    /// to 16 bytes, so the RSDP can sit after `base`. At `Layout.acpiTables` the bytes must
    /// not exceed `maxSize` (about 80 bytes per virtio device, so hundreds fit); they are
    /// returned whatever their size, and the caller checks. `cpus` is 1...254: APIC ids are
    /// 8 bits and the I/O APIC takes id `cpus`, as in the MP table.
    public static func make(cpus: Int, devices: [ACPIDevice], at base: UInt64) -> (bytes: [UInt8], rsdp: UInt64) {
        precondition(cpus >= 1 && cpus < 255, "ACPI MADT: 1 to 254 vCPUs")
        let dsdt = makeDSDT(devices)
        let madt = makeMADT(cpus: cpus)
        // Addresses: RSDP, XSDT, FADT, MADT, DSDT, each aligned.
        let rsdp = align(base)
        let xsdt = align(rsdp + UInt64(RSDP_LENGTH))
        let fadt = align(xsdt + UInt64(HEADER_LENGTH + 2 * 8))
        let madtAddress = align(fadt + UInt64(FADT_LENGTH))
        let dsdtAddress = align(madtAddress + UInt64(madt.count))
        let tables: [(UInt64, [UInt8])] = [
            (rsdp, makeRSDP(xsdt: xsdt)),
            (xsdt, makeXSDT([fadt, madtAddress])),
            (fadt, makeFADT(dsdt: dsdtAddress, sleepControl: sleepControlPort(devices))),
            (madtAddress, madt),
            (dsdtAddress, dsdt),
        ]
        var bytes: [UInt8] = []
        for (address, table) in tables {
            bytes += [UInt8](repeating: 0, count: Int(address - base) - bytes.count)
            bytes += table
        }
        return (bytes, rsdp)
    }

    // MARK: Tables

    static func makeRSDP(xsdt: UInt64) -> [UInt8] {
        var bytes = Array(RSDP_SIGNATURE.utf8) + [0] + ascii(OEM_ID, 6) + [RSDP_REVISION]
        bytes += littleEndianBytes(UInt32(0)) // RsdtAddress: none, the XSDT serves
        bytes += littleEndianBytes(UInt32(RSDP_LENGTH)) + littleEndianBytes(xsdt) + [0, 0, 0, 0]
        bytes[RSDP_CHECKSUM] = checksum(bytes[0..<RSDP_V1_LENGTH])
        bytes[RSDP_EXTENDED_CHECKSUM] = checksum(bytes[0..<RSDP_LENGTH])
        return bytes
    }

    static func makeXSDT(_ entries: [UInt64]) -> [UInt8] {
        table("XSDT", revision: XSDT_REVISION, body: entries.flatMap { littleEndianBytes($0) })
    }

    static func makeFADT(dsdt: UInt64, sleepControl: UInt16?) -> [UInt8] {
        var body = [UInt8](repeating: 0, count: FADT_LENGTH - HEADER_LENGTH)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) { writeLE(value, into: &body, at: offset - HEADER_LENGTH) }
        // DSDT takes a 32-bit address; X_DSDT the full one. ACPICA accepts both when equal.
        put(UInt32(truncatingIfNeeded: dsdt), at: FADT_DSDT)
        put(IAPC_BOOT_ARCH_8042, at: FADT_IAPC_BOOT_ARCH)
        put(HW_REDUCED_ACPI, at: FADT_FLAGS)
        put(FADT_MINOR_VERSION, at: FADT_MINOR_VERSION_OFFSET)
        put(dsdt, at: FADT_X_DSDT)
        if let port = sleepControl {
            let register = [GAS_SYSTEM_IO, GAS_BIT_WIDTH_BYTE, 0, GAS_ACCESS_BYTE] + littleEndianBytes(UInt64(port))
            for (i, byte) in register.enumerated() {
                put(byte, at: FADT_SLEEP_CONTROL_REG + i)
                put(byte, at: FADT_SLEEP_STATUS_REG + i)
            }
        }
        let vendor = ascii(HYPERVISOR_VENDOR_IDENTITY, 8)
        for (i, byte) in vendor.enumerated() { put(byte, at: FADT_HYPERVISOR_VENDOR_IDENTITY + i) }
        return table("FACP", revision: FADT_REVISION, body: body)
    }

    /// One local APIC per vCPU (processor UID = APIC id = index) and the I/O APIC with
    /// GSIs from 0. No interrupt source overrides: ISA IRQ n is I/O APIC pin n, as in the MP table.
    static func makeMADT(cpus: Int) -> [UInt8] {
        var body = littleEndianBytes(MPTable.lapicAddress) + littleEndianBytes(PCAT_COMPAT)
        for cpu in 0..<cpus {
            body += [MADT_PROCESSOR_LOCAL_APIC, 8, UInt8(cpu), UInt8(cpu)] + littleEndianBytes(LOCAL_APIC_ENABLED)
        }
        body += [MADT_IO_APIC, 12, UInt8(cpus), 0] + littleEndianBytes(MPTable.ioapicAddress) + littleEndianBytes(UInt32(0))
        return table("APIC", revision: MADT_REVISION, body: body)
    }

    /// The port of the sleep control register, if the machine has one.
    static func sleepControlPort(_ devices: [ACPIDevice]) -> UInt16? {
        for device in devices { if case let .sleepControl(port, _) = device { return port } }
        return nil
    }

    static func makeDSDT(_ devices: [ACPIDevice]) -> [UInt8] {
        var terms: [[UInt8]] = []
        var root: [[UInt8]] = []
        var serials = 0
        var virtios = 0
        for device in devices {
            switch device {
            case let .keyboard(dataPort, commandPort, irq):
                terms.append(AML.device("KBD", [
                    AML.name("_HID", AML.eisaID("PNP0303")),
                    AML.name("_CRS", AML.resourceTemplate([
                        AML.Resource.io(port: dataPort, length: 1),
                        AML.Resource.io(port: commandPort, length: 1),
                        AML.Resource.interrupt(irq),
                    ])),
                ]))
            case let .rtc(port, irq):
                terms.append(AML.device("RTC", [
                    AML.name("_HID", AML.eisaID("PNP0B00")),
                    AML.name("_CRS", AML.resourceTemplate([
                        AML.Resource.io(port: port, length: 2),
                        AML.Resource.interrupt(irq),
                    ])),
                ]))
            case let .serial(port, irq):
                serials += 1
                terms.append(AML.device("COM\(serials)", [
                    AML.name("_HID", AML.eisaID("PNP0501")),
                    AML.name("_UID", AML.integer(UInt64(serials))),
                    AML.name("_CRS", AML.resourceTemplate([
                        AML.Resource.io(port: port, length: 8),
                        AML.Resource.interrupt(irq),
                    ])),
                ]))
            case let .virtioMMIO(base, size, gsi):
                terms.append(AML.device("V" + hex3(virtios), [
                    AML.name("_HID", AML.string("LNRO0005")),
                    AML.name("_UID", AML.integer(UInt64(virtios))),
                    AML.name("_CCA", AML.integer(1)), // cache-coherent DMA
                    AML.name("_CRS", AML.resourceTemplate([
                        AML.Resource.memory(base: base, size: size),
                        // Edge: the VMM raises it through KVM irqfd, a pulse.
                        AML.Resource.extendedInterrupt(gsi, trigger: .edge, polarity: .activeHigh, sharing: .exclusive),
                    ])),
                ]))
                virtios += 1
            case let .sleepControl(_, softOffType):
                // \_S5_: Package { SLP_TYPa, SLP_TYPb }; a hardware-reduced machine uses SLP_TYPa.
                root.append(AML.name("_S5_", AML.packageObject([AML.integer(UInt64(softOffType)), AML.integer(0)])))
            }
        }
        return AML.definitionBlock("DSDT", revision: DSDT_REVISION, root + [AML.scope("\\_SB", terms)])
    }

    // MARK: Helpers

    /// A System Description Table: the 36-byte header, then `body`; length and checksum filled in.
    static func table(_ signature: String, revision: UInt8, body: [UInt8]) -> [UInt8] {
        var bytes = ascii(signature, 4) + littleEndianBytes(UInt32(HEADER_LENGTH + body.count)) + [revision, 0]
        bytes += ascii(OEM_ID, 6) + ascii(OEM_TABLE_ID, 8) + littleEndianBytes(OEM_REVISION)
        bytes += ascii(CREATOR_ID, 4) + littleEndianBytes(CREATOR_REVISION)
        bytes += body
        bytes[HEADER_CHECKSUM] = checksum(bytes[...])
        return bytes
    }

    /// The byte that makes `bytes` (with it in place of a zero) sum to 0 mod 256.
    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt8 {
        var sum: UInt8 = 0
        for byte in bytes { sum &+= byte }
        return 0 &- sum
    }

    /// `text` as exactly `width` bytes, space-padded (fixed-width header fields).
    private static func ascii(_ text: String, _ width: Int) -> [UInt8] {
        let bytes = Array(text.utf8.prefix(width))
        return bytes + [UInt8](repeating: UInt8(ascii: " "), count: width - bytes.count)
    }

    private static func align(_ address: UInt64) -> UInt64 {
        (address + TABLE_ALIGNMENT - 1) & ~(TABLE_ALIGNMENT - 1)
    }

    /// Three upper-case hex digits: device names V000…VFFF.
    private static func hex3(_ n: Int) -> String {
        precondition(n < 0x1000, "at most 4096 virtio-mmio devices in the DSDT")
        let digits = Array("0123456789ABCDEF".utf8)
        let bytes = [digits[(n >> 8) & 0xF], digits[(n >> 4) & 0xF], digits[n & 0xF]]
        return String(decoding: bytes, as: UTF8.self)
    }
}
