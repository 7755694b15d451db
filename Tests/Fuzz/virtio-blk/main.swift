import Devices
import FuzzKit
import Glibc
import SwiftletCore

// The virtio-blk request parser (BlockRequest.parse) against any chain a guest can make:
// any segments the queue would let through (any number, any lengths, overlapping, in either
// RAM region, up to the seam between them), any header, any capacity, read-only or not. A trap is a bug; so is a parsed request that
// breaks a promise the executor relies on (checked below). With flag bit 1 the chain is
// also carried out by a BlockDevice on a small real image (preadv/pwritev into the guest's
// buffers, fallocate), which must answer without trapping too.
//
// Guest RAM: two adjacent 32 KiB regions at ramBase (two host mappings). The input is
// taken as the chain Virtqueue.pop would return: zero-length segments are dropped, and an
// input with a segment not wholly inside one region is skipped, as the queue refuses such a
// chain before any device sees it (DescriptorSegment's contract).
//
// Input:
//   byte    flags: bit 0 read-only, bit 1 also execute on a BlockDevice, bit 2 counts are
//           full bytes (else the nibbles of one byte)
//   8 bytes capacity in sectors: FuzzInput.interestingUInt64 (kind byte, then value bytes)
//   byte    segment counts: low nibble readable, high nibble writable (bit 2: two bytes)
//   segments, readable then writable, each: uint16 offset from ramBase, uint16 length
//   uint16  load offset from ramBase
//   rest    copied to ramBase + load offset, as much as fits (the rest of RAM is zero)

let ramBase: UInt64 = 0x4000_0000
let regionSize: UInt64 = 32 * 1024
let memory = try! GuestMemory(regions: [.init(guestBase: ramBase, size: regionSize),
                                        .init(guestBase: ramBase + regionSize, size: regionSize)])
let ramSize = Int(2 * regionSize)
var chain = DescriptorChain()

/// A small image, opened and then unlinked (the descriptor keeps it alive; nothing is
/// left behind). 64 sectors and a partial one the guest cannot see.
func makeImage(readOnly: Bool) -> DiskImage {
    let path = "/tmp/swiftlet-fuzz-blk-\(getpid())-\(readOnly ? "ro" : "rw").img"
    let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    precondition(fd >= 0 && ftruncate(fd, 64 * 512 + 100) == 0, "cannot create \(path)")
    close(fd)
    let image = try! DiskImage.open(path, readOnly: readOnly)
    unlink(path)
    return image
}

let writableDevice = BlockDevice(image: makeImage(readOnly: false), serial: "fuzz-virtio-blk-serial")
let readOnlyDevice = BlockDevice(image: makeImage(readOnly: true), serial: "ro")

/// The next segment, or nil when the queue would refuse it; zero-length ones are read but
/// not added (`valid` stays true).
func segment(_ input: inout FuzzInput, _ valid: inout Bool) -> DescriptorSegment? {
    let address = ramBase + UInt64(input.uint16())
    let length = UInt32(input.uint16())
    guard length > 0 else { return nil }
    guard memory.contains(address, length: UInt64(length)) else { valid = false; return nil }
    return DescriptorSegment(address: address, length: length)
}

