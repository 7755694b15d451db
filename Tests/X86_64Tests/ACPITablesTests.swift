import XCTest
import Foundation
@testable import X86_64
import SwiftletCore

/// The machine's usual devices: i8042, COM1, and virtio-mmio transports as the device manager
/// lays them out (0xD000_0000 step 0x1000, GSI 5+), plus one above 4 GiB.
private let base: UInt64 = 0xE_0000
private let devices: [ACPIDevice] = [
    .keyboard(dataPort: 0x60, commandPort: 0x64, irq: 1),
    .serial(port: 0x3F8, irq: 4),
    .rtc(port: 0x70, irq: 8),
    .virtioMMIO(base: 0xD000_0000, size: 0x1000, gsi: 5),
    .virtioMMIO(base: 0xD000_1000, size: 0x200, gsi: 6),
    .virtioMMIO(base: 0x1_2000_0000, size: 0x1000, gsi: 23),
    .sleepControl(port: 0x600, softOffType: 5),
]

/// The tables of one `ACPITables.make` result, found by following the pointers from the RSDP.
private struct Tables {
    let bytes: [UInt8]
    let base: UInt64
    let rsdp: UInt64

    func offset(_ address: UInt64, file: StaticString = #filePath, line: UInt = #line) -> Int {
        XCTAssertGreaterThanOrEqual(address, base, "points below the tables", file: file, line: line)
        return Int(address - base)
    }
    var rsdpBytes: [UInt8] { Array(bytes[offset(rsdp)..<offset(rsdp) + 36]) }
    func table(at address: UInt64) -> [UInt8] {
        let start = offset(address)
        let length = Int(readLE32(bytes, at: start + 4))
        return Array(bytes[start..<start + length])
    }
    var xsdtAddress: UInt64 { readLE64(rsdpBytes, at: 24) }
    var xsdt: [UInt8] { table(at: xsdtAddress) }
    var xsdtEntries: [UInt64] { stride(from: 36, to: xsdt.count, by: 8).map { readLE64(xsdt, at: $0) } }
    var fadt: [UInt8] { table(at: xsdtEntries[0]) }
    var madt: [UInt8] { table(at: xsdtEntries[1]) }
    var dsdt: [UInt8] { table(at: readLE64(fadt, at: 140)) }
}

private func make(cpus: Int = 2, _ list: [ACPIDevice] = devices, at address: UInt64 = base) -> Tables {
    let result = ACPITables.make(cpus: cpus, devices: list, at: address)
    return Tables(bytes: result.bytes, base: address, rsdp: result.rsdp)
}

private func signature(_ table: [UInt8]) -> String { String(decoding: table[0..<4], as: UTF8.self) }
private func sum(_ bytes: [UInt8]) -> UInt8 { bytes.reduce(0, &+) }

final class ACPITablesTests: XCTestCase {
    // MARK: Table structure

    func testRSDP() {
        let tables = make()
        XCTAssertEqual(tables.rsdp, base, "RSDP first")
        let rsdp = tables.rsdpBytes
        XCTAssertEqual(Array(rsdp[0..<8]), Array("RSD PTR ".utf8))
        XCTAssertEqual(sum(Array(rsdp[0..<20])), 0, "ACPI 1.0 checksum over 20 bytes")
        XCTAssertEqual(sum(rsdp), 0, "extended checksum over 36 bytes")
        XCTAssertEqual(Array(rsdp[9..<15]), Array("SWIFTL".utf8))
        XCTAssertEqual(rsdp[15], 2, "revision 2: the XSDT address is valid")
        XCTAssertEqual(readLE32(rsdp, at: 20), 36, "length")
        XCTAssertEqual(tables.xsdtAddress % 8, 0)
    }

