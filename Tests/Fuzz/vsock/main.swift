import Devices
import FuzzKit
import Glibc
import SwiftletCore

// The vsock device (VsockDevice) against any sequence of tx packets a guest can send:
// headers with any CIDs, ports, ops, types, flags, credit values and lengths (including len
// past the chain and past the largest payload), payloads split or not, then an rx pass over
// a few buffers of any size. A trap is a bug; so is a tx chain not returned, an rx chain
// filled past its writable bytes, or a refused packet not counted. A Unix socket listens at
// `<uds_path>_5`, so a REQUEST to host port 5 opens a real connection (data then goes to a
// real socket); other ports are refused. The device is reset after each input.
//
// Input:
//   byte    rx buffer count (low 3 bits) and size class (bits 3-5: 0 → 10 bytes, else
//           44 + 512 * class)
//   then packets until the input ends, each:
//   byte    kind: bits 0-1 how the header is made (0: 44 raw bytes; else fields below),
//           bit 2 payload in its own descriptor (else after the header in one buffer),
//           bit 3 src_cid the guest's (else 8 raw bytes), bit 4 dst_cid 2 (else raw),
//           bit 5 type STREAM (else a byte), bit 6 len from the payload (else 4 raw bytes)
//   fields  (when built) op byte, src_port byte, dst_port byte (5 = the listener), flags
//           byte, buf_alloc uint32, fwd_cnt uint32, then the raw pieces the kind asks for
//   uint16  payload length (mod 2048), then that many bytes (zeros past the input)

let guestCID: UInt64 = 3
let udsPath = "/tmp/swiftlet-fuzz-vsock-\(getpid()).sock"
let device = try! VsockDevice(guestCID: guestCID, udsPath: udsPath, maxConnections: 16)

/// A server at `<uds>_5` whose accepted connections are closed after each input.
let server: Int32 = {
    let path = udsPath + "_5"
    unlink(path)
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
    }
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    precondition(bound == 0 && listen(fd, 64) == 0, "cannot listen on \(path)")
    _ = fcntl(fd, F_SETFL, O_NONBLOCK)
    atexit {
        unlink("/tmp/swiftlet-fuzz-vsock-\(getpid()).sock_5")
        unlink("/tmp/swiftlet-fuzz-vsock-\(getpid()).sock")
    }
    return fd
}()

let ramBase: UInt64 = 0x4000_0000
let ramSize: UInt64 = 1 << 20
let memory = try! GuestMemory(regions: [.init(guestBase: ramBase, size: ramSize)])
let queueSize: UInt16 = 64
let host = memory.pointerIfValid(at: ramBase, length: ramSize)!

/// One split ring in guest RAM at `base` (descriptors, then available, then used).
struct Ring {
    let base: UInt64
    var descriptors = 0
    var available: UInt16 = 0
    var config: QueueConfig { QueueConfig(size: queueSize, descriptorTable: base, availableRing: base + 0x400, usedRing: base + 0x600) }

    init(base: UInt64) {
        self.base = base
        (host + Int(base - ramBase)).initializeMemory(as: UInt8.self, repeating: 0, count: 0x1000)
    }

    mutating func descriptor(_ address: UInt64, _ length: UInt32, flags: UInt16, chained: Bool) -> Int {
        let index = descriptors
        descriptors += 1
        let at = host + Int(base - ramBase) + 16 * index
        at.storeBytes(of: address.littleEndian, as: UInt64.self)
        at.storeBytes(of: length.littleEndian, toByteOffset: 8, as: UInt32.self)
        at.storeBytes(of: (flags | (chained ? VIRTQ_DESC_F_NEXT : 0)).littleEndian, toByteOffset: 12, as: UInt16.self)
        at.storeBytes(of: UInt16(index + 1).littleEndian, toByteOffset: 14, as: UInt16.self)
        return index
    }

    mutating func makeAvailable(_ head: Int) {
        let avail = host + Int(base - ramBase + 0x400)
        avail.storeBytes(of: UInt16(head).littleEndian, toByteOffset: 4 + 2 * Int(available % queueSize), as: UInt16.self)
        available &+= 1
        avail.storeBytes(of: available.littleEndian, toByteOffset: 2, as: UInt16.self)
    }

    var usedIndex: UInt16 { UInt16(littleEndian: (host + Int(base - ramBase + 0x600)).load(fromByteOffset: 2, as: UInt16.self)) }
    func used(_ i: UInt16) -> (id: UInt32, length: UInt32) {
        let at = host + Int(base - ramBase + 0x600) + 4 + 8 * Int(i % queueSize)
        return (UInt32(littleEndian: at.load(as: UInt32.self)), UInt32(littleEndian: at.load(fromByteOffset: 4, as: UInt32.self)))
    }
}

