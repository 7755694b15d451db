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
    func process(queue index: Int, _ queue: inout Virtqueue, memory: GuestMemory) throws(VirtqueueError)
    /// Back to the state before the driver's first access (device reset).
    func reset()
}
