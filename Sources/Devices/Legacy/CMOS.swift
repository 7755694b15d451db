import SwiftletCore

// MC146818 CMOS real-time clock of the PC: port 0x70 selects a register (bit 7 masks NMIs),
// port 0x71 reads or writes it. Register numbers from the MC146818A datasheet.
private let INDEX_PORT_OFFSET: UInt64 = 0
private let DATA_PORT_OFFSET: UInt64 = 1
private let REG_SECONDS: UInt8 = 0x00
private let REG_MINUTES: UInt8 = 0x02
private let REG_HOURS: UInt8 = 0x04
private let REG_DAY_OF_WEEK: UInt8 = 0x06
private let REG_DAY_OF_MONTH: UInt8 = 0x07
private let REG_MONTH: UInt8 = 0x08
private let REG_YEAR: UInt8 = 0x09
private let REG_STATUS_A: UInt8 = 0x0A
private let REG_STATUS_B: UInt8 = 0x0B
private let REG_STATUS_C: UInt8 = 0x0C
private let REG_STATUS_D: UInt8 = 0x0D
private let REG_CENTURY: UInt8 = 0x32
private let STATUS_A_DIVIDER_32KHZ: UInt8 = 0x26   // UIP (bit 7) never set: reads are always safe
private let STATUS_B_24_HOUR: UInt8 = 0x02
private let STATUS_B_BINARY: UInt8 = 0x04
private let STATUS_D_VALID: UInt8 = 0x80
private let HOURS_PM: UInt8 = 0x80           // 12-hour mode: bit 7 of the hours register

/// The PC's CMOS RTC reading the host's UTC wall clock (Linux's rtc_cmos and the kernel's
/// early clock read it), plus 128 bytes of CMOS RAM. Guest writes to the time registers are
/// kept as an offset, like PL031's load register on arm64. Every value a guest may write is
/// taken without trapping: the datasheet leaves out-of-range time fields undefined, and
/// here they are refused (the clock keeps its time) and counted in `rejectedTimeWrites`.
public final class CMOS: ByteWideDevice {
    public static let base: UInt64 = 0x70
    public static let size: UInt64 = 2

    /// The clock stays within years 1-9999, so every calendar field is small and every
    /// sum below fits; a host clock outside that range reads as its nearest end.
    static let earliestSeconds: Int64 = -62_135_596_800   // 0001-01-01T00:00:00Z
    static let latestSeconds: Int64 = 253_402_300_799     // 9999-12-31T23:59:59Z

    private let lock = Lock()
    private let now: () -> UInt64
    private var index: UInt8 = 0
    private var ram = [UInt8](repeating: 0, count: 128)
    private var offset: Int64 = 0
    private var rejected = 0

    /// `now` gives host wall-clock seconds since the epoch (UTC).
    public init(now: @escaping () -> UInt64) {
        self.now = now
        ram[Int(REG_STATUS_A)] = STATUS_A_DIVIDER_32KHZ
        ram[Int(REG_STATUS_B)] = STATUS_B_24_HOUR
        ram[Int(REG_STATUS_D)] = STATUS_D_VALID
    }

    /// Guest writes of time fields that were out of range or not valid BCD.
    public var rejectedTimeWrites: Int { lock.withLock { rejected } }

    public func readByte(at registerOffset: UInt64) -> UInt8 {
        lock.withLock { () -> UInt8 in
            guard registerOffset == DATA_PORT_OFFSET else { return index }
            return register(index & 0x7F)
        }
    }

    public func writeByte(_ value: UInt8, at registerOffset: UInt64) {
        lock.withLock {
            if registerOffset == INDEX_PORT_OFFSET {
                index = value
            } else if registerOffset == DATA_PORT_OFFSET {
                let register = index & 0x7F
                switch register {
                case REG_STATUS_C, REG_STATUS_D: break                  // read-only
                case REG_STATUS_A: ram[Int(register)] = value & 0x7F   // UIP is read-only
                case REG_SECONDS, REG_MINUTES, REG_HOURS, REG_DAY_OF_WEEK, REG_DAY_OF_MONTH,
                     REG_MONTH, REG_YEAR, REG_CENTURY:
                    if !setTimeField(register, value) { rejected &+= 1 }
                default: ram[Int(register)] = value
                }
            }
        }
    }

    private var binary: Bool { ram[Int(REG_STATUS_B)] & STATUS_B_BINARY != 0 }
    private var twentyFourHour: Bool { ram[Int(REG_STATUS_B)] & STATUS_B_24_HOUR != 0 }

