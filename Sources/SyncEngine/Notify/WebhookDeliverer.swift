import Crypto
import Foundation
import Logging
import ServiceLifecycle
import SyncConnectors
import SyncCore
import SyncStore

/// How a node delivers webhooks (docs/webhooks.md).
public struct WebhookPolicy: Sendable {
    /// How often an idle delivery service looks for due deliveries.
    public var pollInterval: Duration
    /// The wait after the first failed try; each later one doubles it, up to `maxRetryDelay`.
    public var firstRetryDelay: Double
    public var maxRetryDelay: Double
    /// A delivery still failing this long after its event is given up (`failed`).
    public var giveUpAfter: Double
    /// The limit on one POST, from connecting to the end of the answer.
    public var timeout: Double
    /// Deliveries one node tries at once.
    public var concurrency: Int
    /// Of those, the most for one receiver URL (a hung receiver holds no more).
    public var perReceiver: Int

    public init(pollInterval: Duration = .seconds(1), firstRetryDelay: Double = 10, maxRetryDelay: Double = 3600,
                giveUpAfter: Double = 86_400, timeout: Double = 10, concurrency: Int = 8, perReceiver: Int = 4) {
        self.pollInterval = pollInterval
        self.firstRetryDelay = firstRetryDelay
        self.maxRetryDelay = maxRetryDelay
        self.giveUpAfter = giveUpAfter
        self.timeout = timeout
        self.concurrency = concurrency
        self.perReceiver = max(1, min(perReceiver, concurrency))
    }

    public static let `default` = WebhookPolicy()

    /// When the try after `tries` failed ones goes out, or `nil` when that would be past the
    /// give-up time. `random` in [0, 1) spreads retries by ±20 %.
    public func nextTry(after tries: Int, createdAt: Date, now: Date, random: Double) -> Date? {
        let base = min(maxRetryDelay, firstRetryDelay * pow(2, Double(max(0, min(tries - 1, 40)))))
        let at = now.addingTimeInterval(base * (0.8 + 0.4 * random))
        return at.timeIntervalSince(createdAt) > giveUpAfter ? nil : at
    }
}

/// The `X-Tributary-Signature` of a body: `t=<unix seconds>,v1=<hex HMAC-SHA256 of
/// "<t>.<body>" under the secret>` (docs/webhooks.md shows how a receiver checks it).
public enum WebhookSignature {
    public static let header = "X-Tributary-Signature"

