import Foundation
import SyncStore

/// The overview's chart: syncs finished per bucket of the window as stacked bars
/// (completed, failed, cancelled), drawn by the server as inline SVG. Colours come from
/// the stylesheet's classes, so light and dark follow the page; every bar has a `<title>`.
/// The SVG stretches to the page's width, so its labels (start, end, peak) are HTML around it.
enum FinishedChart {
    static let width = 720.0, height = 140.0, axis = 2.0

    /// The busiest bucket's count (the chart's top).
    static func peak(_ buckets: [FinishedBucket]) -> Int { max(1, buckets.map { $0.completed + $0.failed + $0.cancelled }.max() ?? 0) }

    static func svg(_ buckets: [FinishedBucket], count: Int, bucketSeconds: Double, since: Date) -> String {
        let byIndex = Dictionary(buckets.map { ($0.index, $0) }, uniquingKeysWith: { a, _ in a })
        let peak = peak(buckets)
        let slot = width / Double(max(1, count)), bar = max(1, slot * 0.8)
        let plot = height - axis
        let totals = buckets.reduce(into: (0, 0, 0)) { $0.0 += $1.completed; $0.1 += $1.failed; $0.2 += $1.cancelled }
        let label = "Syncs finished per \(DashboardFormat.duration(bucketSeconds)): \(totals.0) completed, \(totals.1) failed, \(totals.2) cancelled"
        var out = """
            <svg class="chart" viewBox="0 0 \(Int(width)) \(Int(height))" width="100%" height="\(Int(height))" \
            preserveAspectRatio="none" role="img" aria-label="\(escape(label))">
            <line class="chart-axis" x1="0" y1="\(plot)" x2="\(width)" y2="\(plot)"/>
            """
        for i in 0..<max(1, count) {
            let b = byIndex[i] ?? FinishedBucket(index: i)
            let x = Double(i) * slot + (slot - bar) / 2
            var y = plot
            let start = since.addingTimeInterval(Double(i) * bucketSeconds)
            let title = "\(DashboardFormat.time(start) ?? ""): \(b.completed) completed, \(b.failed) failed, \(b.cancelled) cancelled"
            out += "<g><title>\(escape(title))</title>"
            for (n, tone) in [(b.completed, "ok"), (b.failed, "bad"), (b.cancelled, "muted")] where n > 0 {
                let h = max(1, (plot - 4) * Double(n) / Double(peak))
                y -= h
                out += "<rect class=\"bar-\(tone)\" x=\(fmt(x)) y=\(fmt(y)) width=\(fmt(bar)) height=\(fmt(h))/>"
            }
            out += "</g>"
        }
        return out + "</svg>"
    }

    private static func fmt(_ v: Double) -> String { "\"" + String(format: "%.1f", v) + "\"" }

    static func escape(_ s: String) -> String { HTMLEscape.escape(s) }
}
