import Foundation
import XCTest
@testable import X86_64
import SwiftletCore
import VMM

/// One program header of a crafted ELF: PT_LOAD unless `type` says otherwise.
struct ProgramHeader {
    var type: UInt32 = 1
    var offset: UInt64
    var fileSize: UInt64
    var address: UInt64
    var memorySize: UInt64
}

/// A small x86_64 ELF executable shaped like Linux's vmlinux: the ELF-64 header, the program
/// headers right after it (e_phoff 64), then `fileSize` bytes of file in all, each byte
/// its offset's low byte so a test can tell which file bytes went where.
func makeVmlinux(_ headers: [ProgramHeader], entry: UInt64 = 0x100_0000, fileSize: Int = 0x4000,
                 elfClass: UInt8 = 2, data: UInt8 = 1, type: UInt16 = 2, machine: UInt16 = 62,
                 phoff: UInt64 = 64, phentsize: UInt16 = 56, phnum: UInt16? = nil) -> [UInt8] {
    var bytes = (0..<fileSize).map { UInt8(truncatingIfNeeded: $0) }
    bytes[0..<64] = ArraySlice(repeating: 0, count: 64)
    bytes[0...3] = [0x7F, 0x45, 0x4C, 0x46]
    bytes[4] = elfClass; bytes[5] = data; bytes[6] = 1
    writeLE(type, into: &bytes, at: 0x10)
    writeLE(machine, into: &bytes, at: 0x12)
    writeLE(UInt32(1), into: &bytes, at: 0x14)
    writeLE(entry, into: &bytes, at: 0x18)
    writeLE(phoff, into: &bytes, at: 0x20)
    writeLE(UInt16(64), into: &bytes, at: 0x34)
    writeLE(phentsize, into: &bytes, at: 0x36)
    writeLE(phnum ?? UInt16(headers.count), into: &bytes, at: 0x38)
    for (i, header) in headers.enumerated() {
        let at = 64 + i * 56
        guard at + 56 <= bytes.count else { break }
        bytes[at..<(at + 56)] = ArraySlice(repeating: 0, count: 56)
        writeLE(header.type, into: &bytes, at: at)
        writeLE(UInt32(5), into: &bytes, at: at + 4)                                   // p_flags R+X
        writeLE(header.offset, into: &bytes, at: at + 0x08)
        writeLE(0xFFFF_FFFF_8000_0000 &+ header.address, into: &bytes, at: at + 0x10)  // p_vaddr
        writeLE(header.address, into: &bytes, at: at + 0x18)
        writeLE(header.fileSize, into: &bytes, at: at + 0x20)
        writeLE(header.memorySize, into: &bytes, at: at + 0x28)
        writeLE(UInt64(0x20_0000), into: &bytes, at: at + 0x30)
    }
    return bytes
}

/// Text at 16 MiB entered at its start, data at 18 MiB with a zero-filled tail, and a PT_NOTE
/// (which is not loaded), listed out of address order as a linker may.
let goodSegments = [
    ProgramHeader(offset: 0x2000, fileSize: 0x1000, address: 0x120_0000, memorySize: 0x3000),
    ProgramHeader(offset: 0x1000, fileSize: 0x1000, address: 0x100_0000, memorySize: 0x1000),
    ProgramHeader(type: 4, offset: 0x3000, fileSize: 0x18, address: 0, memorySize: 0x18),
]

final class VmlinuxTests: XCTestCase {
    func header(_ bytes: [UInt8], fileSize: UInt64? = nil) -> ImageHeader {
        ImageHeader(path: "vmlinux", bytes: bytes, fileSize: fileSize ?? UInt64(bytes.count))
    }

    func plan(_ bytes: [UInt8], initrd: UInt64? = nil, cmdline: String? = nil, ram: UInt64 = 256 << 20) throws -> X86BootPlan {
        try X86BootPlan.make(kernel: header(bytes), initrdSize: initrd, cmdline: cmdline, lowRAMEnd: ram)
    }

