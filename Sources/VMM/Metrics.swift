import CLinux
import Devices
import SwiftletCore

/// A moment in the two clocks Firecracker's startup metrics use: CLOCK_MONOTONIC and the
/// process's CPU time (CLOCK_PROCESS_CPUTIME_ID), in microseconds.
public struct ProcessTimestamp {
    public let monotonicMicroseconds: UInt64
    public let cpuMicroseconds: UInt64

    public init(monotonicMicroseconds: UInt64, cpuMicroseconds: UInt64) {
        self.monotonicMicroseconds = monotonicMicroseconds
        self.cpuMicroseconds = cpuMicroseconds
    }

    public static func now() -> ProcessTimestamp {
        var cpu = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu)
        return ProcessTimestamp(monotonicMicroseconds: monotonicNanoseconds() / 1000,
                                cpuMicroseconds: UInt64(cpu.tv_sec) &* 1_000_000 &+ UInt64(cpu.tv_nsec) / 1000)
    }
}

extension ProcessTimestamp {
    /// When the process started, for the startup metrics: the jailer's times where it
    /// passed them (`--start-time-us`, its CLOCK_MONOTONIC; `--start-time-cpu-us`, its CPU
    /// time, which goes on counting across the exec), else `measured` (taken as main
    /// began). The parent's CPU time (`--parent-cpu-time-us`) counts as startup too, as in
    /// Firecracker: it moves the start back by that much.
    public static func processStart(measured: ProcessTimestamp, jailer: ProcessStartTimes?) -> ProcessTimestamp {
        let cpu = jailer?.startCPUTimeUs ?? measured.cpuMicroseconds
        return ProcessTimestamp(monotonicMicroseconds: jailer?.startTimeUs ?? measured.monotonicMicroseconds,
                                cpuMicroseconds: cpu &- (jailer?.parentCPUTimeUs ?? 0))
    }
}

/// The counters of one VM that the metrics read: its exits and its virtio devices. A
/// guest reboot builds a new VM, whose counters start again from zero; `Metrics.detach`
/// keeps what the old one counted.
public struct MetricsSources {
    public var exits: ExitCounters?
    public var disks: [(id: String, device: BlockDevice)]
    public var networkInterfaces: [(id: String, device: NetDevice)]
    public var vsock: VsockDevice?
    public var entropy: EntropyDevice?

    public init(exits: ExitCounters? = nil, disks: [(id: String, device: BlockDevice)] = [],
                networkInterfaces: [(id: String, device: NetDevice)] = [],
                vsock: VsockDevice? = nil, entropy: EntropyDevice? = nil) {
        self.exits = exits
        self.disks = disks
        self.networkInterfaces = networkInterfaces
        self.vsock = vsock
        self.entropy = entropy
    }

    public init(_ vm: VM) {
        self.init(exits: vm.exitCounters,
                  disks: vm.devices.disks.map { ($0.id, $0.device) },
                  networkInterfaces: vm.devices.networkInterfaces.map { ($0.id, $0.device) },
                  vsock: vm.devices.vsock, entropy: vm.devices.entropy)
    }
}

/// What became of a metrics line.
public enum MetricsFlush: Equatable {
    /// Queued for the writer thread (written at once unless the destination stalls).
    case queued
    /// No destination is configured: nothing was written (Firecracker answers a flush
    /// then without an error, too).
    case notConfigured
    /// The writer's buffer was full (the destination stalled): the line was dropped and
    /// counted (missed_metrics_count); its counts go into the next line.
    case dropped
}