runFuzzer { buffer in
    var input = FuzzInput(buffer)
    var tx = Ring(base: ramBase)
    var rx = Ring(base: ramBase + 0x1000)
    var next = ramBase + 0x2000
    func allocate(_ bytes: [UInt8], length: Int) -> UInt64? {
        guard next + UInt64(length) <= ramBase + ramSize else { return nil }
        let address = next
        next += (UInt64(length) + 15) & ~15
        let at = host + Int(address - ramBase)
        at.initializeMemory(as: UInt8.self, repeating: 0, count: length)
        bytes.withUnsafeBytes { at.copyMemory(from: $0.baseAddress!, byteCount: min($0.count, length)) }
        return address
    }

    let rxSpec = input.byte()
    let rxCount = Int(rxSpec & 7)
    let rxClass = Int(rxSpec >> 3) & 7
    let rxLength = rxClass == 0 ? 10 : 44 + 512 * rxClass
    var rxBuffers: [UInt64] = []
    for _ in 0..<rxCount {
        guard let address = allocate([], length: rxLength) else { break }
        rxBuffers.append(address)
        rx.makeAvailable(rx.descriptor(address, UInt32(rxLength), flags: VIRTQ_DESC_F_WRITE, chained: false))
    }

    var packets = 0
    while !input.isAtEnd, tx.descriptors + 2 <= Int(queueSize), packets < 24 {
        let kind = input.byte()
        var header: [UInt8]
        if kind & 3 == 0 {
            header = input.bytes(44)
            header += [UInt8](repeating: 0, count: 44 - header.count)
        } else {
            let op = UInt16(input.byte())
            let srcPort = UInt32(input.byte())
            let dstPort = UInt32(input.byte())
            let flags = UInt32(input.byte())
            let bufAlloc = input.uint32()
            let fwdCnt = input.uint32()
            let src = kind & 0x08 != 0 ? guestCID : input.uint64()
            let dst = kind & 0x10 != 0 ? VIRTIO_VSOCK_CID_HOST : input.uint64()
            let type = kind & 0x20 != 0 ? VIRTIO_VSOCK_TYPE_STREAM : UInt16(input.byte())
            let rawLen: UInt32? = kind & 0x40 != 0 ? nil : input.uint32()
            header = VsockHeader(srcCID: src, dstCID: dst, srcPort: srcPort, dstPort: dstPort, len: rawLen ?? 0, type: type,
                                 op: op, flags: flags, bufAlloc: bufAlloc, fwdCnt: fwdCnt).bytes
        }
        let payloadLength = Int(input.uint16() % 2048)
        let given = input.bytes(payloadLength)
        let payload = given + [UInt8](repeating: 0, count: payloadLength - given.count)
        if kind & 0x40 != 0 && kind & 3 != 0 {
            // len from the payload actually given.
            let len = UInt32(payload.count).littleEndian
            withUnsafeBytes(of: len) { for i in 0..<4 { header[24 + i] = $0[i] } }
        }
        if kind & 0x04 != 0 && !payload.isEmpty {
            guard let h = allocate(header, length: 44), let p = allocate(payload, length: payload.count) else { break }
            let head = tx.descriptor(h, 44, flags: 0, chained: true)
            _ = tx.descriptor(p, UInt32(payload.count), flags: 0, chained: false)
            tx.makeAvailable(head)
        } else {
            let whole = header + payload
            guard let a = allocate(whole, length: whole.count) else { break }
            tx.makeAvailable(tx.descriptor(a, UInt32(whole.count), flags: 0, chained: false))
        }
        packets += 1
    }

    let malformedBefore = device.malformedPackets
    let fromGuestBefore = device.packetsFromGuest
    var txQueue = try! Virtqueue(tx.config, maxSize: queueSize, indirect: false, eventIndex: false, memory: memory)
    var rxQueue = try! Virtqueue(rx.config, maxSize: queueSize, indirect: false, eventIndex: false, memory: memory)
    do throws(VirtqueueError) {
        _ = try device.process(queue: VirtioVsock.transmitQueue, &txQueue, memory: memory)
        _ = try device.process(queue: VirtioVsock.receiveQueue, &rxQueue, memory: memory)
        // Again after the host side moved (a connection's socket accepted, written to).
        _ = try device.process(queue: VirtioVsock.receiveQueue, &rxQueue, memory: memory)
    } catch {
        require(false, "the device threw on a sound queue: \(error.reason)")
    }
    require(tx.usedIndex == tx.available, "tx chains not all returned: \(tx.usedIndex) of \(tx.available)")
    require(device.packetsFromGuest - fromGuestBefore == UInt64(packets), "packets not all counted")
    require(device.malformedPackets - malformedBefore <= UInt64(packets), "more malformed than packets")
    require(Int(rx.usedIndex) <= rxBuffers.count, "more rx chains used than posted")
    for i in 0..<rx.usedIndex {
        let element = rx.used(i)
        require(element.length <= UInt32(rxLength), "rx chain filled past its buffer: \(element.length)")
        if element.length >= 44 {
            let at = host + Int(rxBuffers[Int(element.id)] - ramBase)
            let packet = VsockHeader(UnsafeRawBufferPointer(start: at, count: 44))!
            require(packet.srcCID == VIRTIO_VSOCK_CID_HOST && packet.dstCID == guestCID, "a packet not from the host to the guest")
            require(Int(packet.len) == Int(element.length) - 44, "len \(packet.len) does not match the bytes written")
        }
    }
    // Leave nothing behind for the next input.
    while true {
        let fd = accept(server, nil, nil)
        if fd < 0 { break }
        close(fd)
    }
    device.reset()
    require(device.openConnections == 0, "reset left connections open")
}
