// Firecracker-compatible I/O rate limiting as pure logic: every function takes the time
// (CLOCK_MONOTONIC nanoseconds, see monotonicNanoseconds()) as an argument and reads no
// clock, so the arithmetic is unit-tested with simulated time. Devices own a RateLimiter
// each and ask it before every request; none of this is wired into a device here.

/// One token bucket's settings, Firecracker's `{size, one_time_burst, refill_time}`.
/// A size or a refill time of 0 means no limit (Firecracker creates no bucket then).
public struct TokenBucketConfig: Equatable {
    /// Capacity in tokens (bytes or operations); the bucket refills this many per refill time.
    public var size: UInt64
    /// Extra tokens available once, spent before the bucket and never refilled.
    public var oneTimeBurst: UInt64
    /// Milliseconds to refill an empty bucket to `size`.
    public var refillTimeMs: UInt64

    public init(size: UInt64, oneTimeBurst: UInt64 = 0, refillTimeMs: UInt64) {
        self.size = size
        self.oneTimeBurst = oneTimeBurst
        self.refillTimeMs = refillTimeMs
    }

    public var isUnlimited: Bool { size == 0 || refillTimeMs == 0 }
}

/// A device's limits: bytes and operations, each optional (Firecracker's `rate_limiter`).
public struct RateLimiterConfig: Equatable {
    public var bandwidth: TokenBucketConfig?
    public var ops: TokenBucketConfig?

    public init(bandwidth: TokenBucketConfig? = nil, ops: TokenBucketConfig? = nil) {
        self.bandwidth = bandwidth
        self.ops = ops
    }

    /// True when neither bucket limits anything.
    public var isUnlimited: Bool { (bandwidth?.isUnlimited ?? true) && (ops?.isUnlimited ?? true) }

    /// Firecracker's PATCH semantics: a bucket the patch names replaces this one's, a bucket
    /// it leaves out stays as it is (a size of 0 in the patch removes the limit).
    public func patched(with patch: RateLimiterConfig) -> RateLimiterConfig {
        RateLimiterConfig(bandwidth: patch.bandwidth ?? bandwidth, ops: patch.ops ?? ops)
    }

    /// `current` (nil: no limits yet) with `patch` applied, as a PATCH records it.
    public static func patched(_ current: RateLimiterConfig?, with patch: RateLimiterConfig) -> RateLimiterConfig {
        (current ?? RateLimiterConfig()).patched(with: patch)
    }
}

/// A token bucket with Firecracker's semantics.
///
/// It starts full (`budget == size`) plus the one-time burst, which is spent first and never
/// comes back by refilling. Tokens refill continuously at `size` per `refillTimeMs`; the
/// fraction of a token that elapsed time has earned is carried over (rounding loses under a
/// nanosecond per refill), so frequent polling does not lower the rate. A request larger than `size` can never fit, so it is allowed when the bucket
/// is full ("over-consumption", as in Firecracker): the bucket empties and the excess becomes
/// `debt`, which refilling pays off before the budget grows again, so long-run throughput
/// stays size/refill time. Any other request that does not fit is refused with nothing taken.
public struct TokenBucket: Equatable {
    public let config: TokenBucketConfig
    /// Tokens in the bucket, 0...size.
    public private(set) var budget: UInt64
    /// What is left of the one-time burst.
    public private(set) var oneTimeBurst: UInt64
    /// Tokens over-consumed and not yet paid back by refilling. While it is non-zero the
    /// budget is 0 (over-consumption happens only from a full bucket and empties it).
    public private(set) var debt: UInt64 = 0
    /// The time up to which refilling has been credited; a partial token's time stays after it.
    public private(set) var lastUpdate: UInt64

    static let nanosecondsPerMillisecond: UInt64 = 1_000_000

    /// A full bucket at `now`, or nil when the config sets no limit.
    public init?(_ config: TokenBucketConfig, now: UInt64) {
        guard !config.isUnlimited else { return nil }
        self.config = config
        budget = config.size
        oneTimeBurst = config.oneTimeBurst
        lastUpdate = now
    }

    var size: UInt64 { config.size }

    /// Tokens missing until the bucket is full and out of debt. Fits in 64 bits: debt is at
    /// most UInt64.max - size and only exists while the budget is 0.
    var deficit: UInt64 { saturatingSum(debt, size - budget) }

    /// Takes `tokens` at `now` and says whether it could; when not, nothing is taken.
    public mutating func consume(_ tokens: UInt64, now: UInt64) -> Bool {
        refill(now: now)
        let fromBurst = min(tokens, oneTimeBurst)
        let rest = tokens - fromBurst
        if rest <= budget {
            budget -= rest
        } else if rest > size && deficit == 0 {
            budget = 0
            debt = rest - size
        } else {
            return false
        }
        oneTimeBurst -= fromBurst
        return true
    }

