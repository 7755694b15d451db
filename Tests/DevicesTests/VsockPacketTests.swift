import XCTest
@testable import Devices
import SwiftletCore

final class VsockPacketTests: XCTestCase {
    private let cid: UInt64 = 3

    func testHeaderLayoutRoundTrip() {
        let header = VsockHeader(srcCID: 0x0102030405060708, dstCID: 2, srcPort: 0xAABBCCDD, dstPort: 1234, len: 77,
                                 type: 1, op: VIRTIO_VSOCK_OP_RW, flags: 3, bufAlloc: 0x10000, fwdCnt: 0xFFFF_FFFF)
        let bytes = header.bytes
        XCTAssertEqual(bytes.count, 44)
        XCTAssertEqual(Array(bytes[0..<8]), [8, 7, 6, 5, 4, 3, 2, 1], "src_cid le64 at 0")
        XCTAssertEqual(Array(bytes[8..<16]), [2, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(Array(bytes[16..<20]), [0xDD, 0xCC, 0xBB, 0xAA])
        XCTAssertEqual(Array(bytes[20..<24]), [0xD2, 0x04, 0, 0])
        XCTAssertEqual(Array(bytes[24..<28]), [77, 0, 0, 0])
        XCTAssertEqual(Array(bytes[28..<30]), [1, 0], "type")
        XCTAssertEqual(Array(bytes[30..<32]), [5, 0], "op")
        XCTAssertEqual(Array(bytes[32..<36]), [3, 0, 0, 0])
        XCTAssertEqual(Array(bytes[36..<40]), [0, 0, 1, 0])
        XCTAssertEqual(Array(bytes[40..<44]), [0xFF, 0xFF, 0xFF, 0xFF])
        XCTAssertEqual(bytes.withUnsafeBytes { VsockHeader($0) }, header)
        XCTAssertNil(Array(bytes[0..<43]).withUnsafeBytes { VsockHeader($0) }, "43 bytes are not a header")
        let reply = header.resetReply()
        XCTAssertEqual([reply.srcCID, reply.dstCID, UInt64(reply.srcPort), UInt64(reply.dstPort), UInt64(reply.op)],
                       [2, 0x0102030405060708, 1234, 0xAABBCCDD, UInt64(VIRTIO_VSOCK_OP_RST)])
    }

    func testFaults() {
        var h = VsockHeader(srcCID: cid, dstCID: 2, srcPort: 1, dstPort: 2, len: 100, op: VIRTIO_VSOCK_OP_RW)
        XCTAssertNil(h.fault(guestCID: cid, payloadRoom: 100))
        XCTAssertEqual(h.fault(guestCID: cid, payloadRoom: 99), .lengthPastChain)
        h.len = VirtioVsock.maxPayload + 1
        XCTAssertEqual(h.fault(guestCID: cid, payloadRoom: UInt64.max), .lengthTooLarge)
        h.len = UInt32.max
        XCTAssertEqual(h.fault(guestCID: cid, payloadRoom: UInt64.max), .lengthTooLarge, "no overflow")
        h.len = 0
        h.srcCID = 4
        XCTAssertEqual(h.fault(guestCID: cid, payloadRoom: 0), .badSourceCID)
        h.srcCID = cid
        h.dstCID = 1
        XCTAssertEqual(h.fault(guestCID: cid, payloadRoom: 0), .badDestinationCID)
        h.dstCID = 2
        h.type = 2   // SEQPACKET is not offered
        XCTAssertEqual(h.fault(guestCID: cid, payloadRoom: 0), .badType)
        XCTAssertTrue(VsockPacketFault.badType.answeredWithReset)
        h.type = 1
        for op: UInt16 in [0, 8, 0xFFFF] {
            h.op = op
            XCTAssertEqual(h.fault(guestCID: cid, payloadRoom: 0), .badOperation, "op \(op)")
        }
        XCTAssertFalse(VsockPacketFault.badSourceCID.answeredWithReset)
        XCTAssertFalse(VsockPacketFault.lengthPastChain.answeredWithReset)
    }

    func testParseConnect() {
        func parse(_ s: String) -> UInt32? { VsockDevice.parseConnect(Array(s.utf8)) }
        XCTAssertEqual(parse("CONNECT 1234"), 1234)
        XCTAssertEqual(parse("CONNECT 4294967295\r"), UInt32.max)
        XCTAssertNil(parse("CONNECT 4294967296"))
        XCTAssertNil(parse("CONNECT "))
        XCTAssertNil(parse("CONNECT -1"))
        XCTAssertNil(parse("connect 1"))
        XCTAssertNil(parse("CONNECT 12 34"))
    }

    // MARK: connection logic

    private func request(bufAlloc: UInt32, fwdCnt: UInt32 = 0) -> VsockHeader {
        VsockHeader(srcCID: cid, dstCID: 2, srcPort: 900, dstPort: 50, op: VIRTIO_VSOCK_OP_REQUEST, bufAlloc: bufAlloc, fwdCnt: fwdCnt)
    }

    private func packet(_ op: UInt16, len: UInt32 = 0, flags: UInt32 = 0, bufAlloc: UInt32 = 4096, fwdCnt: UInt32 = 0) -> VsockHeader {
        VsockHeader(srcCID: cid, dstCID: 2, srcPort: 900, dstPort: 50, len: len, op: op, flags: flags, bufAlloc: bufAlloc, fwdCnt: fwdCnt)
    }

    func testPeerCreditNeverOverflows() {
        var c = VsockConnection.guestInitiated(request(bufAlloc: 1000), bufAlloc: 4096)
        XCTAssertEqual(c.peerFree, 1000)
        c.sentToGuest(600)
        XCTAssertEqual(c.peerFree, 400)
        XCTAssertEqual(c.receive(packet(VIRTIO_VSOCK_OP_CREDIT_UPDATE, bufAlloc: 1000, fwdCnt: 600)), VsockGuestAction.none)
        XCTAssertEqual(c.peerFree, 1000)
        // A guest claiming to have consumed more than was sent, or shrinking its buffer.
        _ = c.receive(packet(VIRTIO_VSOCK_OP_CREDIT_UPDATE, bufAlloc: 1000, fwdCnt: 5000))
        XCTAssertEqual(c.peerFree, 0, "fwd_cnt past tx_cnt gives no credit")
        _ = c.receive(packet(VIRTIO_VSOCK_OP_CREDIT_UPDATE, bufAlloc: 0, fwdCnt: 600))
        XCTAssertEqual(c.peerFree, 0)
        _ = c.receive(packet(VIRTIO_VSOCK_OP_CREDIT_UPDATE, bufAlloc: UInt32.max, fwdCnt: UInt32.max))
        XCTAssertEqual(c.peerFree, UInt32.max - 601, "in flight (wrapping) is 601")
        // Counters wrap like the wire's.
        c.sentToGuest(UInt32.max)
        _ = c.receive(packet(VIRTIO_VSOCK_OP_CREDIT_UPDATE, bufAlloc: 100, fwdCnt: 599))
        XCTAssertEqual(c.txCnt, 599)
        XCTAssertEqual(c.peerFree, 100)
    }

    func testCreditRequestIsAskedOnceAndCreditUpdateAnswered() {
        var c = VsockConnection.guestInitiated(request(bufAlloc: 10), bufAlloc: 4096)
        XCTAssertEqual(c.nextControlPacket(guestCID: cid)?.op, VIRTIO_VSOCK_OP_RESPONSE)
        XCTAssertFalse(c.needCredit(), "credit left")
        c.sentToGuest(10)
        XCTAssertFalse(c.canSendData)
        XCTAssertTrue(c.needCredit())
        XCTAssertFalse(c.needCredit(), "asked once")
        XCTAssertEqual(c.nextControlPacket(guestCID: cid)?.op, VIRTIO_VSOCK_OP_CREDIT_REQUEST)
        XCTAssertNil(c.nextControlPacket(guestCID: cid))
        _ = c.receive(packet(VIRTIO_VSOCK_OP_CREDIT_UPDATE, bufAlloc: 10, fwdCnt: 10))
        XCTAssertTrue(c.canSendData)
        _ = c.receive(packet(VIRTIO_VSOCK_OP_CREDIT_REQUEST, bufAlloc: 10, fwdCnt: 10))
        let update = c.nextControlPacket(guestCID: cid)
        XCTAssertEqual(update?.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE)
        XCTAssertEqual(update?.bufAlloc, 4096)
        XCTAssertEqual(update?.srcPort, 50)
        XCTAssertEqual(update?.dstPort, 900)
    }

    func testForwardingOwesCreditUpdateAtThreshold() {
        var c = VsockConnection.guestInitiated(request(bufAlloc: 4096), bufAlloc: 4000)
        _ = c.nextControlPacket(guestCID: cid)
        XCTAssertEqual(c.receive(packet(VIRTIO_VSOCK_OP_RW, len: 999)), .forward(999))
        c.forwarded(999)
        XCTAssertFalse(c.pending.contains(.creditUpdate), "999 < a quarter of 4000")
        XCTAssertEqual(c.receive(packet(VIRTIO_VSOCK_OP_RW, len: 1)), .forward(1))
        c.forwarded(1)
        XCTAssertTrue(c.pending.contains(.creditUpdate))
        let update = c.nextControlPacket(guestCID: cid)
        XCTAssertEqual(update?.fwdCnt, 1000)
        XCTAssertEqual(c.lastFwdCntSent, 1000)
        // More than the credit given: the guest broke the protocol.
        XCTAssertEqual(c.receive(packet(VIRTIO_VSOCK_OP_RW, len: 3000)), .forward(3000))
        XCTAssertEqual(c.buffered, 3000)
        XCTAssertEqual(c.receive(packet(VIRTIO_VSOCK_OP_RW, len: 1001)), .close)
        XCTAssertEqual(c.nextControlPacket(guestCID: cid)?.op, VIRTIO_VSOCK_OP_RST)
        XCTAssertEqual(c.state, .closed)
    }

    func testHandshakeAndShutdown() {
        var c = VsockConnection.hostInitiated(guestPort: 900, hostPort: 50, bufAlloc: 4096)
        XCTAssertEqual(c.receive(packet(VIRTIO_VSOCK_OP_RW, len: 1)), .close, "data before RESPONSE")
        c = VsockConnection.hostInitiated(guestPort: 900, hostPort: 50, bufAlloc: 4096)
        let request = c.nextControlPacket(guestCID: cid)
        XCTAssertEqual(request?.op, VIRTIO_VSOCK_OP_REQUEST)
        XCTAssertEqual(request?.dstCID, cid)
        XCTAssertEqual(c.receive(packet(VIRTIO_VSOCK_OP_RESPONSE)), .connected)
        XCTAssertEqual(c.state, .established)
        XCTAssertEqual(c.receive(packet(VIRTIO_VSOCK_OP_SHUTDOWN, flags: VIRTIO_VSOCK_SHUTDOWN_F_SEND)), .shutdownHostWrite)
        XCTAssertEqual(c.receive(packet(VIRTIO_VSOCK_OP_RW, len: 1)), .close, "data after SHUTDOWN_SEND")
        c = VsockConnection.hostInitiated(guestPort: 900, hostPort: 50, bufAlloc: 4096)
        _ = c.nextControlPacket(guestCID: cid)
        _ = c.receive(packet(VIRTIO_VSOCK_OP_RESPONSE))
        XCTAssertEqual(c.receive(packet(VIRTIO_VSOCK_OP_SHUTDOWN, flags: VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE)), VsockGuestAction.none)
        XCTAssertFalse(c.canSendData)
        XCTAssertFalse(c.closeWhenFlushed)
        XCTAssertEqual(c.receive(packet(VIRTIO_VSOCK_OP_SHUTDOWN, flags: 3)), .shutdownHostWrite)
        XCTAssertTrue(c.closeWhenFlushed)
        c.hostReachedEnd()
        XCTAssertEqual(c.nextControlPacket(guestCID: cid)?.flags, VIRTIO_VSOCK_SHUTDOWN_F_SEND)
        XCTAssertEqual(c.receive(packet(VIRTIO_VSOCK_OP_RST)), .close)
        XCTAssertEqual(c.state, .closed)
        XCTAssertNil(c.nextControlPacket(guestCID: cid))
    }

    func testByteRingWraps() {
        let ring = VsockByteRing(capacity: 8)
        XCTAssertTrue([UInt8]([1, 2, 3, 4, 5, 6]).withUnsafeBytes { ring.append($0) })
        ring.consume(4)
        XCTAssertTrue([UInt8]([7, 8, 9, 10, 11]).withUnsafeBytes { ring.append($0) })
        XCTAssertFalse([UInt8](repeating: 0, count: 2).withUnsafeBytes { ring.append($0) }, "only 1 byte free")
        let (a, b) = ring.contents()
        XCTAssertEqual(Array(a) + Array(b), [5, 6, 7, 8, 9, 10, 11])
        ring.consume(100)
        XCTAssertTrue(ring.isEmpty)
    }
}
