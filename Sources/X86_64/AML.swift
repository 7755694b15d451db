import SwiftletCore

// A small writer for ACPI Machine Language (ACPI 6.5 chapter 20): just the encodings a DSDT
// that lists devices needs — names, integers, strings, buffers, Name/Scope/Device — and the
// resource descriptors of chapter 6.4 that go inside a _CRS buffer. Every function returns
// the bytes of one AML term; callers concatenate them.

// §20.3 AML byte stream values.
private let ZeroOp: UInt8 = 0x00
private let OneOp: UInt8 = 0x01
private let NameOp: UInt8 = 0x08
private let BytePrefix: UInt8 = 0x0A
private let WordPrefix: UInt8 = 0x0B
private let DWordPrefix: UInt8 = 0x0C
private let StringPrefix: UInt8 = 0x0D
private let QWordPrefix: UInt8 = 0x0E
private let ScopeOp: UInt8 = 0x10
private let BufferOp: UInt8 = 0x11
private let PackageOp: UInt8 = 0x12
private let DualNamePrefix: UInt8 = 0x2E
private let MultiNamePrefix: UInt8 = 0x2F
private let ExtOpPrefix: UInt8 = 0x5B
private let RootChar: UInt8 = 0x5C       // '\'
private let ParentPrefixChar: UInt8 = 0x5E // '^'
private let DeviceOp: UInt8 = 0x82        // after ExtOpPrefix

// §6.4.2 small and §6.4.3 large resource data types (tag bytes with their fixed lengths).
private let IOPortDescriptor: UInt8 = 0x47             // small item 0x08, length 7
private let IRQDescriptorNoFlags: UInt8 = 0x22         // small item 0x04, length 2
private let EndTagDescriptor: UInt8 = 0x79             // small item 0x0F, length 1
private let Memory32FixedDescriptor: UInt8 = 0x86      // large item 0x06
private let ExtendedInterruptDescriptor: UInt8 = 0x89  // large item 0x09
private let QWordAddressSpaceDescriptor: UInt8 = 0x8A  // large item 0x0A
private let IO_DECODE16: UInt8 = 1 << 0                 // the device decodes all 16 address bits
private let MEMORY_READ_WRITE: UInt8 = 1 << 0
private let INTERRUPT_CONSUMER: UInt8 = 1 << 0
private let INTERRUPT_EDGE: UInt8 = 1 << 1
private let INTERRUPT_ACTIVE_LOW: UInt8 = 1 << 2
private let INTERRUPT_SHARED: UInt8 = 1 << 3
private let ADDRESS_CONSUMER: UInt8 = 1 << 0
private let ADDRESS_MIN_FIXED: UInt8 = 1 << 2
private let ADDRESS_MAX_FIXED: UInt8 = 1 << 3
private let ADDRESS_SPACE_MEMORY: UInt8 = 0

enum AML {
    // MARK: Names (§20.2.2)

    /// A NameSeg: four characters, a lead of A–Z or '_', then A–Z, 0–9 or '_'; shorter names
    /// are padded with '_' as ASL does ("KBD" is "KBD_"). Names are Swiftlet's own constants,
    /// so a bad one is a programming error.
    static func nameSeg(_ name: String) -> [UInt8] {
        var bytes = Array(name.utf8)
        precondition(!bytes.isEmpty && bytes.count <= 4, "AML NameSeg must have 1 to 4 characters")
        while bytes.count < 4 { bytes.append(UInt8(ascii: "_")) }
        for (i, byte) in bytes.enumerated() {
            let upper = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")
            let digit = byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
            precondition(upper || byte == UInt8(ascii: "_") || (digit && i > 0), "AML NameSeg has a bad character")
        }
        return bytes
    }

    /// A NameString: an optional root ('\') or parent ('^') prefix, then dot-separated
    /// NameSegs ("\_SB.COM1"), with the Dual/MultiNamePrefix the segment count needs.
    static func nameString(_ path: String) -> [UInt8] {
        var prefix: [UInt8] = []
        var rest = Substring(path)
        if rest.utf8.first == RootChar {
            prefix.append(RootChar)
            rest = rest.dropFirst()
        } else {
            while rest.utf8.first == ParentPrefixChar {
                prefix.append(ParentPrefixChar)
                rest = rest.dropFirst()
            }
        }
        if rest.isEmpty { return prefix + [ZeroOp] } // NullName: "\" alone is the root
        let segments = rest.split(separator: ".", omittingEmptySubsequences: false)
        var bytes = prefix
        switch segments.count {
        case 1: break
        case 2: bytes.append(DualNamePrefix)
        default:
            precondition(segments.count <= 255, "AML NameString has too many segments")
            bytes += [MultiNamePrefix, UInt8(segments.count)]
        }
        for segment in segments { bytes += nameSeg(String(segment)) }
        return bytes
    }

