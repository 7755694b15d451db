/// A fixed-capacity byte FIFO; storage is allocated once, so push and pop never allocate.
struct RingBuffer {
    private var storage: [UInt8]
    private var head = 0
    private(set) var count = 0

    init(capacity: Int) { storage = [UInt8](repeating: 0, count: capacity) }

    var capacity: Int { storage.count }

    mutating func push(_ byte: UInt8) {
        guard count < storage.count else { return }
        storage[(head + count) % storage.count] = byte
        count += 1
    }

    mutating func pop() -> UInt8? {
        guard count > 0 else { return nil }
        let byte = storage[head]
        head = (head + 1) % storage.count
        count -= 1
        return byte
    }
}
