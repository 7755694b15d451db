import XCTest
@testable import SwiftletCore

private let ms: UInt64 = 1_000_000
private let second: UInt64 = 1_000_000_000

/// A bucket that must exist (its config limits something).
private func bucket(size: UInt64, burst: UInt64 = 0, refillMs: UInt64, now: UInt64 = 0,
                    file: StaticString = #filePath, line: UInt = #line) throws -> TokenBucket {
    try XCTUnwrap(TokenBucket(TokenBucketConfig(size: size, oneTimeBurst: burst, refillTimeMs: refillMs), now: now),
                  file: file, line: line)
}

/// A small deterministic generator, so the property tests see the same cases every run.
private struct LCG {
    var state: UInt64
    mutating func next(_ bound: UInt64) -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return (state >> 33) % bound
    }
}

final class RateLimiterTests: XCTestCase {
    func testStartsFullAndRefusesWithoutTakingAnything() throws {
        var b = try bucket(size: 1000, refillMs: 1000)
        XCTAssertEqual(b.budget, 1000)
        XCTAssertTrue(b.consume(600, now: 0))
        XCTAssertFalse(b.consume(401, now: 0))
        XCTAssertEqual(b.budget, 400, "a refused request takes nothing")
        XCTAssertTrue(b.consume(400, now: 0))
        XCTAssertFalse(b.consume(1, now: 0))
        XCTAssertTrue(b.consume(0, now: 0), "nothing always fits")
    }

    func testRefillsContinuouslyUpToSize() throws {
        var b = try bucket(size: 1000, refillMs: 1000)  // one token per ms
        XCTAssertTrue(b.consume(1000, now: 0))
        XCTAssertFalse(b.consume(1, now: ms - 1))
        XCTAssertTrue(b.consume(1, now: ms))
        XCTAssertTrue(b.consume(499, now: 500 * ms))
        XCTAssertFalse(b.consume(1, now: 500 * ms))
        // Long idle: full, never more.
        XCTAssertTrue(b.consume(0, now: 100 * second))
        XCTAssertEqual(b.budget, 1000)
    }

    func testPartialTokensAreCarriedOver() throws {
        // 3 tokens per 10 ms: one per 3.33 ms. Refilling at 5 ms and at 7 ms must give two
        // tokens in all, as one refill at 7 ms would; dropping the 5 ms fraction gives one.
        var b = try bucket(size: 3, refillMs: 10)
        XCTAssertTrue(b.consume(3, now: 0))
        XCTAssertTrue(b.consume(1, now: 5 * ms))
        XCTAssertTrue(b.consume(1, now: 7 * ms))
        XCTAssertFalse(b.consume(1, now: 7 * ms))
        // Each refill rounds the time it credits up, losing under a nanosecond.
        XCTAssertTrue(b.consume(1, now: 10 * ms + 2))
    }

    func testOneTimeBurstIsSpentFirstAndNeverRefilled() throws {
        var b = try bucket(size: 100, burst: 50, refillMs: 1000)
        XCTAssertTrue(b.consume(30, now: 0))
        XCTAssertEqual(b.oneTimeBurst, 20)
        XCTAssertEqual(b.budget, 100, "the burst is spent before the bucket")
        XCTAssertTrue(b.consume(40, now: 0))
        XCTAssertEqual(b.oneTimeBurst, 0)
        XCTAssertEqual(b.budget, 80)
        XCTAssertTrue(b.consume(80, now: 0))
        XCTAssertFalse(b.consume(1, now: 0))
        XCTAssertTrue(b.consume(0, now: 60 * second))
        XCTAssertEqual(b.oneTimeBurst, 0, "refilling does not bring the burst back")
        XCTAssertEqual(b.budget, 100)
    }

