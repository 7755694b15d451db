import XCTest
@testable import X86_64
import KVM
import SwiftletCore

/// A synthetic bzImage: setup sectors with the boot header, then `payload` bytes.
func makeBzImage(version: UInt16 = 0x020F, xloadflags: UInt16 = 0x1, cmdlineSize: UInt32 = 2047,
                 initSize: UInt32 = 0x200_0000, initrdAddressMax: UInt32 = 0x7FFF_FFFF, setupSects: UInt8 = 4,
                 payload: Int = 0x1000) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: (Int(setupSects) + 1) * 512 + payload)
    bytes[0x1F1] = setupSects
    bytes[0x1FE] = 0x55; bytes[0x1FF] = 0xAA
    bytes[0x200] = 0xEB; bytes[0x201] = 0x6A               // jump over the header (header ends at 0x26C)
    bytes[0x202...0x205] = [0x48, 0x64, 0x72, 0x53]         // "HdrS"
    writeLE(UInt16(version), into: &bytes, at: 0x206)
    bytes[0x211] = 0x01                                      // LOADED_HIGH
    writeLE(initrdAddressMax, into: &bytes, at: 0x22C)                         // initrd_addr_max
    writeLE(UInt16(xloadflags), into: &bytes, at: 0x236)
    writeLE(UInt32(cmdlineSize), into: &bytes, at: 0x238)
    writeLE(UInt32(initSize), into: &bytes, at: 0x260)
    return bytes
}

final class BzImageTests: XCTestCase {
    func file(_ bytes: [UInt8], _ path: String = "bzImage") -> ImageHeader { ImageHeader(path: path, bytes: bytes) }

    func testParsesHeaderAndPayload() throws {
        let image = try BzImage(ImageHeader(path: "bzImage", bytes: makeBzImage()))
        XCTAssertEqual(image.setupSize, 5 * 512)
        XCTAssertEqual(image.cmdlineSize, 2047)
        XCTAssertEqual(image.payloadOffset, 5 * 512)
        XCTAssertEqual(image.payloadSize, 0x1000)
        XCTAssertEqual(image.headerEnd, 0x26C)
        XCTAssertEqual(image.footprint, 0x200_0000)
    }

    func testNotABzImage() {
        XCTAssertThrowsError(try X86BootPlan.make(kernel: file([UInt8](repeating: 0x90, count: 0x1000)), initrdSize: 10, cmdline: nil, lowRAMEnd: 1 << 28)) {
            XCTAssertEqual("\($0)", "--initrd needs a bzImage or vmlinux kernel; bzImage is a raw binary")
        }
        XCTAssertThrowsError(try BzImage(ImageHeader(path: "zeros", bytes: [UInt8](repeating: 0, count: 0x1000)))) {
            XCTAssertEqual("\($0)", "kernel zeros is not a bzImage (no \"HdrS\" boot header)")
        }
        XCTAssertThrowsError(try BzImage(ImageHeader(path: "old", bytes: makeBzImage(version: 0x0204)))) { XCTAssertTrue("\($0)".contains("boot protocol 2.4")) }
        XCTAssertThrowsError(try BzImage(ImageHeader(path: "i386", bytes: makeBzImage(xloadflags: 0)))) { XCTAssertTrue("\($0)".contains("no 64-bit entry point")) }
        // The setup sectors and not one byte of kernel after them; then a file cut inside
        // the setup sectors; one byte of kernel is enough to parse.
        XCTAssertThrowsError(try BzImage(ImageHeader(path: "cut", bytes: makeBzImage(payload: 0)))) {
            XCTAssertEqual("\($0)", "kernel cut is truncated: no kernel after the 2560-byte setup")
        }
        XCTAssertThrowsError(try BzImage(ImageHeader(path: "cut", bytes: Array(makeBzImage().prefix(3 * 512))))) {
            XCTAssertEqual("\($0)", "kernel cut is truncated: no kernel after the 2560-byte setup")
        }
        XCTAssertNoThrow(try BzImage(ImageHeader(path: "cut", bytes: makeBzImage(payload: 1))))
    }

    func testKernelTooLargeForMemory() {
        XCTAssertThrowsError(try X86BootPlan.make(kernel: file(makeBzImage(initSize: 0x1000_0000)), initrdSize: nil, cmdline: nil, lowRAMEnd: 128 << 20)) {
            XCTAssertEqual("\($0)", "kernel bzImage needs 257 MiB of guest memory; raise --memory")
        }
    }

