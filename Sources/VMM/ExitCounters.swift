import KVM
import SwiftletCore
import Synchronization

/// What the vCPU threads saw, counted on the exit path with relaxed atomics (no lock, no
/// allocation): every exit to user space by kind, and what was dropped rather than stop the
/// VM for (accesses no device claims, exits whose fields could not be valid). `--stats`
/// prints them at exit with each device's access counts (Bus.accessCounts).
public final class ExitCounters {
    /// The kinds of exit to user space, in the order `--stats` lists them.
    public enum Kind: Int, CaseIterable {
        case mmioRead, mmioWrite, portIn, portOut, interrupted, halt, shutdown, systemEvent, failure

        public var name: String {
            switch self {
            case .mmioRead: return "mmio-read"
            case .mmioWrite: return "mmio-write"
            case .portIn: return "pio-in"
            case .portOut: return "pio-out"
            case .interrupted: return "interrupted"
            case .halt: return "halt"
            case .shutdown: return "shutdown"
            case .systemEvent: return "system-event"
            case .failure: return "failure"
            }
        }
    }

    private let mmioReadCount = Atomic<UInt64>(0)
    private let mmioWriteCount = Atomic<UInt64>(0)
    private let portInCount = Atomic<UInt64>(0)
    private let portOutCount = Atomic<UInt64>(0)
    private let interruptedCount = Atomic<UInt64>(0)
    private let haltCount = Atomic<UInt64>(0)
    private let shutdownCount = Atomic<UInt64>(0)
    private let systemEventCount = Atomic<UInt64>(0)
    private let failureCount = Atomic<UInt64>(0)
    private let mmio = Atomic<UInt64>(0)
    private let pio = Atomic<UInt64>(0)
    private let malformed = Atomic<UInt64>(0)

    public init() {}

    /// Counts one exit by its kind (a malformed one is counted apart, when it is dropped).
    @inline(__always) func count(_ exit: VCPUExit) {
        switch exit {
        case .mmioRead: add(.mmioRead)
        case .mmioWrite: add(.mmioWrite)
        case .portIn: add(.portIn)
        case .portOut: add(.portOut)
        case .interrupted: add(.interrupted)
        case .halt: add(.halt)
        case .shutdown: add(.shutdown)
        case .systemEvent: add(.systemEvent)
        case .failEntry, .internalError, .unknown, .runFailed: add(.failure)
        case .malformed: break
        }
    }

    @inline(__always) private func add(_ kind: Kind) {
        switch kind {
        case .mmioRead: mmioReadCount.wrappingAdd(1, ordering: .relaxed)
        case .mmioWrite: mmioWriteCount.wrappingAdd(1, ordering: .relaxed)
        case .portIn: portInCount.wrappingAdd(1, ordering: .relaxed)
        case .portOut: portOutCount.wrappingAdd(1, ordering: .relaxed)
        case .interrupted: interruptedCount.wrappingAdd(1, ordering: .relaxed)
        case .halt: haltCount.wrappingAdd(1, ordering: .relaxed)
        case .shutdown: shutdownCount.wrappingAdd(1, ordering: .relaxed)
        case .systemEvent: systemEventCount.wrappingAdd(1, ordering: .relaxed)
        case .failure: failureCount.wrappingAdd(1, ordering: .relaxed)
        }
    }

    @inline(__always) func countUnclaimedMMIO() { mmio.wrappingAdd(1, ordering: .relaxed) }
    @inline(__always) func countUnclaimedPIO() { pio.wrappingAdd(1, ordering: .relaxed) }
    @inline(__always) func countMalformedExit() { malformed.wrappingAdd(1, ordering: .relaxed) }

    /// Exits of `kind` so far.
    public func exits(_ kind: Kind) -> UInt64 {
        switch kind {
        case .mmioRead: return mmioReadCount.load(ordering: .relaxed)
        case .mmioWrite: return mmioWriteCount.load(ordering: .relaxed)
        case .portIn: return portInCount.load(ordering: .relaxed)
        case .portOut: return portOutCount.load(ordering: .relaxed)
        case .interrupted: return interruptedCount.load(ordering: .relaxed)
        case .halt: return haltCount.load(ordering: .relaxed)
        case .shutdown: return shutdownCount.load(ordering: .relaxed)
        case .systemEvent: return systemEventCount.load(ordering: .relaxed)
        case .failure: return failureCount.load(ordering: .relaxed)
        }
    }

    /// Every exit to user space so far.
    public var totalExits: UInt64 { Kind.allCases.reduce(0) { $0 &+ exits($1) } }
    /// MMIO reads and writes outside every device (reads answered with zeros).
    public var unclaimedMMIO: UInt64 { mmio.load(ordering: .relaxed) }
    /// Port reads and writes no device claims (reads answered with all ones).
    public var unclaimedPIO: UInt64 { pio.load(ordering: .relaxed) }
    /// Exits with impossible sizes or offsets, ignored.
    public var malformedExits: UInt64 { malformed.load(ordering: .relaxed) }
}

extension ExitCounters {
    /// `--stats`: the exits by kind, what was dropped, and each device's accesses, a line
    /// each (devices no access reached are left out).
    public func report(buses: [Bus]) -> [String] {
        var lines = ["\(totalExits) exits: " + Kind.allCases.map { "\($0.name) \(exits($0))" }.joined(separator: ", ")]
        lines.append("unclaimed mmio \(unclaimedMMIO), unclaimed pio \(unclaimedPIO), malformed exits \(malformedExits)")
        for bus in buses {
            for device in bus.accessCounts where device.reads > 0 || device.writes > 0 {
                lines.append("\(bus.name) 0x\(hex(device.base)) \(device.name): \(device.reads) reads, \(device.writes) writes")
            }
        }
        return lines
    }
}
