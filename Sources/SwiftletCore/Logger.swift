import CLinux
import Synchronization

/// How much the logger lets through, Firecracker's levels: a line is written when its level
/// is at most the logger's (`off` lets nothing through).
public enum LogLevel: Int, Comparable, CustomStringConvertible, CaseIterable {
    case off = 0, error, warning, info, debug, trace

    /// Firecracker's spellings, in any case: Off, Error, Warn or Warning, Info, Debug, Trace
    /// (the CLI's --level, PUT /logger, a config file's logger.level).
    public init?(_ name: String) {
        var lower: [UInt8] = []
        for byte in name.utf8 { lower.append(byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte) }
        switch String(decoding: lower, as: UTF8.self) {
        case "off": self = .off
        case "error": self = .error
        case "warn", "warning": self = .warning
        case "info": self = .info
        case "debug": self = .debug
        case "trace": self = .trace
        default: return nil
        }
    }

    /// Firecracker's API spelling ("Error", "Warning", "Info", "Debug", "Trace", "Off").
    public var description: String {
        switch self {
        case .off: return "Off"
        case .error: return "Error"
        case .warning: return "Warning"
        case .info: return "Info"
        case .debug: return "Debug"
        case .trace: return "Trace"
        }
    }

    /// As a log line shows it (Firecracker's, from Rust's log crate).
    public var label: String {
        switch self {
        case .off: return "OFF"
        case .error: return "ERROR"
        case .warning: return "WARN"
        case .info: return "INFO"
        case .debug: return "DEBUG"
        case .trace: return "TRACE"
        }
    }

    public static let accepted = "Error, Warning, Info, Debug, Trace or Off"

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

/// The VMM's log, in Firecracker's line layout:
///
///     2026-11-24T09:15:02.123456789 [anonymous-instance:main:WARN:VMM/VM.swift:42] message
///
/// UTC time to the nanosecond, then in brackets the instance id, the thread's name ("-"
/// when it has none), the level if `showLevel`, the file and line if `showOrigin`; then the
/// message. Lines go to stderr until `configure(path:)` names a file or named pipe.
/// Any thread may log: a line is formatted straight into a LineWriter's ring and written by
/// its thread, so a caller never waits for the destination; lines that find the ring full
/// are dropped whole and counted (`missedLogCount`, the metrics' `missed_log_count`).
/// Logging is not for the vCPU exit path all the same: a message is a String.
/// Thread-safe: its settings are under a lock, its level an atomic, its lines a LineWriter's.
public final class Logger: @unchecked Sendable {
    /// The process's logger. Off until configured (a log path, a level, PUT /logger): the
    /// VMM's stderr already has its one line per event in a layout scripts parse, and a log
    /// nobody asked for would add lines to it.
    public static let shared = Logger(level: .off)
    /// Firecracker's instance id until one is set.
    public static let defaultInstanceID = "anonymous-instance"

    private let maximumLevel: Atomic<Int>
    private let lock = Lock()
    private var instance = Logger.defaultInstanceID
    private var levelShown = false
    private var originShown = false
    private var modulePrefix: String?
    private let capacity: Int
    /// Made with the first line (or at `configure`), so an unused logger has no thread.
    private var writer: LineWriter?
    private var destination: (fd: Int32, closes: Bool)
    /// Whether lines go to stderr (no path configured), wherever the writer is.
    private var toStandardError: Bool
    private var unstartedLines: UInt64 = 0
    private var finished = false

    /// A logger writing to `fd` (stderr by default; not closed) through a ring of
    /// `capacity` bytes, letting through lines up to `level` (Firecracker's default: Info).
    public init(level: LogLevel = .info, fd: Int32 = 2, capacity: Int = 64 * 1024) {
        maximumLevel = Atomic(level.rawValue)
        destination = (fd, false)
        toStandardError = fd == 2
        self.capacity = capacity
    }

    // MARK: configuration