    func testOverConsumptionLeavesDebtThatRefillPaysFirst() throws {
        var b = try bucket(size: 100, refillMs: 100)  // one token per ms
        XCTAssertTrue(b.consume(350, now: 0), "a request bigger than the bucket passes when it is full")
        XCTAssertEqual(b.budget, 0)
        XCTAssertEqual(b.debt, 250)
        XCTAssertFalse(b.consume(1, now: 0))
        XCTAssertEqual(b.waitNs(for: 1, now: 0), 251 * ms)
        XCTAssertFalse(b.consume(1, now: 250 * ms), "at 250 ms the debt is paid but the bucket is empty")
        XCTAssertEqual(b.debt, 0)
        XCTAssertTrue(b.consume(1, now: 251 * ms))
        // Not full: a big request waits until the bucket is.
        XCTAssertFalse(b.consume(150, now: 300 * ms))
        XCTAssertEqual(b.budget, 49)
        XCTAssertEqual(b.waitNs(for: 150, now: 300 * ms), 51 * ms)
        XCTAssertTrue(b.consume(150, now: 351 * ms))
        XCTAssertEqual(b.debt, 50)
    }

    func testOverConsumptionWithBurstUsesTheBurstFirst() throws {
        var b = try bucket(size: 100, burst: 30, refillMs: 100)
        XCTAssertTrue(b.consume(330, now: 0))
        XCTAssertEqual(b.oneTimeBurst, 0)
        XCTAssertEqual(b.debt, 200)
    }

    func testWaitTimes() throws {
        var b = try bucket(size: 1000, refillMs: 1000)
        XCTAssertEqual(b.waitNs(for: 1000, now: 0), 0)
        XCTAssertTrue(b.consume(1000, now: 0))
        XCTAssertEqual(b.waitNs(for: 1, now: 0), ms)
        XCTAssertEqual(b.waitNs(for: 10, now: 0), 10 * ms)
        XCTAssertEqual(b.waitNs(for: 10, now: 4 * ms + 500), 6 * ms - 500, "time already elapsed counts")
        XCTAssertEqual(b.waitNs(for: 5000, now: 0), 1000 * ms, "too big: wait until full")
        XCTAssertEqual(b.budget, 0, "waitNs changes nothing")
    }

    /// For many buckets and requests: the wait is exact (one nanosecond earlier is refused,
    /// at the wait it is allowed), zero exactly when consume succeeds, and nothing traps.
    func testWaitIsExactForManyCases() throws {
        var random = LCG(state: 42)
        let configs: [(UInt64, UInt64, UInt64)] = [(1000, 0, 1000), (3, 0, 10), (7, 5, 3), (1_000_000_007, 0, 13),
                                                   (1, 0, 1), (64 << 20, 1 << 20, 1000), (5, 2, 999_983)]
        for (size, burst, refill) in configs {
            var b = try bucket(size: size, burst: burst, refillMs: refill)
            var now: UInt64 = 0
            for _ in 0..<300 {
                now += random.next(2 * refill * ms / max(size, 1) + 2)
                let tokens = random.next(3) == 0 ? random.next(3 * size + 1) : random.next(size / 4 + 2)
                let wait = b.waitNs(for: tokens, now: now)
                var early = b, atWait = b, direct = b
                XCTAssertEqual(direct.consume(tokens, now: now), wait == 0, "size \(size) tokens \(tokens) at \(now)")
                if wait > 0 {
                    XCTAssertFalse(early.consume(tokens, now: now + wait - 1), "size \(size) tokens \(tokens) at \(now)")
                    XCTAssertTrue(atWait.consume(tokens, now: now + wait), "size \(size) tokens \(tokens) at \(now)")
                }
                _ = b.consume(tokens, now: now)
                XCTAssertLessThanOrEqual(b.budget, size)
                XCTAssertTrue(b.debt == 0 || b.budget == 0)
            }
        }
    }

    func testReplenishUndoesAConsume() throws {
        var b = try bucket(size: 50, burst: 100, refillMs: 1000)
        let before = b
        XCTAssertTrue(b.consume(120, now: 0))
        XCTAssertEqual(b.budget, 30)
        b.replenish(120)
        XCTAssertEqual(b, before)
        b.replenish(1000)
        XCTAssertEqual(b.oneTimeBurst, 100, "never more burst than configured")
        XCTAssertEqual(b.budget, 50, "never more than size")
        // Over-consumption undone: the debt goes first.
        XCTAssertTrue(b.consume(100, now: 0))
        XCTAssertTrue(b.consume(200, now: 0))
        XCTAssertEqual(b.debt, 150)
        b.replenish(160)
        XCTAssertEqual(b.debt, 0)
        XCTAssertEqual(b.budget, 10)
    }

