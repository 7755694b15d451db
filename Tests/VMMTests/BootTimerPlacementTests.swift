import XCTest
@testable import ARM64
import Devices
import SwiftletCore
@testable import VMM
@testable import X86_64

/// Where `--boot-timer` puts the device on each machine, what firmware tables say of it
/// (nothing), and what its times are measured from.
final class BootTimerPlacementTests: XCTestCase {
    private func config(disks: Int, entropy: Bool = false, bootTimer: Bool = true) -> VMConfig {
        var config = VMConfig()
        for i in 0..<disks { config.disks.append(DiskConfig(id: "d\(i)", path: "/d\(i)")) }
        config.entropy = entropy
        config.bootTimer = bootTimer
        return config
    }

    /// x86_64: Firecracker's address, first in the MMIO window; the virtio windows start a
    /// page up (as Firecracker's do with the boot timer) and keep their interrupt lines.
    func testX86BootTimerTakesFirecrackersAddressAndTheVirtioWindowsMoveUp() throws {
        let devices = try X86Machine.devices(config(disks: 1, entropy: true))
        XCTAssertEqual(devices.first(.bootTimer), DeviceRecord(kind: .bootTimer, space: .mmio, base: 0xD000_0000, size: 0x1000, irq: nil))
        XCTAssertEqual(devices.virtioRecords.map { $0.base }, [0xD000_1000, 0xD000_2000])
        XCTAssertEqual(devices.virtioRecords.map { $0.irq }, [5, 6])
        XCTAssertEqual(devices.virtioCommandLine, "virtio_mmio.device=0x1000@0xd0001000:5 virtio_mmio.device=0x1000@0xd0002000:6")
        XCTAssertEqual(X86Machine.acpiDevices(devices), [
            .serial(port: 0x3F8, irq: 4),
            .keyboard(dataPort: 0x60, commandPort: 0x64, irq: 1),
            .rtc(port: 0x70, irq: 8),
            .sleepControl(port: 0x600, softOffType: 5),
            .virtioMMIO(base: 0xD000_1000, size: 0x1000, gsi: 5),
            .virtioMMIO(base: 0xD000_2000, size: 0x1000, gsi: 6),
        ], "the boot timer is not in the ACPI tables")
        // Every line still gets its window: 17 disks and the rng.
        let full = try X86Machine.devices(config(disks: 17, entropy: true))
        XCTAssertEqual(full.virtioRecords.last?.base, 0xD001_2000)
        XCTAssertThrowsError(try X86Machine.devices(config(disks: 18, entropy: true)))
        // Without --boot-timer nothing moves and there is no record.
        let plain = try X86Machine.devices(config(disks: 1, bootTimer: false))
        XCTAssertNil(plain.first(.bootTimer))
        XCTAssertEqual(plain.virtioRecords.map { $0.base }, [0xD000_0000])
    }

    /// arm64: RAM is where Firecracker's boot timer is (0x4000_0000), so a free page of
    /// QEMU virt's device region; the virtio-mmio slots do not move and the device tree
    /// has no node for it.
    func testARM64BootTimerSitsInAGapOfTheVirtMapAndIsNotInTheDeviceTree() throws {
        let devices = try ARM64Machine.devices(config(disks: 2))
        XCTAssertEqual(devices.first(.bootTimer), DeviceRecord(kind: .bootTimer, space: .mmio, base: 0x0B00_0000, size: 0x1000, irq: nil))
        XCTAssertEqual(devices.virtioRecords.map { $0.base }, [0x0A00_0000, 0x0A00_0200])
        XCTAssertLessThan(ARM64.Layout.bootTimer + BootTimer.size, ARM64.Layout.ramBase)
        XCTAssertGreaterThanOrEqual(ARM64.Layout.bootTimer,
                                    ARM64.Layout.virtioMMIO + UInt64(ARM64.Layout.virtioMMIOSlots) * ARM64.Layout.virtioMMIOStride)
        XCTAssertEqual(ARM64.Layout.bootTimer % 0x1_0000, 0, "64 KiB-aligned: /dev/mem maps it alone with 64 KiB pages")
        var tree = DeviceTreeConfig(cpus: 1, memorySize: 128 << 20, devices: devices.records)
        tree.bootargs = "console=ttyAMA0"
        let withTimer = try DeviceTree.generate(tree)
        tree.devices = try ARM64Machine.devices(config(disks: 2, bootTimer: false)).records
        XCTAssertEqual(withTimer, try DeviceTree.generate(tree), "the boot timer changes nothing in the device tree")
    }

    /// The help and the README give each machine's address; they must be the Layout's.
    func testTheHelpNamesTheLayoutsAddresses() throws {
        let x86 = "0x" + String(X86_64.Layout.bootTimer, radix: 16, uppercase: true)
        var arm = String(ARM64.Layout.bootTimer, radix: 16, uppercase: true)
        arm = "0x" + String(repeating: "0", count: 8 - arm.count) + arm
        XCTAssertTrue(RunOptions.usage.contains("x86_64: \(x86)"), x86)
        XCTAssertTrue(RunOptions.usage.contains("arm64: \(arm)"), arm)
        XCTAssertTrue(RunOptions.firecrackerUsage.contains("x86_64: \(x86)"))
        let readme = try String(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("README.md"), encoding: .utf8)
        XCTAssertTrue(readme.contains(x86), "README: \(x86)")
        XCTAssertTrue(readme.contains(arm), "README: \(arm)")
    }

    func testTheOriginIsTheProcessStartOrTheJailers() {
        let start = ProcessTimestamp(monotonicMicroseconds: 42_000, cpuMicroseconds: 0)
        XCTAssertEqual(BootTimeReport.origin(nil, processStart: start),
                       BootTimer.Origin(monotonicMicroseconds: 42_000, cpuMicroseconds: 0, earlierCPUMicroseconds: 0))
        let jailer = ProcessStartTimes(startTimeUs: 1_000, startCPUTimeUs: 20, parentCPUTimeUs: 300)
        XCTAssertEqual(BootTimeReport.origin(jailer, processStart: start),
                       BootTimer.Origin(monotonicMicroseconds: 1_000, cpuMicroseconds: 20, earlierCPUMicroseconds: 300))
        // Only some of the jailer's flags: the rest from this process.
        XCTAssertEqual(BootTimeReport.origin(ProcessStartTimes(parentCPUTimeUs: 5), processStart: start),
                       BootTimer.Origin(monotonicMicroseconds: 42_000, cpuMicroseconds: 0, earlierCPUMicroseconds: 5))
    }

    /// The process start comes from the C module's .init_array hook: before now, and not
    /// long before (this test process started at most a few minutes ago).
    func testProcessStartIsTakenBeforeMain() {
        let start = ProcessTimestamp.processStart
        let now = ProcessTimestamp.now()
        XCTAssertGreaterThan(start.monotonicMicroseconds, 0)
        XCTAssertLessThanOrEqual(start.monotonicMicroseconds, now.monotonicMicroseconds)
        XCTAssertLessThan(now.monotonicMicroseconds - start.monotonicMicroseconds, 3_600_000_000)
        XCTAssertEqual(start.cpuMicroseconds, 0)
    }
}
