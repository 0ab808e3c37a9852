import Foundation
import Hummingbird
import SyncCore
import SyncStore

/// What each dashboard page shows, read with the API's own reads and shown through the
/// API's own representation (so a page can show nothing the API would not: secrets are `***`).
/// Each builder returns the template's values; `canAct` is false for a viewer, whose pages
/// carry no action buttons (the API refuses a viewer's actions anyway).
struct DashboardPages {
    let env: APIEnvironment
    let now: Date
    let canAct: Bool

    static let windows: [(name: String, seconds: Double, buckets: Int)] = [
        ("1h", 3600, 12), ("24h", 86400, 24), ("7d", 7 * 86400, 28),
    ]

    // MARK: Overview

    func overview(windowName: String?) async throws -> [String: Any] {
        let window: (name: String, seconds: Double, buckets: Int)
        if let windowName, !windowName.isEmpty {
            guard let named = Self.windows.first(where: { $0.name == windowName }) else {
                throw Problem.validation([FieldError("window", "must be one of \(Self.windows.map(\.name).joined(separator: ", "))")])
            }
            window = named
        } else {
            window = Self.windows[1]
        }
        let health = await HealthReport.evaluate(store: env.store, now: now)
        let stats = try await env.store.statistics(window: window.seconds, now: now)
        let since = now.addingTimeInterval(-window.seconds)
        let bucketSeconds = window.seconds / Double(window.buckets)
        let buckets = try await env.store.finishedBuckets(since: since, bucketSeconds: bucketSeconds)
        let running = try await env.store.listSyncs(SyncFilter(statuses: [.running]), limit: 50, before: nil)
        let failures = try await env.store.listSyncs(SyncFilter(statuses: [.failed], since: since), limit: 10, before: nil)
        let names = try await env.store.sourceNames(ids: (running + failures).map(\.sourceID))
        let expected = try await expectedRecords(running)

        let checks = DashboardFormat.object(health.json)["checks"] as? [[String: Any]] ?? []
        let failing = checks.filter { ($0["status"] as? String) != "ok" }.map { check -> [String: Any] in
            var c = check
            c["detail_text"] = Self.checkDetail(check)
            c["label"] = Self.checkLabels[check["name"] as? String ?? ""] ?? check["name"]
            return c
        }
        let completed = stats.counts[.completed] ?? 0, failed = stats.counts[.failed] ?? 0
        let cards: [[String: String]] = [
            ["label": "Completed", "value": DashboardFormat.count(completed), "tone": "ok"],
            ["label": "Failed", "value": DashboardFormat.count(failed), "tone": failed > 0 ? "bad" : "muted"],
            ["label": "Cancelled", "value": DashboardFormat.count(stats.counts[.cancelled] ?? 0), "tone": "muted"],
            ["label": "Success rate", "value": stats.successRate.map { String(format: "%.1f %%", $0 * 100) } ?? "–", "tone": "muted"],
            ["label": "Duration p50 / p95", "value": stats.duration.map { "\(DashboardFormat.duration($0.p50)) / \(DashboardFormat.duration($0.p95))" } ?? "–", "tone": "muted"],
            ["label": "Records read", "value": DashboardFormat.count(stats.records.read), "tone": "muted"],
            ["label": "Queued", "value": DashboardFormat.count(stats.queueDepth), "tone": "muted"],
            ["label": "Oldest queued", "value": stats.oldestQueuedAt.map { DashboardFormat.duration(now.timeIntervalSince($0)) } ?? "–", "tone": "muted"],
        ]
        return [
            "health": health.status, "health_tone": DashboardFormat.tone(health.status), "failing_checks": failing,
            "windows": Self.windows.map { ["name": $0.name, "current": $0.name == window.name] as [String: Any] },
            "window": window.name,
            "cards": cards,
            "chart": FinishedChart.svg(buckets, count: window.buckets, bucketSeconds: bucketSeconds, since: since),
            "chart_peak": FinishedChart.peak(buckets), "chart_start": DashboardFormat.time(since) ?? "",
            "chart_bucket": DashboardFormat.duration(bucketSeconds),
            "running": running.map { syncRow($0, names: names, expected: expected[$0.sourceID]) },
            "failures": failures.map { syncRow($0, names: names) }, "has_failures": !failures.isEmpty,
        ]
    }

    static let checkLabels = [
        "database": "The database", "workers": "Workers", "queue": "The queue", "stuck_syncs": "Stuck syncs",
        "failing_sources": "Failing sources", "stale_sources": "Stale sources",
    ]

