import SwiftletCore

extension APIAction {
    /// Applies a configuring action (the pre-boot PUTs and PATCH /machine-config) to
    /// `config` and says true; any other action leaves it alone and says false. The one
    /// place where a request, or a config file's section, changes the VM's configuration;
    /// checking the whole (`VMConfig.validate`) is the caller's, afterwards.
    public func configure(_ config: inout VMConfig) throws(APIError) -> Bool {
        switch self {
        case .configureBootSource(let boot): boot.apply(to: &config)
        case .configureMachine(let machine): machine.apply(to: &config)
        case .updateMachine(let update): update.apply(to: &config)
        case .configureDrive(let disk): config.setDisk(disk)
        case .configureNetworkInterface(let interface): config.setNetworkInterface(interface)
        case .configureVsock(let vsock): config.vsock = vsock
        case .configureEntropy(let limiter):
            config.entropy = true
            config.entropyRateLimiter = limiter
        case .configureLogger(let logger):
            // Firecracker's logger takes each configuration as an update of the last.
            config.logger = (config.logger ?? LoggerConfig()).updated(with: logger)
        case .configureMetrics(let metrics):
            // Firecracker's metrics are set up once per process: a second configuration
            // (or one after --metrics-path) is refused, not merged.
            guard config.metrics == nil else {
                throw .badRequest("the metrics are configured already (--metrics-path, PUT /metrics or the config file); they can be configured once")
            }
            config.metrics = metrics
        case .updateDrive, .updateNetworkInterface, .start, .sendCtrlAltDel, .flushMetrics, .pause, .resume,
             .describeInstance, .describeVersion, .describeMachine, .describeConfig:
            return false
        }
        return true
    }
}