    func testEveryTableHasItsSignatureLengthAndChecksum() {
        let tables = make()
        XCTAssertEqual(signature(tables.xsdt), "XSDT")
        XCTAssertEqual(tables.xsdtEntries.count, 2)
        let all = [tables.xsdt, tables.fadt, tables.madt, tables.dsdt]
        XCTAssertEqual(all.map(signature), ["XSDT", "FACP", "APIC", "DSDT"])
        for table in all {
            let name = signature(table)
            XCTAssertEqual(sum(table), 0, "\(name) checksum")
            XCTAssertEqual(Int(readLE32(table, at: 4)), table.count, "\(name) length")
            XCTAssertEqual(Array(table[10..<16]), Array("SWIFTL".utf8), "\(name) OEM ID")
            XCTAssertEqual(Array(table[16..<24]), Array("SWIFTLET".utf8), "\(name) OEM table ID")
        }
        // Every table lies inside the returned bytes and the DSDT is last.
        let dsdtEnd = tables.offset(readLE64(tables.fadt, at: 140)) + tables.dsdt.count
        XCTAssertEqual(dsdtEnd, tables.bytes.count)
    }

    func testPointersLandOnSignaturesAtTheirOffsets() {
        let tables = make()
        // Layout from base: RSDP, XSDT, FADT, MADT, DSDT, each on 16 bytes.
        XCTAssertEqual(tables.xsdtAddress, base + 0x30)
        XCTAssertEqual(tables.xsdtEntries[0], base + 0x70, "FADT after the 52-byte XSDT")
        XCTAssertEqual(tables.xsdtEntries[1], base + 0x190, "MADT after the 276-byte FADT")
        let fadtDSDT = UInt64(readLE32(tables.fadt, at: 40))
        let fadtXDSDT = readLE64(tables.fadt, at: 140)
        XCTAssertEqual(fadtDSDT, fadtXDSDT, "DSDT and X_DSDT agree")
        for address in [tables.xsdtAddress] + tables.xsdtEntries + [fadtXDSDT] {
            XCTAssertEqual(address % 16, 0)
            let at = tables.offset(address)
            XCTAssertTrue(["XSDT", "FACP", "APIC", "DSDT"].contains(signature(Array(tables.bytes[at..<at + 4]))))
        }
        XCTAssertEqual(signature(Array(tables.bytes[tables.offset(fadtXDSDT)...])), "DSDT")
    }

    func testUnalignedBasePadsToTheRSDP() {
        let tables = make(at: base + 4)
        XCTAssertEqual(tables.rsdp, base + 0x10)
        XCTAssertEqual(Array(tables.bytes[0..<12]), [UInt8](repeating: 0, count: 12))
        XCTAssertEqual(Array(tables.rsdpBytes[0..<8]), Array("RSD PTR ".utf8))
        XCTAssertEqual(signature(tables.xsdt), "XSDT")
        XCTAssertEqual(signature(tables.dsdt), "DSDT")
    }

    func testFADTIsHardwareReducedWithAnI8042() {
        let fadt = make().fadt
        XCTAssertEqual(fadt.count, 276)
        XCTAssertEqual(fadt[8], 6, "revision")
        XCTAssertEqual(fadt[131], 5, "minor version: ACPI 6.5")
        XCTAssertEqual(readLE32(fadt, at: 112) & (1 << 20), 1 << 20, "HW_REDUCED_ACPI")
        XCTAssertEqual(readLE16(fadt, at: 109) & (1 << 1), 1 << 1, "IAPC_BOOT_ARCH: 8042 present")
        XCTAssertEqual(readLE16(fadt, at: 46), 0, "no SCI")
        XCTAssertEqual(readLE32(fadt, at: 56), 0, "no PM1a event block")
        XCTAssertEqual(readLE32(fadt, at: 76), 0, "no PM timer")
        XCTAssertEqual(Array(fadt[268..<276]), Array("SWIFTLET".utf8), "hypervisor vendor identity")
    }

