import CLinux
import SwiftletCore
import Synchronization

/// virtio-rng (virtio 1.2 §5.4): one request queue; the driver offers device-writable
/// buffers and the device fills them with random bytes. No feature bits, no config space.
public final class EntropyDevice: VirtioDevice {
    public static let queueSize: UInt16 = 256
    /// The most bytes given per chain: bounds the work (and the host entropy) one guest
    /// request can ask for; the driver simply asks again for more.
    public static let maxBytesPerChain = 64 * 1024

    public var deviceID: UInt32 { VirtioDeviceID.entropy }
    public var deviceFeatures: UInt64 { 0 }
    public let queueSizes: [UInt16] = [EntropyDevice.queueSize]

    private let random: (UnsafeMutableRawBufferPointer) -> Bool
    /// Reused from request to request (process runs under the transport's lock).
    private var chain = DescriptorChain()
    private let bytesCounter = Atomic<UInt64>(0)
    private let requestCounter = Atomic<UInt64>(0)
    private let failureCounter = Atomic<UInt64>(0)

    /// Limits the requests and bytes given (nil: unlimited, for tests).
    public let limiter: QueueLimiter?

    /// `random` fills the whole buffer or returns false; the product passes `hostRandom`.
    public init(random: @escaping (UnsafeMutableRawBufferPointer) -> Bool, limiter: QueueLimiter? = nil) {
        self.random = random
        self.limiter = limiter
    }

    /// The rate limiter's timer resumes the queue.
    public var hostEvents: [VirtioHostEvent] { limiter.map { [$0.hostEvent] } ?? [] }

    /// Random bytes given to the guest, chains served, and chains completed empty because
    /// the random source failed.
    public var bytesGiven: UInt64 { bytesCounter.load(ordering: .relaxed) }
    public var requests: UInt64 { requestCounter.load(ordering: .relaxed) }
    public var failures: UInt64 { failureCounter.load(ordering: .relaxed) }

    /// getrandom(2) from the kernel's pool, without blocking: before the host's pool is
    /// first seeded (early boot of an edge device) the request fails and the guest gets
    /// nothing this time, rather than the I/O thread, and every disk with it, waiting.
    public static func hostRandom(_ buffer: UnsafeMutableRawBufferPointer) -> Bool {
        guard let base = buffer.baseAddress else { return true }
        var done = 0
        while done < buffer.count {
            let n = getrandom(base + done, buffer.count - done, UInt32(GRND_NONBLOCK))
            if n > 0 {
                done += n
            } else if n < 0 && sl_errno() == EINTR {
                continue
            } else {
                return false
            }
        }
        return true
    }

    public func readConfig(at offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        if let base = data.baseAddress { base.initializeMemory(as: UInt8.self, repeating: 0, count: data.count) }
    }

    public func writeConfig(at offset: UInt64, from data: UnsafeRawBufferPointer) {}

    public func activate(features: UInt64) {}

    @discardableResult
    public func process(queue index: Int, _ queue: inout Virtqueue, memory: GuestMemory) throws(VirtqueueError) -> QueueProgress {
        guard index == 0 else { return .done }
        // One queue's worth per call: the transport calls again while more are available,
        // so a guest that keeps its queue full cannot hold the I/O thread.
        var budget = Int(queue.size)
        while budget > 0, try queue.pop(into: &chain) {
            if let limiter, !limiter.admit(bytes: min(chain.writableLength, UInt64(EntropyDevice.maxBytesPerChain))) {
                queue.undoPop()
                return .waitingOnHost
            }
            queue.push(head: chain.head, written: fill(memory))
            budget -= 1
        }
        return .done
    }

    /// Fills the current chain's writable part in place, up to maxBytesPerChain; returns
    /// the bytes written (0 for a chain with nothing writable, or when the source fails).
    private func fill(_ memory: GuestMemory) -> UInt32 {
        requestCounter.add(1, ordering: .relaxed)
        var remaining = Int(min(chain.writableLength, UInt64(EntropyDevice.maxBytesPerChain)))
        var written = 0
        for segment in chain.writable where remaining > 0 {
            let n = min(Int(segment.length), remaining)
            // The queue checked every segment; a nil here would mean a bug, so give nothing.
            guard let pointer = memory.pointerIfValid(at: segment.address, length: UInt64(n)),
                  random(UnsafeMutableRawBufferPointer(start: pointer, count: n)) else {
                failureCounter.add(1, ordering: .relaxed)
                return 0
            }
            written += n
            remaining -= n
        }
        bytesCounter.add(UInt64(written), ordering: .relaxed)
        return UInt32(written)
    }

    public func reset() {}
}
