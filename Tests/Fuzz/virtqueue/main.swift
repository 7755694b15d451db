import Devices
import FuzzKit
import SwiftletCore

// The split virtqueue, and virtio-rng on top of it, against a guest that writes anything:
// the input is the queue configuration, an image of guest RAM (descriptor table, available
// ring, indirect tables, buffers) and a script of device steps, including the guest
// rewriting RAM between them. Pop may refuse (VirtqueueError); a trap, a hang or a chain
// with a buffer outside RAM is a bug. Every loop is bounded by the input's length or the
// queue size.
//
// Guest RAM: 64 KiB at ramBase, and 4 KiB right after it as a second region (a buffer
// across the seam spans two host mappings and must be refused).
//
// Input:
//   byte    flags: bit 0 INDIRECT_DESC, bit 1 EVENT_IDX, bit 2 ring addresses from the input,
//           bit 3 raw queue size (uint16 follows), bits 4-7 size exponent (size = 1 << e % 9)
//   [bit 3] uint16 queue size
//   [bit 2] the descriptor table, available ring and used ring addresses, each a kind byte
//           (< 0x80: ramBase + uint16 offset; else FuzzInput.interestingUInt64)
//           (else the rings are packed from ramBase: table, then avail, then used)
//   uint16  start index: the queue's next available and next used index
//   byte    pending: < 0x80: avail.idx = start + pending % (size + 1); else the image's value
//   uint16  image length, then that many bytes copied to ramBase
//   then steps, each an op byte (op % 8):
//     0 pop and push (filling up to 256 writable bytes)   1 pop and hold (up to 8 held)
//     2 guest writes: uint16 offset from ramBase, uint16 value
//     3 guest publishes: avail.idx += byte % 4, ring entry = byte
//     4 prepareToWait   5 needsInterrupt   6 push a held chain   7 virtio-rng process
//   and after the steps, the device drains the queue as the transport would.

let ramBase: UInt64 = 0x4000_0000
let ramSize: UInt64 = 64 * 1024
let seamSize: UInt64 = 4 * 1024
let memory = try! GuestMemory(regions: [.init(guestBase: ramBase, size: ramSize),
                                        .init(guestBase: ramBase + ramSize, size: seamSize)])
let maxSize: UInt16 = 256
let maxFill = 256
let maxHeld = 8
let pattern = [UInt8](repeating: 0x5A, count: maxFill)
var readBack = [UInt8](repeating: 0, count: maxFill)
var chain = DescriptorChain()
let rng = EntropyDevice(random: { buffer in
    // Cheap and deterministic; a failure now and then exercises the empty completion.
    guard buffer.count != 7 else { return false }
    for i in 0..<buffer.count { buffer[i] = UInt8(truncatingIfNeeded: i) }
    return true
})

func address(_ input: inout FuzzInput) -> UInt64 {
    let kind = input.byte()
    return kind < 0x80 ? ramBase + UInt64(input.uint16()) : input.interestingUInt64()
}

/// Checks what pop promises about a chain it returned.
func check(_ chain: DescriptorChain, size: UInt16) {
    require(chain.head < size, "head \(chain.head) outside a queue of \(size)")
    var readable: UInt64 = 0
    var writable: UInt64 = 0
    for segment in chain.readable {
        require(segment.length > 0 && memory.contains(segment.address, length: UInt64(segment.length)),
                "readable segment at \(segment.address) of \(segment.length) bytes")
        readable += UInt64(segment.length)
    }
    for segment in chain.writable {
        require(segment.length > 0 && memory.contains(segment.address, length: UInt64(segment.length)),
                "writable segment at \(segment.address) of \(segment.length) bytes")
        writable += UInt64(segment.length)
    }
    require(readable == chain.readableLength && writable == chain.writableLength, "segment length sums")
    require(chain.readable.count + chain.writable.count <= 2 * Int(size), "chain longer than its tables")
}

/// Pops one chain into `chain`; false when the queue is empty or broken (then `broken`).
func pop(_ queue: inout Virtqueue, _ broken: inout Bool) -> Bool {
    do throws(VirtqueueError) {
        guard try queue.pop(into: &chain) else { return false }
    } catch {
        require(!error.reason.isEmpty, "error without a reason")
        broken = true
        return false
    }
    check(chain, size: queue.size)
    return true
}

