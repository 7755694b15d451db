import SwiftletCore

/// One line of the audit trail (`--audit-log`), pure so its layout is unit-tested. Each is
/// a JSON object on one line, "time" (RFC 3339, UTC, nanoseconds) and "event" first:
///
///     {"time":"2026-11-24T09:15:02.123456789Z","event":"api_request",
///      "peer":{"pid":4242,"uid":1000,"gid":1000},"method":"PUT","path":"/machine-config",
///      "status":204,"change":{"old":{"vcpu_count":1,…},"new":{"vcpu_count":2,…}}}
///
/// Events: api_request (every request the VMM handled, when answered: who, what, the
/// answer's status; for a configuration PUT or PATCH that succeeded, the resource as GET
/// /vm/config or GET /machine-config shows it before and after; for PUT /actions the
/// action_type), api_refused (a client --api-allow does not admit, before it could send
/// anything), api_rejected (a request the HTTP parser rejected with a 4xx, or one that
/// never arrived whole), configured (the configuration the VM is first built from, as GET
/// /vm/config shows it), started, start_failed, paused, resumed, stopped (exit status and
/// reason), and seccomp_violation (written by the SIGSYS handler in C: see seccomp.c).
public struct AuditEvent: Equatable {
    public let name: String
    public let members: [(String, JSONValue)]

    public init(_ name: String, _ members: [(String, JSONValue)] = []) {
        self.name = name
        self.members = members
    }

    public static func == (a: AuditEvent, b: AuditEvent) -> Bool {
        a.name == b.name && JSONValue.object(a.members) == JSONValue.object(b.members)
    }

    /// The line without its newline.
    public func line(time: String) -> String {
        JSONValue.object([("time", .string(time)), ("event", .string(name))] + members).serialized()
    }

    public static func peer(_ peer: PeerCredentials) -> JSONValue {
        .object([("pid", .integer(Int64(peer.pid))), ("uid", .integer(Int64(peer.uid))), ("gid", .integer(Int64(peer.gid)))])
    }

    /// An answered request (see `AuditedRequest`).
    public static func apiRequest(_ request: AuditedRequest, status: Int, new: JSONValue?) -> AuditEvent {
        var members: [(String, JSONValue)] = [
            ("peer", peer(request.peer)),
            ("method", .string(request.method)),
            ("path", .string(request.path)),
            ("status", .integer(Int64(status))),
        ]
        if let actionType = request.actionType { members.append(("action_type", .string(actionType))) }
        // A refused request changed nothing: only a success says what it changed.
        if let old = request.old, let new, (200..<300).contains(status) {
            members.append(("change", .object([("old", old), ("new", new)])))
        }
        return AuditEvent("api_request", members)
    }

    public static func apiRefused(_ client: PeerCredentials, status: Int, reason: String) -> AuditEvent {
        AuditEvent("api_refused", [("peer", peer(client)), ("status", .integer(Int64(status))), ("reason", .string(reason))])
    }

    /// A request rejected before it reached the router: malformed or over the parser's
    /// limits, or not arriving whole in time (408). Its peer, the 4xx it got and why; none
    /// of the request is kept, since it did not parse.
    public static func apiRejected(_ client: PeerCredentials, status: Int, reason: String) -> AuditEvent {
        AuditEvent("api_rejected", [("peer", peer(client)), ("status", .integer(Int64(status))), ("reason", .string(reason))])
    }

    public static func configured(_ config: VMConfig) -> AuditEvent {
        AuditEvent("configured", [("config", APIRouter.vmConfig(config))])
    }

    /// `reboot`: a new VM for the same configuration after the guest reset itself.
    public static func started(reboot: Bool) -> AuditEvent { AuditEvent("started", [("reboot", .bool(reboot))]) }

    public static func startFailed(_ reason: String) -> AuditEvent { AuditEvent("start_failed", [("reason", .string(reason))]) }

    public static var paused: AuditEvent { AuditEvent("paused") }
    public static var resumed: AuditEvent { AuditEvent("resumed") }

    public static func stopped(status: Int32, reason: String) -> AuditEvent {
        AuditEvent("stopped", [("status", .integer(Int64(status))), ("reason", .string(reason))])
    }
}

/// A request as the audit trail keeps it between its arrival and its answer (which may come
/// later: InstanceStart, a media change): who sent it, what it asked, and for a
/// configuration change the resource as it was.
public struct AuditedRequest: Equatable {
    public let peer: PeerCredentials
    public let method: String
    public let path: String
    /// PUT /actions: the action_type (when the request named a valid one).
    public var actionType: String?
    /// The resource before the request (configuration PUT and PATCH only).
    public let old: JSONValue?

    public init(peer: PeerCredentials, method: String, path: String, actionType: String? = nil, old: JSONValue?) {
        self.peer = peer
        self.method = method
        self.path = path
        self.actionType = actionType
        self.old = old
    }

    /// The record for `request`, arriving while `config` and `state` hold.
    public init(_ request: HTTPRequest, peer: PeerCredentials, config: VMConfig, state: InstanceState) {
        let changes = request.method == "PUT" || request.method == "PATCH"
        self.init(peer: peer, method: request.method, path: request.path,
                  old: changes ? AuditedRequest.resource(request.path, config: config, state: state) : nil)
    }

    /// The resource at `path` in the API's own JSON (GET /vm/config's sections, GET
    /// /machine-config; PATCH /vm: the instance state as GET / shows it); null for a drive
    /// or interface that does not exist (yet); nil for paths that configure nothing.
    public static func resource(_ path: String, config: VMConfig, state: InstanceState) -> JSONValue? {
        if path.hasPrefix(APIRouter.drivesPrefix) {
            let id = String(path.dropFirst(APIRouter.drivesPrefix.count))
            return element(of: APIRouter.vmConfig(config)["drives"], key: "drive_id", id: id)
        }
        if path.hasPrefix(APIRouter.networkInterfacesPrefix) {
            let id = String(path.dropFirst(APIRouter.networkInterfacesPrefix.count))
            return element(of: APIRouter.vmConfig(config)["network-interfaces"], key: "iface_id", id: id)
        }
        switch path {
        case "/boot-source", "/vsock", "/entropy": return APIRouter.vmConfig(config)[String(path.dropFirst())]
        case "/machine-config": return APIRouter.machineConfig(config)
        case "/logger": return config.logger.map(LoggerJSON.json) ?? .null
        case "/metrics": return config.metrics.map(MetricsJSON.json) ?? .null
        case "/vm": return .object([("state", .string(state.description))])
        default: return nil
        }
    }

    private static func element(of list: JSONValue?, key: String, id: String) -> JSONValue {
        guard case .array(let items)? = list else { return .null }
        return items.first { $0[key] == .string(id) } ?? .null
    }
}

extension APIAction {
    /// PUT /actions' action_type for this action; nil for the others.
    public var actionType: String? {
        switch self {
        case .start: return "InstanceStart"
        case .sendCtrlAltDel: return "SendCtrlAltDel"
        case .flushMetrics: return "FlushMetrics"
        default: return nil
        }
    }
}