    public static func sign(_ body: [UInt8], secret: String, at time: Date) -> String {
        let t = Int(time.timeIntervalSince1970.rounded(.down))
        let code = HMAC<SHA256>.authenticationCode(for: Array("\(t).".utf8) + body, using: SymmetricKey(data: Array(secret.utf8)))
        return "t=\(t),v1=\(hex(Array(code)))"
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Empties the outbox: claims due deliveries under a lease, POSTs each (signed), and writes
/// what came of it: delivered on a 2xx; otherwise retried with backoff until
/// ``WebhookPolicy/giveUpAfter``, then failed. Every node runs one; the lease makes one node
/// try a delivery at a time, and a node that dies mid-try leaves it to the next after the
/// lease. A receiver can see a delivery twice only when a node dies between the receiver's
/// answer and writing it down: the `id` in the body (and `X-Tributary-Delivery`) tells.
public struct WebhookDeliverer: Service {
    let store: any WebhookOutbox
    let client: UpstreamClient
    let policy: WebhookPolicy
    let owner: String
    /// The body of a delivery: the server's wire format of the event (docs/webhooks.md).
    let render: @Sendable (WebhookDelivery) -> [UInt8]
    let metrics: TributaryMetrics
    let logger: Logger
    let random: @Sendable () -> Double

    /// A try's lease: the POST's time limit and a margin for writing down its result. A node
    /// that dies mid-try holds the delivery this long.
    var leaseSeconds: Double { policy.timeout + 5 }

    public init(store: any WebhookOutbox, client: UpstreamClient, policy: WebhookPolicy = .default, nodeID: String,
                render: @escaping @Sendable (WebhookDelivery) -> [UInt8], metrics: TributaryMetrics = .discarding(),
                logger: Logger = Logger(label: "tributary.webhooks"),
                random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) {
        self.store = store
        self.client = client
        self.policy = policy
        self.owner = nodeID
        self.render = render
        self.metrics = metrics
        self.logger = logger
        self.random = random
    }

    public func run() async throws {
        await runPeriodically(every: policy.pollInterval, logger: logger, level: .warning, failure: "webhook delivery failed") {
            try await deliverDue()
        }
    }

    /// Tries every due delivery until none is due and none is in flight, keeping up to
    /// ``WebhookPolicy/concurrency`` tries in flight: a slot that frees is refilled at once
    /// (no batch waits for its slowest member), and a receiver (an origin) holds at most
    /// ``WebhookPolicy/perReceiver`` slots, so a receiver that never answers costs only its
    /// own deliveries.
    public func deliverDue() async throws {
        try await withThrowingTaskGroup(of: String?.self) { group in
            var inFlight: [String: Int] = [:]
            var running = 0
            var ticking = false
            while !Task.isCancelled {
                let free = policy.concurrency - running
                if free > 0 {
                    // A receiver with tries in flight gets no more until they end: never more
                    // than `perReceiver` for one receiver (an origin).
                    let busy = Array(inFlight.keys)
                    let batch = try await store.claimDeliveries(owner: owner, leaseSeconds: leaseSeconds, now: Date(), limit: free,
                                                                perReceiver: policy.perReceiver, excludingReceivers: busy)
                    for delivery in batch {
                        inFlight[delivery.receiver, default: 0] += 1
                        running += 1
                        group.addTask {
                            try await self.attempt(delivery)
                            return delivery.receiver
                        }
                    }
                    // Every free slot taken: more may be due at once.
                    if batch.count == free { continue }
                }
                guard running > 0 else { break }
                // Wait for a try to end, or look again shortly for deliveries of other receivers.
                if !ticking {
                    ticking = true
                    group.addTask {
                        try? await Task.sleep(for: self.policy.pollInterval)
                        return nil
                    }
                }
                switch try await group.next() {
                case .some(.some(let receiver)):
                    running -= 1
                    inFlight[receiver, default: 1] -= 1
                    if inFlight[receiver] == 0 { inFlight[receiver] = nil }
                case .some(.none):
                    ticking = false
                case .none:
                    return
                }
            }
            group.cancelAll()
        }
    }

    func attempt(_ delivery: WebhookDelivery) async throws {
        let body = delivery.body ?? render(delivery)
        var logger = logger
        logger[metadataKey: "delivery_id"] = .string(delivery.id)
        logger[metadataKey: "sync_id"] = .string(delivery.syncID)
        logger[metadataKey: "source_id"] = .string(delivery.sourceID)
        let now = Date()
        var headers = [("X-Tributary-Delivery", delivery.id), ("X-Tributary-Event", delivery.event)]
        if let secret = delivery.secret, !secret.isEmpty {
            headers.append((WebhookSignature.header, WebhookSignature.sign(body, secret: secret, at: now)))
        }
        let result: WebhookTryResult
        guard let url = URL(string: delivery.url) else {
            return try await record(delivery, body: body, .failed(responseStatus: nil, error: "the URL does not parse"), logger)
        }
        // The backoff counts from the answer (or its absence), not from the start of the try.
        do {
            let status = try await client.post(url, body: body, headers: headers, timeout: policy.timeout)
            if (200..<300).contains(status) {
                result = .delivered(responseStatus: status)
            } else {
                result = retryOrGiveUp(delivery, status: status, error: "the receiver answered \(status)", now: Date())
            }
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as SyncError {
            // The sync error codes of an upstream (`upstream_unavailable`, …) would name the wrong
            // peer; the message names the receiver. Other codes (`egress_blocked`) say why.
            let text = error.code.rawValue.hasPrefix("upstream_") ? error.message : "\(error.code.rawValue): \(error.message)"
            // The egress policy blocks the address now, or the URL cannot be sent to: no retry helps.
            result = error.retryable ? retryOrGiveUp(delivery, status: nil, error: text, now: Date()) : .failed(responseStatus: nil, error: text)
        } catch {
            result = retryOrGiveUp(delivery, status: nil, error: "no answer (\(type(of: error)))", now: Date())
        }
        try await record(delivery, body: body, result, logger)
    }

    func retryOrGiveUp(_ delivery: WebhookDelivery, status: Int?, error: String, now: Date) -> WebhookTryResult {
        // 410 Gone: the receiver says it will never want this again.
        if status == 410 { return .failed(responseStatus: status, error: error) }
        guard let next = policy.nextTry(after: delivery.tries, createdAt: delivery.createdAt, now: now, random: random()) else {
            return .failed(responseStatus: status, error: "given up after \(delivery.tries) tries; last: \(error)")
        }
        return .retry(at: next, responseStatus: status, error: error)
    }

    func record(_ delivery: WebhookDelivery, body: [UInt8], _ result: WebhookTryResult, _ logger: Logger) async throws {
        let written = try await store.recordTry(delivery, owner: owner, body: body, result: result, now: Date())
        guard written else {
            logger.warning("webhook try outlived its lease; another node owns the delivery now")
            return
        }
        switch result {
        case .delivered:
            metrics.webhookDelivery(result: "delivered")
            logger.debug("webhook delivered", metadata: ["tries": .stringConvertible(delivery.tries)])
        case .retry(let at, _, let error):
            metrics.webhookDelivery(result: "retrying")
            logger.info("webhook try failed; will retry", metadata: [
                "tries": .stringConvertible(delivery.tries), "error": .string(error), "next_try_at": .string(Timestamp.format(at)),
            ])
        case .failed(_, let error):
            metrics.webhookDelivery(result: "failed")
            logger.warning("webhook delivery failed", metadata: ["tries": .stringConvertible(delivery.tries), "error": .string(error)])
        }
    }
}
