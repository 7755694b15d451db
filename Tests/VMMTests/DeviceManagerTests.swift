import Foundation
import XCTest
@testable import ARM64
import SwiftletCore
@testable import VMM
@testable import X86_64

/// The device manager hands out windows and lines without overlap, and every firmware
/// table (arm64 device tree, x86 ACPI and command line) comes from its records.
final class DeviceManagerTests: XCTestCase {
    func config(disks: Int, entropy: Bool) -> VMConfig {
        var config = VMConfig()
        for i in 0..<disks { config.disks.append(DiskConfig(id: "d\(i)", path: "/d\(i)")) }
        config.entropy = entropy
        return config
    }

    func testARM64WindowsAndLinesFollowQEMUVirt() throws {
        let devices = try ARM64Machine.devices(config(disks: 2, entropy: true))
        XCTAssertEqual(devices.records.map { $0.kind }, [.pl011, .pl031, .pl061, .virtioBlock(disk: 0), .virtioBlock(disk: 1), .virtioEntropy])
        XCTAssertEqual(devices.virtioRecords.map { $0.base }, [0x0A00_0000, 0x0A00_0200, 0x0A00_0400])
        XCTAssertEqual(devices.virtioRecords.map { $0.irq }, [16, 17, 18])
        XCTAssertEqual(devices.first(.pl011)?.irq, 1)
    }

    func testX86WindowsAndLines() throws {
        let devices = try X86Machine.devices(config(disks: 1, entropy: true))
        XCTAssertEqual(devices.virtioRecords.map { $0.base }, [0xD000_0000, 0xD000_1000])
        XCTAssertEqual(devices.virtioRecords.map { $0.irq }, [5, 6])
        XCTAssertEqual(devices.virtioCommandLine, "virtio_mmio.device=0x1000@0xd0000000:5 virtio_mmio.device=0x1000@0xd0001000:6")
        XCTAssertEqual(devices.first(.serial16550)?.base, 0x3F8)
    }

    func testNoOverlapsNoSharedLinesAndTooManyDevices() throws {
        var manager = DeviceManager(virtio: VirtioSlots(base: 0x1000, stride: 0x100, irqs: [5, 6]))
        try manager.addFixed(.cmos, .pio, base: 0x70, size: 2, irq: nil)
        XCTAssertThrowsError(try manager.addFixed(.i8042, .pio, base: 0x71, size: 4, irq: 1), "overlapping ports")
        try manager.addFixed(.i8042, .mmio, base: 0x71, size: 4, irq: 1)   // other address space: fine
        XCTAssertThrowsError(try manager.addFixed(.serial16550, .pio, base: 0x3F8, size: 8, irq: 1), "shared line")
        XCTAssertThrowsError(try manager.addFixed(.serial16550, .pio, base: UInt64.max, size: 8, irq: 4), "wraps")
        try manager.addVirtio(.virtioEntropy)
        try manager.addVirtio(.virtioBlock(disk: 0))
        XCTAssertThrowsError(try manager.addVirtio(.virtioBlock(disk: 1))) { error in
            XCTAssertEqual("\(error)", "too many virtio devices: this machine has 2 virtio-mmio slots")
            XCTAssertTrue((error as! SwiftletError).isBadInput)
        }
        XCTAssertThrowsError(try ARM64Machine.devices(config(disks: 33, entropy: false)))
        XCTAssertThrowsError(try X86Machine.devices(config(disks: 18, entropy: true)), "18 pins (5-23 but 8), 19 devices")
        XCTAssertNoThrow(try X86Machine.devices(config(disks: 17, entropy: true)))
        for machine in [try ARM64Machine.devices(config(disks: 31, entropy: true)), try X86Machine.devices(config(disks: 17, entropy: true))] {
            let records = machine.records
            for (i, a) in records.enumerated() {
                for b in records[(i + 1)...] {
                    if a.space == b.space { XCTAssertTrue(a.last < b.base || b.last < a.base, "\(a) overlaps \(b)") }
                    if let irq = a.irq { XCTAssertNotEqual(irq, b.irq, "\(a) and \(b) share a line") }
                }
            }
        }
    }