    func testFADTSleepRegistersNameTheSleepControlPort() {
        // Generic Address Structures: system I/O, 8 bits wide, byte access, port 0x600.
        let register: [UInt8] = [1, 8, 0, 1, 0x00, 0x06, 0, 0, 0, 0, 0, 0]
        let fadt = make().fadt
        XCTAssertEqual(Array(fadt[244..<256]), register, "SLEEP_CONTROL_REG")
        XCTAssertEqual(Array(fadt[256..<268]), register, "SLEEP_STATUS_REG")
        let withoutIt = make(devices.filter { if case .sleepControl = $0 { return false }; return true }).fadt
        XCTAssertEqual(Array(withoutIt[244..<268]), [UInt8](repeating: 0, count: 24), "no register, no soft-off")
    }

    func testMADTForOneAndFourCPUs() {
        for cpus in [1, 4] {
            let madt = make(cpus: cpus).madt
            XCTAssertEqual(readLE32(madt, at: 36), 0xFEE0_0000, "local APIC address")
            XCTAssertEqual(readLE32(madt, at: 40), 1, "PCAT_COMPAT")
            var entries: [[UInt8]] = []
            var at = 44
            while at < madt.count {
                let length = Int(madt[at + 1])
                XCTAssertGreaterThan(length, 0)
                entries.append(Array(madt[at..<at + length]))
                at += length
            }
            XCTAssertEqual(at, madt.count, "entries fill the table exactly")
            XCTAssertEqual(entries.count, cpus + 1, "\(cpus) local APICs, one I/O APIC, no overrides")
            for cpu in 0..<cpus {
                // Type 0, length 8, processor UID = APIC id = index, enabled.
                XCTAssertEqual(entries[cpu], [0, 8, UInt8(cpu), UInt8(cpu), 1, 0, 0, 0])
            }
            // Type 1, length 12, id = cpus (as in the MP table), 0xFEC00000, GSI base 0.
            XCTAssertEqual(entries[cpus], [1, 12, UInt8(cpus), 0, 0x00, 0x00, 0xC0, 0xFE, 0, 0, 0, 0])
        }
    }

    func testFitsBelowOneMiB() {
        XCTAssertEqual(Layout.acpiTables, 0xE_0000)
        XCTAssertEqual(ACPITables.maxSize, 0x2_0000)
        let many = (0..<32).map { ACPIDevice.virtioMMIO(base: 0xD000_0000 + UInt64($0) * 0x1000, size: 0x1000, gsi: 5 + UInt32($0)) }
        let result = ACPITables.make(cpus: 254, devices: devices + many, at: Layout.acpiTables)
        XCTAssertLessThanOrEqual(result.bytes.count, ACPITables.maxSize)
        XCTAssertLessThanOrEqual(Layout.acpiTables + UInt64(result.bytes.count), BootParams.biosEnd)
        XCTAssertEqual(sum(make(cpus: 254, devices + many, at: Layout.acpiTables).dsdt), 0)
    }

    func testDeviceNamesAndUIDs() {
        let many = (0..<32).map { ACPIDevice.virtioMMIO(base: 0xD000_0000 + UInt64($0) * 0x1000, size: 0x1000, gsi: 5 + UInt32($0)) }
        let dsdt = make(many).dsdt
        for name in ["V000", "V009", "V00A", "V01F"] {
            XCTAssertNotNil(find(Array(name.utf8), in: dsdt), name)
        }
        XCTAssertNil(find(Array("V020".utf8), in: dsdt))
    }

    // MARK: AML encodings