    // MARK: Package lengths (§20.2.4)

    /// The PkgLength encoding of `value`: one byte up to 63, else a lead byte whose bits 7–6
    /// count the bytes that follow (1–3) and whose bits 3–0 are the value's low nibble, the
    /// following bytes holding the rest, least significant first. At most 2^28 − 1.
    static func pkgLength(value: Int) -> [UInt8] {
        precondition(value >= 0 && value < 1 << 28, "AML PkgLength out of range")
        if value < 1 << 6 { return [UInt8(value)] }
        var following = 1
        while value >= 1 << (4 + 8 * following) { following += 1 }
        var bytes = [UInt8(following << 6) | UInt8(value & 0xF)]
        for i in 0..<following { bytes.append(UInt8(truncatingIfNeeded: value >> (4 + 8 * i))) }
        return bytes
    }

    /// The PkgLength in front of `count` bytes of package contents: the length it encodes
    /// counts the PkgLength's own bytes too, so pick the smallest encoding that holds that.
    static func pkgLength(enclosing count: Int) -> [UInt8] {
        var size = 1
        while true {
            let encoded = pkgLength(value: count + size)
            if encoded.count == size { return encoded }
            size += 1
        }
    }

    /// `opcode`, the PkgLength of what follows, then `contents`.
    static func package(_ opcode: [UInt8], _ contents: [UInt8]) -> [UInt8] {
        opcode + pkgLength(enclosing: contents.count) + contents
    }

    // MARK: Data objects (§20.2.3)

    /// An integer in its smallest encoding: Zero, One, or a Byte/Word/DWord/QWord constant.
    /// (Not OnesOp: its width depends on the table's revision.)
    static func integer(_ value: UInt64) -> [UInt8] {
        switch value {
        case 0: return [ZeroOp]
        case 1: return [OneOp]
        case ...0xFF: return [BytePrefix, UInt8(value)]
        case ...0xFFFF: return [WordPrefix] + littleEndianBytes(UInt16(value))
        case ...0xFFFF_FFFF: return [DWordPrefix] + littleEndianBytes(UInt32(value))
        default: return [QWordPrefix] + littleEndianBytes(value)
        }
    }

    /// A String constant: ASCII 0x01–0x7F, NUL-terminated.
    static func string(_ text: String) -> [UInt8] {
        let bytes = Array(text.utf8)
        for byte in bytes { precondition(byte >= 0x01 && byte <= 0x7F, "AML strings are ASCII without NUL") }
        return [StringPrefix] + bytes + [0]
    }

    /// A Buffer with its size as an integer term, then the bytes.
    static func buffer(_ bytes: [UInt8]) -> [UInt8] {
        package([BufferOp], integer(UInt64(bytes.count)) + bytes)
    }

    /// A Package of fixed data objects (§20.2.5.4 DefPackage): NumElements, then the elements.
    static func packageObject(_ elements: [[UInt8]]) -> [UInt8] {
        precondition(elements.count <= 0xFF, "a Package has at most 255 elements")
        return package([PackageOp], [UInt8(elements.count)] + elements.flatMap { $0 })
    }

    /// An EISA ID ("PNP0501") compressed into the 32-bit integer form _HID and _CID take
    /// (ASL's EisaId()): three letters of five bits each ('A' = 1) and four hex digits,
    /// byte-swapped so that the bytes in memory read as the big-endian compressed value.
    static func eisaID(_ id: String) -> [UInt8] {
        let chars = Array(id.utf8)
        precondition(chars.count == 7, "EISA ID is three letters and four hex digits")
        var value: UInt32 = 0
        for letter in chars[0..<3] {
            precondition(letter >= UInt8(ascii: "A") && letter <= UInt8(ascii: "Z"), "EISA ID vendor letters are A-Z")
            value = value << 5 | UInt32(letter - 0x40)
        }
        for digit in chars[3..<7] { value = value << 4 | UInt32(hexValue(digit)) }
        // 31 bits: the compressed form's top bit is reserved and stays 0.
        return integer(UInt64(value.byteSwapped))
    }