    func testDeviceTreeNodesComeFromTheRecords() throws {
        let devices = try ARM64Machine.devices(config(disks: 2, entropy: true))
        let dtb = try DeviceTree.generate(DeviceTreeConfig(cpus: 1, memorySize: 128 << 20, devices: devices.records))
        let dts = try decompile(dtb)
        for record in devices.virtioRecords {
            let node = "virtio_mmio@\(String(record.base, radix: 16))"
            XCTAssertTrue(dts.contains(node), node)
            XCTAssertTrue(dts.contains("interrupts = <0x00 0x\(String(record.irq!, radix: 16)) 0x01>"), "\(node): edge-rising SPI")
        }
        XCTAssertEqual(dts.components(separatedBy: "compatible = \"virtio,mmio\"").count - 1, 3)
        XCTAssertEqual(dts.components(separatedBy: "dma-coherent").count - 1, 3)
        // Without a PL011 record there is no console to point at, and no power key without the PL061.
        let bare = try decompile(try DeviceTree.generate(DeviceTreeConfig(cpus: 1, memorySize: 128 << 20, devices: devices.virtioRecords)))
        XCTAssertFalse(bare.contains("stdout-path"))
        XCTAssertFalse(bare.contains("gpio-keys"))
    }

    func testACPIAndCommandLineComeFromTheRecords() throws {
        let devices = try X86Machine.devices(config(disks: 2, entropy: false))
        XCTAssertEqual(X86Machine.acpiDevices(devices), [
            .serial(port: 0x3F8, irq: 4),
            .keyboard(dataPort: 0x60, commandPort: 0x64, irq: 1),
            .rtc(port: 0x70, irq: 8),
            .sleepControl(port: 0x600, softOffType: 5),
            .virtioMMIO(base: 0xD000_0000, size: 0x1000, gsi: 5),
            .virtioMMIO(base: 0xD000_1000, size: 0x1000, gsi: 6),
        ])
        let header = try Self.minimalBzImage()
        let plan = try X86BootPlan.make(kernel: header, initrdSize: nil, cmdline: "console=ttyS0",
                                        deviceArguments: devices.virtioCommandLine, lowRAMEnd: 256 << 20)
        XCTAssertEqual(String(decoding: plan.cmdline.dropLast(), as: UTF8.self),
                       "console=ttyS0 virtio_mmio.device=0x1000@0xd0000000:5 virtio_mmio.device=0x1000@0xd0001000:6")
        // The machine's own arguments: no PCI (unless the user says otherwise), then the devices.
        XCTAssertEqual(X86BootPlan.machineArguments(cmdline: "console=ttyS0", devices: devices.virtioCommandLine),
                       "pci=off virtio_mmio.device=0x1000@0xd0000000:5 virtio_mmio.device=0x1000@0xd0001000:6")
        XCTAssertEqual(X86BootPlan.machineArguments(cmdline: "console=ttyS0 pci=noacpi", devices: ""), "")
        XCTAssertEqual(X86BootPlan.machineArguments(cmdline: "", devices: ""), "pci=off")
    }

    /// A bzImage header as X86BootPlan needs it: protocol 2.15, 64-bit entry, 1 MiB init_size.
    static func minimalBzImage() throws -> ImageHeader {
        var bytes = [UInt8](repeating: 0, count: 5 * 512 + 0x1000)
        bytes[0x1F1] = 4                                        // setup_sects
        bytes[0x1FE] = 0x55; bytes[0x1FF] = 0xAA
        bytes[0x200] = 0xEB; bytes[0x201] = 0x6A
        bytes.replaceSubrange(0x202..<0x206, with: Array("HdrS".utf8))
        bytes[0x206] = 0x0F; bytes[0x207] = 0x02                // version 2.15
        bytes[0x211] = 1                                        // loadflags: LOADED_HIGH
        bytes.replaceSubrange(0x22C..<0x230, with: [0xFF, 0xFF, 0xFF, 0x7F])   // initrd_addr_max
        bytes[0x236] = 1                                        // xloadflags: XLF_KERNEL_64
        bytes[0x238] = 0xFF; bytes[0x239] = 0x07                // cmdline_size 2047
        bytes[0x262] = 0x10                                     // init_size 1 MiB
        return ImageHeader(path: "bzImage", bytes: bytes)
    }

    func decompile(_ dtb: [UInt8]) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-dm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("t.dtb")
        try Data(dtb).write(to: input)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/dtc")
        process.arguments = ["-I", "dtb", "-O", "dts", input.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: output, as: UTF8.self)
    }
}
