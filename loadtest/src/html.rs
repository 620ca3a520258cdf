//! The HTML report: one self-contained file (no network), with charts drawn
//! by plotters' SVG backend into strings and inlined: throughput over time,
//! latency p50/p99 over time (both marking when a target switched nodes),
//! latency percentiles per outcome, outcome counts; then the summary table,
//! the targets and their node switches, and the audit.

use std::fmt::Write as _;

use plotters::prelude::*;

use crate::report::Report;

const WIDTH: u32 = 800;
const HEIGHT: u32 = 320;

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// A line chart as an SVG string; an empty chart when there is no data.
/// `x_names`, when given, names the integer x positions 0, 1, 2, ...;
/// `markers` are x positions marked by a vertical line (node switches).
fn line_chart(
    title: &str,
    x_label: &str,
    x_names: Option<&[&str]>,
    y_label: &str,
    series: &[Series<'_>],
    markers: &[f64],
) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let _ = draw_lines(&root, title, x_label, x_names, y_label, series, markers);
        let _ = root.present();
    }
    svg
}

fn draw_lines(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    x_names: Option<&[&str]>,
    y_label: &str,
    series: &[Series<'_>],
    markers: &[f64],
) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let points = series.iter().flat_map(|(_, _, points)| points.iter());
    let x_max = points
        .clone()
        .map(|p| p.0)
        .chain(markers.iter().copied())
        .fold(1.0, f64::max);
    let y_max = points.map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    let name_of = |x: &f64| match x_names {
        Some(names) if x.fract() == 0.0 => names.get(*x as usize).copied().unwrap_or("").to_owned(),
        Some(_) => String::new(),
        None => format!("{x}"),
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&name_of);
    if let Some(names) = x_names {
        mesh.x_labels(names.len());
    }
    mesh.draw()?;
    for (name, color, points) in series {
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    if !markers.is_empty() {
        let marker = RGBColor(255, 140, 0);
        chart
            .draw_series(
                markers
                    .iter()
                    .map(|&x| PathElement::new(vec![(x, 0.0), (x, y_max)], marker.stroke_width(2))),
            )?
            .label("node switch")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], marker));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// A bar chart of counts per label, as an SVG string.
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
    let y_max = bars.iter().map(|bar| bar.1).max().unwrap_or(1).max(1) as f64 * 1.1;
    let count = bars.len().max(1) as u32;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d((0u32..count).into_segmented(), 0.0..y_max)?;
    let labels: Vec<String> = bars.iter().map(|bar| bar.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|value| match value {
            SegmentValue::CenterOf(index) => {
                labels.get(*index as usize).cloned().unwrap_or_default()
            }
            _ => String::new(),
        })
        .y_desc("orders")
        .draw()?;
    chart.draw_series(
        Histogram::vertical(&chart)
            .style(BLUE.filled())
            .margin(10)
            .data(
                bars.iter()
                    .enumerate()
                    .map(|(index, bar)| (index as u32, bar.1 as f64)),
            ),
    )?;
    Ok(())
}

const PALETTE: [RGBColor; 6] = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];

