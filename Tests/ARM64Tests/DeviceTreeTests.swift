import CLinux
import Foundation
import KVM
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
        // A GICv2 host (ci/nested --gic 2): --cpus 2 --memory 256, no ITS.
        var gicv2 = DeviceTreeConfig(cpus: 2, memorySize: 256 << 20)
        gicv2.bootargs = "console=ttyAMA0"
        gicv2.gic = .v2
        return [("arm64-1cpu-128m", small), ("arm64-4cpu-1g-initrd", large), ("arm64-2disks-rng", virtio),
                ("arm64-gicv2-2cpu-256m", gicv2)]
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

    /// The pmu node names the interrupt KVM is told to raise for the PMU (CPUFeatures gives
    /// KVM the INTID; PPIs are INTIDs 16-31), level-triggered, and on GICv2 with the mask
    /// of the CPUs (two here) in the flags.
    func testPMUInterruptIsTheOneKVMRaises() throws {
        XCTAssertEqual(CPUFeatures.pmuInterrupt, 23, "PPI 7, as on QEMU virt")
        let gicPPI: UInt32 = 1, levelHigh: UInt32 = 4
        for (gic, flags) in [(GICVersion.v3, levelHigh), (GICVersion.v2, 0b11 << 8 | levelHigh)] {
            var config = DeviceTreeConfig(cpus: 2, memorySize: 256 << 20)
            config.pmu = true
            config.gic = gic
            let dtb = try DeviceTree.generate(config)
            XCTAssertEqual(Self.string(Self.property(dtb, "/pmu", "compatible")), "arm,armv8-pmuv3", "\(gic)")
            XCTAssertEqual(Self.cells(Self.property(dtb, "/pmu", "interrupts")), [gicPPI, CPUFeatures.pmuInterrupt - 16, flags], "\(gic)")
        }
        XCTAssertNil(Self.property(try DeviceTree.generate(DeviceTreeConfig(cpus: 2, memorySize: 256 << 20)), "/pmu", "interrupts"),
                     "no pmu node without --pmu")
    }

    /// chosen/rng-seed as the machine fills it (the --dump-dtb path, which needs /dev/kvm to
    /// open like swiftlet run): 32 bytes of host entropy, new for every tree, so a constant
    /// or empty seed fails here.
    func testRngSeedIsFreshHostEntropyForEveryTree() throws {
        let kernel = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-dt-kernel-\(UUID().uuidString)")
        try Data([0x1F, 0x20, 0x03, 0xD5]).write(to: kernel)   // a raw binary: one NOP
        defer { try? FileManager.default.removeItem(at: kernel) }
        var config = VMConfig()
        config.kernelPath = kernel.path
        let system = try KVMSystem()
        let seeds = try (0..<2).map { _ in try XCTUnwrap(Self.property(try ARM64Machine.deviceTreeBlob(config, system: system), "/chosen", "rng-seed"),
                                                         "chosen/rng-seed is missing") }
        for seed in seeds {
            XCTAssertEqual(seed.count, 32, "a 256-bit seed")
            XCTAssertFalse(seed.allSatisfy { $0 == seed[0] }, "not a repeated byte: \(seed)")
        }
        XCTAssertNotEqual(seeds[0], seeds[1], "each tree gets its own seed")
    }

    func testGoldenTrees() throws {
        for (name, config) in Self.references {
            let dtb = try DeviceTree.generate(config)
            let (dts, warnings) = try decompile(dtb)
            XCTAssertEqual(warnings, "", "\(name): dtc warnings")
            let golden = Self.repositoryRoot.appendingPathComponent("DeviceTrees/\(name).dts")
            let expected = try? String(contentsOf: golden, encoding: .utf8)
            guard dts != expected else { continue }
            // Compared first, and a difference fails in update mode too: an update is a
            // change to review (git diff DeviceTrees/), never a pass.
            if ProcessInfo.processInfo.environment["SWIFTLET_UPDATE_GOLDEN"] == "1" {
                try dts.write(to: golden, atomically: true, encoding: .utf8)
                XCTFail("\(name): differed from its golden file; updated golden \(golden.path): review the diff, then run again without SWIFTLET_UPDATE_GOLDEN")
            } else {
                XCTAssertEqual(dts, expected ?? "", "\(name): regenerate with SWIFTLET_UPDATE_GOLDEN=1 swift test --filter DeviceTreeTests and review the diff")
            }
        }
    }

    /// The CMA pool scales with RAM so that a small guest keeps its memory for itself (a
    /// 128 MiB guest under Debian's default lost 64 MiB and could not unpack its initramfs).
    func testContiguousMemoryPoolScalesWithRAM() throws {
        let mib: UInt64 = 1 << 20
        XCTAssertNil(DeviceTree.contiguousMemoryPoolSize(memorySize: 2 * mib))
        XCTAssertNil(DeviceTree.contiguousMemoryPoolSize(memorySize: 63 * mib), "below 64 MiB: no pool")
        XCTAssertEqual(DeviceTree.contiguousMemoryPoolSize(memorySize: 64 * mib), 4 * mib)
        XCTAssertEqual(DeviceTree.contiguousMemoryPoolSize(memorySize: 128 * mib), 8 * mib)
        XCTAssertEqual(DeviceTree.contiguousMemoryPoolSize(memorySize: 200 * mib), 12 * mib, "whole 4 MiB blocks")
        XCTAssertEqual(DeviceTree.contiguousMemoryPoolSize(memorySize: 1024 * mib), 64 * mib)
        XCTAssertEqual(DeviceTree.contiguousMemoryPoolSize(memorySize: 64 * 1024 * mib), 64 * mib, "at most Linux's own default")

        let pool = "/reserved-memory/linux,cma"
        let small = try DeviceTree.generate(DeviceTreeConfig(cpus: 1, memorySize: 128 * mib))
        XCTAssertEqual(Self.string(Self.property(small, pool, "compatible")), "shared-dma-pool")
        XCTAssertEqual(Self.property(small, pool, "reusable"), [])
        XCTAssertEqual(Self.property(small, pool, "linux,cma-default"), [])
        XCTAssertEqual(Self.cells(Self.property(small, pool, "size")), [0, 0x80_0000])
        XCTAssertEqual(Self.cells(Self.property(small, pool, "alloc-ranges")), [0, 0x4000_0000, 0, 0x800_0000])
        let large = try DeviceTree.generate(DeviceTreeConfig(cpus: 1, memorySize: 8192 * mib))
        XCTAssertEqual(Self.cells(Self.property(large, pool, "alloc-ranges")), [0, 0x4000_0000, 0, 0xC000_0000],
                       "below 4 GiB, as Linux's default pool")
        XCTAssertNil(Self.property(try DeviceTree.generate(DeviceTreeConfig(cpus: 1, memorySize: 32 * mib)), pool, "size"))
    }

    /// The ITS is a child of the GICv3 node (arm,gic-v3.yaml), at Layout.gicITS, and only
    /// there: no node without an ITS, none under a GICv2.
    func testITSNode() throws {
        let intc = "/intc@8000000", its = "/intc@8000000/its@8080000"
        let dtb = try DeviceTree.generate(DeviceTreeConfig(cpus: 2, memorySize: 256 << 20))
        XCTAssertEqual(Self.string(Self.property(dtb, its, "compatible")), "arm,gic-v3-its")
        XCTAssertEqual(Self.property(dtb, its, "msi-controller"), [])
        XCTAssertEqual(Self.cells(Self.property(dtb, its, "#msi-cells")), [1])
        XCTAssertEqual(Self.cells(Self.property(dtb, its, "reg")), [0, 0x0808_0000, 0, 0x2_0000])
        XCTAssertEqual(Layout.gicITS + Layout.gicITSSize, Layout.gicRedistributors, "the ITS ends where the redistributors begin")
        XCTAssertEqual(Self.cells(Self.property(dtb, intc, "#address-cells")), [2])
        XCTAssertEqual(Self.cells(Self.property(dtb, intc, "#size-cells")), [2])
        XCTAssertEqual(Self.property(dtb, intc, "ranges"), [])
        var without = DeviceTreeConfig(cpus: 2, memorySize: 256 << 20)
        without.its = false
        XCTAssertNil(Self.property(try DeviceTree.generate(without), its, "compatible"), "no ITS node where KVM has no ITS")
        var v2 = DeviceTreeConfig(cpus: 2, memorySize: 256 << 20)
        v2.gic = .v2
        XCTAssertNil(Self.property(try DeviceTree.generate(v2), its, "compatible"), "no ITS under a GICv2")
        XCTAssertFalse(GICModel(version: .v2, its: true).its, "a GICv2 never has an ITS")
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

    /// The value of property `name` of the node at `path`, read with libfdt; nil if either is absent.
    static func property(_ dtb: [UInt8], _ path: String, _ name: String) -> [UInt8]? {
        dtb.withUnsafeBytes { raw -> [UInt8]? in
            let node = fdt_path_offset(raw.baseAddress, path)
            guard node >= 0 else { return nil }
            var length: Int32 = 0
            guard let value = fdt_getprop(raw.baseAddress, node, name, &length), length >= 0 else { return nil }
            return Array(UnsafeRawBufferPointer(start: value, count: Int(length)))
        }
    }

    /// A property's big-endian 32-bit cells.
    static func cells(_ value: [UInt8]?) -> [UInt32]? {
        guard let value, value.count % 4 == 0 else { return nil }
        return stride(from: 0, to: value.count, by: 4).map { value[$0..<$0 + 4].reduce(0) { $0 << 8 | UInt32($1) } }
    }

    /// A property holding one NUL-terminated string.
    static func string(_ value: [UInt8]?) -> String? {
        guard let value, value.last == 0 else { return nil }
        return String(decoding: value.dropLast(), as: UTF8.self)
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