    /// Sets what is given and leaves the rest (Firecracker's PUT /logger fields and
    /// command-line flags): the destination `path` (a file, appended to, or a named pipe;
    /// see LineWriter.openDestination), the level, whether lines show their level and
    /// origin, and a module filter (only lines from files whose `#fileID` starts with it,
    /// e.g. "VMM/" or "Devices"). The path is opened first: if it cannot be, nothing
    /// changes. Lines already queued go to the new destination. (Firecracker resets the
    /// level to Info when a PUT /logger leaves it out; the API layer decides which it wants.)
    public func configure(path: String? = nil, level: LogLevel? = nil, showLevel: Bool? = nil,
                          showOrigin: Bool? = nil, module: String? = nil) throws(SwiftletError) {
        let fd = try path.map { (path) throws(SwiftletError) in try LineWriter.openDestination(path) }
        lock.lock()
        defer { lock.unlock() }
        if let fd {
            toStandardError = false
            if let writer {
                writer.redirect(to: fd, closesDescriptor: true)
            } else {
                if destination.closes { close(destination.fd) }
                destination = (fd, true)
            }
        }
        if let level { maximumLevel.store(level.rawValue, ordering: .relaxed) }
        if let showLevel { levelShown = showLevel }
        if let showOrigin { originShown = showOrigin }
        if let module { modulePrefix = module.isEmpty ? nil : module }
    }

    /// The id every line carries (Swiftlet's instance id, Firecracker's `--id`).
    public var instanceID: String {
        get { lock.withLock { instance } }
        set { lock.withLock { instance = newValue } }
    }

    /// Whether the lines go to stderr (no `--log-path`): a message the VMM also prints on
    /// stderr itself need not be logged as well.
    public var writesToStandardError: Bool { lock.withLock { toStandardError } }

    public var level: LogLevel {
        get { LogLevel(rawValue: maximumLevel.load(ordering: .relaxed)) ?? .off }
        set { maximumLevel.store(newValue.rawValue, ordering: .relaxed) }
    }

    public var showLevel: Bool {
        get { lock.withLock { levelShown } }
        set { lock.withLock { levelShown = newValue } }
    }

    public var showOrigin: Bool {
        get { lock.withLock { originShown } }
        set { lock.withLock { originShown = newValue } }
    }

    /// Whether a line of `level` would be written (one relaxed load): skip building an
    /// expensive message when it would not.
    @inline(__always)
    public func isEnabled(_ level: LogLevel) -> Bool {
        level != .off && level.rawValue <= maximumLevel.load(ordering: .relaxed)
    }

    // MARK: logging

    public func log(_ level: LogLevel, _ message: @autoclosure () -> String,
                    file: StaticString = #fileID, line: UInt = #line) {
        guard isEnabled(level) else { return }
        lock.lock()
        if let modulePrefix, !Logger.hasPrefix(file, modulePrefix) {
            lock.unlock()
            return
        }
        let target = startedWriter()
        let id = instance
        let origin: (file: StaticString, line: UInt)? = originShown ? (file, line) : nil
        let shownLevel: LogLevel? = levelShown ? level : nil
        lock.unlock()
        guard let target else { return }
        let text = message()
        target.append { builder in
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            Logger.formatLine(into: &builder, seconds: Int64(now.tv_sec), nanoseconds: Int(now.tv_nsec),
                              instanceID: id, threadName: nil, level: shownLevel, origin: origin, message: text)
        }
    }

    public func error(_ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
        log(.error, message(), file: file, line: line)
    }

    public func warn(_ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
        log(.warning, message(), file: file, line: line)
    }

    public func info(_ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
        log(.info, message(), file: file, line: line)
    }

    public func debug(_ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
        log(.debug, message(), file: file, line: line)
    }

    public func trace(_ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
        log(.trace, message(), file: file, line: line)
    }

    // MARK: what became of the lines

    /// Lines dropped so far: the destination did not keep up, a write failed, or (rarely)
    /// the writer thread could not be started.
    public var missedLogCount: UInt64 {
        lock.lock()
        let writer = self.writer, unstarted = unstartedLines
        lock.unlock()
        return unstarted &+ (writer?.missedLines ?? 0)
    }

    /// Waits at most `milliseconds` for the lines logged so far to be written.
    public func waitUntilWritten(milliseconds: Int) -> Bool {
        lock.lock()
        let writer = self.writer
        lock.unlock()
        return writer?.waitUntilWritten(milliseconds: milliseconds) ?? true
    }

