// The control API server's connection limits as pure decisions: when a connection's time is
// up, and which connection makes room for a newcomer. No sockets, so unit tests need none.

/// What one API connection is doing, as far as its deadline and eviction go. Times are
/// monotonic milliseconds.
public enum ConnectionPhase: Equatable {
    /// Nothing buffered, nothing to send, nothing asked of us: a fresh connection, or a
    /// keep-alive one between requests, since `since` (its accept, or its last request's answer).
    case idle(since: Int64)
    /// A request partly received; its first byte came at `since`.
    case receiving(since: Int64)
    /// An answer queued at `since` that the client has not read yet (its receive buffer is full).
    case sending(since: Int64)
    /// The handler has the request: answering now or later through a ticket. No deadline
    /// (the time is ours, not the client's) and never evicted.
    case answering
}

/// What to do with a newly accepted connection.
public enum Admission: Equatable {
    /// A slot is free.
    case accept
    /// Every slot is taken: close the connection at this index (of the phases given) first.
    case evict(Int)
    /// Every slot is taken by a connection we are answering: close the newcomer.
    case refuse
}

/// Connection slots and deadlines for `APIServer`.
///
/// - A request must arrive whole (head and body) within `requestDeadlineMs` of its first
///   byte, however steadily it drips; an answer must be read by the client within the same
///   time of being queued.
/// - A connection with no partial request may stay idle for `idleTimeoutMs`.
/// - At most `maxConnections` are open. When all are taken, a newcomer evicts the connection
///   stalled longest on its client (earliest `since` of `idle`, `receiving` or `sending`), so
///   slow clients cannot starve fast ones; one we are answering is never evicted.
public struct SlotPolicy: Equatable {
    public var maxConnections: Int
    public var requestDeadlineMs: Int64
    public var idleTimeoutMs: Int64

    public init(maxConnections: Int = 16, requestDeadlineMs: Int64 = 5_000, idleTimeoutMs: Int64 = 300_000) {
        self.maxConnections = max(1, maxConnections)
        self.requestDeadlineMs = requestDeadlineMs
        self.idleTimeoutMs = idleTimeoutMs
    }

    /// When a connection in `phase` is to be closed; nil for never.
    public func deadline(_ phase: ConnectionPhase) -> Int64? {
        switch phase {
        case .idle(let since): return since + idleTimeoutMs
        case .receiving(let since), .sending(let since): return since + requestDeadlineMs
        case .answering: return nil
        }
    }

    /// Whether a connection in `phase` is past its deadline at `now`.
    public func isExpired(_ phase: ConnectionPhase, now: Int64) -> Bool {
        guard let deadline = deadline(phase) else { return false }
        return now >= deadline
    }

    /// Since when a connection has been waiting on its client; nil when it waits on us.
    public static func stalledSince(_ phase: ConnectionPhase) -> Int64? {
        switch phase {
        case .idle(let since), .receiving(let since), .sending(let since): return since
        case .answering: return nil
        }
    }

    /// Room for one more connection, given the phases of the open ones.
    public func admit(_ open: [ConnectionPhase]) -> Admission {
        guard open.count >= maxConnections else { return .accept }
        var victim: Int?
        var oldest: Int64 = 0
        for (index, phase) in open.enumerated() {
            guard let since = SlotPolicy.stalledSince(phase) else { continue }
            if victim == nil || since < oldest {
                victim = index
                oldest = since
            }
        }
        if let victim { return .evict(victim) }
        return .refuse
    }
}
