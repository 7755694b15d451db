import Synchronization

/// Ordering between this thread's accesses to guest memory and the guest's own, for
/// structures the guest and a device thread share (virtqueues): read the ring index, then
/// `acquire()` before reading what it publishes; write the entries, then `release()` before
/// publishing the index; `full()` where a store must be visible before a later load (the
/// EVENT_IDX check after re-enabling notifications).
public enum MemoryFence {
    @inline(__always) public static func acquire() { atomicMemoryFence(ordering: .acquiring) }
    @inline(__always) public static func release() { atomicMemoryFence(ordering: .releasing) }
    @inline(__always) public static func full() { atomicMemoryFence(ordering: .sequentiallyConsistent) }
}