    /// The guest's time: host time plus the guest's offset, within the clock's range.
    private var guestSeconds: Int64 {
        let host = Int64(clamping: now())
        return min(max(host &+ offset, CMOS.earliestSeconds), CMOS.latestSeconds)
    }

    /// A field of 0-99 in the data mode status B selects.
    private func encode(_ value: Int) -> UInt8 {
        let field = UInt8(((value % 100) + 100) % 100)
        return binary ? field : (field / 10) << 4 | (field % 10)
    }

    /// The field a guest wrote, or nil if it is not a valid BCD pair in BCD mode.
    private func decode(_ value: UInt8) -> Int? {
        if binary { return Int(value) }
        guard value >> 4 <= 9, value & 0x0F <= 9 else { return nil }
        return Int(value >> 4) * 10 + Int(value & 0x0F)
    }

    /// Hours in 24-hour mode, or 1-12 with bit 7 for PM in 12-hour mode.
    private func encodeHours(_ hour: Int) -> UInt8 {
        if twentyFourHour { return encode(hour) }
        let twelve = hour % 12 == 0 ? 12 : hour % 12
        return encode(twelve) | (hour >= 12 ? HOURS_PM : 0)
    }

    private func decodeHours(_ value: UInt8) -> Int? {
        if twentyFourHour { return decode(value) }
        guard let twelve = decode(value & ~HOURS_PM), twelve >= 1, twelve <= 12 else { return nil }
        return twelve % 12 + (value & HOURS_PM != 0 ? 12 : 0)
    }

    private func register(_ register: UInt8) -> UInt8 {
        let time = CivilTime(secondsSinceEpoch: guestSeconds)
        switch register {
        case REG_SECONDS: return encode(time.second)
        case REG_MINUTES: return encode(time.minute)
        case REG_HOURS: return encodeHours(time.hour)
        case REG_DAY_OF_WEEK: return encode(time.weekday + 1)
        case REG_DAY_OF_MONTH: return encode(time.day)
        case REG_MONTH: return encode(time.month)
        case REG_YEAR: return encode(time.year % 100)
        case REG_CENTURY: return encode(time.year / 100)
        case REG_STATUS_C: return 0
        default: return ram[Int(register)]
        }
    }

    /// A guest setting the clock: keep the difference from the host's time. Returns false
    /// (and changes nothing) for a value outside the field's range.
    private func setTimeField(_ register: UInt8, _ value: UInt8) -> Bool {
        let current = guestSeconds
        var time = CivilTime(secondsSinceEpoch: current)
        let field = register == REG_HOURS ? decodeHours(value) : decode(value)
        guard let field else { return false }
        switch register {
        case REG_SECONDS where field <= 59: time.second = field
        case REG_MINUTES where field <= 59: time.minute = field
        case REG_HOURS where field <= 23: time.hour = field
        case REG_DAY_OF_WEEK where field >= 1 && field <= 7: return true   // derived from the date
        case REG_DAY_OF_MONTH where field >= 1 && field <= 31: time.day = field
        case REG_MONTH where field >= 1 && field <= 12: time.month = field
        case REG_YEAR where field <= 99: time.year = time.year / 100 * 100 + field
        case REG_CENTURY where field >= 1 && field <= 99: time.year = field * 100 + time.year % 100
        default: return false
        }
        let wanted = min(max(time.secondsSinceEpoch, CMOS.earliestSeconds), CMOS.latestSeconds)
        offset = offset &+ (wanted &- current)
        return true
    }
}

/// UTC calendar fields from seconds since 1970 and back (proleptic Gregorian), so the RTC
/// needs no libc time zone machinery.
struct CivilTime: Equatable {
    var year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int
    var weekday: Int   // 0 = Sunday

    init(secondsSinceEpoch: Int64) {
        let days = Int(secondsSinceEpoch >= 0 ? secondsSinceEpoch / 86400 : (secondsSinceEpoch - 86399) / 86400)
        let seconds = Int(secondsSinceEpoch - Int64(days) * 86400)
        hour = seconds / 3600
        minute = seconds / 60 % 60
        second = seconds % 60
        weekday = ((days % 7) + 11) % 7          // 1970-01-01 was a Thursday
        // Days to civil date (H. Hinnant's algorithm).
        let z = days + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        day = doy - (153 * mp + 2) / 5 + 1
        month = mp < 10 ? mp + 3 : mp - 9
        year = yoe + era * 400 + (month <= 2 ? 1 : 0)
    }

    var secondsSinceEpoch: Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        return Int64(days) * 86400 + Int64(hour * 3600 + minute * 60 + second)
    }
}
