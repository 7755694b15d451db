import CLinux

/// An Ethernet address, written as six colon-separated hex pairs (`06:00:ac:10:00:02`).
public struct MACAddress: Equatable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard part.utf8.count == 2, part.utf8.allSatisfy(MACAddress.isHexDigit), let byte = UInt8(part, radix: 16) else { return nil }
            bytes.append(byte)
        }
        self.bytes = bytes
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private static func isHexDigit(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
    }

    /// A guest's own address must be unicast and not all zeros (Linux's
    /// is_valid_ether_addr), or the guest's driver ignores it.
    public var isValidUnicast: Bool { bytes[0] & 1 == 0 && bytes.contains { $0 != 0 } }

    /// A random locally administered unicast address, as QEMU and Linux make for devices
    /// nobody named one for.
    public static func random() -> MACAddress {
        var bytes = [UInt8](repeating: 0, count: 6)
        let filled = bytes.withUnsafeMutableBytes { getrandom($0.baseAddress, 6, 0) == 6 }
        if !filled {
            // Without the kernel's pool: a distinct enough address from the clock and pid.
            let seed = UInt64(bitPattern: Int64(monotonicMilliseconds())) ^ UInt64(getpid()) << 24
            for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: seed >> (8 * UInt64(i))) }
        }
        bytes[0] = (bytes[0] & 0xFE) | 0x02
        return MACAddress(bytes: bytes)
    }

    public var description: String {
        var text = ""
        for (index, byte) in bytes.enumerated() {
            if index > 0 { text += ":" }
            if byte < 16 { text += "0" }
            text += hex(UInt64(byte))
        }
        return text
    }
}
