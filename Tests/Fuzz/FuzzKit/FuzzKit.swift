import SwiftletCore
import CFuzzDriver
#if canImport(Glibc)
import Glibc
#endif

// Shared by the libFuzzer targets in Tests/Fuzz/<name>/ (built by ci/fuzz).

private var testOneInput: ((UnsafeRawBufferPointer) -> Void)?

/// Hands the process to libFuzzer, which calls `body` once per input (with its own
/// command-line flags: corpus directories, -max_total_time, -runs, a crash file to replay).
public func runFuzzer(_ body: @escaping (UnsafeRawBufferPointer) -> Void) -> Never {
    testOneInput = body
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    let status = LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        testOneInput?(UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }
    exit(status)
}

/// A property the code under test must keep; a violation traps like any other bug, with
/// the message on stderr, so libFuzzer saves the input.
public func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                    file: StaticString = #file, line: UInt = #line) {
    if !condition() { fatalError(message(), file: file, line: line) }
}

/// What `body` makes of the input, or nil when it refuses it: a refusal is fine, but its
/// message is built too (formatting it must not trap either).
public func accepted<T>(_ body: () throws(SwiftletError) -> T) -> T? {
    do throws(SwiftletError) {
        return try body()
    } catch {
        _ = error.description
        return nil
    }
}

/// Reads typed values off the front of a fuzz input, like LLVM's FuzzedDataProvider; an
/// exhausted input reads as zeros, so every byte string decodes to something.
public struct FuzzInput {
    public let bytes: [UInt8]
    public private(set) var position = 0

    public init(_ buffer: UnsafeRawBufferPointer) { bytes = Array(buffer) }
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { position >= bytes.count }
    public var remaining: Int { max(0, bytes.count - position) }

    public mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func bool() -> Bool { byte() & 1 != 0 }

    /// Little-endian, `size` bytes (1...8).
    public mutating func integer(bytes size: Int) -> UInt64 {
        var value: UInt64 = 0
        for i in 0..<size { value |= UInt64(byte()) << (8 * UInt64(i)) }
        return value
    }

    public mutating func uint16() -> UInt16 { UInt16(truncatingIfNeeded: integer(bytes: 2)) }
    public mutating func uint32() -> UInt32 { UInt32(truncatingIfNeeded: integer(bytes: 4)) }
    public mutating func uint64() -> UInt64 { integer(bytes: 8) }

    /// A value in `range`, from as few bytes as the range needs.
    public mutating func int(in range: ClosedRange<Int>) -> Int {
        let span = UInt64(bitPattern: Int64(range.upperBound &- range.lowerBound))
        let size = span == 0 ? 0 : (64 - span.leadingZeroBitCount + 7) / 8
        let raw = integer(bytes: size)
        if span == UInt64.max { return Int(truncatingIfNeeded: raw) }
        return range.lowerBound &+ Int(truncatingIfNeeded: raw % (span + 1))
    }

    /// Up to `count` bytes (fewer at the end of the input).
    public mutating func bytes(_ count: Int) -> [UInt8] {
        let n = min(max(0, count), remaining)
        defer { position += n }
        return Array(bytes[position..<(position + n)])
    }

    /// A length byte, then that many bytes.
    public mutating func shortBytes() -> [UInt8] { bytes(Int(byte())) }

    public mutating func rest() -> [UInt8] { bytes(remaining) }

    /// A 64-bit value the fuzzer can steer to the edges: 0, 1, the Int64/UInt64 limits and
    /// their neighbours, small numbers, or 8 raw bytes.
    public mutating func interestingUInt64() -> UInt64 {
        switch byte() & 0x0F {
        case 0: return 0
        case 1: return 1
        case 2: return UInt64.max
        case 3: return UInt64.max - 1
        case 4: return UInt64(Int64.max)
        case 5: return UInt64(Int64.max) + 1
        case 6: return UInt64(Int64.max) - 1
        case 7: return UInt64(byte())
        case 8: return UInt64(uint32())
        case 9: return UInt64.max - UInt64(uint32())
        case 10: return UInt64(Int64.max) - UInt64(uint32())
        case 11: return UInt64(Int64.max) + UInt64(uint32())
        default: return uint64()
        }
    }
}