    func testPkgLengthBoundaries() {
        XCTAssertEqual(AML.pkgLength(value: 0), [0x00])
        XCTAssertEqual(AML.pkgLength(value: 63), [0x3F])
        XCTAssertEqual(AML.pkgLength(value: 64), [0x40, 0x04])
        XCTAssertEqual(AML.pkgLength(value: 0x123), [0x43, 0x12])
        XCTAssertEqual(AML.pkgLength(value: 4095), [0x4F, 0xFF])
        XCTAssertEqual(AML.pkgLength(value: 4096), [0x80, 0x00, 0x01])
        XCTAssertEqual(AML.pkgLength(value: 0xF_FFFF), [0x8F, 0xFF, 0xFF])
        XCTAssertEqual(AML.pkgLength(value: 0x10_0000), [0xC0, 0x00, 0x00, 0x01])
        XCTAssertEqual(AML.pkgLength(value: 0xFFF_FFFF), [0xCF, 0xFF, 0xFF, 0xFF])
        // In front of contents the length counts its own bytes.
        XCTAssertEqual(AML.pkgLength(enclosing: 62), [0x3F], "63 with itself: one byte")
        XCTAssertEqual(AML.pkgLength(enclosing: 63), [0x41, 0x04], "65 with itself: two bytes")
        XCTAssertEqual(AML.pkgLength(enclosing: 4093), [0x4F, 0xFF], "4095 with itself")
        XCTAssertEqual(AML.pkgLength(enclosing: 4094), [0x81, 0x00, 0x01], "4097 with itself: three bytes")
        XCTAssertEqual(AML.pkgLength(enclosing: 0xF_FFFC), [0x8F, 0xFF, 0xFF], "1 MiB - 1 with itself")
        XCTAssertEqual(AML.pkgLength(enclosing: 0xF_FFFD), [0xC1, 0x00, 0x00, 0x01], "1 MiB + 1 with itself: four bytes")
        // A whole Buffer across the first boundary.
        let buffer = AML.buffer([UInt8](repeating: 0xAA, count: 100))
        XCTAssertEqual(Array(buffer[0..<5]), [0x11, 0x48, 0x06, 0x0A, 100], "BufferOp, PkgLength 0x68 = 2 + 2 + 100")
        XCTAssertEqual(buffer.count, 105)
    }

    func testIntegerEncodings() {
        XCTAssertEqual(AML.integer(0), [0x00], "ZeroOp")
        XCTAssertEqual(AML.integer(1), [0x01], "OneOp")
        XCTAssertEqual(AML.integer(2), [0x0A, 0x02])
        XCTAssertEqual(AML.integer(0xFF), [0x0A, 0xFF])
        XCTAssertEqual(AML.integer(0x100), [0x0B, 0x00, 0x01])
        XCTAssertEqual(AML.integer(0xFFFF), [0x0B, 0xFF, 0xFF])
        XCTAssertEqual(AML.integer(0x1_0000), [0x0C, 0x00, 0x00, 0x01, 0x00])
        XCTAssertEqual(AML.integer(0xD000_0000), [0x0C, 0x00, 0x00, 0x00, 0xD0])
        XCTAssertEqual(AML.integer(0x1_0000_0000), [0x0E, 0, 0, 0, 0, 1, 0, 0, 0])
        XCTAssertEqual(AML.integer(UInt64.max), [0x0E] + [UInt8](repeating: 0xFF, count: 8))
    }

    func testNamesStringsAndEISAIDs() {
        XCTAssertEqual(AML.nameSeg("KBD"), Array("KBD_".utf8))
        XCTAssertEqual(AML.nameString("_HID"), Array("_HID".utf8))
        XCTAssertEqual(AML.nameString("\\_SB"), [0x5C] + Array("_SB_".utf8))
        XCTAssertEqual(AML.nameString("\\_SB.COM1"), [0x5C, 0x2E] + Array("_SB_COM1".utf8))
        XCTAssertEqual(AML.nameString("^^A.B.C"), [0x5E, 0x5E, 0x2F, 3] + Array("A___B___C___".utf8))
        XCTAssertEqual(AML.nameString("\\"), [0x5C, 0x00])
        XCTAssertEqual(AML.string("LNRO0005"), [0x0D] + Array("LNRO0005".utf8) + [0])
        XCTAssertEqual(AML.eisaID("PNP0303"), [0x0C, 0x41, 0xD0, 0x03, 0x03])
        XCTAssertEqual(AML.eisaID("PNP0501"), [0x0C, 0x41, 0xD0, 0x05, 0x01])
        XCTAssertEqual(AML.name("_UID", AML.integer(1)), [0x08] + Array("_UID".utf8) + [0x01])
        XCTAssertEqual(AML.device("V000", []), [0x5B, 0x82, 0x05] + Array("V000".utf8))
        XCTAssertEqual(AML.scope("\\_SB", []), [0x10, 0x06, 0x5C] + Array("_SB_".utf8))
    }