    func testUnlimitedBucketsAreNotCreated() {
        XCTAssertNil(TokenBucket(TokenBucketConfig(size: 0, refillTimeMs: 100), now: 0))
        XCTAssertNil(TokenBucket(TokenBucketConfig(size: 100, oneTimeBurst: 5, refillTimeMs: 0), now: 0))
        let config = RateLimiterConfig(bandwidth: TokenBucketConfig(size: 0, refillTimeMs: 0), ops: nil)
        XCTAssertTrue(config.isUnlimited)
        XCTAssertFalse(RateLimiterConfig(ops: TokenBucketConfig(size: 1, refillTimeMs: 1)).isUnlimited)
        var limiter = RateLimiter(config, now: 0)
        XCTAssertTrue(limiter.isUnlimited)
        for _ in 0..<1000 { XCTAssertEqual(limiter.consume(bytes: .max, now: 0), .allowed) }
        XCTAssertEqual(limiter.throttledEvents, 0)
    }

    func testHugeValuesDoNotTrap() throws {
        let max = UInt64.max
        var b = try bucket(size: max, burst: max, refillMs: max)  // one token per ms
        XCTAssertTrue(b.consume(max, now: 0))
        XCTAssertTrue(b.consume(max, now: 0))
        XCTAssertEqual(b.oneTimeBurst, 0)
        XCTAssertEqual(b.budget, 0)
        XCTAssertEqual(b.waitNs(for: 1, now: 0), ms)
        XCTAssertEqual(b.waitNs(for: max, now: 0), .max, "2^64 ms is more than 2^64 ns")
        b.replenish(max)
        b.replenish(max)
        XCTAssertEqual(b.budget, max)
        XCTAssertEqual(b.oneTimeBurst, max)
        XCTAssertTrue(b.consume(max, now: max))
        XCTAssertTrue(b.consume(max, now: max))
        XCTAssertFalse(b.consume(1, now: max))

        var slow = try bucket(size: max, refillMs: max)
        XCTAssertTrue(slow.consume(max, now: 0))
        XCTAssertTrue(slow.consume(max / 1_000_000, now: max), "2^64 ns earn 2^64 / 10^6 tokens")
        XCTAssertFalse(slow.consume(1, now: max))

        var tiny = try bucket(size: 1, refillMs: max)
        XCTAssertTrue(tiny.consume(max, now: 0), "over-consumption from a full bucket")
        XCTAssertEqual(tiny.debt, max - 1)
        XCTAssertEqual(tiny.waitNs(for: 1, now: 0), .max)
        XCTAssertEqual(tiny.waitNs(for: max, now: max), .max)
        XCTAssertFalse(tiny.consume(1, now: max))

        var fast = try bucket(size: max, refillMs: 1)
        XCTAssertTrue(fast.consume(max, now: second))
        XCTAssertEqual(fast.waitNs(for: max, now: second), ms)
        XCTAssertTrue(fast.consume(max / 1000, now: second + 1000), "size / 10^6 tokens per ns")
        XCTAssertEqual(fast.waitNs(for: max, now: max - 1), 0)
        XCTAssertTrue(fast.consume(max, now: max - 1))
        XCTAssertEqual(fast.waitNs(for: max, now: max - 1), .max, "ready after the end of time")

        // Time that goes back earns nothing and traps nowhere.
        var back = try bucket(size: 10, refillMs: 10, now: 100 * ms)
        XCTAssertTrue(back.consume(10, now: 100 * ms))
        XCTAssertFalse(back.consume(1, now: 0))
        XCTAssertEqual(back.waitNs(for: 1, now: 0), 101 * ms)
        XCTAssertTrue(back.consume(1, now: 101 * ms))
    }

