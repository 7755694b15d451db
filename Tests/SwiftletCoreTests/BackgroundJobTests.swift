import Foundation
import XCTest
@testable import SwiftletCore

final class BackgroundJobTests: XCTestCase {
    /// Polls the job as the main loop does until its completion has run (at most 10 s).
    func drive<T>(_ job: BackgroundJob<T>, until done: () -> Bool) {
        let deadline = Date().addingTimeInterval(10)
        while !done() && Date() < deadline {
            var fds = job.pollDescriptors()
            XCTAssertEqual(fds.count, 1, "a job not yet completed is polled")
            _ = poll(&fds, nfds_t(fds.count), 100)
            job.handleEvents(fds, now: 0)
        }
    }

    func testTheResultComesBackOnThePollingThreadOnce() throws {
        var outcomes: [Result<Int, SwiftletError>] = []
        let polling = pthread_self()
        var completedOnPollingThread = false
        let job = try BackgroundJob<Int>({ usleep(50_000); return .success(42) }, completion: { outcome in
            outcomes.append(outcome)
            completedOnPollingThread = pthread_equal(pthread_self(), polling) != 0
        })
        drive(job) { !outcomes.isEmpty }
        XCTAssertEqual(outcomes, [.success(42)])
        XCTAssertTrue(completedOnPollingThread)
        XCTAssertEqual(job.pollDescriptors().count, 0, "done: nothing more to poll")
        var none: [pollfd] = []
        job.handleEvents(none, now: 0)
        none = [pollfd(fd: -1, events: 0, revents: Int16(POLLIN))]
        job.handleEvents(none, now: 0)
        XCTAssertEqual(outcomes.count, 1, "the completion runs once")
    }

    func testFailuresAreHandedBackToo() throws {
        var outcome: Result<Int, SwiftletError>?
        let job = try BackgroundJob<Int>({ .failure(.invalidArgument("no such kernel")) }, completion: { outcome = $0 })
        drive(job) { outcome != nil }
        XCTAssertEqual(outcome, .failure(.invalidArgument("no such kernel")))
    }
}
