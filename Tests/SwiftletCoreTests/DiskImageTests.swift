import Foundation
import XCTest
@testable import SwiftletCore

final class DiskImageTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-disk-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    /// A file of `size` bytes, each byte `fill` (or sparse zeros when fill is nil).
    func makeImage(_ name: String = "disk.img", size: Int, fill: UInt8? = nil) throws -> String {
        let path = directory.appendingPathComponent(name).path
        if let fill {
            try Data(repeating: fill, count: size).write(to: URL(fileURLWithPath: path))
        } else {
            XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: nil))
            XCTAssertEqual(truncate(path, off_t(size)), 0)
        }
        return path
    }

    func contents(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    func read(_ image: DiskImage, at offset: UInt64, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0xEE, count: count)
        try bytes.withUnsafeMutableBytes { try image.read(into: $0, at: offset) }
        return bytes
    }

    func write(_ image: DiskImage, _ bytes: [UInt8], at offset: UInt64) throws {
        try bytes.withUnsafeBytes { try image.write($0, at: offset) }
    }

    func assertRefused(_ path: String, readOnly: Bool, containing reason: String,
                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try DiskImage.open(path, readOnly: readOnly), file: file, line: line) { error in
            guard case .invalidArgument(let message)? = error as? SwiftletError else {
                return XCTFail("expected invalidArgument, got \(error)", file: file, line: line)
            }
            XCTAssertTrue(message.contains(path), "message names the path: \(message)", file: file, line: line)
            XCTAssertTrue(message.contains(reason), "message says '\(reason)': \(message)", file: file, line: line)
            XCTAssertFalse(message.contains("\n"), "one line", file: file, line: line)
            XCTAssertTrue((error as! SwiftletError).isBadInput, file: file, line: line)
        }
    }

    // MARK: opening

    func testOpenReportsSizeAndMode() throws {
        let path = try makeImage(size: 8 * 512)
        let image = try DiskImage.open(path, readOnly: false)
        XCTAssertEqual(image.size, 4096)
        XCTAssertEqual(image.path, path)
        XCTAssertFalse(image.isReadOnly)
        XCTAssertFalse(image.isBlockDevice)
        let readOnly = try DiskImage.open(try makeImage("ro.img", size: 512), readOnly: true)
        XCTAssertTrue(readOnly.isReadOnly)
    }

    func testMissingDirectoryFIFOAndCharacterDeviceAreRefused() throws {
        let missing = directory.appendingPathComponent("missing.img").path
        assertRefused(missing, readOnly: false, containing: "No such file or directory")
        assertRefused(missing, readOnly: true, containing: "No such file or directory")
        let subdirectory = directory.appendingPathComponent("dir").path
        try FileManager.default.createDirectory(atPath: subdirectory, withIntermediateDirectories: false)
        assertRefused(subdirectory, readOnly: true, containing: "is a directory")
        assertRefused(subdirectory, readOnly: false, containing: "directory")   // open: EISDIR
        let fifo = directory.appendingPathComponent("fifo").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        // Neither open may block waiting for a writer or reader (O_NONBLOCK).
        assertRefused(fifo, readOnly: true, containing: "is a FIFO")
        assertRefused(fifo, readOnly: false, containing: "is a FIFO")
        assertRefused("/dev/null", readOnly: true, containing: "is a character device")
    }

    func testReadOnlyFileAskedForWritingIsRefused() throws {
        let path = try makeImage("locked-down.img", size: 1024)
        XCTAssertEqual(chmod(path, 0o444), 0)
        var immutable = false
        if geteuid() == 0 {
            // Root ignores the mode bits; the immutable attribute refuses even root.
            immutable = run("/usr/bin/chattr", ["+i", path])
            guard immutable else {
                XCTFail("running as root, and chattr +i failed: cannot make a file unwritable (needs e2fsprogs' chattr and a file system with the immutable flag)")
                return
            }
        }
        defer { if immutable { _ = run("/usr/bin/chattr", ["-i", path]) } }
        assertRefused(path, readOnly: false, containing: "for writing")
        let image = try DiskImage.open(path, readOnly: true)
        XCTAssertEqual(image.size, 1024)
    }

    func run(_ tool: String, _ arguments: [String]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }

    // MARK: locking

    func testReopenedSharesTheLockAndSeesTheNewSize() throws {
        let path = try makeImage("grow.img", size: 4096)
        let image = try DiskImage.open(path, readOnly: false)
        XCTAssertTrue(image.isSameFile(as: path))
        XCTAssertFalse(image.isSameFile(as: try makeImage("other.img", size: 4096)))
        XCTAssertFalse(image.isSameFile(as: "/no/such/file"))
        XCTAssertThrowsError(try DiskImage.open(path, readOnly: false), "our own lock excludes a fresh open")
        XCTAssertEqual(truncate(path, 8192), 0)
        var grown: DiskImage? = try image.reopened()
        XCTAssertEqual(grown?.size, 8192)
        XCTAssertEqual(image.size, 4096, "the old image keeps its size")
        grown = nil
        XCTAssertThrowsError(try DiskImage.open(path, readOnly: false), "the lock outlives a released copy")
    }

    func testSecondWritableOpenIsLockedUntilTheFirstCloses() throws {
        let path = try makeImage(size: 4096)
        var first: DiskImage? = try DiskImage.open(path, readOnly: false)
        assertRefused(path, readOnly: false, containing: "is in use by another VM (locked)")
        assertRefused(path, readOnly: true, containing: "is in use by another VM (locked)")
        XCTAssertNotNil(first)
        first = nil   // close drops the lock
        XCTAssertNoThrow(try DiskImage.open(path, readOnly: false))
    }

    func testReadOnlyOpensShareButExcludeAWriter() throws {
        let path = try makeImage(size: 4096)
        let a = try DiskImage.open(path, readOnly: true)
        let b = try DiskImage.open(path, readOnly: true)
        assertRefused(path, readOnly: false, containing: "in use by another VM (locked)")
        XCTAssertEqual(a.size, b.size)
    }

    // MARK: I/O

    func testReadWriteFlush() throws {
        let path = try makeImage(size: 8 * 512, fill: 0)
        let image = try DiskImage.open(path, readOnly: false)
        let pattern = (0..<1024).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) }
        try write(image, pattern, at: 512)
        try image.flush()
        XCTAssertEqual(try read(image, at: 512, count: 1024), pattern)
        let onDisk = try contents(path)
        XCTAssertEqual(Array(onDisk[512..<1536]), pattern)
        XCTAssertEqual(Array(onDisk[0..<512]), [UInt8](repeating: 0, count: 512))
    }

    func testScatterGatherAcrossManyVectors() throws {
        let path = try makeImage(size: 64 * 1024, fill: 0)
        let image = try DiskImage.open(path, readOnly: false)
        // 1024 buffers of 3..5 bytes: one full batch, odd sizes.
        let sizes = (0..<IOVectors.limit).map { 3 + $0 % 3 }
        let total = sizes.reduce(0, +)
        let source = UnsafeMutableRawBufferPointer.allocate(byteCount: total, alignment: 8)
        let target = UnsafeMutableRawBufferPointer.allocate(byteCount: total, alignment: 8)
        defer { source.deallocate(); target.deallocate() }
        for i in 0..<total { source[i] = UInt8(truncatingIfNeeded: i * 31 + 5) }
        target.initializeMemory(as: UInt8.self, repeating: 0)
        let vectors = IOVectors()
        var offset = 0
        for size in sizes {
            XCTAssertTrue(vectors.append(source.baseAddress! + offset, length: size))
            offset += size
        }
        XCTAssertTrue(vectors.isFull)
        XCTAssertFalse(vectors.append(source.baseAddress!, length: 1), "no room past IOV_MAX")
        XCTAssertEqual(vectors.byteCount, UInt64(total))
        try image.pwritev(vectors, at: 1000)
        vectors.removeAll()
        offset = 0
        for size in sizes.reversed() {
            vectors.append(target.baseAddress! + offset, length: size)
            offset += size
        }
        try image.preadv(vectors, at: 1000)
        XCTAssertEqual(Array(target), Array(source))
        XCTAssertEqual(Array(try contents(path)[1000..<(1000 + total)]), Array(source))
    }

    func testPartialTransferResumesMidVector() throws {
        // What a short preadv/pwritev leaves: consume() moves the front past whole and
        // partial vectors.
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)
        defer { buffer.deallocate() }
        let vectors = IOVectors(capacity: 4)
        vectors.append(buffer, length: 10)
        vectors.append(buffer + 10, length: 20)
        vectors.append(buffer + 30, length: 0)   // skipped
        vectors.append(buffer + 30, length: 5)
        XCTAssertEqual(vectors.count, 3)
        vectors.consume(15)
        XCTAssertEqual(vectors.currentCount, 2)
        XCTAssertEqual(vectors.current.pointee.iov_base, buffer + 15)
        XCTAssertEqual(vectors.current.pointee.iov_len, 15)
        vectors.consume(15)
        XCTAssertEqual(vectors.currentCount, 1)
        XCTAssertFalse(vectors.isConsumed)
        vectors.consume(5)
        XCTAssertTrue(vectors.isConsumed)
        XCTAssertEqual(vectors.byteCount, 35, "byteCount keeps what was appended")
    }

    func testReadOnlyOpenRefusesWrites() throws {
        let path = try makeImage(size: 4096, fill: 0x5A)
        let image = try DiskImage.open(path, readOnly: true)
        XCTAssertThrowsError(try write(image, [1, 2, 3], at: 0)) { error in
            XCTAssertEqual(error as? SwiftletError, .system("write of disk image \(path), opened read-only", errno: EROFS))
        }
        XCTAssertThrowsError(try image.discard(offset: 0, length: 512))
        XCTAssertThrowsError(try image.writeZeroes(offset: 0, length: 512, unmap: false))
        XCTAssertEqual(try read(image, at: 0, count: 4), [0x5A, 0x5A, 0x5A, 0x5A])
        XCTAssertNoThrow(try image.flush())
        XCTAssertEqual(try contents(path), [UInt8](repeating: 0x5A, count: 4096))
    }

    func testAccessPastTheEndIsAnErrorNotGrowth() throws {
        let path = try makeImage(size: 1024, fill: 1)
        let image = try DiskImage.open(path, readOnly: false)
        XCTAssertThrowsError(try write(image, [1, 2], at: 1023))
        XCTAssertThrowsError(try read(image, at: 1024, count: 1))
        XCTAssertThrowsError(try image.discard(offset: UInt64.max - 1, length: 512), "no wrap-around")
        XCTAssertThrowsError(try image.writeZeroes(offset: 512, length: UInt64.max, unmap: true))
        XCTAssertEqual(try contents(path).count, 1024)
        XCTAssertNoThrow(try write(image, [9], at: 1023))
    }

    func testSizeNotAMultipleOf512() throws {
        let path = try makeImage(size: 1000, fill: 0x11)
        let image = try DiskImage.open(path, readOnly: false)
        XCTAssertEqual(image.size, 1000, "the image keeps its byte size; the device rounds down")
        XCTAssertEqual(try read(image, at: 512, count: 488), [UInt8](repeating: 0x11, count: 488))
        XCTAssertThrowsError(try read(image, at: 512, count: 512))
    }

    func testSparseImageOver4GiBAtItsLastSector() throws {
        let size: UInt64 = (5 << 30) + 512
        let path = try makeImage("big.img", size: Int(size))
        let image = try DiskImage.open(path, readOnly: false)
        XCTAssertEqual(image.size, size)
        let last = size - 512
        let sector = (0..<512).map { UInt8(truncatingIfNeeded: $0 ^ 0xA5) }
        try write(image, sector, at: last)
        try write(image, [0x42], at: 1 << 32)   // just past 4 GiB: no 32-bit truncation
        try image.flush()
        XCTAssertEqual(try read(image, at: last, count: 512), sector)
        XCTAssertEqual(try read(image, at: 1 << 32, count: 2), [0x42, 0])
        XCTAssertEqual(try read(image, at: 0, count: 2), [0, 0], "offset 4 GiB did not wrap to 0")
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64, size)
    }

    func testDiscardAndWriteZeroesZeroTheRange() throws {
        let path = try makeImage(size: 64 * 1024, fill: 0xAA)
        let image = try DiskImage.open(path, readOnly: false)
        try image.discard(offset: 4096, length: 8192)
        try image.writeZeroes(offset: 16384, length: 4096, unmap: false)
        try image.writeZeroes(offset: 24576, length: 512, unmap: true)
        try image.flush()
        let bytes = try contents(path)
        XCTAssertEqual(bytes.count, 64 * 1024, "KEEP_SIZE")
        // ext4 and tmpfs punch holes that read back as zeros (discard itself only promises
        // a hint, but on these file systems the range is zero).
        XCTAssertEqual(Array(bytes[4096..<12288]), [UInt8](repeating: 0, count: 8192))
        XCTAssertEqual(Array(bytes[16384..<20480]), [UInt8](repeating: 0, count: 4096))
        XCTAssertEqual(Array(bytes[24576..<25088]), [UInt8](repeating: 0, count: 512))
        XCTAssertEqual(Array(bytes[0..<4096]), [UInt8](repeating: 0xAA, count: 4096))
        XCTAssertEqual(Array(bytes[12288..<16384]), [UInt8](repeating: 0xAA, count: 4096))
        XCTAssertEqual(Array(bytes[20480..<24576]), [UInt8](repeating: 0xAA, count: 4096))
        XCTAssertEqual(Array(bytes[25088...]), [UInt8](repeating: 0xAA, count: 64 * 1024 - 25088))
        XCTAssertNoThrow(try image.discard(offset: 0, length: 0))
    }

    func testWriteZeroesFallsBackToWritingZeros() throws {
        // A range larger than one fallback chunk, not a multiple of it.
        let size = 3 * DiskImage.zeroChunk
        let path = try makeImage(size: size, fill: 0xCC)
        let image = try DiskImage.open(path, readOnly: false)
        image.zeroRangeUnsupported = true
        image.punchHoleUnsupported = true
        let start = 512
        let length = DiskImage.zeroChunk + 4096
        try image.writeZeroes(offset: UInt64(start), length: UInt64(length), unmap: true)
        let bytes = try contents(path)
        XCTAssertEqual(Array(bytes[start..<(start + length)]), [UInt8](repeating: 0, count: length))
        XCTAssertEqual(Array(bytes[0..<start]), [UInt8](repeating: 0xCC, count: start))
        XCTAssertEqual(bytes[start + length], 0xCC)
        XCTAssertEqual(bytes.count, size)
        // Discard on a "file system without holes" is a successful no-op.
        XCTAssertNoThrow(try image.discard(offset: 0, length: 512))
        XCTAssertEqual(try read(image, at: 0, count: 1), [0xCC])
    }
}