    func testResourceDescriptors() {
        XCTAssertEqual(AML.Resource.io(port: 0x3F8, length: 8), [0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x01, 0x08])
        XCTAssertEqual(AML.Resource.irqNoFlags(4), [0x22, 0x10, 0x00])
        XCTAssertEqual(AML.Resource.irqNoFlags(12), [0x22, 0x00, 0x10])
        XCTAssertEqual(AML.Resource.extendedInterrupt(5), [0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00],
                       "consumer, edge, active-high, exclusive")
        XCTAssertEqual(AML.Resource.extendedInterrupt(33, trigger: .level, polarity: .activeLow, sharing: .shared)[3], 0x0D)
        XCTAssertEqual(AML.Resource.memory32Fixed(base: 0xD000_0000, size: 0x1000),
                       [0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xD0, 0x00, 0x10, 0x00, 0x00])
        XCTAssertEqual(AML.Resource.memory(base: 0xFFFF_F000, size: 0x1000)[0], 0x86, "ends at 4 GiB: 32-bit")
        XCTAssertEqual(AML.Resource.memory(base: 0xFFFF_F000, size: 0x2000)[0], 0x8A, "crosses 4 GiB: QWord")
        XCTAssertEqual(AML.Resource.qwordMemory(base: 0x1_0000_0000, size: 0x1000).count, 46)
        XCTAssertEqual(AML.Resource.interrupt(4), AML.Resource.irqNoFlags(4))
        XCTAssertEqual(AML.Resource.interrupt(16), AML.Resource.extendedInterrupt(16))
        let template = AML.resourceTemplate([AML.Resource.io(port: 0x60, length: 1), AML.Resource.irqNoFlags(1)])
        XCTAssertEqual(Array(template[0..<4]), [0x11, 0x10, 0x0A, 13], "Buffer of 13 bytes")
        XCTAssertEqual(template[template.count - 2], 0x79, "End Tag")
        XCTAssertEqual(sum(Array(template[4...])), 0, "End Tag checksum zeroes the descriptors")
    }

    func testBootParamsCarryTheRSDP() throws {
        let image = try BzImage(ImageHeader(path: "bzImage", bytes: makeBzImage(version: 0x020F)))
        let without = BootParams.make(image: image, cmdlineAddress: 0x20000, initrd: nil, e820: [])
        XCTAssertEqual(readLE64(without, at: 0x70), 0)
        let with = BootParams.make(image: image, cmdlineAddress: 0x20000, initrd: nil, e820: [], acpiRSDP: 0xE_0000)
        XCTAssertEqual(readLE64(with, at: 0x70), 0xE_0000, "acpi_rsdp_addr")
        for i in 0..<with.count where !(0x70..<0x78).contains(i) { XCTAssertEqual(with[i], without[i], "only acpi_rsdp_addr differs at \(i)") }
    }

    // MARK: The real ACPICA disassembler