    func testWideArithmetic() {
        let max = UInt64.max
        let square = WideUInt.product(max, max)  // 2^128 - 2^65 + 1
        XCTAssertEqual(square, WideUInt(high: max - 1, low: 1))
        XCTAssertEqual(square.dividedRoundingDown(by: max), WideUInt(high: 0, low: max))
        XCTAssertEqual(square.dividedRoundingUp(by: max), WideUInt(high: 0, low: max))
        XCTAssertEqual(WideUInt.product(1 << 63, 3).dividedRoundingDown(by: 2), WideUInt(high: 0, low: 3 << 62))
        XCTAssertEqual(WideUInt(high: 1, low: 1).dividedRoundingUp(by: 2), WideUInt(high: 0, low: 1 << 63 + 1))
        XCTAssertEqual(WideUInt(high: 0, low: 10).dividedRoundingUp(by: 3), WideUInt(high: 0, low: 4))
        XCTAssertNil(square.multiplied(by: 2))
        XCTAssertNil(WideUInt(high: 1 << 63, low: 0).multiplied(by: 2))
        XCTAssertEqual(WideUInt(high: 1, low: max).multiplied(by: 2), WideUInt(high: 3, low: max - 1))
        XCTAssertEqual(square.saturated, max)
        XCTAssertEqual(WideUInt(high: 0, low: 7).saturated, 7)
    }

    // MARK: RateLimiter

    func testLimiterIsAllOrNothing() throws {
        let config = RateLimiterConfig(bandwidth: TokenBucketConfig(size: 1000, refillTimeMs: 1000),
                                       ops: TokenBucketConfig(size: 10, refillTimeMs: 1000))
        var limiter = RateLimiter(config, now: 0)
        XCTAssertEqual(limiter.consume(bytes: 600, now: 0), .allowed)
        XCTAssertEqual(limiter.ops?.budget, 9)
        XCTAssertEqual(limiter.bandwidth?.budget, 400)
        // Bandwidth refuses after ops accepted: the op is not taken.
        XCTAssertEqual(limiter.consume(bytes: 600, now: 0), .blocked(waitNs: 200 * ms))
        XCTAssertEqual(limiter.ops?.budget, 9)
        XCTAssertEqual(limiter.bandwidth?.budget, 400)
        XCTAssertEqual(limiter.throttledEvents, 1)
        // Ops refuse: no bytes taken.
        for _ in 0..<9 { XCTAssertEqual(limiter.consume(bytes: 0, now: 0), .allowed) }
        XCTAssertEqual(limiter.consume(bytes: 10, now: 0), .blocked(waitNs: 100 * ms))
        XCTAssertEqual(limiter.bandwidth?.budget, 400)
        XCTAssertEqual(limiter.throttledEvents, 2)
        // Both short: the longer wait, after which it is allowed.
        XCTAssertEqual(limiter.consume(bytes: 700, now: 0), .blocked(waitNs: 300 * ms))
        XCTAssertEqual(limiter.consume(bytes: 700, now: 300 * ms - 1), .blocked(waitNs: 1))
        XCTAssertEqual(limiter.consume(bytes: 700, now: 300 * ms), .allowed)
        XCTAssertEqual(limiter.throttledEvents, 4)
        limiter.replenish(bytes: 700)
        XCTAssertEqual(limiter.bandwidth?.budget, 700)
        XCTAssertEqual(limiter.ops?.budget, 3)
    }