    static func checkDetail(_ check: [String: Any]) -> String {
        switch check["name"] as? String {
        case "workers": return "\(check["live_workers"] ?? "0") live workers, \(check["stale_nodes"] ?? "0") stale nodes"
        case "stuck_syncs": return "\(check["count"] ?? "0") syncs whose worker stopped heartbeating"
        case "failing_sources", "stale_sources":
            let sources = (check["sources"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
            return sources.prefix(10).joined(separator: ", ") + (sources.count > 10 ? " and \(sources.count - 10) more" : "")
        default: return check["detail"] as? String ?? ""
        }
    }

    /// How many records a running sync of each source may read: its last completed sync's count.
    private func expectedRecords(_ syncs: [Sync]) async throws -> [String: Int] {
        let summaries = try await env.store.summaries(sourceIDs: syncs.map(\.sourceID))
        return summaries.compactMapValues { summary in
            guard let last = summary.latestFinished, last.status == .completed, last.recordsRead > 0 else { return nil }
            return last.recordsRead
        }
    }

    // MARK: Sources

    func sources(query: String?, health: String?, after: String?) async throws -> [String: Any] {
        let pageSize = 50
        let q = query?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
        // The API's health values; `healthy` (the name docs/api.md first gave the filter) means `ok`.
        let healthFilter = health.flatMap { $0.isEmpty ? nil : $0 == "healthy" ? SourceHealth.ok.rawValue : $0 }
        if let healthFilter, SourceHealth(rawValue: healthFilter) == nil {
            throw Problem.validation([FieldError("health", "must be one of \(SourceHealth.allCases.map(\.rawValue).joined(separator: ", "))")])
        }
        var matched: [SourceView] = []
        var cursor = after, scanned = 0, more = false
        // Filters apply to the sources in id order from the cursor on, a batch at a time,
        // until a page is full (at most 10,000 looked at per page).
        scan: while scanned < 10_000 {
            let batch = try await env.store.sourceViews(limit: 200, after: cursor)
            for view in batch {
                let source = view.source
                cursor = source.id
                scanned += 1
                if !q.isEmpty && !source.name.lowercased().contains(q) && source.id.lowercased() != q { continue }
                if let healthFilter, view.summary.health(schedule: source.schedule, now: now).rawValue != healthFilter { continue }
                if matched.count == pageSize { more = true; break scan }
                matched.append(view)
            }
            if batch.count < 200 { break }
        }
        let counts = try await env.store.recordCounts(sourceIDs: matched.map(\.source.id))
        let rows = matched.map { view -> [String: Any] in
            let (source, summary) = view.pair
            var row = DashboardFormat.object(APIRepresentation.source(source, summary: summary, now: now))
            let json = row
            row["schedule_text"] = Self.scheduleText(json["schedule"] as? [String: Any])
            row["next_run"] = DashboardFormat.relative(source.cron != nil ? source.nextSlotAt : nil, now: now)
                ?? (json["next_run_at"] as? String).flatMap(Timestamp.parse).flatMap { DashboardFormat.relative($0, now: now) }
            row["health_tone"] = DashboardFormat.tone(json["health"] as? String ?? "")
            row["records"] = DashboardFormat.count(counts[source.id] ?? 0)
            if let last = summary.latest {
                row["last_status"] = last.status.rawValue
                row["last_tone"] = DashboardFormat.tone(last.status.rawValue)
                row["last_when"] = DashboardFormat.relative(last.finishedAt ?? last.startedAt ?? last.queuedAt, now: now)
                row["last_id"] = last.id
            }
            return row
        }
        return [
            "sources": rows, "has_sources": !rows.isEmpty, "query": query ?? "",
            "health_options": ([""] + SourceHealth.allCases.map(\.rawValue)).map {
                ["value": $0, "label": $0.isEmpty ? "any" : $0.replacingOccurrences(of: "_", with: " "),
                 "selected": $0 == (healthFilter ?? "")] as [String: Any]
            },
            "next": (more ? matched.last?.source.id : nil).map { next in
                var items = [URLQueryItem(name: "after", value: next)]
                if !q.isEmpty { items.append(URLQueryItem(name: "q", value: query)) }
                if let healthFilter { items.append(URLQueryItem(name: "health", value: healthFilter)) }
                return Self.query(items)
            } as Any,
        ]
    }

    static func scheduleText(_ schedule: [String: Any]?) -> String {
        guard let schedule else { return "manual" }
        if let cron = schedule["cron"] as? String { return "cron \(cron) (\(schedule["timezone"] as? String ?? "UTC"))" }
        if let every = schedule["every_seconds"] as? String { return "every \(DashboardFormat.duration(Double(every.replacingOccurrences(of: ",", with: ""))))" }
        return "manual"
    }

    static func query(_ items: [URLQueryItem]) -> String {
        var c = URLComponents()
        c.queryItems = items
        return "?" + (c.percentEncodedQuery ?? "")
    }

    // MARK: Source detail

    /// How much of each record the source page shows.
    static let recordPreviewBytes = 2048

    func source(id: String, after: String?) async throws -> [String: Any] {
        let (source, summary) = try await env.sourceView(id).pair
        let json = APIRepresentation.source(source, summary: summary, now: now)
        var view = DashboardFormat.object(json)
        let history = try await env.store.listSyncs(SyncFilter(sourceID: source.id), limit: 20, before: nil)
        let pageSize = 25
        // The start of each record only: a page of 25 records of 4 MB was 100 MB of HTML per view.
        let records = try await env.store.recordPreviews(sourceID: source.id, limit: pageSize + 1, after: after,
                                                         prefixBytes: Self.recordPreviewBytes)
        let counts = try await env.store.recordCounts(sourceIDs: [source.id])
        if case .object(let o) = json {
            view["config_json"] = DashboardFormat.pretty(o["config"] ?? .null)
            view["state_json"] = DashboardFormat.pretty(o["state"] ?? .null)
        }
        view["schedule_text"] = Self.scheduleText(view["schedule"] as? [String: Any])
        view["health_tone"] = DashboardFormat.tone(view["health"] as? String ?? "")
        view["next_run"] = (view["next_run_at"] as? String).flatMap(Timestamp.parse).flatMap { DashboardFormat.relative($0, now: now) }
        view["records_count"] = DashboardFormat.count(counts[source.id] ?? 0)
        view["history"] = history.map { syncRow($0, names: [source.id: source.name]) }
        view["has_history"] = !history.isEmpty
        view["active"] = summary.latest.map { !$0.status.isTerminal } ?? false
        view["records"] = records.prefix(pageSize).map { r -> [String: Any] in
            var row: [String: Any] = ["key": r.key, "updated": DashboardFormat.relative(r.updatedAt, now: now) ?? ""]
            if r.size <= r.prefix.count {
                row["json"] = DashboardFormat.pretty(bytes: r.prefix)
            } else {
                row["json"] = String(decoding: r.prefix, as: UTF8.self) + " …"
                row["cut"] = DashboardFormat.count(r.size)
                Self.recordLink(source: source.id, key: r.key, into: &row)
            }
            row["sync_id"] = r.syncID
            return row
        }
        if records.count > pageSize, let last = records.prefix(pageSize).last {
            view["records_next"] = Self.query([URLQueryItem(name: "after", value: last.key)])
        }
        view["records_after"] = after
        // The change feed as a consumer sees it: the newest changes and the cursor at the head.
        let latest = try await env.store.latestChanges(sourceID: source.id, limit: 10)
        view["changes"] = latest.changes.map { change -> [String: Any] in
            var row: [String: Any] = [
                "op": change.op.rawValue, "op_tone": change.op == .deleted ? "bad" : change.op == .created ? "ok" : "info",
                "key": change.record.key, "change": change.change,
                "when": DashboardFormat.relative(change.record.deletedAt ?? change.record.updatedAt, now: now) ?? "",
            ]
            row["sync_id"] = change.record.syncID
            Self.recordLink(source: source.id, key: change.record.key, into: &row)
            return row
        }
        view["has_changes"] = !latest.changes.isEmpty
        view["feed_head"] = DashboardFormat.count(Int(clamping: latest.head))
        view["newest_cursor"] = ChangeCursor.encode(sourceID: source.id, change: max(latest.head, latest.floor))
        return view
    }

    /// A record's API path as a link (`api_path`), or as text (`api_path_text`) for the keys
    /// `.` and `..`: a browser removes such a segment (encoded or not) before asking, so no
    /// link can reach them; the path is shown for a client that keeps it.
    static func recordLink(source: String, key: String, into row: inout [String: Any]) {
        let path = "/v1/sources/\(source)/records/\(key.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/", "?", "#", "%"])) ?? "")"
        row[key == "." || key == ".." ? "api_path_text" : "api_path"] = path
    }

    // MARK: Syncs

    struct SyncsQuery {
        var filter = SyncFilter()
        var sourceText = ""
        var sinceText = "", untilText = ""
        var before: String?
    }

    /// The filters of the syncs page: those of `GET /v1/syncs`, with the source by id or
    /// name, and times as RFC 3339 or as a form's `datetime-local` (read as UTC).
    func syncsQuery(_ request: Request) async throws -> SyncsQuery {
        var q = SyncsQuery()
        let params = request.uri.queryParameters
        var errors: [FieldError] = []
        if let source = params["source"].map(String.init)?.trimmingCharacters(in: .whitespaces), !source.isEmpty {
            q.sourceText = source
            q.filter.sourceID = try await env.source(source).id
        }
        q.filter.statuses = SyncListQuery.statuses(request, errors: &errors)
        for name in ["since", "until"] {
            guard let raw = params[Substring(name)].map(String.init), !raw.isEmpty else { continue }
            guard let date = Timestamp.parse(raw) ?? Timestamp.parse(raw + (raw.count == 16 ? ":00Z" : "Z")) else {
                errors.append(FieldError(name, "must be a date and time, e.g. 2026-11-26T09:30"))
                continue
            }
            if name == "since" { q.filter.since = date; q.sinceText = raw } else { q.filter.until = date; q.untilText = raw }
        }
        q.before = params["before"].map(String.init)
        guard errors.isEmpty else { throw Problem.validation(errors) }
        return q
    }

    func syncs(_ q: SyncsQuery) async throws -> [String: Any] {
        let pageSize = 50
        let syncs = try await env.store.listSyncs(q.filter, limit: pageSize + 1, before: q.before)
        let names = try await env.store.sourceNames(ids: syncs.map(\.sourceID))
        var filterBody: [String: JSONValue] = [:]
        if let id = q.filter.sourceID { filterBody["source_id"] = .string(id) }
        if !q.filter.statuses.isEmpty { filterBody["status"] = .array(q.filter.statuses.map { .string($0.rawValue) }) }
        if let since = q.filter.since { filterBody["since"] = .string(Timestamp.format(since)) }
        if let until = q.filter.until { filterBody["until"] = .string(Timestamp.format(until)) }
        var view: [String: Any] = [
            "syncs": syncs.prefix(pageSize).map { syncRow($0, names: names) }, "has_syncs": !syncs.isEmpty, "select": canAct,
            "source": q.sourceText, "since": q.sinceText, "until": q.untilText,
            "statuses": SyncStatus.allCases.map { ["value": $0.rawValue, "checked": q.filter.statuses.contains($0)] as [String: Any] },
            "filter_json": String(decoding: JSONWriter.bytes(.object(filterBody)), as: UTF8.self),
        ]
        if syncs.count > pageSize, let last = syncs.prefix(pageSize).last {
            var items: [URLQueryItem] = [URLQueryItem(name: "before", value: last.id)]
            if !q.sourceText.isEmpty { items.append(URLQueryItem(name: "source", value: q.sourceText)) }
            items += q.filter.statuses.map { URLQueryItem(name: "status", value: $0.rawValue) }
            if !q.sinceText.isEmpty { items.append(URLQueryItem(name: "since", value: q.sinceText)) }
            if !q.untilText.isEmpty { items.append(URLQueryItem(name: "until", value: q.untilText)) }
            view["next"] = Self.query(items)
        }
        return view
    }

    // MARK: Sync detail

    func sync(id: String) async throws -> [String: Any] {
        guard let sync = try await env.store.sync(id: id) else { throw Problem.notFound("No sync \(id).") }
        let names = try await env.store.sourceNames(ids: [sync.sourceID])
        let expected = try await expectedRecords([sync])
        var view = syncRow(sync, names: names, expected: expected[sync.sourceID])
        let json = DashboardFormat.object(APIRepresentation.sync(sync))
        view["result"] = json["result"]
        view["attempts"] = sync.attempts.map { a -> [String: Any] in
            // Keys of their own: a key an attempt lacks would be looked up in the sync around it.
            [
                "number": a.number, "status": a.status.rawValue, "tone": DashboardFormat.tone(a.status.rawValue),
                "started": DashboardFormat.time(a.startedAt) ?? "",
                "duration": DashboardFormat.duration((a.finishedAt ?? now).timeIntervalSince(a.startedAt)),
                "attempt_finished": DashboardFormat.time(a.finishedAt) ?? false, "attempt_node": a.node ?? false,
                "attempt_error_code": a.error?.code.rawValue ?? false, "attempt_error_message": a.error.map { SecretRedaction.redactText($0.message) } ?? "",
            ]
        }
        let errors = try await env.store.recordErrors(syncID: sync.id, limit: 50, after: nil)
        view["record_errors"] = errors.map { _, e -> [String: Any] in
            var row: [String: Any] = ["page": e.page, "message": SecretRedaction.redactText(e.message)]
            row["key"] = e.recordKey
            return row
        }
        // The checkpoint holds what the upstream named (a next link that may echo a token).
        view["checkpoint_json"] = sync.checkpoint.map { DashboardFormat.pretty(SecretRedaction.redact($0)) }
        view["can_retry"] = sync.status == .failed || sync.status == .cancelled
        return view
    }

    // MARK: Nodes

    func nodes() async throws -> [String: Any] {
        let snapshot = try await env.store.healthSnapshot(now: now)
        let running = try await env.store.listSyncs(SyncFilter(statuses: [.running]), limit: 1000, before: nil)
        let names = try await env.store.sourceNames(ids: running.map(\.sourceID))
        let byNode = Dictionary(grouping: running) { $0.leaseOwner ?? "" }
        return [
            "nodes": snapshot.nodes.sorted { $0.id < $1.id }.map { node -> [String: Any] in
                let age = now.timeIntervalSince(node.heartbeatAt)
                let stale = age > NodeInfo.staleAfterSeconds
                let state = stale ? "stale" : node.draining ? "draining" : "ok"
                return [
                    // A node id from before ids were checked may need encoding in the action's URL.
                    "id": node.id, "id_path": node.id.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/", "?", "#", "%", ";"])) ?? node.id,
                    "role": node.role, "workers": node.workers, "state": state, "tone": DashboardFormat.tone(state),
                    "started": DashboardFormat.relative(node.startedAt, now: now) ?? "",
                    "heartbeat": DashboardFormat.relative(node.heartbeatAt, now: now) ?? "",
                    "draining": node.draining,
                    "running": (byNode[node.id] ?? []).map { syncRow($0, names: names) },
                    "running_count": (byNode[node.id] ?? []).count,
                ]
            },
        ]
    }

    /// Every credential: its type and status, its cached token's expiry and last refresh,
    /// the sources using it, and (for admins) a form to give new secrets. Never a secret.
    func credentials(after: String?) async throws -> [String: Any] {
        let page = try await env.store.credentials(limit: 101, after: after)
        let list = Array(page.prefix(100))
        let users = try await env.store.credentialSources(ids: list.map(\.id), limit: 20)
        return [
            "credentials": list.map { c -> [String: Any] in
                [
                    "id": c.id, "name": c.name, "type": c.type.rawValue, "status": c.status.rawValue,
                    "tone": c.status == .active ? "ok" : "bad", "reason": c.statusReason ?? "",
                    "oauth": c.type.isOAuth2,
                    "expires": DashboardFormat.relative(c.tokenExpiresAt, now: now) ?? "–",
                    "last_refresh": DashboardFormat.relative(c.lastRefreshAt, now: now) ?? "never",
                    "refreshes": c.refreshCount,
                    "sources": (users[c.id]?.first ?? []).map { ["id": $0.id, "name": $0.name] },
                    "source_count": users[c.id]?.total ?? 0,
                    "secret_fields": c.type.secretFields.map { ["field": $0, "input_id": "\(c.id)-\($0)"] },
                ]
            },
            "has_credentials": !list.isEmpty,
            "next": page.count > 100 ? (list.last?.id ?? "") : "",
        ]
    }

    // MARK: Rows

    /// A sync as a table row or a detail page's head: the API's view plus what people read.
    func syncRow(_ sync: Sync, names: [String: String], expected: Int? = nil) -> [String: Any] {
        var row = DashboardFormat.object(APIRepresentation.sync(sync))
        row["source_name"] = names[sync.sourceID] ?? sync.sourceID
        row["tone"] = DashboardFormat.tone(sync.status.rawValue)
        row["queued"] = DashboardFormat.relative(sync.queuedAt, now: now)
        row["started"] = DashboardFormat.relative(sync.startedAt, now: now)
        row["finished"] = DashboardFormat.relative(sync.finishedAt, now: now)
        row["queued_time"] = DashboardFormat.time(sync.queuedAt)
        row["duration"] = sync.startedAt.map { DashboardFormat.duration((sync.finishedAt ?? now).timeIntervalSince($0)) }
        row["records_read"] = DashboardFormat.count(sync.progress.recordsRead)
        row["records_read_raw"] = sync.progress.recordsRead
        row["pages"] = sync.progress.pages
        row["active"] = !sync.status.isTerminal
        row["running"] = sync.status == .running
        // Present even when false: a missing key would be looked up in the page around the row.
        row["error_code"] = sync.error?.code.rawValue ?? false
        row["error_message"] = sync.error.map { SecretRedaction.redactText($0.message) } ?? ""
        row["expected_text"] = false
        row["duration"] = row["duration"] ?? "–"
        if let expected, expected > 0 {
            row["expected"] = max(expected, sync.progress.recordsRead)
            row["expected_text"] = DashboardFormat.count(expected)
        }
        return row
    }
}