    /// At exit: writes out what is queued (waiting at most `milliseconds` for a stalled
    /// destination) and stops the writer; later lines are dropped. Returns the lines lost.
    @discardableResult
    public func finish(milliseconds: Int = 1000) -> UInt64 {
        lock.lock()
        finished = true
        let writer = self.writer, unstarted = unstartedLines
        if writer == nil, destination.closes {
            close(destination.fd)
            destination = (-1, false)
        }
        lock.unlock()
        return unstarted &+ (writer?.finish(milliseconds: milliseconds) ?? 0)
    }

    /// The writer, started on first use (lock held); nil, and the line counted, if its
    /// thread cannot be started or the logger has finished.
    private func startedWriter() -> LineWriter? {
        if let writer { return writer }
        guard !finished, let started = try? LineWriter(fd: destination.fd, closesDescriptor: destination.closes,
                                                       capacity: capacity, threadName: "log writer") else {
            unstartedLines &+= 1
            return nil
        }
        writer = started
        return started
    }

    // MARK: the line

    /// One line without its newline: `seconds`/`nanoseconds` since the epoch (printed as
    /// UTC), the thread's name (nil: the calling thread's), the level and origin if shown.
    /// A message's own line breaks become spaces: one call, one line.
    static func formatLine(into line: inout LineBuilder, seconds: Int64, nanoseconds: Int, instanceID: String,
                           threadName: String?, level: LogLevel?, origin: (file: StaticString, line: UInt)?,
                           message: String) {
        appendTimestamp(into: &line, seconds: seconds, nanoseconds: nanoseconds)
        line.append(" [")
        line.append(instanceID)
        line.append(":")
        if let threadName {
            line.append(threadName.isEmpty ? "-" : threadName)
        } else if let name = sl_thread_name(), name[0] != 0 {
            line.append(cString: name)
        } else {
            line.append("-")
        }
        if let level {
            line.append(":")
            line.append(level.label)
        }
        if let origin {
            line.append(":")
            line.append(origin.file)
            line.append(":")
            line.appendDecimal(UInt64(origin.line))
        }
        line.append("] ")
        var text = message
        text.withUTF8 { bytes in
            var start = 0
            for index in 0..<bytes.count where bytes[index] == 0x0A || bytes[index] == 0x0D {
                line.append(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[start..<index])))
                line.append(0x20)
                start = index + 1
            }
            line.append(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[start...])))
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnn`, UTC (Firecracker prints local time, which is UTC
    /// in its jail; UTC needs no time zone files and reads the same on every host).
    static func appendTimestamp(into line: inout LineBuilder, seconds: Int64, nanoseconds: Int) {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = UInt64(seconds - days * 86_400)
        let date = civilDate(daysSinceEpoch: days)
        line.appendDecimal(UInt64(clamping: date.year), digits: 4)
        line.append(0x2D)
        line.appendDecimal(UInt64(date.month), digits: 2)
        line.append(0x2D)
        line.appendDecimal(UInt64(date.day), digits: 2)
        line.append(0x54)
        line.appendDecimal(secondOfDay / 3600, digits: 2)
        line.append(0x3A)
        line.appendDecimal(secondOfDay / 60 % 60, digits: 2)
        line.append(0x3A)
        line.appendDecimal(secondOfDay % 60, digits: 2)
        line.append(0x2E)
        line.appendDecimal(UInt64(clamping: nanoseconds), digits: 9)
    }

    /// The proleptic Gregorian date `days` after 1970-01-01: count in 400-year eras of
    /// 146,097 days, from a year that starts on March 1 (so the leap day ends it).
    static func civilDate(daysSinceEpoch days: Int64) -> (year: Int64, month: Int, day: Int) {
        let shifted = days + 719_468                       // days since 0000-03-01
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097                                      // 0...146096
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)   // from March 1
        let monthFromMarch = (5 * dayOfYear + 2) / 153                              // 0 = March
        let day = Int(dayOfYear - (153 * monthFromMarch + 2) / 5 + 1)
        let month = Int(monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9)
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }

    private static func hasPrefix(_ file: StaticString, _ prefix: String) -> Bool {
        let count = file.utf8CodeUnitCount
        var index = 0
        for byte in prefix.utf8 {
            guard index < count, file.utf8Start[index] == byte else { return false }
            index += 1
        }
        return true
    }
}
