/// A UART's receive FIFO fed from host console input, with the back-pressure bookkeeping
/// PL011 and 16550 share: input that does not fit is refused (the host keeps it), and the
/// first read that makes room afterwards says so, once, so the host can send the rest.
/// Storage is allocated once; nothing here allocates.
struct InputFIFO {
    private var ring: RingBuffer
    private var producerWaiting = false

    init(depth: Int) { ring = RingBuffer(capacity: depth) }

    var count: Int { ring.count }

    /// Queues as much of `bytes` as fits under `capacity`; returns how many were taken.
    mutating func push(_ bytes: UnsafeRawBufferPointer, capacity: Int) -> Int {
        var accepted = 0
        while accepted < bytes.count, ring.count < capacity {
            ring.push(bytes[accepted])
            accepted += 1
        }
        if accepted < bytes.count { producerWaiting = true }
        return accepted
    }

    mutating func pop() -> UInt8? { ring.pop() }

    mutating func removeAll() { while ring.pop() != nil {} }

    /// True (once) when the host is waiting to send more and there is room under `capacity`.
    mutating func takeSpaceNotice(capacity: Int) -> Bool {
        guard producerWaiting, ring.count < capacity else { return false }
        producerWaiting = false
        return true
    }
}
