//! The HTML report: one self-contained file (no network), with charts drawn
//! by plotters' SVG backend into strings and inlined. In reading order: the
//! audit's verdict with the run's counts, the scenario (every setting), the
//! events (node switches), then the charts (throughput and latency over time,
//! both marking each event with a label; latency percentiles per outcome;
//! outcome counts), the outcome table, the targets and the violations.
//!
//! Business refusals (`recorder::is_business_refusal`: sold out and the like,
//! the expected end of many orders in a sale) are counted and drawn apart
//! from failures, in their own colour. Times are shown in µs, ms or s chosen
//! by magnitude, counts with thousands separators.

use std::fmt::Write as _;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::recorder::{is_business_refusal, LatencySummary, Second};
use crate::report::Report;

const WIDTH: u32 = 1000;
/// Settings side by side in the scenario table.
const SETTINGS_PER_ROW: usize = 3;
const HEIGHT: u32 = 340;

const ACKNOWLEDGED: RGBColor = RGBColor(31, 119, 180);
const SENT: RGBColor = RGBColor(150, 150, 150);
/// Business refusals: amber, not red.
const REFUSED: RGBColor = RGBColor(230, 159, 0);
const FAILED: RGBColor = RGBColor(214, 39, 40);
const EVENT: RGBColor = RGBColor(128, 0, 160);
const P99: RGBColor = RGBColor(0, 128, 128);
const PALETTE: [RGBColor; 6] = [
    ACKNOWLEDGED,
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A number for people: thousands separated by commas, at most two decimals,
/// no trailing zeros (`12,345`, `1.5`, `160`).
pub fn number(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let rounded = (value * 100.0).round() / 100.0;
    let negative = rounded < 0.0;
    let whole = rounded.abs().trunc() as u64;
    let fraction = ((rounded.abs() - whole as f64) * 100.0).round() as u64;
    let digits = whole.to_string();
    let mut text = String::new();
    if negative && (whole > 0 || fraction > 0) {
        text.push('-');
    }
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    if fraction > 0 {
        let decimals = format!("{fraction:02}");
        text.push('.');
        text.push_str(decimals.trim_end_matches('0'));
    }
    text
}

/// The unit a duration of `max_us` microseconds reads best in, and how many
/// µs make one of it.
pub fn time_unit(max_us: f64) -> (&'static str, f64) {
    if max_us >= 1_000_000.0 {
        ("s", 1_000_000.0)
    } else if max_us >= 1_000.0 {
        ("ms", 1_000.0)
    } else {
        ("µs", 1.0)
    }
}

/// A duration given in µs, in the unit its magnitude reads best in
/// (`850 µs`, `160 ms`, `2.5 s`).
pub fn duration_us(us: u64) -> String {
    let (unit, scale) = time_unit(us as f64);
    format!("{} {unit}", number(us as f64 / scale))
}

/// What an outcome label is, for colours and counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Acknowledged,
    /// A refusal by the sale's rules (sold out, ...): expected.
    Refused,
    /// Anything else: transport errors, timeouts, 5xx, `overloaded`, ...
    Failed,
}

/// The kind of an outcome label (`created`, `replayed`, an error label).
pub fn kind_of(label: &str) -> Kind {
    if label == crate::recorder::CREATED || label == crate::recorder::REPLAYED {
        Kind::Acknowledged
    } else if is_business_refusal(label) {
        Kind::Refused
    } else {
        Kind::Failed
    }
}

impl Kind {
    fn colour(self) -> RGBColor {
        match self {
            Kind::Acknowledged => ACKNOWLEDGED,
            Kind::Refused => REFUSED,
            Kind::Failed => FAILED,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Acknowledged => "acknowledged",
            Kind::Refused => "refused by the sale's rules",
            Kind::Failed => "failed",
        }
    }
}

/// One line of a chart: its legend name, colour and points.
pub type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// An event marked on the time charts: when (seconds from the start of the
/// load) and its label.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub at_secs: f64,
    pub label: String,
}

/// The events of a run: each node switch (a crash and a promotion show as
/// the switch of the answering node they cause), numbered in time order.
pub fn events(report: &Report) -> Vec<Event> {
    report
        .node_switches
        .iter()
        .enumerate()
        .map(|(index, switch)| Event {
            at_secs: switch.at_secs,
            label: format!("#{} {} → {}", index + 1, switch.transport, switch.to),
        })
        .collect()
}

