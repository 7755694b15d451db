import XCTest
@testable import ARM64
import SwiftletCore

final class ImageLoaderTests: XCTestCase {
    let ramBase: UInt64 = 0x4000_0000

    /// A synthetic arm64 Image header (booting.rst) followed by `body` bytes.
    func image(textOffset: UInt64 = 0, imageSize: UInt64 = 0x20_0000, flags: UInt64 = 0xA, fileSize: Int = 4096) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: fileSize)
        writeLE(textOffset, into: &bytes, at: 8)
        writeLE(imageSize, into: &bytes, at: 16)
        writeLE(flags, into: &bytes, at: 24)
        bytes[56] = 0x41; bytes[57] = 0x52; bytes[58] = 0x4D; bytes[59] = 0x64   // "ARM\x64"
        return bytes
    }

    func testImageLoadsAtTextOffsetFromA2MiBAlignedBase() throws {
        let placement = try ImageLoader.place(ImageHeader(path: "Image", bytes: image(textOffset: 0x8_0000)), ramBase: ramBase, ramSize: 64 << 20)
        XCTAssertTrue(placement.isImage)
        XCTAssertEqual(placement.loadAddress, 0x4008_0000)
        XCTAssertEqual(placement.entry, 0x4008_0000)
        XCTAssertEqual(placement.footprint, 0x20_0000)
        let zeroOffset = try ImageLoader.place(ImageHeader(path: "Image", bytes: image()), ramBase: ramBase, ramSize: 64 << 20)
        XCTAssertEqual(zeroOffset.loadAddress, ramBase)
    }

    func testRawBinaryLoadsAt512KiB() throws {
        let placement = try ImageLoader.place(ImageHeader(path: "raw", bytes: [0x1F, 0x20, 0x03, 0xD5]), ramBase: ramBase, ramSize: 16 << 20)
        XCTAssertFalse(placement.isImage)
        XCTAssertEqual(placement.loadAddress, ramBase + 0x8_0000)
        XCTAssertEqual(placement.footprint, 4)
    }

    func testBadImagesAreRefused() {
        XCTAssertThrowsError(try ImageLoader.place(ImageHeader(path: "empty", bytes: []), ramBase: ramBase, ramSize: 16 << 20)) {
            XCTAssertEqual("\($0)", "kernel empty is empty")
        }
        XCTAssertThrowsError(try ImageLoader.place(ImageHeader(path: "be", bytes: image(flags: 1)), ramBase: ramBase, ramSize: 64 << 20)) {
            XCTAssertTrue("\($0)".contains("big-endian"))
        }
        XCTAssertThrowsError(try ImageLoader.place(ImageHeader(path: "odd", bytes: image(textOffset: 0x123)), ramBase: ramBase, ramSize: 64 << 20)) {
            XCTAssertTrue("\($0)".contains("bad arm64 Image header"))
        }
        XCTAssertThrowsError(try ImageLoader.place(ImageHeader(path: "small", bytes: image(imageSize: 100, fileSize: 4096)), ramBase: ramBase, ramSize: 64 << 20)) {
            XCTAssertTrue("\($0)".contains("image_size 100"))
        }
    }

    func testImageLargerThanMemoryIsRefused() {
        XCTAssertThrowsError(try ImageLoader.place(ImageHeader(path: "big", bytes: image(imageSize: 40 << 20)), ramBase: ramBase, ramSize: 32 << 20)) {
            XCTAssertEqual("\($0)", "kernel big needs 40 MiB of guest memory from the RAM base, but the guest has 32 MiB (raise --memory)")
        }
    }

    func testTruncatedEFIStubImageIsCaught() {
        var bytes = image(imageSize: 0x100_0000, fileSize: 0x2000)
        bytes[0] = 0x4D; bytes[1] = 0x5A                     // "MZ"
        bytes[0x3C] = 0x40                                   // PE header at 0x40
        bytes[0x40] = 0x50; bytes[0x41] = 0x45               // "PE\0\0"
        bytes[0x46] = 1                                      // one section
        bytes[0x54] = 0                                      // no optional header
        let section = 0x40 + 24
        writeLE(UInt32(0x10_0000), into: &bytes, at: section + 16)                       // SizeOfRawData: 1 MiB
        writeLE(UInt32(0x1000), into: &bytes, at: section + 20)                          // PointerToRawData
        XCTAssertEqual(ImageLoader.peFileSize(bytes, fileSize: UInt64(bytes.count)), 0x10_1000)
        XCTAssertThrowsError(try ImageLoader.place(ImageHeader(path: "cut", bytes: bytes), ramBase: ramBase, ramSize: 64 << 20)) {
            XCTAssertTrue("\($0)".hasPrefix("kernel cut is truncated"), "\($0)")
        }
        writeLE(UInt32(0x1000), into: &bytes, at: section + 16)
        XCTAssertNoThrow(try ImageLoader.place(ImageHeader(path: "whole", bytes: bytes), ramBase: ramBase, ramSize: 64 << 20))
    }

    func testCraftedHeadersAreRefusedWithoutTrapping() {
        func refused(_ header: ImageHeader, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try ImageLoader.place(header, ramBase: ramBase, ramSize: 64 << 20), file: file, line: line) {
                XCTAssertTrue("\($0)".contains(expected), "\($0)", file: file, line: line)
            }
        }
        refused(ImageHeader(path: "max", bytes: image(imageSize: .max)), "raise --memory")
        refused(ImageHeader(path: "max-1", bytes: image(textOffset: 0x1F_F000, imageSize: .max - 0x1000)), "raise --memory")
        refused(ImageHeader(path: "offset", bytes: image(textOffset: .max & ~0xFFF)), "text_offset")
        refused(ImageHeader(path: "raw-huge", bytes: [0x1F, 0x20], fileSize: .max), "raise --memory")
        // A header claiming a file far larger than the bytes at hand: the size, not the bytes, counts.
        refused(ImageHeader(path: "sparse", bytes: image(imageSize: 0), fileSize: 1 << 40), "raise --memory")
        var pe = image(imageSize: 0x100_0000, fileSize: 0x2000)
        pe[0] = 0x4D; pe[1] = 0x5A
        writeLE(UInt32(0xFFFF_FFF0), into: &pe, at: 0x3C)   // PE header offset past everything
        XCTAssertNil(ImageLoader.peFileSize(pe, fileSize: UInt64(pe.count)))
        writeLE(UInt32(0x40), into: &pe, at: 0x3C)
        pe[0x40] = 0x50; pe[0x41] = 0x45
        writeLE(UInt16(0xFFFF), into: &pe, at: 0x46)         // 65535 sections
        writeLE(UInt16(0xFFFF), into: &pe, at: 0x54)         // optional header past the bytes read
        XCTAssertEqual(ImageLoader.peFileSize(pe, fileSize: UInt64(pe.count)), UInt64(0x40 + 24 + 0xFFFF + 40))
        XCTAssertEqual(ImageLoader.peFileSize(pe, fileSize: 1 << 30), 0, "sections beyond the header read are not judged")
        refused(ImageHeader(path: "pe", bytes: pe), "is truncated")
        XCTAssertThrowsError(try BootPlan.make(kernel: KernelPlacement(loadAddress: .max, entry: 0, footprint: .max, isImage: true),
                                               initrdSize: .max, ramBase: .max, ramSize: .max))
    }

    func testBootPlanPutsDTBOnTopAndInitrdBelowIt() throws {
        let kernel = try ImageLoader.place(ImageHeader(path: "Image", bytes: image(textOffset: 0x8_0000)), ramBase: ramBase, ramSize: 64 << 20)
        let plan = try BootPlan.make(kernel: kernel, initrdSize: 0x12345, ramBase: ramBase, ramSize: 64 << 20)
        XCTAssertEqual(plan.dtbAddress, ramBase + (62 << 20))
        XCTAssertEqual(plan.dtbAddress % 8, 0)
        let initrd = try XCTUnwrap(plan.initrd)
        XCTAssertEqual(initrd.lowerBound % 4096, 0)
        XCTAssertEqual(initrd.count, 0x12345)
        XCTAssertLessThanOrEqual(initrd.upperBound, plan.dtbAddress)
        XCTAssertGreaterThanOrEqual(initrd.lowerBound, kernel.loadAddress + kernel.footprint)
    }

    func testMemoryTooSmallForKernelAndInitrd() throws {
        let kernel = try ImageLoader.place(ImageHeader(path: "Image", bytes: image(imageSize: 20 << 20)), ramBase: ramBase, ramSize: 32 << 20)
        XCTAssertNoThrow(try BootPlan.make(kernel: kernel, initrdSize: 9 << 20, ramBase: ramBase, ramSize: 32 << 20))
        XCTAssertThrowsError(try BootPlan.make(kernel: kernel, initrdSize: 11 << 20, ramBase: ramBase, ramSize: 32 << 20)) {
            XCTAssertTrue("\($0)".contains("too small for the kernel (20 MiB), the initrd (11 MiB)"), "\($0)")
        }
        XCTAssertThrowsError(try BootPlan.make(kernel: kernel, initrdSize: nil, ramBase: ramBase, ramSize: 21 << 20))
    }
}

final class CPUFeaturesTests: XCTestCase {
    func testFeaturesNeedKVMCapabilities() throws {
        var config = VMConfig()
        XCTAssertEqual(try CPUFeatures.requested(config, check: { _ in 0 }), [])
        config.pmu = true
        config.sve = true
        config.pointerAuthentication = true
        XCTAssertEqual(try CPUFeatures.requested(config, check: { _ in 1 }), [3, 4, 5, 6])
        XCTAssertThrowsError(try CPUFeatures.requested(config, check: { $0 == 126 ? 0 : 1 })) {
            XCTAssertEqual("\($0)", "--pmu: this host's KVM has no PMUv3 for guests (KVM_CAP_ARM_PMU_V3)")
        }
        config.pmu = false
        XCTAssertThrowsError(try CPUFeatures.requested(config, check: { $0 == 172 ? 0 : 1 })) {
            XCTAssertTrue("\($0)".hasPrefix("--pauth: this host's KVM has no pointer authentication"))
        }
    }
}
