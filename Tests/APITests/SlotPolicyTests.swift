import XCTest
@testable import API

/// The API server's slot and deadline decisions, without sockets.
final class SlotPolicyTests: XCTestCase {
    let policy = SlotPolicy()

    func testDefaults() {
        XCTAssertEqual(policy.maxConnections, 16)
        XCTAssertEqual(policy.requestDeadlineMs, 5_000)
        XCTAssertEqual(policy.idleTimeoutMs, 300_000)
        XCTAssertEqual(SlotPolicy(maxConnections: 0).maxConnections, 1, "at least one slot")
    }

    func testDeadlinePerPhase() {
        XCTAssertEqual(policy.deadline(.receiving(since: 1_000)), 6_000, "whole request: from its first byte")
        XCTAssertEqual(policy.deadline(.sending(since: 1_000)), 6_000, "an answer must be read as promptly")
        XCTAssertEqual(policy.deadline(.idle(since: 1_000)), 301_000, "idle keep-alive: longer")
        XCTAssertNil(policy.deadline(.answering), "waiting for our own answer has no deadline")
    }

    func testExpiryIsFromTheFirstByteNotTheLastActivity() {
        // A client dripping a byte a second: the phase keeps its first byte's time, so the
        // deadline comes 5 s after it however many bytes followed.
        let phase = ConnectionPhase.receiving(since: 10_000)
        XCTAssertFalse(policy.isExpired(phase, now: 14_999))
        XCTAssertTrue(policy.isExpired(phase, now: 15_000))
        XCTAssertFalse(policy.isExpired(.idle(since: 10_000), now: 15_000))
        XCTAssertTrue(policy.isExpired(.idle(since: 10_000), now: 310_000))
        XCTAssertFalse(policy.isExpired(.answering, now: .max))
    }

    func testAcceptsWhileASlotIsFree() {
        XCTAssertEqual(policy.admit([]), .accept)
        XCTAssertEqual(policy.admit(Array(repeating: .receiving(since: 0), count: 15)), .accept)
        XCTAssertEqual(SlotPolicy(maxConnections: 2).admit([.answering]), .accept)
    }

    func testEvictsTheConnectionStalledLongest() {
        let small = SlotPolicy(maxConnections: 4)
        XCTAssertEqual(small.admit([.receiving(since: 300), .idle(since: 200), .sending(since: 400), .receiving(since: 250)]),
                       .evict(1), "the oldest idle keep-alive")
        XCTAssertEqual(small.admit([.receiving(since: 300), .idle(since: 500), .sending(since: 400), .receiving(since: 250)]),
                       .evict(3), "the oldest partial request")
        XCTAssertEqual(small.admit([.idle(since: 500), .sending(since: 100), .idle(since: 900), .receiving(since: 250)]),
                       .evict(1), "an unread answer: the client is not reading")
        XCTAssertEqual(small.admit([.receiving(since: 7), .receiving(since: 7), .idle(since: 7), .receiving(since: 8)]),
                       .evict(0), "ties: the first")
    }

    func testNeverEvictsAConnectionBeingAnswered() {
        let small = SlotPolicy(maxConnections: 3)
        XCTAssertEqual(small.admit([.answering, .receiving(since: 900), .answering]), .evict(1),
                       "a young stalled connection goes rather than an old one being answered")
        XCTAssertEqual(small.admit([.answering, .answering, .answering]), .refuse)
    }

    func testFullTableOfDripClientsStillAdmitsNewcomers() {
        // 16 slots of partial requests begun at 0, 10, ..., 150: each newcomer takes the
        // oldest one's place, so a fast client is never refused.
        var open: [ConnectionPhase] = (0..<16).map { .receiving(since: Int64($0) * 10) }
        for newcomer in 0..<20 {
            guard case .evict(let index) = policy.admit(open) else { return XCTFail("newcomer \(newcomer) refused") }
            XCTAssertEqual(SlotPolicy.stalledSince(open[index]), open.compactMap(SlotPolicy.stalledSince).min())
            open.remove(at: index)
            open.append(.idle(since: 1_000 + Int64(newcomer)))
        }
    }
}