    /// Nanoseconds from `now` until `consume(tokens, now: now + wait)` would succeed (0: now),
    /// exactly: one nanosecond earlier it would not. UInt64.max when that is further away
    /// than 64 bits of nanoseconds can say.
    public func waitNs(for tokens: UInt64, now: UInt64) -> UInt64 {
        let rest = tokens - min(tokens, oneTimeBurst)
        if rest <= budget { return 0 }
        // Too big for the bucket: wait until it is full. Else for the missing tokens (with
        // debt the budget is 0: the debt and then the whole request). Counted from
        // lastUpdate, as the refill in consume will count them.
        let needed = rest > size ? deficit : saturatingSum(debt, rest - budget)
        let time = nanoseconds(toEarn: needed)
        let (ready, overflow) = lastUpdate.addingReportingOverflow(time)
        if overflow || time == .max { return .max }
        return ready > now ? ready - now : 0
    }

    /// Gives back `tokens` taken by a request that is put back: they pay debt first, then
    /// refill the bucket, then the one-time burst up to what it was configured to be (the
    /// reverse of the order consume takes them in).
    public mutating func replenish(_ tokens: UInt64) {
        let paid = min(tokens, debt)
        debt -= paid
        var left = tokens - paid
        let toBudget = min(left, size - budget)
        budget += toBudget
        left -= toBudget
        oneTimeBurst = min(saturatingSum(oneTimeBurst, left), config.oneTimeBurst)
    }

    /// Credits the tokens earned between lastUpdate and `now`. A full bucket earns nothing
    /// (its clock just moves on); otherwise lastUpdate advances by exactly the time the
    /// whole tokens took, rounded up, so the partial token's time is kept for next time.
    mutating func refill(now: UInt64) {
        guard now > lastUpdate else { return }  // time did not move (or went back): nothing earned
        let missing = deficit
        guard missing > 0 else {
            lastUpdate = now
            return
        }
        let earned = tokensEarned(in: now - lastUpdate)
        guard earned < missing else {
            debt = 0
            budget = size
            lastUpdate = now
            return
        }
        guard earned > 0 else { return }
        let paid = min(earned, debt)
        debt -= paid
        budget += earned - paid
        lastUpdate = saturatingSum(lastUpdate, nanoseconds(toEarn: earned))
    }

    /// floor(elapsed × size / (refillTimeMs × 10⁶)), saturated to 64 bits. Dividing by the two
    /// factors one after the other gives the same floor and keeps every step in 128 bits.
    func tokensEarned(in elapsed: UInt64) -> UInt64 {
        WideUInt.product(elapsed, size)
            .dividedRoundingDown(by: TokenBucket.nanosecondsPerMillisecond)
            .dividedRoundingDown(by: config.refillTimeMs)
            .saturated
    }

    /// ceil(tokens × refillTimeMs × 10⁶ / size): the time `tokens` take to earn, saturated.
    func nanoseconds(toEarn tokens: UInt64) -> UInt64 {
        guard let scaled = WideUInt.product(tokens, config.refillTimeMs)
            .multiplied(by: TokenBucket.nanosecondsPerMillisecond) else { return .max }
        return scaled.dividedRoundingUp(by: size).saturated
    }
}

/// What a rate limiter says about one request.
public enum RateLimiterDecision: Equatable, CustomStringConvertible {
    case allowed
    /// Refused; nothing was consumed. Asking again `waitNs` later will be allowed (unless the
    /// limits change or other requests take the tokens first).
    case blocked(waitNs: UInt64)

    public var description: String {
        switch self {
        case .allowed: return "allowed"
        case .blocked(let waitNs): return "blocked for \(waitNs) ns"
        }
    }
}

/// A device's rate limiter: an optional bandwidth bucket (bytes) and an optional ops bucket
/// (requests). One request costs one op and its size in bytes, all or nothing.
public struct RateLimiter: Equatable {
    public private(set) var bandwidth: TokenBucket?
    public private(set) var ops: TokenBucket?
    /// How many times consume answered blocked.
    public var throttledEvents: UInt64 = 0

    /// Full buckets at `now` for the limits `config` sets.
    public init(_ config: RateLimiterConfig = RateLimiterConfig(), now: UInt64) {
        bandwidth = config.bandwidth.flatMap { TokenBucket($0, now: now) }
        ops = config.ops.flatMap { TokenBucket($0, now: now) }
    }

    /// No bucket: every request is allowed.
    public var isUnlimited: Bool { bandwidth == nil && ops == nil }