    func testRuntimeUpdate() throws {
        let bandwidth = TokenBucketConfig(size: 1000, refillTimeMs: 1000)
        let ops = TokenBucketConfig(size: 10, refillTimeMs: 1000)
        var limiter = RateLimiter(RateLimiterConfig(bandwidth: bandwidth, ops: ops), now: 0)
        XCTAssertEqual(limiter.consume(bytes: 1000, now: 0), .allowed)
        XCTAssertEqual(limiter.config, RateLimiterConfig(bandwidth: bandwidth, ops: ops))

        // A changed bucket starts anew and full; an unchanged one keeps its state.
        let faster = TokenBucketConfig(size: 5000, oneTimeBurst: 100, refillTimeMs: 1000)
        limiter.update(RateLimiterConfig(bandwidth: faster, ops: ops), now: 10 * ms)
        XCTAssertEqual(limiter.bandwidth?.budget, 5000)
        XCTAssertEqual(limiter.bandwidth?.oneTimeBurst, 100)
        XCTAssertEqual(limiter.bandwidth?.lastUpdate, 10 * ms)
        XCTAssertEqual(limiter.ops?.budget, 9)

        // A PATCH naming only ops, merged: bandwidth keeps its state.
        XCTAssertEqual(limiter.consume(bytes: 5100, now: 10 * ms), .allowed)
        let current = limiter.config
        let patch = RateLimiterConfig(ops: TokenBucketConfig(size: 0, refillTimeMs: 0))
        XCTAssertEqual(current.patched(with: patch), RateLimiterConfig(bandwidth: faster, ops: patch.ops))
        limiter.update(current.patched(with: patch), now: 20 * ms)
        XCTAssertNil(limiter.ops, "size 0 removes the ops limit")
        XCTAssertEqual(limiter.bandwidth?.budget, 0, "kept as it was")
        XCTAssertEqual(limiter.consume(bytes: 50, now: 20 * ms), .allowed, "10 ms at 5 bytes per ms")
        XCTAssertEqual(limiter.consume(bytes: 1, now: 20 * ms), .blocked(waitNs: 200_000))

        limiter.update(RateLimiterConfig(), now: 30 * ms)
        XCTAssertTrue(limiter.isUnlimited)
        XCTAssertEqual(limiter.consume(bytes: .max, now: 30 * ms), .allowed)
    }

    /// Greedy senders over many simulated seconds get size/refill time, within 1%, with
    /// requests smaller and bigger than the bucket, odd sizes, and a sender that retries on
    /// its own timer (poll) rather than after the exact wait, so that partial tokens matter.
    func testLongRunRateMatchesTheConfiguredRate() throws {
        let cases: [(size: UInt64, refillMs: UInt64, burst: UInt64, request: UInt64, seconds: UInt64, poll: UInt64?)] = [
            (1 << 20, 100, 0, 4096, 30, nil),          // 10 MiB/s in 4 KiB requests
            (1 << 20, 100, 0, 3 << 20, 30, nil),       // requests three times the bucket
            (7, 3, 0, 1, 20, nil),                     // 7 ops per 3 ms
            (1_000_003, 997, 1 << 20, 65_537, 60, nil),
            (3, 10, 0, 1, 30, 700_000),                // a token per 3.33 ms, retried every 0.7 ms
        ]
        for c in cases {
            var limiter = RateLimiter(RateLimiterConfig(bandwidth: TokenBucketConfig(size: c.size, oneTimeBurst: c.burst,
                                                                                      refillTimeMs: c.refillMs)), now: 0)
            var now: UInt64 = 0, sent: UInt64 = 0
            let end = c.seconds * second
            while now < end {
                switch limiter.consume(bytes: c.request, now: now) {
                case .allowed: sent += c.request
                case .blocked(let wait): now += c.poll ?? wait
                }
            }
            let expected = Double(c.size) * Double(end) / Double(c.refillMs * ms)
            // A greedy sender also gets the one-time burst and the bucket it starts with.
            let rate = (Double(sent) - Double(c.burst) - Double(c.size)) / expected
            XCTAssertEqual(rate, 1, accuracy: 0.01, "size \(c.size) per \(c.refillMs) ms, requests of \(c.request)")
        }
    }

    func testDecisionDescription() {
        XCTAssertEqual(RateLimiterDecision.allowed.description, "allowed")
        XCTAssertEqual(RateLimiterDecision.blocked(waitNs: 5).description, "blocked for 5 ns")
    }

    func testMonotonicNanosecondsMoves() {
        let a = monotonicNanoseconds()
        usleep(2000)
        let b = monotonicNanoseconds()
        XCTAssertGreaterThanOrEqual(b - a, 2 * ms)
        XCTAssertLessThan(b - a, 10 * second)
    }
}
