//! The 30-day history chart: stacked bars of succeeded, failed, skipped and dropped deliveries per UTC day (today
//! included), drawn on the server as inline SVG, so the page needs no script and no chart library. Each bar has
//! a `<title>` (a tooltip, read by screen readers), and a table with the same numbers follows in a `<details>`.

use crate::console::html::escape;
use crate::deliveries::DayCounts;
use hookwire_actors::domain::time;
use hookwire_actors::services::journal::DeliveryStatus;
use std::fmt::Write as _;

/// The series, bottom to top: status, label, CSS class.
const SERIES: [(DeliveryStatus, &str, &str); 4] = [
    (DeliveryStatus::Succeeded, "succeeded", "ok"),
    (DeliveryStatus::Failed, "failed", "fail"),
    (DeliveryStatus::Skipped, "skipped", "skip"),
    (DeliveryStatus::Dropped, "dropped", "drop"),
];

const WIDTH: u64 = 960;
const HEIGHT: u64 = 160;
const LEFT: u64 = 40;
const BOTTOM: u64 = 20;

/// Draws the chart of `days` (oldest first).
pub fn history_chart(days: &[DayCounts]) -> String {
    let total = |day: &DayCounts| SERIES.iter().map(|(status, _, _)| day.counts[*status as usize]).sum::<u64>();
    let max = days.iter().map(total).max().unwrap_or(0).max(1);
    let plot_height = HEIGHT - BOTTOM - 10;
    let slot = (WIDTH - LEFT) as f64 / days.len().max(1) as f64;
    let bar = (slot * 0.75).max(1.0);
    let mut svg = String::with_capacity(days.len() * 400 + 1024);
    let _ = write!(
        svg,
        r#"<svg id="history-chart" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="history-title"><title id="history-title">Deliveries per day, last {} days</title>"#,
        days.len()
    );
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{LEFT}" y1="{y}" x2="{WIDTH}" y2="{y}"/><text class="tick" x="{tx}" y="14" text-anchor="end">{max}</text><text class="tick" x="{tx}" y="{y}" text-anchor="end">0</text>"#,
        y = HEIGHT - BOTTOM,
        tx = LEFT - 4,
    );
    for (index, day) in days.iter().enumerate() {
        let x = LEFT as f64 + index as f64 * slot + (slot - bar) / 2.0;
        let date = time::day(day.day * 86_400_000);
        let mut y = (HEIGHT - BOTTOM) as f64;
        let mut tooltip = date.clone();
        for (status, label, _) in SERIES {
            let _ = write!(tooltip, ", {} {label}", day.counts[status as usize]);
        }
        let _ = write!(svg, r#"<g class="day" data-date="{date}"><title>{}</title>"#, escape(&tooltip));
        for (status, label, class) in SERIES {
            let count = day.counts[status as usize];
            if count == 0 {
                continue;
            }
            let height = count as f64 / max as f64 * plot_height as f64;
            y -= height;
            let _ = write!(
                svg,
                r#"<rect class="{class}" data-status="{label}" data-count="{count}" x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{height:.1}"/>"#
            );
        }
        if total(day) == 0 {
            let _ = write!(
                svg,
                r#"<rect class="none" x="{x:.1}" y="{:.1}" width="{bar:.1}" height="1"/>"#,
                (HEIGHT - BOTTOM - 1) as f64
            );
        }
        svg.push_str("</g>");
        if index + 1 == days.len() || (index % 7 == 0 && index + 4 < days.len()) {
            let _ = write!(
                svg,
                r#"<text class="tick" x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x + bar / 2.0,
                HEIGHT - 4,
                &date[5..]
            );
        }
    }
    svg.push_str("</svg>");
    let mut legend = String::from(r#"<ul class="legend">"#);
    for (status, label, class) in SERIES {
        let sum: u64 = days.iter().map(|day| day.counts[status as usize]).sum();
        let _ =
            write!(legend, r#"<li><span class="swatch {class}"></span>{label} <b id="total-{label}">{sum}</b></li>"#);
    }
    legend.push_str("</ul>");
    let mut table = String::from(
        r#"<details><summary>Numbers</summary><table class="numbers"><thead><tr><th scope="col">day</th><th scope="col">succeeded</th><th scope="col">failed</th><th scope="col">skipped</th><th scope="col">dropped</th></tr></thead><tbody>"#,
    );
    for day in days.iter().rev() {
        let _ = write!(table, "<tr><th scope=\"row\">{}</th>", time::day(day.day * 86_400_000));
        for (status, _, _) in SERIES {
            let _ = write!(table, "<td>{}</td>", day.counts[status as usize]);
        }
        table.push_str("</tr>");
    }
    table.push_str("</tbody></table></details>");
    format!(r#"<figure class="history">{svg}{legend}{table}</figure>"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_has_a_bar_per_day_and_stacks_the_statuses() {
        let mut days: Vec<DayCounts> = (0..30).map(|day| DayCounts { day: 20_000 + day, counts: [0; 5] }).collect();
        days[29].counts[DeliveryStatus::Succeeded as usize] = 3;
        days[29].counts[DeliveryStatus::Failed as usize] = 1;
        let svg = history_chart(&days);
        assert_eq!(svg.matches(r#"<g class="day""#).count(), 30);
        assert!(svg.contains(r#"data-status="succeeded" data-count="3""#), "{svg}");
        assert!(svg.contains(r#"data-status="failed" data-count="1""#), "{svg}");
        assert!(svg.contains(r#"<b id="total-succeeded">3</b>"#));
    }
}
