import SwiftletCore

/// Firecracker's `rate_limiter` object, as drives (and later other devices) carry it:
///
///   {"bandwidth": {"size": N, "one_time_burst": N?, "refill_time": MS}?,
///    "ops":       {"size": N, "one_time_burst": N?, "refill_time": MS}?}
///
/// `null` for the object means no limiter, `null` or an absent member no such bucket, and a
/// size or refill_time of 0 no limit (Firecracker creates no bucket then). Parsing is strict:
/// unknown fields, wrong types, negative numbers and a bucket without size or refill_time
/// answer 400.
public enum RateLimiterJSON {
    /// The limiter `value` describes; nil for `null`. `field` names it in fault messages.
    public static func parse(_ value: JSONValue, field: String = "rate_limiter") throws(APIError) -> RateLimiterConfig? {
        if value == .null { return nil }
        guard case .object(let members) = value else {
            throw .badRequest("\(field) must be an object or null, got \(value.typeName)")
        }
        var config = RateLimiterConfig()
        for (name, member) in members {
            switch name {
            case "bandwidth": config.bandwidth = try bucket(member, field: "\(field).bandwidth")
            case "ops": config.ops = try bucket(member, field: "\(field).ops")
            default: throw .badRequest("unknown field \"\(printable(name))\" in \(field)")
            }
        }
        return config
    }

    private static func bucket(_ value: JSONValue, field: String) throws(APIError) -> TokenBucketConfig? {
        if value == .null { return nil }
        guard case .object(let members) = value else {
            throw .badRequest("\(field) must be an object or null, got \(value.typeName)")
        }
        var size: UInt64?, burst: UInt64 = 0, refillTime: UInt64?
        for (name, member) in members {
            switch name {
            case "size": size = try count(member, field: "\(field).size")
            case "one_time_burst": if member != .null { burst = try count(member, field: "\(field).one_time_burst") }
            case "refill_time": refillTime = try count(member, field: "\(field).refill_time")
            default: throw .badRequest("unknown field \"\(printable(name))\" in \(field)")
            }
        }
        guard let size else { throw .badRequest("missing required field \"size\" in \(field)") }
        guard let refillTime else { throw .badRequest("missing required field \"refill_time\" in \(field)") }
        return TokenBucketConfig(size: size, oneTimeBurst: burst, refillTimeMs: refillTime)
    }

    private static func count(_ value: JSONValue, field: String) throws(APIError) -> UInt64 {
        guard case .integer(let number) = value else {
            throw .badRequest("\(field) must be a non-negative integer, got \(value.typeName)")
        }
        guard number >= 0 else { throw .badRequest("\(field) must not be negative, got \(number)") }
        return UInt64(number)
    }

    /// The limiter in force, as Firecracker's GET /vm/config shows it: `null` without one,
    /// both members always present (`null` for no bucket), one_time_burst `null` when 0.
    /// Buckets that limit nothing show as `null`, since none runs; values above what JSON
    /// integers carry here (Int64) show as Int64.max.
    public static func json(_ config: RateLimiterConfig?) -> JSONValue {
        guard let config, !config.isUnlimited else { return .null }
        return .object([("bandwidth", json(config.bandwidth)), ("ops", json(config.ops))])
    }

    private static func json(_ bucket: TokenBucketConfig?) -> JSONValue {
        guard let bucket, !bucket.isUnlimited else { return .null }
        return .object([
            ("size", .integer(Int64(clamping: bucket.size))),
            ("one_time_burst", bucket.oneTimeBurst == 0 ? .null : .integer(Int64(clamping: bucket.oneTimeBurst))),
            ("refill_time", .integer(Int64(clamping: bucket.refillTimeMs))),
        ])
    }
}