/// Firecracker's metrics: one JSON object per line, written to a file or named pipe every
/// minute and on demand (FlushMetrics). As in Firecracker, counters ("SharedIncMetric")
/// report what was counted since the last line written, and values ("SharedStoreMetric":
/// startup and pause/resume times) report the latest value. A line is built on the main
/// thread from the devices' own relaxed atomic counters (nothing is added to the vCPU exit
/// path) and written by a LineWriter's thread, so neither the main thread nor a vCPU ever
/// waits for the destination. Unlike Firecracker, a line that cannot be written (its
/// buffer full) does not lose its counts: they go into the next line.
///
/// Groups, in Firecracker's order (its other groups count things Swiftlet does not have,
/// or have no counter here yet):
/// - utc_timestamp_ms
/// - api_server: process_startup_time_us, process_startup_time_cpu_us (`recordStartup`)
/// - block_<drive_id> per disk, then block (their sum): execute_fails, invalid_reqs_count,
///   flush_count, read_bytes, write_bytes, read_count, write_count, rate_limiter_throttled_events
/// - uart: missed_write_count, write_count (the console; bytes, as Firecracker counts them)
/// - latencies_us: pause_vm, resume_vm (`recordPause`, `recordResume`)
/// - logger: missed_metrics_count, metrics_fails, missed_log_count
/// - net_<iface_id> per interface, then net (their sum): rx_rate_limiter_throttled,
///   rx_bytes_count, rx_packets_count, tx_bytes_count, tx_malformed_frames,
///   tx_packets_count, tx_rate_limiter_throttled
/// - vcpu: exit_io_in, exit_io_out, exit_mmio_read, exit_mmio_write, failures
/// - vsock: rx_bytes_count, tx_bytes_count, rx_packets_count, tx_packets_count, conns_added,
///   conns_removed (rx is toward the guest, as in Firecracker)
/// - entropy: entropy_event_count, entropy_bytes, host_rng_fails, entropy_rate_limiter_throttled
///
/// Main thread only (it is a PollSource of the main loop, which drives the period).
public final class Metrics: PollSource {
    public static let defaultIntervalMilliseconds: Int64 = 60_000

    public let intervalMilliseconds: Int64
    private let logger: Logger
    private let capacity: Int
    private var writer: LineWriter?
    private var sources: MetricsSources?
    /// The guest console, whose byte counts are the uart group (it outlives reboots).
    public var console: ConsoleOutput?
    /// What VMs let go (a reboot) had counted, by group: added to the live counts.
    private var retired: [String: [UInt64]] = [:]
    /// The totals the last line written reported, by group: the next line reports the rest.
    private var reported: [String: [UInt64]] = [:]
    /// Every disk and interface seen, in Firecracker's order (its map's: by id's bytes).
    private var diskIDs: [String] = []
    private var interfaceIDs: [String] = []
    private var startupMicroseconds: UInt64 = 0
    private var startupCPUMicroseconds: UInt64 = 0
    private var pauseMicroseconds: UInt64 = 0
    private var resumeMicroseconds: UInt64 = 0
    private var nextFlushAt: Int64?
    private var started = false

    /// `logger`: whose missed lines the logger group reports. `capacity`: the writer's
    /// ring (a line is 1 to 3 KiB, more with many devices).
    public init(logger: Logger = .shared, intervalMilliseconds: Int64 = Metrics.defaultIntervalMilliseconds,
                capacity: Int = 256 * 1024) {
        self.logger = logger
        self.intervalMilliseconds = intervalMilliseconds
        self.capacity = capacity
    }

    // MARK: configuration

    /// Sends the metrics to `path`, a file (appended to) or a named pipe (opened without
    /// waiting for a reader; see LineWriter.openDestination). A second call redirects.
    public func configure(path: String) throws(SwiftletError) {
        let fd = try LineWriter.openDestination(path)
        do throws(SwiftletError) {
            try configure(fd: fd, closesDescriptor: true)
        } catch {
            close(fd)
            throw error
        }
    }

    /// Sends the metrics to `fd`, closed at the end when `closesDescriptor`.
    public func configure(fd: Int32, closesDescriptor: Bool) throws(SwiftletError) {
        if let writer {
            writer.redirect(to: fd, closesDescriptor: closesDescriptor)
        } else {
            writer = try LineWriter(fd: fd, closesDescriptor: closesDescriptor, capacity: capacity,
                                    threadName: "metrics writer")
        }
        if nextFlushAt == nil { nextFlushAt = monotonicMilliseconds() + intervalMilliseconds }
    }

    public var isConfigured: Bool { writer != nil }