    private static func hexValue(_ digit: UInt8) -> UInt8 {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
        default: preconditionFailure("EISA ID product number is four upper-case hex digits")
        }
    }

    // MARK: Named objects (§20.2.5)

    /// Name(name, value): `value` is the bytes of a data object (integer, string, buffer).
    static func name(_ name: String, _ value: [UInt8]) -> [UInt8] {
        [NameOp] + nameString(name) + value
    }

    /// Scope(path) { terms }.
    static func scope(_ path: String, _ terms: [[UInt8]]) -> [UInt8] {
        package([ScopeOp], nameString(path) + terms.flatMap { $0 })
    }

    /// Device(name) { terms }.
    static func device(_ name: String, _ terms: [[UInt8]]) -> [UInt8] {
        package([ExtOpPrefix, DeviceOp], nameString(name) + terms.flatMap { $0 })
    }

    /// DefinitionBlock: an ACPI table header (signature, e.g. "DSDT") and the AML terms.
    /// Revision 2 or more makes integers 64 bits wide for the interpreter.
    static func definitionBlock(_ signature: String, revision: UInt8 = 2, _ terms: [[UInt8]]) -> [UInt8] {
        ACPITables.table(signature, revision: revision, body: terms.flatMap { $0 })
    }

    // MARK: Resource templates (§6.4, ASL ResourceTemplate())

    /// ResourceTemplate() { descriptors }: a Buffer of resource descriptors closed by an End
    /// Tag whose checksum byte makes the descriptors and the tag sum to zero.
    static func resourceTemplate(_ descriptors: [[UInt8]]) -> [UInt8] {
        var bytes = descriptors.flatMap { $0 } + [EndTagDescriptor]
        var sum: UInt8 = 0
        for byte in bytes { sum &+= byte }
        bytes.append(0 &- sum)
        return buffer(bytes)
    }

    enum Trigger { case level, edge }
    enum Polarity { case activeHigh, activeLow }
    enum Sharing { case exclusive, shared }

    enum Resource {
        /// IO(Decode16, port, port, alignment, length): a fixed range of I/O ports.
        static func io(port: UInt16, length: UInt8, alignment: UInt8 = 1) -> [UInt8] {
            [IOPortDescriptor, IO_DECODE16] + littleEndianBytes(port) + littleEndianBytes(port) + [alignment, length]
        }

        /// IRQNoFlags() { irq }: an ISA interrupt (0–15), edge-triggered, active-high, exclusive.
        static func irqNoFlags(_ irq: UInt8) -> [UInt8] {
            precondition(irq < 16, "IRQ descriptors hold ISA interrupts 0-15")
            return [IRQDescriptorNoFlags] + littleEndianBytes(UInt16(1) << UInt16(irq))
        }

        /// Interrupt(ResourceConsumer, trigger, polarity, sharing) { gsi }: an Extended
        /// Interrupt descriptor, which names a GSI of any size.
        static func extendedInterrupt(_ gsi: UInt32, trigger: Trigger = .edge, polarity: Polarity = .activeHigh,
                                      sharing: Sharing = .exclusive) -> [UInt8] {
            var flags = INTERRUPT_CONSUMER
            if trigger == .edge { flags |= INTERRUPT_EDGE }
            if polarity == .activeLow { flags |= INTERRUPT_ACTIVE_LOW }
            if sharing == .shared { flags |= INTERRUPT_SHARED }
            let body = [flags, 1] + littleEndianBytes(gsi) // flags, interrupt count, the table
            return [ExtendedInterruptDescriptor] + littleEndianBytes(UInt16(body.count)) + body
        }

        /// Memory32Fixed(ReadWrite or ReadOnly, base, size).
        static func memory32Fixed(base: UInt32, size: UInt32, writable: Bool = true) -> [UInt8] {
            let body = [writable ? MEMORY_READ_WRITE : 0] + littleEndianBytes(base) + littleEndianBytes(size)
            return [Memory32FixedDescriptor] + littleEndianBytes(UInt16(body.count)) + body
        }

        /// QWordMemory(ResourceConsumer, PosDecode, MinFixed, MaxFixed, NonCacheable,
        /// ReadWrite, 0, base, base + size - 1, 0, size): a fixed memory range anywhere in
        /// the 64-bit space, for what Memory32Fixed cannot reach.
        static func qwordMemory(base: UInt64, size: UInt64) -> [UInt8] {
            let max = size == 0 ? base : base &+ (size - 1)
            var body = [ADDRESS_SPACE_MEMORY, ADDRESS_CONSUMER | ADDRESS_MIN_FIXED | ADDRESS_MAX_FIXED, MEMORY_READ_WRITE]
            body += littleEndianBytes(UInt64(0)) + littleEndianBytes(base) + littleEndianBytes(max)
            body += littleEndianBytes(UInt64(0)) + littleEndianBytes(size) // translation offset, length
            return [QWordAddressSpaceDescriptor] + littleEndianBytes(UInt16(body.count)) + body
        }

        /// Memory32Fixed when the range lies below 4 GiB, else QWordMemory.
        static func memory(base: UInt64, size: UInt64) -> [UInt8] {
            if base <= UInt64(UInt32.max), size <= (1 << 32) - base, size <= UInt64(UInt32.max) {
                return memory32Fixed(base: UInt32(base), size: UInt32(size))
            }
            return qwordMemory(base: base, size: size)
        }

        /// IRQNoFlags for an ISA interrupt, an edge-triggered Extended Interrupt above 15.
        static func interrupt(_ irq: UInt32) -> [UInt8] {
            irq < 16 ? irqNoFlags(UInt8(irq)) : extendedInterrupt(irq)
        }
    }
}
