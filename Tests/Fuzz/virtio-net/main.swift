import Devices
import FuzzKit
import Glibc
import SwiftletCore

// virtio-net's packet paths against anything a guest can put in its queues and anything
// the tap can hand it: a NetDevice on a SOCK_SEQPACKET socket pair (frame boundaries kept,
// as a tap keeps them), guest RAM written from the input (descriptor tables, rings, frame
// headers with bogus lengths, flags and segmentation types), any negotiated features, and
// the operations in any order. A trap is a bug; so is a frame reaching the tap that the
// header checks should have refused, or a receive that publishes more than it read.
//
// Guest RAM: one 64 KiB region at ramBase. Queue n (0 receive, 1 transmit) has its
// descriptor table at ramBase + n * 0x2000, its available ring 0x800 after it and its used
// ring 0x1000 after it; buffers may point anywhere.
//
// Input:
//   8 bytes  negotiated features (VERSION_1 always added)
//   byte     flags: bit 0 EVENT_IDX, bit 1 INDIRECT_DESC; bits 4-6: log2 queue size
//   uint16   image length, then that many bytes copied to ramBase
//   then operations, one byte each (mod 6) with their operands:
//     0  process the receive queue          1  process the transmit queue
//     2  the tap delivers a frame: uint16 length (mod 70000), then bytes (short input: zeros)
//     3  poke: uint16 offset, uint16 value  (the guest rewrites its rings or buffers)
//     4  reset, then activate with the same features
//     5  drain what the device sent to the tap, checking each frame

let ramBase: UInt64 = 0x4000_0000
let ramSize: UInt64 = 64 * 1024
let memory = try! GuestMemory(regions: [.init(guestBase: ramBase, size: ramSize)])

final class PairBackend: NetBackend {
    let fd: Int32
    let peer: Int32
    init() {
        var fds: [Int32] = [0, 0]
        precondition(socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &fds) == 0, "socketpair")
        fd = fds[0]
        peer = fds[1]
        precondition(fcntl(fd, F_SETFL, O_NONBLOCK) == 0 && fcntl(peer, F_SETFL, O_NONBLOCK) == 0)
        var size: Int32 = 4 << 20
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, 4)
        setsockopt(peer, SOL_SOCKET, SO_SNDBUF, &size, 4)
    }
    func setOffloads(_ flags: UInt32) -> Bool { true }
}

let backend = PairBackend()
var sink = [UInt8](repeating: 0, count: 70_000)

func poke(_ value: UInt16, at offset: UInt16) {
    if let pointer = memory.pointerIfValid(at: ramBase + UInt64(offset), length: 2) {
        pointer.storeBytes(of: value.littleEndian, as: UInt16.self)
    }
}

/// Reads every frame the device wrote to the tap; each must pass the header checks.
func drain(features: UInt64) {
    while true {
        let n = sink.withUnsafeMutableBytes { read(backend.peer, $0.baseAddress, $0.count) }
        guard n >= 0 else { return }
        require(n >= VirtioNet.headerLength, "a \(n)-byte frame reached the tap")
        let fault = sink.withUnsafeBytes { VirtioNetHeader(UnsafeRawBufferPointer(rebasing: $0[0..<12])) }
            .transmitFault(frameLength: n - VirtioNet.headerLength, features: features)
        require(fault == nil, "a frame the header checks refuse reached the tap")
    }
}

runFuzzer { buffer in
    var input = FuzzInput(buffer)
    memory.mappings[0].host.initializeMemory(as: UInt8.self, repeating: 0, count: Int(ramSize))
    drain(features: UInt64.max)
    let features = input.uint64() | VirtioFeature.version1
    let flags = input.byte()
    let size = UInt16(1) << UInt16(((flags >> 4) & 7) % 9)
    let image = input.bytes(Int(input.uint16()))
    try! memory.write(Array(image.prefix(Int(ramSize))), at: ramBase)

    // A fresh device per input: nothing held over from the last one.
    let net = NetDevice(backend: backend, mac: [2, 0, 0, 0, 0, 1], mtu: 1500)
    net.activate(features: features)
    var queues: [Virtqueue] = []
    for n in 0..<2 {
        let base = ramBase + UInt64(n) * 0x2000
        let config = QueueConfig(size: size, descriptorTable: base, availableRing: base + 0x800, usedRing: base + 0x1000)
        queues.append(try! Virtqueue(config, maxSize: 256, indirect: flags & 2 != 0, eventIndex: flags & 1 != 0, memory: memory))
    }
    var broken = [false, false]
    var delivered = 0
    while !input.isAtEnd {
        switch input.byte() % 6 {
        case 0, 1:
            let index = Int(input.byte() & 1)
            guard !broken[index] else { continue }
            let usedBefore = queues[index].nextUsed
            let receivedBefore = net.rxFrames
            do throws(VirtqueueError) {
                _ = try net.process(queue: index, &queues[index], memory: memory)
            } catch {
                broken[index] = true
            }
            let published = Int(queues[index].nextUsed &- usedBefore)
            require(published <= Int(size) * 2, "\(published) chains published in one call on a queue of \(size)")
            if index == 0 { require(Int(net.rxFrames - receivedBefore) <= delivered, "more frames received than the tap gave") }
        case 2:
            let length = Int(input.uint16()) % 70_000
            var frame = input.bytes(length)
            frame += [UInt8](repeating: 0, count: length - frame.count)
            if frame.withUnsafeBytes({ write(backend.peer, $0.baseAddress, $0.count) }) >= 0 { delivered += 1 }
        case 3:
            poke(input.uint16(), at: input.uint16())
        case 4:
            net.reset()
            net.activate(features: features)
        default:
            drain(features: features)
        }
    }
    drain(features: features)
    // Frames left in the pair would reach the next input's device: read them away.
    while recv(backend.fd, &sink, sink.count, Int32(MSG_DONTWAIT)) >= 0 {}
}
