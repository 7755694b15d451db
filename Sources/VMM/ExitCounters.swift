import Synchronization

/// What the vCPU threads dropped rather than stop the VM for: guest accesses no device
/// claims, and exits whose fields could not be valid. Plain relaxed atomics, so counting
/// costs the exit path no lock and no allocation. Read by the tests today, and by `--stats`
/// and the metrics of the observability work once they exist.
public final class ExitCounters {
    private let mmio = Atomic<UInt64>(0)
    private let pio = Atomic<UInt64>(0)
    private let malformed = Atomic<UInt64>(0)

    public init() {}

    @inline(__always) func countUnclaimedMMIO() { mmio.wrappingAdd(1, ordering: .relaxed) }
    @inline(__always) func countUnclaimedPIO() { pio.wrappingAdd(1, ordering: .relaxed) }
    @inline(__always) func countMalformedExit() { malformed.wrappingAdd(1, ordering: .relaxed) }

    /// MMIO reads and writes outside every device (reads answered with zeros).
    public var unclaimedMMIO: UInt64 { mmio.load(ordering: .relaxed) }
    /// Port reads and writes no device claims (reads answered with all ones).
    public var unclaimedPIO: UInt64 { pio.load(ordering: .relaxed) }
    /// Exits with impossible sizes or offsets, ignored.
    public var malformedExits: UInt64 { malformed.load(ordering: .relaxed) }
}