    /// Disassembles each table with `iasl -d`: no warnings or errors (checksums, names,
    /// resource descriptors), and the DSDT names what the devices need.
    func testACPICADisassembly() throws {
        guard let iasl = findExecutable("iasl") else {
            return XCTFail("iasl not found on PATH: install acpica-tools (apt-get install -y acpica-tools; ci/setup does)")
        }
        let tables = make(cpus: 4)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-acpi-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        var listings: [String: String] = [:]
        for table in [tables.xsdt, tables.fadt, tables.madt, tables.dsdt] {
            let name = signature(table).lowercased()
            try Data(table).write(to: dir.appendingPathComponent("\(name).dat"))
            let (status, output) = try run(iasl, ["-d", "\(name).dat"], in: dir)
            XCTAssertEqual(status, 0, "iasl -d \(name).dat:\n\(output)")
            let listing = try String(contentsOf: dir.appendingPathComponent("\(name).dsl"), encoding: .utf8)
            for word in ["Warning", "Error", "Incorrect", "Invalid", "Unknown"] {
                XCTAssertFalse(output.contains(word), "iasl says \(word) for \(name):\n\(output)")
                XCTAssertFalse(listing.contains(word), "\(name).dsl has \(word):\n\(listing)")
            }
            listings[name] = listing
        }
        let dsdt = try XCTUnwrap(listings["dsdt"])
        for expected in ["Scope (\\_SB)", "EisaId (\"PNP0303\")", "EisaId (\"PNP0501\")", "Name (_UID, One)",
                         "Name (_HID, \"LNRO0005\")", "Name (_CCA, One)", "Device (V000)", "Device (V001)", "Device (V002)",
                         "0x0060,", "0x0064,", "0x03F8,", "IRQNoFlags ()\n                    {1}", "IRQNoFlags ()\n                    {4}",
                         "EisaId (\"PNP0B00\")", "0x0070,", "IRQNoFlags ()\n                    {8}",
                         "Memory32Fixed (ReadWrite,\n                    0xD0000000,", "0xD0001000,", "0x00001000,", "0x00000200,",
                         "QWordMemory (ResourceConsumer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,",
                         "0x0000000120000000, // Range Minimum", "0x0000000120000FFF, // Range Maximum",
                         "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )",
                         "0x00000005,", "0x00000006,", "0x00000017,",
                         "Name (_S5, Package (0x02)  // _S5_: S5 System State\n    {\n        0x05, \n        Zero\n    })"] {
            XCTAssertTrue(dsdt.contains(expected), "DSDT disassembly lacks \(expected):\n\(dsdt)")
        }
        let fadt = try XCTUnwrap(listings["facp"])
        XCTAssertTrue(fadt.contains("Hardware Reduced (V5) : 1"), fadt)
        XCTAssertTrue(fadt.contains("8042 Present on ports 60/64 (V2) : 1"), fadt)
        XCTAssertTrue(fadt.contains("FADT Minor Revision : 05"), fadt)
        for register in ["Sleep Control Register", "Sleep Status Register"] {
            let gas = try XCTUnwrap(fadt.range(of: "\(register) : [Generic Address Structure]"), fadt)
            let after = fadt[gas.upperBound...].prefix(400)
            XCTAssertTrue(after.contains("Space ID : 01 [SystemIO]") && after.contains("Address : 0000000000000600"), String(after))
        }
        let madt = try XCTUnwrap(listings["apic"])
        XCTAssertEqual(madt.components(separatedBy: "[Processor Local APIC]").count - 1, 4, madt)
        XCTAssertEqual(madt.components(separatedBy: "[I/O APIC]").count - 1, 1, madt)

        // Compiling the listing back (without iasl's optimizations) gives our AML, byte for
        // byte, but for End Tag checksums: iasl writes 0 ("ignore"), Swiftlet the real sum.
        let (status, output) = try run(iasl, ["-oa", "-p", "recompiled", "dsdt.dsl"], in: dir)
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("0 Errors, 0 Warnings"), output)
        let recompiled = [UInt8](try Data(contentsOf: dir.appendingPathComponent("recompiled.aml")))
        let ours = tables.dsdt
        XCTAssertEqual(recompiled.count, ours.count)
        for i in 36..<min(ours.count, recompiled.count) where ours[i] != recompiled[i] {
            XCTAssertTrue(recompiled[i] == 0 && recompiled[i - 1] == 0x79, "AML differs from iasl's at \(i)")
        }
    }

    // MARK: Helpers

    private func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        return (0...(haystack.count - needle.count)).first { Array(haystack[$0..<$0 + needle.count]) == needle }
    }

    private func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let directories = path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/sbin"]
        return directories.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    private func run(_ executable: String, _ arguments: [String], in directory: URL) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