/// Fills up to maxFill bytes of the writable part, reads the readable part back: within
/// the lengths pop reported, both must succeed.
func serve(_ chain: DescriptorChain) -> UInt32 {
    let n = Int(min(chain.writableLength, UInt64(maxFill)))
    let wrote = pattern.withUnsafeBytes { chain.write(memory, at: 0, from: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    require(wrote, "write of \(n) bytes into \(chain.writableLength) writable")
    let m = Int(min(chain.readableLength, UInt64(maxFill)))
    let read = readBack.withUnsafeMutableBytes { chain.read(memory, at: chain.readableLength - UInt64(m),
                                                          into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<m])) }
    require(read, "read of \(m) bytes from \(chain.readableLength) readable")
    return UInt32(n)
}

func poke(_ value: UInt16, at address: UInt64) {
    if let pointer = memory.pointerIfValid(at: address, length: 2) {
        pointer.storeBytes(of: value.littleEndian, as: UInt16.self)
    }
}

runFuzzer { buffer in
    var input = FuzzInput(buffer)
    for mapping in memory.mappings { mapping.host.initializeMemory(as: UInt8.self, repeating: 0, count: Int(mapping.region.size)) }

    let flags = input.byte()
    let size = flags & 0x08 != 0 ? input.uint16() : UInt16(1) << UInt16((flags >> 4) % 9)
    var config = QueueConfig(size: size)
    if flags & 0x04 != 0 {
        config.descriptorTable = address(&input)
        config.availableRing = address(&input)
        config.usedRing = address(&input)
    } else {
        let n = UInt64(size)
        config.descriptorTable = ramBase
        config.availableRing = ramBase + 16 * n
        config.usedRing = (config.availableRing + 6 + 2 * n + 3) & ~3
    }
    let start = input.uint16()
    let pending = input.byte()
    let image = input.bytes(Int(input.uint16()))
    try! memory.write(image, at: ramBase)
    if pending < 0x80 {
        poke(start &+ UInt16(truncatingIfNeeded: Int(pending) % (Int(size) + 1)), at: config.availableRing &+ 2)
    }

    var queue: Virtqueue
    do throws(VirtqueueError) {
        queue = try Virtqueue(config, maxSize: maxSize, indirect: flags & 1 != 0, eventIndex: flags & 2 != 0,
                              memory: memory, nextAvailable: start, nextUsed: start)
    } catch {
        return
    }
    // A refused configuration is fine; an accepted one must lie in RAM.
    require(memory.contains(config.descriptorTable, length: 16 * UInt64(size)), "descriptor table accepted outside RAM")
    require(queue.size == size && size.nonzeroBitCount == 1 && size <= maxSize, "size \(size) accepted")

    var broken = false
    var held: [UInt16] = []
    var guestIndex = start &+ UInt16(truncatingIfNeeded: Int(pending & 0x7F) % (Int(size) + 1))
    while !input.isAtEnd && !broken {
        switch input.byte() % 8 {
        case 0:
            if pop(&queue, &broken) { queue.push(head: chain.head, written: serve(chain)) }
        case 1:
            if pop(&queue, &broken), held.count < maxHeld { held.append(chain.head) }
        case 2:
            let offset = UInt64(input.uint16())
            poke(input.uint16(), at: ramBase + offset)
        case 3:
            let entry = input.byte()
            poke(UInt16(entry), at: config.availableRing &+ 4 &+ 2 * UInt64(guestIndex % size))
            guestIndex &+= UInt16(entry % 4)
            poke(guestIndex, at: config.availableRing &+ 2)
        case 4:
            _ = queue.prepareToWait()
        case 5:
            _ = queue.needsInterrupt()
        case 6:
            if let head = held.popLast() { queue.push(head: head, written: 0) }
        default:
            do throws(VirtqueueError) {
                try rng.process(queue: 0, &queue, memory: memory)
            } catch {
                broken = true
            }
        }
    }

    // Drain as the transport does: pop until empty, then re-check before sleeping. A buffer
    // may alias the available ring, so the device's own fills can publish more chains:
    // the rounds and pops are capped rather than asserted.
    var rounds = 0
    while !broken && rounds < 4 {
        rounds += 1
        var popped = 0
        while popped <= 2 * Int(size), pop(&queue, &broken) {
            popped += 1
            queue.push(head: chain.head, written: serve(chain))
        }
        _ = queue.needsInterrupt()
        if broken || !queue.prepareToWait() { break }
    }
}