    func testCmdlineLongerThanTheKernelAccepts() {
        let long = String(repeating: "a", count: 300)
        XCTAssertThrowsError(try X86BootPlan.make(kernel: file(makeBzImage(cmdlineSize: 255)), initrdSize: nil, cmdline: long, lowRAMEnd: 256 << 20)) {
            XCTAssertEqual("\($0)", "--cmdline is 300 bytes; this kernel accepts at most 255")
        }
        XCTAssertNoThrow(try X86BootPlan.make(kernel: file(makeBzImage(cmdlineSize: 2047)), initrdSize: nil, cmdline: long, lowRAMEnd: 256 << 20))
    }

    /// The initrd goes as high as the kernel can reach it (the end of low RAM, or
    /// initrd_addr_max when that is lower), page aligned, and never into the memory the
    /// kernel occupies from 1 MiB (init_size, 32 MiB here, so it must start at 33 MiB or above).
    func testInitrdGoesOnTopOfLowMemoryAboveTheKernel() throws {
        let kernelEnd: UInt64 = 0x10_0000 + 0x200_0000
        XCTAssertEqual(try BzImage(ImageHeader(path: "bzImage", bytes: makeBzImage())).footprint, 0x200_0000)

        // RAM ends first (initrd_addr_max is 2 GiB - 1).
        let plan = try X86BootPlan.make(kernel: file(makeBzImage()), initrdSize: 0x12345, cmdline: "console=ttyS0", lowRAMEnd: 256 << 20)
        let initrd = try XCTUnwrap(plan.initrd)
        let highest: UInt64 = ((256 << 20) - 0x12345) & ~0xFFF
        XCTAssertEqual(initrd, highest..<highest + 0x12345, "the highest page-aligned start that ends inside RAM")
        XCTAssertEqual(initrd.lowerBound % 4096, 0)
        XCTAssertLessThanOrEqual(initrd.upperBound, 256 << 20)
        XCTAssertGreaterThanOrEqual(initrd.lowerBound, kernelEnd, "above the kernel")
        XCTAssertEqual(plan.entry, 0x10_0200, "64-bit entry: startup_64 at load address + 0x200")
        XCTAssertEqual(plan.cmdline.last, 0)

        // initrd_addr_max (the highest address of the initrd's last byte) below the end of RAM.
        let capped = try XCTUnwrap(try X86BootPlan.make(kernel: file(makeBzImage(initrdAddressMax: 0x07FF_FFFF)),
                                                        initrdSize: 0x12345, cmdline: nil, lowRAMEnd: 256 << 20).initrd)
        XCTAssertEqual(capped.lowerBound, (0x0800_0000 - 0x12345) & ~0xFFF, "the highest page-aligned start below initrd_addr_max")
        XCTAssertLessThanOrEqual(capped.upperBound - 1, 0x07FF_FFFF, "its last byte at or below initrd_addr_max")
        XCTAssertGreaterThanOrEqual(capped.lowerBound, kernelEnd, "above the kernel")

        // The largest initrd that fits starts exactly where the kernel ends; a page more would
        // overlap the kernel. The same below initrd_addr_max (64 MiB - 1), though RAM has room.
        let refusal = "guest memory is too small for the kernel (32 MiB) and the initrd"
        for (addressMax, top) in [(UInt32(0x7FFF_FFFF), UInt64(256 << 20)), (UInt32(0x03FF_FFFF), UInt64(64 << 20))] {
            let image = file(makeBzImage(initrdAddressMax: addressMax))
            let largest = try XCTUnwrap(try X86BootPlan.make(kernel: image, initrdSize: top - kernelEnd, cmdline: nil, lowRAMEnd: 256 << 20).initrd)
            XCTAssertEqual(largest, kernelEnd..<top, "initrd_addr_max 0x\(String(addressMax, radix: 16))")
            XCTAssertThrowsError(try X86BootPlan.make(kernel: image, initrdSize: top - kernelEnd + 0x1000, cmdline: nil, lowRAMEnd: 256 << 20),
                                 "initrd_addr_max 0x\(String(addressMax, radix: 16)): one page over the kernel") {
                XCTAssertTrue("\($0)".hasPrefix(refusal), "\($0)")
            }
        }
        XCTAssertThrowsError(try X86BootPlan.make(kernel: file(makeBzImage()), initrdSize: 240 << 20, cmdline: nil, lowRAMEnd: 256 << 20)) {
            XCTAssertEqual("\($0)", refusal + " (240 MiB); raise --memory")
        }
    }