/// The whole HTML report.
pub fn render(report: &Report) -> String {
    let seconds = |value: fn(&crate::recorder::Second) -> u64| -> Vec<(f64, f64)> {
        report
            .timeline
            .iter()
            .map(|second| (second.second as f64, value(second) as f64))
            .collect()
    };
    // Switches during the load and its drain, where the timeline is.
    let timeline_secs = report.timeline.len() as f64;
    let switches: Vec<f64> = report
        .node_switches
        .iter()
        .map(|switch| switch.at_secs)
        .filter(|at| (0.0..timeline_secs).contains(at))
        .collect();
    let throughput = line_chart(
        "Throughput",
        "second",
        None,
        "orders per second",
        &[
            ("acknowledged", BLUE, seconds(|s| s.acknowledged)),
            ("sent", GREEN, seconds(|s| s.sent)),
            ("errors", RED, seconds(|s| s.errors)),
        ],
        &switches,
    );
    let latency = line_chart(
        "Latency over time",
        "second",
        None,
        "µs",
        &[
            ("p50", BLUE, seconds(|s| s.latency_us_p50)),
            ("p99", RED, seconds(|s| s.latency_us_p99)),
        ],
        &switches,
    );
    let outcomes: Vec<Series<'_>> = std::iter::once(("overall", &report.latency_us.overall))
        .chain(
            report
                .latency_us
                .by_outcome
                .iter()
                .map(|(label, s)| (label.as_str(), s)),
        )
        .enumerate()
        .map(|(index, (label, s))| {
            let points = [s.p50, s.p90, s.p99, s.p999, s.max]
                .iter()
                .enumerate()
                .map(|(position, value)| (position as f64, *value as f64))
                .collect();
            (label, PALETTE[index % PALETTE.len()], points)
        })
        .collect();
    let percentiles = line_chart(
        "Latency percentiles per outcome",
        "percentile",
        Some(&["p50", "p90", "p99", "p99.9", "max"]),
        "µs",
        &outcomes,
        &[],
    );
    let counts: Vec<(String, u64)> = report
        .latency_us
        .by_outcome
        .iter()
        .map(|(label, summary)| (label.clone(), summary.count))
        .collect();
    let outcome_counts = bar_chart("Outcomes", &counts);

    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>flashgate load test {}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
         .passed{{color:green}}.failed{{color:red}}</style></head><body>\n",
        escape(&report.run_id)
    );
    let _ = writeln!(
        html,
        "<h1>flashgate load test {}</h1>",
        escape(&report.run_id)
    );
    let _ = writeln!(
        html,
        "<p>{:.1} s measured, throughput {:.1} acknowledged orders/s; sent {}, acknowledged {}, errors {}, late {}, retries {}.</p>",
        report.measured_secs,
        report.throughput_per_sec,
        report.totals.sent,
        report.totals.acknowledged,
        report.totals.errors,
        report.totals.late,
        report.totals.retries
    );
    let _ = writeln!(html, "<h2>Summary</h2><table><tr><th>outcome</th><th>count</th><th>p50 µs</th><th>p90 µs</th><th>p99 µs</th><th>p99.9 µs</th><th>max µs</th></tr>");
    for (label, s) in std::iter::once(("overall", &report.latency_us.overall)).chain(
        report
            .latency_us
            .by_outcome
            .iter()
            .map(|(label, s)| (label.as_str(), s)),
    ) {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(label), s.count, s.p50, s.p90, s.p99, s.p999, s.max
        );
    }
    let _ = writeln!(html, "</table>");
    for (title, svg) in [
        ("Throughput over time", &throughput),
        ("Latency over time", &latency),
        ("Latency percentiles per outcome", &percentiles),
        ("Outcomes", &outcome_counts),
    ] {
        let _ = writeln!(html, "<h2>{title}</h2>\n<div class=\"chart\">{svg}</div>");
    }
    let _ = writeln!(
        html,
        "<h2>Targets</h2><table><tr><th>transport</th><th>target</th><th>answered last by</th></tr>"
    );
    for target in &report.targets {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&target.transport),
            escape(&target.target),
            escape(target.current_node.as_deref().unwrap_or("-"))
        );
    }
    let _ = writeln!(html, "</table>");
    if report.node_switches.is_empty() {
        let _ = writeln!(html, "<p>No target switched nodes.</p>");
    } else {
        let _ = writeln!(
            html,
            "<h3>Node switches</h3><table><tr><th>second</th><th>transport</th><th>from</th><th>to</th></tr>"
        );
        for switch in &report.node_switches {
            let _ = writeln!(
                html,
                "<tr><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                switch.at_secs,
                escape(&switch.transport),
                escape(&switch.from),
                escape(&switch.to)
            );
        }
        let _ = writeln!(html, "</table>");
    }
    let audit = &report.audit;
    let _ = writeln!(
        html,
        "<h2>Audit</h2><p class=\"{}\">{}: {} orders and {} SKUs checked, {} violations{}.</p>",
        if audit.passed { "passed" } else { "failed" },
        if audit.passed { "PASSED" } else { "FAILED" },
        audit.orders_checked,
        audit.skus_checked,
        audit.violation_count,
        if audit.sole_writer {
            ", counters compared with the orders"
        } else {
            ""
        }
    );
    if !audit.violations.is_empty() {
        let _ = writeln!(
            html,
            "<table><tr><th>kind</th><th>sku</th><th>order</th><th>detail</th></tr>"
        );
        for violation in &audit.violations {
            let _ = writeln!(
                html,
                "<tr><td>{:?}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                violation.kind,
                escape(violation.sku.as_deref().unwrap_or("")),
                escape(violation.order_id.as_deref().unwrap_or("")),
                escape(&violation.detail)
            );
        }
        let _ = writeln!(html, "</table>");
    }
    let _ = writeln!(html, "</body></html>");
    html
}