/// The throughput chart's lines, per second: sent, acknowledged, refused by
/// the sale's rules and failed (errors that are not business refusals).
pub fn throughput_series(timeline: &[Second]) -> Vec<Series<'static>> {
    let per_second = |value: fn(&Second) -> u64| -> Vec<(f64, f64)> {
        timeline
            .iter()
            .map(|second| (second.second as f64, value(second) as f64))
            .collect()
    };
    vec![
        ("sent", SENT, per_second(|s| s.sent)),
        ("acknowledged", ACKNOWLEDGED, per_second(|s| s.acknowledged)),
        (
            "refused (sold out, limits)",
            REFUSED,
            per_second(|s| s.refused),
        ),
        (
            "failed",
            FAILED,
            per_second(|s| s.errors.saturating_sub(s.refused)),
        ),
    ]
}

/// How a chart's axes read.
struct Axes<'a> {
    x_label: &'a str,
    /// Names of the integer x positions 0, 1, 2, ...; numbers otherwise.
    x_names: Option<&'a [&'a str]>,
    y_label: String,
}

/// A line chart as an SVG string; an empty chart when there is no data.
/// `events` are marked by a vertical line with their label.
fn line_chart(title: &str, axes: &Axes<'_>, series: &[Series<'_>], events: &[Event]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let _ = draw_lines(&root, title, axes, series, events);
        let _ = root.present();
    }
    svg
}

fn draw_lines(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    axes: &Axes<'_>,
    series: &[Series<'_>],
    events: &[Event],
) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let points = series.iter().flat_map(|(_, _, points)| points.iter());
    let x_max = points
        .clone()
        .map(|p| p.0)
        .chain(events.iter().map(|event| event.at_secs))
        .fold(1.0, f64::max);
    // Room above the data for the legend and the event labels.
    let y_max = points.map(|p| p.1).fold(1.0, f64::max) * 1.35;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    let x_name = |x: &f64| match axes.x_names {
        Some(names) if x.fract() == 0.0 => names.get(*x as usize).copied().unwrap_or("").to_owned(),
        Some(_) => String::new(),
        None => number(*x),
    };
    let y_name = |y: &f64| number(*y);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(axes.x_label)
        .y_desc(axes.y_label.as_str())
        .x_label_formatter(&x_name)
        .y_label_formatter(&y_name)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .light_line_style(RGBColor(240, 240, 240));
    if let Some(names) = axes.x_names {
        mesh.x_labels(names.len());
    }
    mesh.draw()?;
    for (_, colour, points) in series {
        let colour = *colour;
        chart.draw_series(LineSeries::new(
            points.iter().copied(),
            colour.stroke_width(2),
        ))?;
    }
    if !events.is_empty() {
        chart.draw_series(events.iter().map(|event| {
            PathElement::new(
                vec![(event.at_secs, 0.0), (event.at_secs, y_max)],
                EVENT.stroke_width(2),
            )
        }))?;
        // Labels staggered downwards so that close events stay readable, on
        // the side of their line that has room.
        chart.draw_series(events.iter().enumerate().map(|(index, event)| {
            let y = y_max * (0.98 - 0.06 * (index % 4) as f64);
            let side = if event.at_secs > x_max * 0.6 {
                HPos::Right
            } else {
                HPos::Left
            };
            Text::new(
                format!(" {} ", event.label),
                (event.at_secs, y),
                ("sans-serif", 15)
                    .into_font()
                    .color(&EVENT)
                    .pos(Pos::new(side, VPos::Top)),
            )
        }))?;
    }
    Ok(())
}

/// A bar chart of counts per outcome, coloured by kind, as an SVG string.
fn bar_chart(title: &str, bars: &[(String, u64)]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let _ = draw_bars(&root, title, bars);
        let _ = root.present();
    }
    svg
}

fn draw_bars(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    bars: &[(String, u64)],
) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let y_max = bars.iter().map(|bar| bar.1).max().unwrap_or(1).max(1) as f64 * 1.25;
    let count = bars.len().max(1) as u32;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d((0u32..count - 1).into_segmented(), 0.0..y_max)?;
    let labels: Vec<String> = bars.iter().map(|bar| bar.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len().max(1))
        .x_label_formatter(&|value| match value {
            SegmentValue::CenterOf(index) => {
                labels.get(*index as usize).cloned().unwrap_or_default()
            }
            _ => String::new(),
        })
        .y_label_formatter(&|y| number(*y))
        .y_desc("orders")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .light_line_style(RGBColor(240, 240, 240))
        .draw()?;
    for kind in [Kind::Acknowledged, Kind::Refused, Kind::Failed] {
        let data: Vec<(u32, f64)> = bars
            .iter()
            .enumerate()
            .filter(|(_, bar)| kind_of(&bar.0) == kind)
            .map(|(index, bar)| (index as u32, bar.1 as f64))
            .collect();
        if data.is_empty() {
            continue;
        }
        chart.draw_series(
            Histogram::vertical(&chart)
                .style(kind.colour().filled())
                .margin(12)
                .data(data),
        )?;
    }
    Ok(())
}

