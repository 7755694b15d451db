/// Rate-limiter sub-options of device flags, with Cloud Hypervisor's key names, e.g.
/// `--disk path=FILE,bw_size=10M,bw_refill_time=1000,ops_size=500,ops_refill_time=1000`.
/// A device with two directions passes a prefix: `rx_bw_size=…`, `tx_ops_size=…`.
///
/// | key                  | unit                                             |
/// |----------------------|--------------------------------------------------|
/// | `bw_size`            | bytes per refill time; K, M, G suffixes (binary) |
/// | `bw_one_time_burst`  | bytes, once; K, M, G suffixes                    |
/// | `bw_refill_time`     | milliseconds                                     |
/// | `ops_size`           | operations per refill time                       |
/// | `ops_one_time_burst` | operations, once                                 |
/// | `ops_refill_time`    | milliseconds                                     |
///
/// A size needs its refill time and the other way round (checked by `validate`, once all
/// keys are in); 0 for either means no limit, as in Firecracker.
public enum RateLimiterOptions {
    /// Lines for a flag's help text.
    public static let help = """
      bw_size=BYTES,bw_refill_time=MS[,bw_one_time_burst=BYTES]
                           limit bandwidth to BYTES per MS milliseconds (K, M, G
                           suffixes), plus a one-time burst
      ops_size=N,ops_refill_time=MS[,ops_one_time_burst=N]
                           limit requests to N per MS milliseconds, plus a one-time burst
    """

    private enum Field {
        case size, oneTimeBurst, refillTime
    }

    /// Sets the limiter setting `key` (after `prefix`) names to `value` in `config` (creating
    /// the config and the bucket as needed). False when `key` is not a limiter key, so the
    /// caller reports it as its own unknown key; throws for a bad value.
    public static func apply(key: String, value: String, prefix: String,
                             to config: inout RateLimiterConfig?) throws(SwiftletError) -> Bool {
        guard key.hasPrefix(prefix) else { return false }
        let name = String(key.dropFirst(prefix.count))
        let isBandwidth: Bool, field: Field
        switch name {
        case "bw_size": (isBandwidth, field) = (true, .size)
        case "bw_one_time_burst": (isBandwidth, field) = (true, .oneTimeBurst)
        case "bw_refill_time": (isBandwidth, field) = (true, .refillTime)
        case "ops_size": (isBandwidth, field) = (false, .size)
        case "ops_one_time_burst": (isBandwidth, field) = (false, .oneTimeBurst)
        case "ops_refill_time": (isBandwidth, field) = (false, .refillTime)
        default: return false
        }
        let number: UInt64
        if field == .refillTime {
            number = try parseNumber(value, key: key, unit: "milliseconds", suffixes: false)
        } else if isBandwidth {
            number = try parseNumber(value, key: key, unit: "bytes", suffixes: true)
        } else {
            number = try parseNumber(value, key: key, unit: "operations", suffixes: false)
        }
        var limits = config ?? RateLimiterConfig()
        var bucket = (isBandwidth ? limits.bandwidth : limits.ops) ?? TokenBucketConfig(size: 0, refillTimeMs: 0)
        switch field {
        case .size: bucket.size = number
        case .oneTimeBurst: bucket.oneTimeBurst = number
        case .refillTime: bucket.refillTimeMs = number
        }
        if isBandwidth { limits.bandwidth = bucket } else { limits.ops = bucket }
        config = limits
        return true
    }

    /// Checks that each bucket has both a size and a refill time (or neither: no limit),
    /// naming the flag: "--disk: bw_size needs bw_refill_time".
    public static func validate(_ config: RateLimiterConfig, what: String, prefix: String = "") throws(SwiftletError) {
        try validate(config.bandwidth, what: what, keys: prefix + "bw_")
        try validate(config.ops, what: what, keys: prefix + "ops_")
    }

    private static func validate(_ bucket: TokenBucketConfig?, what: String, keys: String) throws(SwiftletError) {
        guard let bucket else { return }
        if bucket.size != 0 && bucket.refillTimeMs == 0 {
            throw .invalidArgument("\(what): \(keys)size needs a non-zero \(keys)refill_time")
        }
        if bucket.refillTimeMs != 0 && bucket.size == 0 {
            throw .invalidArgument("\(what): \(keys)refill_time needs a non-zero \(keys)size")
        }
        if bucket.oneTimeBurst != 0 && bucket.isUnlimited {
            throw .invalidArgument("\(what): \(keys)one_time_burst needs \(keys)size and \(keys)refill_time")
        }
    }

    /// Shifts of the binary suffixes bytes may carry (as --memory's).
    private static func suffixShift(_ unit: Character) -> UInt64? {
        switch unit {
        case "K", "k": return 10
        case "M", "m": return 20
        case "G", "g": return 30
        default: return nil
        }
    }

    /// A whole number (only digits: no sign, no spaces), with a K/M/G suffix where allowed,
    /// that fits in 64 bits.
    static func parseNumber(_ text: String, key: String, unit: String, suffixes: Bool) throws(SwiftletError) -> UInt64 {
        let expected = suffixes ? "a whole number of \(unit) (optionally with a K, M or G suffix)" : "a whole number of \(unit)"
        let bad = SwiftletError.invalidArgument("\(key) takes \(expected), got '\(text)'")
        var digits = Substring(text)
        var shift: UInt64 = 0
        if suffixes, let last = text.last, let unitShift = suffixShift(last) {
            digits = digits.dropLast()
            shift = unitShift
        }
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { throw bad }
        guard let number = UInt64(digits) else {
            throw .invalidArgument("\(key)=\(text) does not fit in 64 bits")
        }
        guard number <= UInt64.max >> shift else {
            throw .invalidArgument("\(key)=\(text) does not fit in 64 bits")
        }
        return number << shift
    }
}