    /// Reads `sources` from now on (a VM that was attached is detached first). The first
    /// attach writes a line at once, as Firecracker does when its VM starts, so the startup
    /// times are out early.
    public func attach(_ sources: MetricsSources) {
        // The same VM again keeps its place; another one's counts are kept first.
        if let current = self.sources, current.exits == nil || current.exits !== sources.exits { detach() }
        self.sources = sources
        for disk in sources.disks where !diskIDs.contains(disk.id) { diskIDs = Metrics.insertSorted(disk.id, into: diskIDs) }
        for interface in sources.networkInterfaces where !interfaceIDs.contains(interface.id) {
            interfaceIDs = Metrics.insertSorted(interface.id, into: interfaceIDs)
        }
        if !started, writer != nil {
            started = true
            flush()
            nextFlushAt = monotonicMilliseconds() + intervalMilliseconds
        }
    }

    public func attach(_ vm: VM) { attach(MetricsSources(vm)) }

    /// Lets go of the VM's counters, keeping their totals: call once its threads are joined
    /// and before the VM is released (a guest reboot), so that what it counted since the
    /// last line still reaches the next one and the metrics hold no reference to it.
    public func detach() {
        guard let sources else { return }
        for (group, values) in Metrics.liveCounters(sources) {
            retired[group] = Metrics.sum(retired[group], values)
        }
        self.sources = nil
    }

    /// api_server's startup times: from `start` (taken as the process began) until now
    /// (Firecracker: until the API server is up).
    public func recordStartup(since start: ProcessTimestamp, now: ProcessTimestamp = .now()) {
        startupMicroseconds = now.monotonicMicroseconds &- start.monotonicMicroseconds
        startupCPUMicroseconds = now.cpuMicroseconds &- start.cpuMicroseconds
    }

    /// latencies_us: how long the latest pause or resume took.
    public func recordPause(microseconds: UInt64) { pauseMicroseconds = microseconds }
    public func recordResume(microseconds: UInt64) { resumeMicroseconds = microseconds }

    // MARK: writing

    /// Queues a line now (FlushMetrics, and the periodic tick). Never waits for the
    /// destination; see `waitUntilWritten` to know it is out.
    @discardableResult
    public func flush() -> MetricsFlush {
        guard let writer else { return .notConfigured }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let milliseconds = UInt64(now.tv_sec) &* 1000 &+ UInt64(now.tv_nsec) / 1_000_000
        let (line, totals) = render(utcTimestampMilliseconds: milliseconds)
        guard line.withUnsafeBytes({ writer.append($0) }) else { return .dropped }
        for (group, values) in totals { reported[group] = values }
        return .queued
    }

    /// Waits at most `milliseconds` until the lines queued so far are written.
    public func waitUntilWritten(milliseconds: Int) -> Bool {
        writer?.waitUntilWritten(milliseconds: milliseconds) ?? true
    }

    /// At exit: writes out what is queued (at most `milliseconds` of waiting) and stops the
    /// writer. Returns the lines lost. (A last line, if wanted, is the caller's `flush()`.)
    @discardableResult
    public func finish(milliseconds: Int = 1000) -> UInt64 {
        nextFlushAt = nil
        return writer?.finish(milliseconds: milliseconds) ?? 0
    }

    // MARK: PollSource (the period)

    public func pollDescriptors() -> [pollfd] { [] }

    public var nextDeadline: Int64? { writer == nil ? nil : nextFlushAt }

    public func handleEvents(_ fds: [pollfd], now: Int64) {
        guard writer != nil, let due = nextFlushAt, now >= due else { return }
        flush()
        // A main loop held up for longer than a period writes one line, not a burst.
        nextFlushAt = max(due + intervalMilliseconds, now + 1)
    }

    // MARK: the line

