import SwiftletCore

/// A virtio device behind a transport (virtio-mmio today). The transport owns the
/// registers, feature negotiation, the status state machine and the queues; the device
/// owns its configuration space and the work on its queues.
///
/// Threads: `readConfig`/`writeConfig` run on vCPU threads; `activate`, `process` and
/// `reset` run with the transport's processing lock held, `process` on the I/O thread.
public protocol VirtioDevice: AnyObject {
    /// The virtio device ID (VirtioDeviceID).
    var deviceID: UInt32 { get }
    /// Device-type feature bits offered; the transport adds VERSION_1, INDIRECT_DESC and
    /// EVENT_IDX itself.
    var deviceFeatures: UInt64 { get }
    /// The largest size of each queue (a power of two); the count is the number of queues.
    var queueSizes: [UInt16] { get }
    /// Configuration space access at `offset` from its start (0x100 in virtio-mmio).
    /// Bytes past the end read as zero; writes to read-only fields are ignored.
    func readConfig(at offset: UInt64, into data: UnsafeMutableRawBufferPointer)
    func writeConfig(at offset: UInt64, from data: UnsafeRawBufferPointer)
    /// The driver set DRIVER_OK with these negotiated features.
    func activate(features: UInt64)
    /// Works through the available chains of queue `index`, pushing each used chain: at
    /// most `queue.size` of them per call (the transport calls again while more wait).
    /// Throws when the queue itself is malformed (the transport then sets NEEDS_RESET);
    /// a malformed request inside a sound chain is the device's to answer (an error status).
    func process(queue index: Int, _ queue: inout Virtqueue, memory: GuestMemory) throws(VirtqueueError) -> QueueProgress
    /// Host file descriptors the device waits on, and the queue each one's readiness
    /// resumes (a tap with frames to receive, a rate limiter's timer). The machine watches
    /// them on the I/O thread and calls the transport's processQueue for that queue.
    var hostEvents: [VirtioHostEvent] { get }
    /// Back to the state before the driver's first access (device reset).
    func reset()
}

extension VirtioDevice {
    public var hostEvents: [VirtioHostEvent] { [] }
}

/// Why `process` returned, which decides when the transport comes back to the queue.
public enum QueueProgress: Equatable {
    /// The queue ran empty or the call's budget ran out: the transport looks once more
    /// (prepareToWait) and comes back at once if the driver made more available.
    case done
    /// Chains are available but not enough (a received frame needs more buffers than the
    /// driver has posted): come back when the driver adds one.
    case needsMoreBuffers
    /// The device waits on the host (no frame on the tap, a rate limiter's timer): one of
    /// its host events brings it back.
    case waitingOnHost
}

/// A host file descriptor a device waits on (see VirtioDevice.hostEvents).
public struct VirtioHostEvent {
    public let fd: Int32
    /// The queue to process when `fd` becomes readable.
    public let queue: Int
    /// A timerfd or eventfd whose counter must be read before waiting again; other
    /// descriptors (a tap) are watched edge-triggered and the device reads them dry.
    public let isCounter: Bool

    public init(fd: Int32, queue: Int, isCounter: Bool) {
        self.fd = fd
        self.queue = queue
        self.isCounter = isCounter
    }
}
