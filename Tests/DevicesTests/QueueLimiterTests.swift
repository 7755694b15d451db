import XCTest
import CLinux
@testable import Devices
import SwiftletCore

/// A device over its limit leaves the request with the driver and waits for its timer;
/// a runtime change wakes it.
final class QueueLimiterTests: XCTestCase {
    private func timerFired(_ limiter: QueueLimiter, withinMilliseconds ms: Int32) -> Bool {
        var poll = pollfd(fd: limiter.hostEvent.fd, events: Int16(POLLIN), revents: 0)
        return CLinux.poll(&poll, 1, ms) == 1
    }

    func testAnEntropyRequestOverTheLimitWaitsInTheQueue() throws {
        // 64 bytes per 200 ms: the first 64-byte request passes, the second must wait.
        let limiter = try QueueLimiter(RateLimiterConfig(bandwidth: TokenBucketConfig(size: 64, refillTimeMs: 200)), queue: 0)
        XCTAssertEqual(limiter.hostEvent.queue, 0)
        XCTAssertTrue(limiter.hostEvent.isCounter)
        let rng = EntropyDevice(random: { buffer in
            for i in 0..<buffer.count { buffer[i] = 0x5A }
            return true
        }, limiter: limiter)
        XCTAssertEqual(rng.hostEvents.count, 1)
        let driver = try QueueDriver()
        for head in 0..<2 {
            let buffer = try driver.buffer(64)
            try driver.descriptor(head, address: buffer, length: 64, flags: VIRTQ_DESC_F_WRITE)
            try driver.makeAvailable(UInt16(head))
        }
        var queue = try driver.queue()
        XCTAssertEqual(try rng.process(queue: 0, &queue, memory: driver.memory), .waitingOnHost)
        XCTAssertEqual(driver.usedIndex, 1, "one request served, the other left with the driver")
        XCTAssertEqual(queue.nextAvailable, 1)
        XCTAssertEqual(limiter.throttled, 1)
        XCTAssertFalse(timerFired(limiter, withinMilliseconds: 100), "the wait is about 200 ms")
        XCTAssertTrue(timerFired(limiter, withinMilliseconds: 1000), "the timer wakes the queue")
        XCTAssertEqual(try rng.process(queue: 0, &queue, memory: driver.memory), .done)
        XCTAssertEqual(driver.usedIndex, 2)
    }

    func testLiftingTheLimitWakesAWaitingQueueAtOnce() throws {
        let limiter = try QueueLimiter(RateLimiterConfig(ops: TokenBucketConfig(size: 1, refillTimeMs: 60_000)), queue: 1)
        XCTAssertTrue(limiter.admit(bytes: 100))
        XCTAssertFalse(limiter.admit(bytes: 100), "one op a minute")
        XCTAssertFalse(timerFired(limiter, withinMilliseconds: 50))
        limiter.update(RateLimiterConfig(ops: TokenBucketConfig(size: 0, refillTimeMs: 0)))
        XCTAssertTrue(timerFired(limiter, withinMilliseconds: 1000), "a waiting queue is woken to try the new limits")
        XCTAssertTrue(limiter.admit(bytes: 100))
        XCTAssertEqual(limiter.config, RateLimiterConfig(), "size 0 removed the limit")
        limiter.update(RateLimiterConfig(bandwidth: TokenBucketConfig(size: 1000, refillTimeMs: 1000)))
        XCTAssertEqual(limiter.config.bandwidth, TokenBucketConfig(size: 1000, refillTimeMs: 1000))
        XCTAssertTrue(limiter.admit(bytes: 1000))
        XCTAssertFalse(limiter.admit(bytes: 1000))
    }

    func testANetworkFrameOverTheTransmitLimitStaysInTheQueue() throws {
        let backend = try SocketPairBackend()
        let limiter = try QueueLimiter(RateLimiterConfig(ops: TokenBucketConfig(size: 1, refillTimeMs: 60_000)), queue: VirtioNet.transmitQueue)
        let net = NetDevice(backend: backend, mac: [6, 0, 0, 0, 0, 1], mtu: nil, transmitLimiter: limiter)
        XCTAssertEqual(net.hostEvents.count, 2, "the tap and the transmit limiter's timer")
        net.activate(features: VirtioFeature.version1)
        let driver = try QueueDriver()
        for head in 0..<2 {
            let buffer = try driver.buffer(74)
            try driver.descriptor(head, address: buffer, length: 74)
            try driver.makeAvailable(UInt16(head))
        }
        var queue = try driver.queue()
        XCTAssertEqual(try net.process(queue: VirtioNet.transmitQueue, &queue, memory: driver.memory), .waitingOnHost)
        XCTAssertEqual(net.txFrames, 1)
        XCTAssertEqual(driver.usedIndex, 1)
        XCTAssertNotNil(backend.sent())
        XCTAssertNil(backend.sent(), "the second frame waits")
    }
}