/// What the executor relies on: every data range inside the chain and the disk, no write
/// to a read-only disk, the status at the last writable byte.
func check(_ request: BlockRequest?, _ chain: DescriptorChain, capacity: UInt64, readOnly: Bool) {
    guard let request else {
        require(chain.writableLength == 0, "a chain with writable bytes was left unanswered")
        return
    }
    require(chain.writableLength > 0 && request.statusOffset == chain.writableLength - 1, "status not at the last writable byte")
    func fits(_ sector: UInt64, _ sectors: UInt64) -> Bool { sector <= capacity && sectors <= capacity - sector }
    switch request.operation {
    case .read(let sector, let length):
        require(request.type == VirtioBlockRequestType.input, "read from type \(request.type ?? 0)")
        require(length % 512 == 0 && length == request.statusOffset && fits(sector, length / 512), "read \(sector)+\(length)")
    case .write(let sector, let length):
        require(!readOnly && request.type == VirtioBlockRequestType.output, "write on a read-only disk or from another type")
        require(length % 512 == 0 && length + VirtioBlock.headerSize == chain.readableLength && fits(sector, length / 512),
                "write \(sector)+\(length)")
    case .flush:
        require(request.type == VirtioBlockRequestType.flush, "flush from another type")
    case .getID(let length):
        require(request.type == VirtioBlockRequestType.getID && length <= 20 && length <= request.statusOffset, "get id \(length)")
    case .discard(let sector, let sectors):
        require(!readOnly && request.type == VirtioBlockRequestType.discard, "discard on a read-only disk")
        require(sectors <= VirtioBlock.maxDiscardSectors && fits(sector, UInt64(sectors)), "discard \(sector)+\(sectors)")
        require(chain.readableLength == VirtioBlock.headerSize + VirtioBlock.rangeSize, "discard with other than one range")
    case .writeZeroes(let sector, let sectors, _):
        require(!readOnly && request.type == VirtioBlockRequestType.writeZeroes, "write zeroes on a read-only disk")
        require(sectors <= VirtioBlock.maxWriteZeroesSectors && fits(sector, UInt64(sectors)), "write zeroes \(sector)+\(sectors)")
    case .fail(let status):
        require(status == VirtioBlockStatus.ioError || status == VirtioBlockStatus.unsupported, "status \(status)")
    }
    if request.type == nil {
        require(request.operation == .fail(status: VirtioBlockStatus.ioError), "no header but not an I/O error")
    }
}

runFuzzer { buffer in
    var input = FuzzInput(buffer)
    let flags = input.byte()
    let readOnly = flags & 0x01 != 0
    let capacity = input.interestingUInt64()
    let readableCount: Int
    let writableCount: Int
    if flags & 0x04 != 0 {
        readableCount = Int(input.byte())
        writableCount = Int(input.byte())
    } else {
        let counts = input.byte()
        readableCount = Int(counts & 0x0F)
        writableCount = Int(counts >> 4)
    }
    chain.clear()
    chain.head = UInt16(truncatingIfNeeded: input.position)
    var valid = true
    for _ in 0..<readableCount {
        guard let s = segment(&input, &valid) else { continue }
        chain.readable.append(s)
        chain.readableLength += UInt64(s.length)
    }
    for _ in 0..<writableCount {
        guard let s = segment(&input, &valid) else { continue }
        chain.writable.append(s)
        chain.writableLength += UInt64(s.length)
    }
    guard valid else { return }
    let load = Int(input.uint16()) % ramSize
    let contents = input.bytes(ramSize - load)
    // Each region is its own host mapping: fill them separately.
    for region in 0..<2 {
        let start = region * Int(regionSize)
        let host = memory.pointerIfValid(at: ramBase + UInt64(start), length: regionSize)!
        host.initializeMemory(as: UInt8.self, repeating: 0, count: Int(regionSize))
        let from = max(start, load)
        let to = min(start + Int(regionSize), load + contents.count)
        if from < to {
            contents.withUnsafeBytes { (host + (from - start)).copyMemory(from: $0.baseAddress! + (from - load), byteCount: to - from) }
        }
    }

    let request = BlockRequest.parse(chain, memory: memory, capacity: capacity, readOnly: readOnly)
    check(request, chain, capacity: capacity, readOnly: readOnly)
    require(BlockRequest.parse(chain, memory: memory, capacity: capacity, readOnly: readOnly) == request, "parse is not deterministic")

    if flags & 0x02 != 0 {
        let device = readOnly ? readOnlyDevice : writableDevice
        let answered = device.unanswerableChains
        let written = device.execute(chain, memory: memory)
        if written == 0 {
            require(device.unanswerableChains == answered + 1, "a chain answered with nothing written but not counted")
        } else {
            require(UInt64(written) <= chain.writableLength, "used length \(written) past the writable \(chain.writableLength)")
        }
    }
}
