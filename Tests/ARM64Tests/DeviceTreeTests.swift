import Foundation
import XCTest
@testable import ARM64
import SwiftletCore
import VMM

/// The generated DTB decompiles cleanly with dtc and matches the golden trees in DeviceTrees/.
final class DeviceTreeTests: XCTestCase {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The reference configurations, each with its golden file: what
    /// `swiftlet run --dump-dtb` writes for the same flags (ci/suite/arm64.sh checks that on
    /// real KVM), less the random chosen/rng-seed.
    static let references: [(name: String, config: DeviceTreeConfig)] = {
        var small = DeviceTreeConfig(cpus: 1, memorySize: 128 << 20)
        small.bootargs = "console=ttyAMA0"
        // --cpus 4 --memory 1024 with a 4 MiB initrd: it ends where the DTB's 2 MiB begin.
        var large = DeviceTreeConfig(cpus: 4, memorySize: 1 << 30)
        large.bootargs = "console=ttyAMA0 quiet"
        large.initrd = (start: 0x7FA0_0000, end: 0x7FE0_0000)
        // --cpus 2 --memory 256 --disk … --disk … --rng: two virtio-blk and a virtio-rng node.
        var vmConfig = VMConfig()
        vmConfig.disks = [DiskConfig(id: "root", path: "/root.img"), DiskConfig(id: "data", path: "/data.img", readOnly: true)]
        vmConfig.entropy = true
        var virtio = DeviceTreeConfig(cpus: 2, memorySize: 256 << 20, devices: (try? ARM64Machine.devices(vmConfig).records) ?? [])
        virtio.bootargs = "console=ttyAMA0 root=/dev/vda"
        return [("arm64-1cpu-128m", small), ("arm64-4cpu-1g-initrd", large), ("arm64-2disks-rng", virtio)]
    }()

    func testReferenceInitrdPlacementIsWhatTheBootPlanChooses() throws {
        let kernel = try ImageLoader.place(ImageHeader(path: "raw", bytes: [0x1F, 0x20, 0x03, 0xD5]), ramBase: Layout.ramBase, ramSize: 1 << 30)
        let plan = try BootPlan.make(kernel: kernel, initrdSize: 4 << 20, ramBase: Layout.ramBase, ramSize: 1 << 30)
        XCTAssertEqual(plan.initrd, 0x7FA0_0000..<0x7FE0_0000)
        XCTAssertEqual(plan.dtbAddress, 0x7FE0_0000)
    }

    func testRngSeedAndPMUNodes() throws {
        var config = DeviceTreeConfig(cpus: 2, memorySize: 256 << 20)
        config.rngSeed = Array(0..<32)
        config.pmu = true
        config.gic = .v2
        let (dts, warnings) = try decompile(try DeviceTree.generate(config))
        XCTAssertEqual(warnings, "")
        XCTAssertTrue(dts.contains("rng-seed = <0x10203 0x4050607"), dts)
        XCTAssertTrue(dts.contains("compatible = \"arm,armv8-pmuv3\""))
        XCTAssertTrue(dts.contains("compatible = \"arm,cortex-a15-gic\""))
        XCTAssertTrue(dts.contains("interrupts = <0x01 0x0d 0x304"), "GICv2 PPIs carry the CPU mask")
    }

    func testGoldenTrees() throws {
        for (name, config) in Self.references {
            let dtb = try DeviceTree.generate(config)
            let (dts, warnings) = try decompile(dtb)
            XCTAssertEqual(warnings, "", "\(name): dtc warnings")
            let golden = Self.repositoryRoot.appendingPathComponent("DeviceTrees/\(name).dts")
            if ProcessInfo.processInfo.environment["SWIFTLET_UPDATE_GOLDEN"] == "1" {
                try dts.write(to: golden, atomically: true, encoding: .utf8)
            }
            let expected = try String(contentsOf: golden, encoding: .utf8)
            XCTAssertEqual(dts, expected, "\(name): regenerate with SWIFTLET_UPDATE_GOLDEN=1 swift test --filter DeviceTreeTests and review the diff")
        }
    }

    func testMPIDRAffinity() {
        XCTAssertEqual(DeviceTree.mpidr(0), 0)
        XCTAssertEqual(DeviceTree.mpidr(15), 0xF)
        XCTAssertEqual(DeviceTree.mpidr(16), 0x100)
        XCTAssertEqual(DeviceTree.mpidr(122), 0x70A)
    }

    func testSizeIsWithinLinuxLimit() throws {
        var config = DeviceTreeConfig(cpus: Layout.maxVCPUs, memorySize: 64 << 30)
        config.bootargs = String(repeating: "x", count: 4000)
        let dtb = try DeviceTree.generate(config)
        XCTAssertLessThan(UInt64(dtb.count), Layout.maxDTBSize)
        XCTAssertEqual(Array(dtb[0..<4]), [0xD0, 0x0D, 0xFE, 0xED], "FDT magic")
    }

    func decompile(_ dtb: [UInt8]) throws -> (String, String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-dtc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("in.dtb"), output = directory.appendingPathComponent("out.dts")
        let errors = directory.appendingPathComponent("err")
        try Data(dtb).write(to: input)
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/dtc") else {
            throw NSError(domain: "dtc (device-tree-compiler) is not installed: run ci/setup", code: 1)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/dtc")
        process.arguments = ["-I", "dtb", "-O", "dts", "-o", output.path, input.path]
        process.standardError = try FileHandle(forWritingTo: errors)
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        return (try String(contentsOf: output, encoding: .utf8), try String(contentsOf: errors, encoding: .utf8))
    }
}