/// A chart's legend, under it in HTML (so that it never hides data or an
/// event label): a swatch and a name per entry.
fn legend(entries: &[(&str, RGBColor)]) -> String {
    let mut html = String::from("<div class=\"legend\">");
    for (name, colour) in entries {
        let _ = write!(
            html,
            "<span><i style=\"background:rgb({},{},{})\"></i>{}</span>",
            colour.0,
            colour.1,
            colour.2,
            escape(name)
        );
    }
    html.push_str("</div>");
    html
}

/// The legend of a line chart: its series, then the events when it has any.
fn series_legend(series: &[Series<'_>], events: &[Event]) -> String {
    let mut entries: Vec<(&str, RGBColor)> = series
        .iter()
        .map(|(name, colour, _)| (*name, *colour))
        .collect();
    if !events.is_empty() {
        entries.push(("event (node switch)", EVENT));
    }
    legend(&entries)
}

/// The scenario's settings as (key, value) rows, in the order of the
/// scenario's fields; unset ones read `-`.
fn scenario_rows(report: &Report) -> Vec<(String, String)> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(&report.scenario) else {
        return Vec::new();
    };
    fields
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                serde_json::Value::Null => "-".to_owned(),
                serde_json::Value::String(text) => text,
                serde_json::Value::Number(number_value) => number_value
                    .as_f64()
                    .map_or_else(|| number_value.to_string(), number),
                serde_json::Value::Array(items) if items.is_empty() => "-".to_owned(),
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|item| {
                        item.as_str()
                            .map_or_else(|| item.to_string(), str::to_owned)
                    })
                    .collect::<Vec<_>>()
                    .join(" · "),
                other => other.to_string(),
            };
            (key, value)
        })
        .collect()
}