    static let blockFields: [StaticString] = [
        "execute_fails", "invalid_reqs_count", "flush_count", "read_bytes", "write_bytes",
        "read_count", "write_count", "rate_limiter_throttled_events",
    ]
    static let netFields: [StaticString] = [
        "rx_rate_limiter_throttled", "rx_bytes_count", "rx_packets_count", "tx_bytes_count",
        "tx_malformed_frames", "tx_packets_count", "tx_rate_limiter_throttled",
    ]
    static let vcpuFields: [StaticString] = ["exit_io_in", "exit_io_out", "exit_mmio_read", "exit_mmio_write", "failures"]
    static let vsockFields: [StaticString] = [
        "rx_bytes_count", "tx_bytes_count", "rx_packets_count", "tx_packets_count", "conns_added", "conns_removed",
    ]
    static let entropyFields: [StaticString] = [
        "entropy_event_count", "entropy_bytes", "host_rng_fails", "entropy_rate_limiter_throttled",
    ]
    static let uartFields: [StaticString] = ["missed_write_count", "write_count"]
    static let loggerFields: [StaticString] = ["missed_metrics_count", "metrics_fails", "missed_log_count"]

    /// The VM's counters now, by group (totals since the VM was built).
    static func liveCounters(_ sources: MetricsSources) -> [(String, [UInt64])] {
        var groups: [(String, [UInt64])] = []
        if let exits = sources.exits {
            groups.append(("vcpu", [exits.exits(.portIn), exits.exits(.portOut), exits.exits(.mmioRead),
                                    exits.exits(.mmioWrite), exits.exits(.failure)]))
        }
        for (id, disk) in sources.disks {
            groups.append(("block_" + id, [disk.ioErrors, disk.unsupportedRequests &+ disk.unanswerableChains, disk.flushes,
                                           disk.bytesRead, disk.bytesWritten, disk.readRequests, disk.writeRequests,
                                           disk.limiter?.throttled ?? 0]))
        }
        for (id, net) in sources.networkInterfaces {
            groups.append(("net_" + id, [net.receiveLimiter?.throttled ?? 0, net.rxBytes, net.rxFrames, net.txBytes,
                                         net.txMalformed, net.txFrames, net.transmitLimiter?.throttled ?? 0]))
        }
        if let vsock = sources.vsock {
            groups.append(("vsock", [vsock.bytesToGuest, vsock.bytesFromGuest, vsock.packetsToGuest,
                                     vsock.packetsFromGuest, vsock.connectionsOpened, vsock.connectionsClosed]))
        }
        if let entropy = sources.entropy {
            groups.append(("entropy", [entropy.requests, entropy.bytesGiven, entropy.failures,
                                       entropy.limiter?.throttled ?? 0]))
        }
        return groups
    }

    /// The line for this moment, and the totals it reports up to (by group), which become
    /// the baseline once the line is queued.
    func render(utcTimestampMilliseconds: UInt64) -> (line: [UInt8], totals: [String: [UInt64]]) {
        var totals = retired
        if let sources {
            for (group, values) in Metrics.liveCounters(sources) { totals[group] = Metrics.sum(totals[group], values) }
        }
        if let console { totals["uart"] = [console.droppedBytes, console.receivedBytes] }
        totals["logger"] = [writer?.missedLines ?? 0, writer?.failedWrites ?? 0, logger.missedLogCount]

        var json = JSONLineWriter()
        json.beginObject()
        json.member("utc_timestamp_ms", utcTimestampMilliseconds)
        json.beginObject("api_server")
        json.member("process_startup_time_us", startupMicroseconds)
        json.member("process_startup_time_cpu_us", startupCPUMicroseconds)
        json.endObject()
        perDevice(&json, prefix: "block", ids: diskIDs, fields: Metrics.blockFields, totals: totals)
        counters(&json, "uart", fields: Metrics.uartFields, totals: totals)
        json.beginObject("latencies_us")
        json.member("pause_vm", pauseMicroseconds)
        json.member("resume_vm", resumeMicroseconds)
        json.endObject()
        counters(&json, "logger", fields: Metrics.loggerFields, totals: totals)
        perDevice(&json, prefix: "net", ids: interfaceIDs, fields: Metrics.netFields, totals: totals)
        counters(&json, "vcpu", fields: Metrics.vcpuFields, totals: totals)
        counters(&json, "vsock", fields: Metrics.vsockFields, totals: totals)
        counters(&json, "entropy", fields: Metrics.entropyFields, totals: totals)
        json.endObject()
        return (json.bytes, totals)
    }