    func refusal(_ bytes: [UInt8], ram: UInt64 = 256 << 20, fileSize: UInt64? = nil, cmdline: String? = nil,
                 file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try X86BootPlan.make(kernel: header(bytes, fileSize: fileSize), initrdSize: nil, cmdline: cmdline, lowRAMEnd: ram)
            XCTFail("accepted", file: file, line: line)
            return ""
        } catch let error as SwiftletError {
            XCTAssertTrue(error.isBadInput, "bad input: exit status 2", file: file, line: line)
            return "\(error)"
        } catch {
            XCTFail("\(error)", file: file, line: line)
            return ""
        }
    }

    func testGoodVmlinuxPlan() throws {
        let plan = try plan(makeVmlinux(goodSegments), initrd: 0x12345, cmdline: "console=ttyS0")
        XCTAssertEqual(plan.format, .vmlinux)
        XCTAssertNil(plan.bzImage)
        XCTAssertEqual(plan.entry, 0x100_0000, "e_entry, startup_64's physical address")
        XCTAssertEqual(plan.segments, [
            KernelSegment(fileOffset: 0x1000, fileSize: 0x1000, address: 0x100_0000, memorySize: 0x1000),
            KernelSegment(fileOffset: 0x2000, fileSize: 0x1000, address: 0x120_0000, memorySize: 0x3000),
        ], "PT_LOAD only, by address, at p_paddr (not p_vaddr)")
        let initrd = try XCTUnwrap(plan.initrd)
        XCTAssertEqual(initrd.lowerBound, ((256 << 20) - 0x12345) & ~0xFFF, "on top of low RAM")
        XCTAssertEqual(String(decoding: plan.cmdline.dropLast(), as: UTF8.self), "console=ttyS0")
    }

    func testInitrdStaysAboveTheSegments() throws {
        let end: UInt64 = 0x120_3000
        let largest = try XCTUnwrap(try plan(makeVmlinux(goodSegments), initrd: (32 << 20) - end, ram: 32 << 20).initrd)
        XCTAssertEqual(largest, end..<(32 << 20))
        XCTAssertThrowsError(try plan(makeVmlinux(goodSegments), initrd: (32 << 20) - end + 0x1000, ram: 32 << 20)) {
            XCTAssertTrue("\($0)".hasPrefix("guest memory is too small for the kernel"), "\($0)")
        }
        // Not above initrd_addr_max's default (2 GiB - 1) however much RAM there is.
        let high = try XCTUnwrap(try plan(makeVmlinux(goodSegments), initrd: 0x1000, ram: 3 << 30).initrd)
        XCTAssertEqual(high, (0x8000_0000 - 0x1000)..<0x8000_0000)
    }

    func testBootParamsForVmlinux() throws {
        let plan = try plan(makeVmlinux(goodSegments), initrd: 0x10_0000)
        let e820 = BootParams.e820(ram: [.init(guestBase: 0, size: 256 << 20)])
        let page = BootParams.make(vmlinux: plan.setupHeader, cmdlineAddress: 0x2_0000, initrd: plan.initrd, e820: e820, acpiRSDP: 0xE_0000)
        XCTAssertEqual(page.count, 4096)
        XCTAssertEqual(readLE16(page, at: 0x1FE), 0xAA55, "boot_flag")
        XCTAssertEqual(Array(page[0x202..<0x206]), Array("HdrS".utf8), "header")
        XCTAssertGreaterThanOrEqual(readLE16(page, at: 0x206), 0x020C, "version: 64-bit boot protocol")
        XCTAssertEqual(page[0x210], 0xFF, "type_of_loader: undefined")
        XCTAssertEqual(page[0x211] & 0x01, 0x01, "loadflags: LOADED_HIGH")
        XCTAssertEqual(readLE32(page, at: 0x228), 0x2_0000, "cmd_line_ptr")
        XCTAssertEqual(readLE32(page, at: 0x238), 2047, "cmdline_size")
        XCTAssertEqual(readLE32(page, at: 0x22C), 0x7FFF_FFFF, "initrd_addr_max")
        XCTAssertEqual(readLE32(page, at: 0x230), 0x20_0000, "kernel_alignment")
        XCTAssertEqual(UInt64(readLE32(page, at: 0x218)), plan.initrd?.lowerBound, "ramdisk_image")
        XCTAssertEqual(readLE32(page, at: 0x21C), 0x10_0000, "ramdisk_size")
        XCTAssertEqual(readLE64(page, at: 0x070), 0xE_0000, "acpi_rsdp_addr")
        XCTAssertEqual(page[0x1E8], 3, "e820_entries")
        XCTAssertEqual(readLE64(page, at: 0x2D0 + 40), 0x10_0000, "RAM from 1 MiB")
    }

    /// The segments land in guest RAM at p_paddr from their file offsets, their tails zeroed
    /// (over RAM that is not fresh), and boot_params is the vmlinux one.
    func testWriteBootDataLoadsSegments() throws {
        let bytes = makeVmlinux(goodSegments)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-vmlinux-\(UUID().uuidString)").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let kernel = try ImageFile.open(path, what: "kernel")
        let layout = try X86BootPlan.make(kernel: try kernel.header(), initrdSize: nil, cmdline: "console=ttyS0", lowRAMEnd: 64 << 20)
        let memory = try GuestMemory(regions: [.init(guestBase: 0, size: 64 << 20)])
        try memory.write([UInt8](repeating: 0xEE, count: 0x4000), at: 0x120_0000)
        let plan = X86Machine.BootPlan(layout: layout, kernel: kernel, initrd: nil)
        try X86Machine.writeBootData(plan, cpus: 1, devices: DeviceManager(virtio: X86Machine.virtioSlots), memory: memory)
        func read(_ address: UInt64, _ count: Int) throws -> [UInt8] {
            var out = [UInt8](repeating: 0, count: count)
            try out.withUnsafeMutableBytes { buffer in try memory.read(into: buffer, at: address) }
            return out
        }
        XCTAssertEqual(try read(0x100_0000, 0x1000), Array(bytes[0x1000..<0x2000]), "text from p_offset 0x1000")
        XCTAssertEqual(try read(0x120_0000, 0x1000), Array(bytes[0x2000..<0x3000]), "data from p_offset 0x2000")
        XCTAssertEqual(try read(0x120_1000, 0x2000), [UInt8](repeating: 0, count: 0x2000), "p_memsz past p_filesz zeroed")
        XCTAssertEqual(try read(0x120_3000, 4), [0xEE, 0xEE, 0xEE, 0xEE], "nothing written past p_memsz")
        let page = try read(0x7000, 4096)
        XCTAssertEqual(Array(page[0x202..<0x206]), Array("HdrS".utf8))
        XCTAssertEqual(readLE32(page, at: 0x228), 0x2_0000)
    }

    func testRefusesOtherFilesAndMachines() {
        XCTAssertEqual(refusal([0x1F, 0x8B, 8, 0] + [UInt8](repeating: 0, count: 60)),
                       "kernel vmlinux is not a bzImage or an x86_64 ELF vmlinux: it is gzip-compressed data")
        XCTAssertEqual(refusal(makeVmlinux(goodSegments, machine: 183)),
                       "kernel vmlinux is not a bzImage or an x86_64 ELF vmlinux: ELF machine 183 (aarch64), not x86_64 (62)")
        XCTAssertEqual(refusal(makeVmlinux(goodSegments, elfClass: 1)),
                       "kernel vmlinux is not a bzImage or an x86_64 ELF vmlinux: ELF class 1, not 64-bit")
        XCTAssertEqual(refusal(makeVmlinux(goodSegments, data: 2)),
                       "kernel vmlinux is not a bzImage or an x86_64 ELF vmlinux: ELF data encoding 2, not little-endian")
        XCTAssertEqual(refusal(makeVmlinux(goodSegments, type: 3)),
                       "kernel vmlinux is not a bzImage or an x86_64 ELF vmlinux: ELF type 3, not an executable (ET_EXEC)")
    }

    func testTruncatedHeaders() {
        let good = makeVmlinux(goodSegments)
        XCTAssertEqual(refusal(Array(good.prefix(40))), "kernel vmlinux is truncated: 40 bytes, less than an ELF-64 header")
        XCTAssertEqual(refusal(Array(good.prefix(64 + 56 + 10))),
                       "kernel vmlinux: program headers at 0x40 (3 of 56 bytes) lie past its end (130 bytes)")
        XCTAssertEqual(refusal(makeVmlinux(goodSegments, phoff: UInt64.max - 8)),
                       "kernel vmlinux: program headers at 0xfffffffffffffff7 (3 of 56 bytes) lie past its end (16384 bytes)")
        XCTAssertEqual(refusal(makeVmlinux(goodSegments, phentsize: 32)), "kernel vmlinux has program headers of 32 bytes; ELF-64 has 56")
        XCTAssertEqual(refusal(makeVmlinux(goodSegments, phnum: 0)), "kernel vmlinux has 0 program headers; Swiftlet reads 1 to 64")
        XCTAssertEqual(refusal(makeVmlinux(goodSegments, phnum: 0xFFFF)), "kernel vmlinux has 65535 program headers; Swiftlet reads 1 to 64")
        // A segment's file bytes past the file's end (the header bytes at hand are the file's start).
        XCTAssertEqual(refusal(makeVmlinux(goodSegments), fileSize: 0x2800),
                       "kernel vmlinux: segment 0: file bytes 0x2000+0x1000 lie past its end (10240 bytes)")
    }

    func testSegmentsOutsideGuestRAM() {
        XCTAssertEqual(refusal(makeVmlinux(goodSegments), ram: 0x120_2000),
                       "kernel vmlinux: segment 0 at 0x1200000-0x1202fff lies outside guest RAM for the kernel (0x100000-0x1201fff); raise --memory")
        let low = [ProgramHeader(offset: 0x1000, fileSize: 0x1000, address: 0x7000, memorySize: 0x1000)]
        XCTAssertEqual(refusal(makeVmlinux(low, entry: 0x7000)),
                       "kernel vmlinux: segment 0 at 0x7000-0x7fff lies outside guest RAM for the kernel (0x100000-0xfffffff)")
        let high = [ProgramHeader(offset: 0x1000, fileSize: 0x1000, address: 0xFFFF_FFFF_8100_0000, memorySize: 0x1000)]
        XCTAssertTrue(refusal(makeVmlinux(high)).hasPrefix("kernel vmlinux: segment 0 at 0xffffffff81000000-0xffffffff81000fff lies outside guest RAM"))
    }

    func testAddressOverflowAndSizes() {
        let wraps = [ProgramHeader(offset: 0x1000, fileSize: 0x1000, address: 0xFFFF_FFFF_FFFF_F000, memorySize: 0x2000)]
        XCTAssertEqual(refusal(makeVmlinux(wraps)),
                       "kernel vmlinux: segment 0 at 0xfffffffffffff000 of 0x2000 bytes wraps past the top of the address space")
        let tooMuchFile = [ProgramHeader(offset: 0x1000, fileSize: 0x2000, address: 0x100_0000, memorySize: 0x1000)]
        XCTAssertEqual(refusal(makeVmlinux(tooMuchFile)), "kernel vmlinux: segment 0 has more file bytes (0x2000) than memory bytes (0x1000)")
        let hugeOffset = [ProgramHeader(offset: UInt64.max, fileSize: 2, address: 0x100_0000, memorySize: 2)]
        XCTAssertEqual(refusal(makeVmlinux(hugeOffset)),
                       "kernel vmlinux: segment 0: file bytes 0xffffffffffffffff+0x2 lie past its end (16384 bytes)")
    }

    func testNoLoadOverlapAndEntry() {
        let notesOnly = [ProgramHeader(type: 4, offset: 0x3000, fileSize: 0x18, address: 0, memorySize: 0x18),
                         ProgramHeader(offset: 0x1000, fileSize: 0, address: 0x100_0000, memorySize: 0)]
        XCTAssertEqual(refusal(makeVmlinux(notesOnly)), "kernel vmlinux has no PT_LOAD segment to load")
        let overlap = [ProgramHeader(offset: 0x1000, fileSize: 0x1000, address: 0x100_0000, memorySize: 0x2000),
                       ProgramHeader(offset: 0x2000, fileSize: 0x1000, address: 0x100_1000, memorySize: 0x1000)]
        XCTAssertEqual(refusal(makeVmlinux(overlap)), "kernel vmlinux: segments at 0x1000000 and 0x1001000 overlap")
        XCTAssertEqual(refusal(makeVmlinux(goodSegments, entry: 0x120_2000)),
                       "kernel vmlinux: entry point 0x1202000 is not inside a loaded segment (e_entry must be startup_64's physical address)")
    }

    func testCmdlineLimit() throws {
        XCTAssertNoThrow(try plan(makeVmlinux(goodSegments), cmdline: String(repeating: "a", count: 2047)))
        XCTAssertEqual(refusal(makeVmlinux(goodSegments), cmdline: String(repeating: "a", count: 2048)),
                       "--cmdline is 2048 bytes; this kernel accepts at most 2047")
    }
}