    func testBootParams() throws {
        let image = try BzImage(ImageHeader(path: "bzImage", bytes: makeBzImage()))
        let e820 = BootParams.e820(ram: [.init(guestBase: 0, size: 0xC000_0000), .init(guestBase: 0x1_0000_0000, size: 1 << 30)])
        XCTAssertEqual(e820, [
            E820Entry(address: 0, size: 0x9_FC00, kind: .ram),
            E820Entry(address: 0x9_FC00, size: 0x6_0400, kind: .reserved),
            E820Entry(address: 0x10_0000, size: 0xC000_0000 - 0x10_0000, kind: .ram),
            E820Entry(address: 0x1_0000_0000, size: 1 << 30, kind: .ram),
        ])
        let page = BootParams.make(image: image, cmdlineAddress: 0x20000, initrd: 0x0F00_0000..<0x0F01_0000, e820: e820)
        XCTAssertEqual(page.count, 4096)
        XCTAssertEqual(Array(page[0x202..<0x206]), Array("HdrS".utf8), "setup header copied")
        XCTAssertEqual(page[0x210], 0xFF, "type_of_loader")
        XCTAssertEqual(page[0x211] & 0x81, 0x81, "LOADED_HIGH | CAN_USE_HEAP")
        XCTAssertEqual(readLE32(page, at: 0x228), 0x20000)
        XCTAssertEqual(readLE32(page, at: 0x218), 0x0F00_0000)
        XCTAssertEqual(readLE32(page, at: 0x21C), 0x1_0000)
        XCTAssertEqual(page[0x1E8], 4)
        XCTAssertEqual(readLE32(page, at: 0x2D0 + 20 + 16), 2, "second entry reserved")
    }
}

final class MPTableTests: XCTestCase {
    func testChecksumsAndEntries() {
        let table = MPTable.make(cpus: 2, at: 0x9_FC00)
        XCTAssertEqual(Array(table[0..<4]), Array("_MP_".utf8))
        XCTAssertEqual(readLE32(table, at: 4), 0x9_FC10, "points at the configuration table")
        XCTAssertEqual(table[0..<16].reduce(UInt8(0), &+), 0, "floating pointer checksum")
        let config = Array(table[16...])
        XCTAssertEqual(Array(config[0..<4]), Array("PCMP".utf8))
        XCTAssertEqual(Int(config[4]) | Int(config[5]) << 8, config.count)
        XCTAssertEqual(config.reduce(UInt8(0), &+), 0, "configuration table checksum")
        // 2 processors + bus + I/O APIC + 24 interrupts (every I/O APIC pin) + 2 local interrupts.
        XCTAssertEqual(Int(config[34]), 30)
        XCTAssertEqual(config[44], 0, "first entry: processor")
        XCTAssertEqual(config[47], 3, "BSP enabled")
        XCTAssertEqual(config[44 + 20 + 3], 1, "AP enabled, not BSP")
        XCTAssertLessThan(table.count, 1024, "fits the EBDA's last KiB")
    }
}

final class CPUIDTests: XCTestCase {
    func testTopologyPerVCPU() {
        let supported = [CPUIDLeaf(function: 0, eax: 0xD), CPUIDLeaf(function: 1, ebx: 0xFFFF_FFFF, ecx: 0x1, edx: 0),
                         CPUIDLeaf(function: 0xB, index: 0), CPUIDLeaf(function: 0xB, index: 1)]
        let leaves = CPUID.forVCPU(supported, index: 3, count: 4)
        XCTAssertEqual(leaves[0], supported[0], "other leaves untouched")
        XCTAssertEqual(leaves[1].ebx >> 24, 3, "APIC id")
        XCTAssertEqual((leaves[1].ebx >> 16) & 0xFF, 4, "logical processors")
        XCTAssertNotEqual(leaves[1].ecx & (1 << 31), 0, "hypervisor bit")
        XCTAssertNotEqual(leaves[1].edx & (1 << 28), 0, "HTT with more than one CPU")
        XCTAssertEqual(leaves[2].edx, 3, "x2APIC id")
        XCTAssertEqual(leaves[3].ebx, 4, "cores at level 1")
        XCTAssertEqual(leaves[3].eax, 2, "APIC id shift for 4 cores")
        XCTAssertEqual(CPUID.forVCPU(supported, index: 0, count: 1)[1].edx & (1 << 28), 0)
    }
}