    /// What `group` counted since the last line written.
    private func deltas(_ group: String, count: Int, totals: [String: [UInt64]]) -> [UInt64] {
        let total = totals[group] ?? [], base = reported[group] ?? []
        var result: [UInt64] = []
        for index in 0..<count {
            result.append((index < total.count ? total[index] : 0) &- (index < base.count ? base[index] : 0))
        }
        return result
    }

    private func counters(_ json: inout JSONLineWriter, _ group: String, fields: [StaticString], totals: [String: [UInt64]]) {
        let values = deltas(group, count: fields.count, totals: totals)
        json.beginObject(group)
        for (field, value) in zip(fields, values) { json.member(field, value) }
        json.endObject()
    }

    /// `prefix_<id>` per device, then `prefix` with their sum (Firecracker's layout).
    private func perDevice(_ json: inout JSONLineWriter, prefix: String, ids: [String], fields: [StaticString],
                           totals: [String: [UInt64]]) {
        var sum = [UInt64](repeating: 0, count: fields.count)
        for id in ids {
            let group = prefix + "_" + id
            let values = deltas(group, count: fields.count, totals: totals)
            json.beginObject(group)
            for index in 0..<fields.count {
                json.member(fields[index], values[index])
                sum[index] &+= values[index]
            }
            json.endObject()
        }
        json.beginObject(prefix)
        for (field, value) in zip(fields, sum) { json.member(field, value) }
        json.endObject()
    }

    static func sum(_ a: [UInt64]?, _ b: [UInt64]) -> [UInt64] {
        guard let a else { return b }
        var result = b
        for index in 0..<min(a.count, b.count) { result[index] &+= a[index] }
        return result
    }

    /// Inserts `id` in byte order (Firecracker's per-device maps are BTreeMaps on the id).
    static func insertSorted(_ id: String, into ids: [String]) -> [String] {
        var result = ids
        let index = result.firstIndex { id.utf8.lexicographicallyPrecedes($0.utf8) } ?? result.count
        result.insert(id, at: index)
        return result
    }
}

/// A small JSON writer for the metrics line: objects, string keys (escaped per RFC 8259)
/// and unsigned integers, which is all the line holds. (API's JSON module is above VMM and
/// its integers are signed; a counter is a UInt64 that may wrap.)
struct JSONLineWriter {
    private(set) var bytes: [UInt8] = []
    private var needsComma = false

    init() { bytes.reserveCapacity(4096) }

    mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    mutating func beginObject(_ key: String) {
        self.key(key.utf8)
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    mutating func member(_ key: StaticString, _ value: UInt64) {
        self.key(UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount))
        appendDecimal(value)
        needsComma = true
    }

    private mutating func key<Bytes: Sequence>(_ utf8: Bytes) where Bytes.Element == UInt8 {
        separate()
        JSONLineWriter.appendString(utf8, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
    }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        needsComma = false
    }

    private mutating func appendDecimal(_ value: UInt64) {
        var digits: [UInt8] = []
        var rest = value
        repeat {
            digits.append(UInt8(ascii: "0") + UInt8(rest % 10))
            rest /= 10
        } while rest > 0
        bytes.append(contentsOf: digits.reversed())
    }

    /// A string's UTF-8 bytes as a JSON string.
    static func appendString<Bytes: Sequence>(_ utf8: Bytes, to bytes: inout [UInt8]) where Bytes.Element == UInt8 {
        let hex: StaticString = "0123456789abcdef"
        bytes.append(UInt8(ascii: "\""))
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                bytes.append(UInt8(ascii: "\\"))
                bytes.append(byte)
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x00..<0x20:
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                          hex.utf8Start[Int(byte >> 4)], hex.utf8Start[Int(byte & 0xF)]])
            default:
                bytes.append(byte)   // UTF-8 passes through: a String's bytes are valid UTF-8
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