/// The whole HTML report.
pub fn render(report: &Report) -> String {
    let events = events(report);
    // Events during the load and its drain, where the timeline is.
    let timeline_secs = report.timeline.len() as f64;
    let charted: Vec<Event> = events
        .iter()
        .filter(|event| (0.0..=timeline_secs).contains(&event.at_secs))
        .cloned()
        .collect();
    let throughput_lines = throughput_series(&report.timeline);
    let throughput = line_chart(
        "Throughput",
        &Axes {
            x_label: "second of the run",
            x_names: None,
            y_label: "orders per second".into(),
        },
        &throughput_lines,
        &charted,
    );
    let throughput_legend = series_legend(&throughput_lines, &charted);
    let latency_max = report
        .timeline
        .iter()
        .map(|second| second.latency_us_p99)
        .max()
        .unwrap_or(0) as f64;
    let (unit, scale) = time_unit(latency_max);
    let latency_per_second = |value: fn(&Second) -> u64| -> Vec<(f64, f64)> {
        report
            .timeline
            .iter()
            .map(|second| (second.second as f64, value(second) as f64 / scale))
            .collect()
    };
    let latency_lines = [
        (
            "p50",
            ACKNOWLEDGED,
            latency_per_second(|s| s.latency_us_p50),
        ),
        ("p99", P99, latency_per_second(|s| s.latency_us_p99)),
    ];
    let latency = line_chart(
        "Latency over time",
        &Axes {
            x_label: "second of the run",
            x_names: None,
            y_label: format!("latency ({unit})"),
        },
        &latency_lines,
        &charted,
    );
    let latency_legend = series_legend(&latency_lines, &charted);
    let outcomes: Vec<(&str, &LatencySummary)> =
        std::iter::once(("overall", &report.latency_us.overall))
            .chain(
                report
                    .latency_us
                    .by_outcome
                    .iter()
                    .map(|(label, s)| (label.as_str(), s)),
            )
            .collect();
    let (unit, scale) = time_unit(
        outcomes
            .iter()
            .map(|(_, summary)| summary.max)
            .max()
            .unwrap_or(0) as f64,
    );
    let mut palette = PALETTE.iter().cycle();
    let percentile_series: Vec<Series<'_>> = outcomes
        .iter()
        .map(|(label, s)| {
            let points = [s.p50, s.p90, s.p99, s.p999, s.max]
                .iter()
                .enumerate()
                .map(|(position, value)| (position as f64, *value as f64 / scale))
                .collect();
            let colour = match kind_of(label) {
                Kind::Refused => REFUSED,
                Kind::Failed if *label != "overall" => FAILED,
                _ => *palette.next().unwrap_or(&ACKNOWLEDGED),
            };
            (*label, colour, points)
        })
        .collect();
    let percentiles = line_chart(
        "Latency percentiles per outcome",
        &Axes {
            x_label: "percentile",
            x_names: Some(&["p50", "p90", "p99", "p99.9", "max"]),
            y_label: format!("latency ({unit})"),
        },
        &percentile_series,
        &[],
    );
    let percentiles_legend = series_legend(&percentile_series, &[]);
    let counts: Vec<(String, u64)> = report
        .latency_us
        .by_outcome
        .iter()
        .map(|(label, summary)| (label.clone(), summary.count))
        .collect();
    let outcome_counts = bar_chart("Outcomes", &counts);
    let kinds: Vec<(&str, RGBColor)> = [Kind::Acknowledged, Kind::Refused, Kind::Failed]
        .into_iter()
        .filter(|kind| counts.iter().any(|(label, _)| kind_of(label) == *kind))
        .map(|kind| (kind.name(), kind.colour()))
        .collect();
    let outcomes_legend = legend(&kinds);

    let totals = &report.totals;
    let refused: u64 = report
        .errors_by_code
        .iter()
        .filter(|(code, _)| is_business_refusal(code))
        .map(|(_, count)| count)
        .sum();
    let failed = totals.errors.saturating_sub(refused);

    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>flashgate load test {}</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1040px}}\
         table{{border-collapse:collapse;margin-bottom:1em}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
         td.text,th.text{{text-align:left}}\
         .verdict{{font-size:1.3em;padding:0.8em 1em;border-radius:6px;margin:1em 0}}\
         .passed{{background:#e6f4e6;color:#1a6b1a;border:2px solid #1a6b1a}}\
         .failed{{background:#fbe9e9;color:#a11;border:2px solid #a11}}\
         .refused{{color:#b07800}}.failure{{color:#c62828}}\
         .chart svg{{max-width:100%;height:auto}}\
         .legend{{margin:0.2em 0 1em 80px}}.legend span{{margin-right:1.5em;white-space:nowrap}}\
         .legend i{{display:inline-block;width:22px;height:4px;vertical-align:middle;margin-right:6px}}\
         table.settings td{{text-align:left}}table.settings td.key{{color:#555}}</style></head><body>\n",
        escape(&report.run_id)
    );
    let _ = writeln!(
        html,
        "<h1>flashgate load test {}</h1>",
        escape(&report.run_id)
    );

    // The verdict first.
    let audit = &report.audit;
    let _ = writeln!(
        html,
        "<div id=\"verdict\" class=\"verdict {}\"><strong>Audit {}</strong>: {} orders and {} SKUs checked, {} violations{}.</div>",
        if audit.passed { "passed" } else { "failed" },
        if audit.passed { "PASSED" } else { "FAILED" },
        number(audit.orders_checked as f64),
        number(audit.skus_checked as f64),
        number(audit.violation_count as f64),
        if audit.sole_writer {
            "; counters compared with the orders"
        } else {
            ""
        }
    );
    let _ = writeln!(
        html,
        "<table><tr><th>load</th><th>throughput</th><th>sent</th><th>acknowledged</th>\
         <th class=\"refused\">refused by the sale's rules</th><th class=\"failure\">failed</th>\
         <th>abandoned</th><th>late</th><th>retries</th><th>confirmed</th><th>cancelled</th></tr>\
         <tr><td>{} s</td><td>{} orders/s</td><td>{}</td><td>{}</td><td class=\"refused\">{}</td>\
         <td class=\"failure\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        number(report.measured_secs),
        number(report.throughput_per_sec.round()),
        number(totals.sent as f64),
        number(totals.acknowledged as f64),
        number(refused as f64),
        number(failed as f64),
        number(totals.abandoned as f64),
        number(totals.late as f64),
        number(totals.retries as f64),
        number(totals.confirmed as f64),
        number(totals.cancelled as f64),
    );
    if totals.abandoned > 0 {
        let _ = writeln!(
            html,
            "<p class=\"failure\">{} orders were still in flight when the drain bound \
             (drain_timeout_ms {}) ran out: abandoned, their outcome unknown.</p>",
            number(totals.abandoned as f64),
            number(report.scenario.drain_timeout_ms as f64)
        );
    }
    if !audit.violations.is_empty() {
        let _ = writeln!(
            html,
            "<table><tr><th class=\"text\">violation</th><th class=\"text\">sku</th>\
             <th class=\"text\">order</th><th class=\"text\">detail</th></tr>"
        );
        for violation in &audit.violations {
            let kind = serde_json::to_value(violation.kind)
                .ok()
                .and_then(|value| value.as_str().map(str::to_owned))
                .unwrap_or_default();
            let _ = writeln!(
                html,
                "<tr><td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td></tr>",
                escape(&kind),
                escape(violation.sku.as_deref().unwrap_or("")),
                escape(violation.order_id.as_deref().unwrap_or("")),
                escape(&violation.detail)
            );
        }
        let _ = writeln!(html, "</table>");
    }

    // The scenario: every setting of the run.
    let _ = writeln!(
        html,
        "<h2 id=\"scenario\">Scenario</h2><table class=\"settings\">"
    );
    for row in scenario_rows(report).chunks(SETTINGS_PER_ROW) {
        html.push_str("<tr>");
        for (key, value) in row {
            let _ = write!(
                html,
                "<td class=\"key\">{}</td><td>{}</td>",
                escape(key),
                escape(value)
            );
        }
        html.push_str("</tr>\n");
    }
    let _ = writeln!(html, "</table>");

    // Events.
    let _ = writeln!(html, "<h2>Events</h2>");
    if events.is_empty() {
        let _ = writeln!(html, "<p>None: no target switched nodes.</p>");
    } else {
        let _ = writeln!(
            html,
            "<p>A node switch is when a target's client started getting its answers from another \
             node: a crash and a promotion show as the switch they cause.</p>\
             <table><tr><th>event</th><th>second</th><th class=\"text\">transport</th>\
             <th class=\"text\">target</th><th class=\"text\">from</th><th class=\"text\">to</th></tr>"
        );
        for (index, switch) in report.node_switches.iter().enumerate() {
            let _ = writeln!(
                html,
                "<tr><td>#{}</td><td>{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td></tr>",
                index + 1,
                number(switch.at_secs),
                escape(&switch.transport),
                escape(&switch.target),
                escape(&switch.from),
                escape(&switch.to)
            );
        }
        let _ = writeln!(html, "</table>");
    }

    for (title, svg, legend) in [
        ("Throughput over time", &throughput, &throughput_legend),
        ("Latency over time", &latency, &latency_legend),
        (
            "Latency percentiles per outcome",
            &percentiles,
            &percentiles_legend,
        ),
        ("Outcomes", &outcome_counts, &outcomes_legend),
    ] {
        let _ = writeln!(
            html,
            "<h2>{title}</h2>\n<div class=\"chart\">{svg}{legend}</div>"
        );
    }

    let _ = writeln!(
        html,
        "<h2>Latency per outcome</h2><table><tr><th class=\"text\">outcome</th><th class=\"text\">kind</th><th>count</th>\
         <th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>"
    );
    for (label, s) in &outcomes {
        let kind = if *label == "overall" {
            ""
        } else {
            kind_of(label).name()
        };
        let class = match kind_of(label) {
            Kind::Refused => "refused",
            Kind::Failed if *label != "overall" => "failure",
            _ => "",
        };
        let _ = writeln!(
            html,
            "<tr class=\"{class}\"><td class=\"text\">{}</td><td class=\"text\">{kind}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(label),
            number(s.count as f64),
            duration_us(s.p50),
            duration_us(s.p90),
            duration_us(s.p99),
            duration_us(s.p999),
            duration_us(s.max)
        );
    }
    let _ = writeln!(html, "</table>");

    let _ = writeln!(
        html,
        "<h2>Targets</h2><table><tr><th class=\"text\">transport</th><th class=\"text\">target</th><th class=\"text\">answered last by</th></tr>"
    );
    for target in &report.targets {
        let _ = writeln!(
            html,
            "<tr><td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td></tr>",
            escape(&target.transport),
            escape(&target.target),
            escape(target.current_node.as_deref().unwrap_or("-"))
        );
    }
    let _ = writeln!(html, "</table>");
    let _ = writeln!(
        html,
        "<p>Audit read-back took {} s. Latencies count from each order's intended send time.</p>",
        number(report.read_back_secs)
    );
    let _ = writeln!(html, "</body></html>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::NodeSwitchRecord;

    fn report() -> Report {
        let mut report = Report::default();
        report.audit.passed = true;
        report.audit.orders_checked = 1234;
        report.timeline = (0..4)
            .map(|second| Second {
                second,
                sent: 100,
                acknowledged: 60,
                errors: 40,
                refused: 40,
                latency_us_p50: 90_000,
                latency_us_p99: 160_000,
                node_switches: 0,
            })
            .collect();
        report.latency_us.overall = LatencySummary {
            count: 400,
            p50: 90_000,
            p90: 120_000,
            p99: 160_000,
            p999: 170_000,
            max: 180_000,
            ..LatencySummary::default()
        };
        report
            .latency_us
            .by_outcome
            .insert("sold_out".into(), report.latency_us.overall.clone());
        report.errors_by_code.insert("sold_out".into(), 160);
        report.totals.errors = 160;
        report
    }

    #[test]
    fn the_verdict_and_the_scenario_come_before_the_charts() {
        let page = render(&report());
        let verdict = page.find("Audit PASSED").expect("the verdict");
        let scenario = page.find("id=\"scenario\"").expect("the scenario");
        let first_chart = page.find("<svg").expect("a chart");
        assert!(verdict < scenario && scenario < first_chart);
        assert!(page.contains("1,234 orders"), "counts in the verdict");
        for setting in [
            "duration_secs",
            "drain_timeout_ms",
            "audit_timeout_ms",
            "model",
        ] {
            assert!(page.contains(setting), "the scenario lists {setting}");
        }
    }

    #[test]
    fn times_and_counts_read_in_units_people_use() {
        assert_eq!(number(160_000.0), "160,000");
        assert_eq!(number(1.5), "1.5");
        assert_eq!(number(2.0), "2");
        assert_eq!(duration_us(160_000), "160 ms");
        assert_eq!(duration_us(850), "850 µs");
        assert_eq!(duration_us(2_500_000), "2.5 s");
        let page = render(&report());
        assert!(page.contains("latency (ms)"), "the latency axes are in ms");
        assert!(!page.contains("160000.0"), "no raw µs with a .0");
        assert!(!page.contains(".0 µs") && !page.contains("µs</text>"));
        assert!(page.contains("<td>160 ms</td>"), "the table in ms");
    }

    #[test]
    fn business_refusals_are_not_failures() {
        assert_eq!(kind_of("sold_out"), Kind::Refused);
        assert_eq!(kind_of("insufficient_stock"), Kind::Refused);
        assert_eq!(kind_of("limit_exceeded"), Kind::Refused);
        assert_eq!(kind_of("sale_not_open"), Kind::Refused);
        assert_eq!(kind_of("overloaded"), Kind::Failed);
        assert_eq!(kind_of("transport_error"), Kind::Failed);
        assert_eq!(kind_of("created"), Kind::Acknowledged);
        let series = throughput_series(&report().timeline);
        let failed = series.iter().find(|s| s.0 == "failed").expect("failed");
        assert!(failed.2.iter().all(|point| point.1 == 0.0), "{failed:?}");
        let refused = series
            .iter()
            .find(|s| s.0.starts_with("refused"))
            .expect("refused");
        assert!(refused.2.iter().all(|point| point.1 == 40.0));
        assert_ne!(refused.1, failed.1, "their own colour");
        let page = render(&report());
        assert!(
            page.contains("refused by the sale&#39;s rules")
                || page.contains("refused by the sale's rules")
        );
        assert!(
            page.contains("class=\"failure\">0</td>"),
            "no failure counted"
        );
    }

    #[test]
    fn every_node_switch_is_marked_on_both_time_charts() {
        let mut report = report();
        for (at_secs, to) in [(1.2, "http://b:8081"), (2.5, "http://a:8080")] {
            report.node_switches.push(NodeSwitchRecord {
                at_secs,
                transport: "http".into(),
                target: "http://a:8080,http://b:8081".into(),
                from: "x".into(),
                to: to.into(),
            });
        }
        let page = render(&report);
        for label in ["#1 http → http://b:8081", "#2 http → http://a:8080"] {
            let charts = page
                .split("<svg")
                .skip(1)
                .filter(|svg| svg.contains(label))
                .count();
            assert_eq!(charts, 2, "{label} on the throughput and latency charts");
        }
        assert!(page.contains("event (node switch)"), "in the legend");
        assert!(
            !page.contains("<script src") && !page.contains("<link"),
            "self-contained"
        );
    }
}