    /// The limits in force (unlimited buckets are left out, as Firecracker reports them).
    public var config: RateLimiterConfig {
        RateLimiterConfig(bandwidth: bandwidth?.config, ops: ops?.config)
    }

    /// One request of `bytes` at `now`: allowed (one op and `bytes` taken from the buckets)
    /// or blocked (nothing taken) with the time until both buckets would allow it.
    public mutating func consume(bytes: UInt64, now: UInt64) -> RateLimiterDecision {
        // Work on copies and keep them only if both buckets agree: all or nothing.
        var newOps = ops, newBandwidth = bandwidth
        let opsAllowed = newOps?.consume(1, now: now) ?? true
        if opsAllowed, newBandwidth?.consume(bytes, now: now) ?? true {
            ops = newOps
            bandwidth = newBandwidth
            return .allowed
        }
        throttledEvents &+= 1
        let opsWait = ops?.waitNs(for: 1, now: now) ?? 0
        let bandwidthWait = bandwidth?.waitNs(for: bytes, now: now) ?? 0
        return .blocked(waitNs: max(opsWait, bandwidthWait, 1))
    }

    /// Gives back a request that was allowed but not carried out (one op and `bytes`).
    public mutating func replenish(bytes: UInt64) {
        ops?.replenish(1)
        bandwidth?.replenish(bytes)
    }

    /// New limits at runtime (Firecracker's PATCH): a bucket whose settings changed starts
    /// anew, full, at `now`; one whose settings are unchanged keeps its state, so merging a
    /// PATCH body with `RateLimiterConfig.patched(with:)` and passing the result leaves the
    /// buckets the PATCH did not name alone; a nil or unlimited bucket removes the limit.
    public mutating func update(_ config: RateLimiterConfig, now: UInt64) {
        bandwidth = RateLimiter.bucket(config.bandwidth, replacing: bandwidth, now: now)
        ops = RateLimiter.bucket(config.ops, replacing: ops, now: now)
    }

    static func bucket(_ config: TokenBucketConfig?, replacing old: TokenBucket?, now: UInt64) -> TokenBucket? {
        guard let config else { return nil }
        if let old, old.config == config { return old }
        return TokenBucket(config, now: now)
    }
}

/// An unsigned 128-bit value for the bucket arithmetic: sizes and times are the user's, up to
/// UInt64.max each, and their products must neither trap nor wrap. (UInt128 would need the
/// compiler runtime's 128-bit division in the static Embedded builds.)
struct WideUInt: Equatable {
    var high: UInt64
    var low: UInt64

    static func product(_ a: UInt64, _ b: UInt64) -> WideUInt {
        let (high, low) = a.multipliedFullWidth(by: b)
        return WideUInt(high: high, low: low)
    }

    /// self × factor, or nil when that needs more than 128 bits.
    func multiplied(by factor: UInt64) -> WideUInt? {
        let lowProduct = low.multipliedFullWidth(by: factor)
        let highProduct = high.multipliedFullWidth(by: factor)
        guard highProduct.high == 0 else { return nil }
        let (newHigh, overflow) = highProduct.low.addingReportingOverflow(lowProduct.high)
        guard !overflow else { return nil }
        return WideUInt(high: newHigh, low: lowProduct.low)
    }

    /// floor(self / divisor); divisor must not be 0. The high word goes first, so that the
    /// second step's quotient fits in 64 bits (its remainder is below the divisor).
    func dividedRoundingDown(by divisor: UInt64) -> WideUInt {
        quotientAndRemainder(dividingBy: divisor).quotient
    }

    /// ceil(self / divisor); divisor must not be 0.
    func dividedRoundingUp(by divisor: UInt64) -> WideUInt {
        let (quotient, remainder) = quotientAndRemainder(dividingBy: divisor)
        guard remainder != 0 else { return quotient }
        let (low, carry) = quotient.low.addingReportingOverflow(1)
        // quotient ≤ (2^128 - 1) / divisor, so it is below 2^128 - 1 when divisor > 1, and
        // the remainder is 0 when divisor is 1: this cannot carry out of the high word.
        return WideUInt(high: quotient.high &+ (carry ? 1 : 0), low: low)
    }

    func quotientAndRemainder(dividingBy divisor: UInt64) -> (quotient: WideUInt, remainder: UInt64) {
        let (highQuotient, highRemainder) = high.quotientAndRemainder(dividingBy: divisor)
        let (lowQuotient, remainder) = divisor.dividingFullWidth((high: highRemainder, low: low))
        return (WideUInt(high: highQuotient, low: lowQuotient), remainder)
    }

    /// The value, or UInt64.max when it does not fit.
    var saturated: UInt64 { high == 0 ? low : .max }
}
