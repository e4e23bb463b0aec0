//! Server-side SVG charts: horizontal bars and trend lines, with axes, tick labels and a
//! legend. Every text that reaches the SVG is escaped here, because tag names are user input
//! and the templates insert the SVG as markup.

use std::fmt::Write;

/// Escapes text for SVG/XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Only `#rgb`/`#rrggbb` colours reach an attribute; anything else becomes grey.
fn colour(value: &str) -> &str {
    let hex = value.strip_prefix('#').unwrap_or("");
    if (hex.len() == 3 || hex.len() == 6) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        value
    } else {
        "#6b7280"
    }
}

/// A "nice" axis maximum and step: 1, 2 or 5 times a power of ten.
fn nice_scale(max: f64, ticks: usize) -> (f64, f64) {
    if max <= 0.0 {
        return (1.0, 1.0 / ticks as f64);
    }
    let raw = max / ticks as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    (step * ticks as f64, step)
}

/// Decimals that write every multiple of `step` exactly: 0.25 needs two ("0.25", not the
/// "0.2" one decimal rounds it to), 2.5 one, 50 none. At most four.
fn step_decimals(step: f64) -> usize {
    (0..4)
        .find(|d| {
            let scaled = step * 10f64.powi(*d as i32);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.abs().max(1.0)
        })
        .unwrap_or(4)
}

fn tick_label(value: f64, step: f64) -> String {
    format!("{value:.*}", step_decimals(step))
}

/// One bar of a bar chart.
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub color: String,
}

/// Horizontal bars, largest first as given, with a value axis along the bottom.
pub fn bar_chart(title: &str, axis_label: &str, bars: &[Bar]) -> String {
    let width = 640.0;
    let left = 160.0;
    let right = 60.0;
    let row = 22.0;
    let top = 10.0;
    let plot_height = row * bars.len().max(1) as f64;
    let height = top + plot_height + 44.0;
    let plot_width = width - left - right;
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let (axis_max, step) = nice_scale(max, 4);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
        escape(title)
    );
    let _ = write!(svg, "<title>{}</title>", escape(title));
    for i in 0..=4 {
        let value = step * i as f64;
        let x = left + plot_width * value / axis_max;
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#e5e7eb"/><text x="{x:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"##,
            top + plot_height,
            top + plot_height + 14.0,
            tick_label(value, step)
        );
    }
    for (i, bar) in bars.iter().enumerate() {
        let y = top + row * i as f64;
        let w = plot_width * bar.value / axis_max;
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" class="label" text-anchor="end">{}</text><rect x="{left}" y="{:.1}" width="{w:.1}" height="{:.1}" rx="2" fill="{}"/><text x="{:.1}" y="{:.1}" class="value">{}</text>"#,
            left - 8.0,
            y + row * 0.68,
            escape(&bar.label),
            y + 3.0,
            row - 6.0,
            colour(&bar.color),
            left + w + 4.0,
            y + row * 0.68,
            tick_label(bar.value, if bar.value.fract() == 0.0 { 1.0 } else { 0.01 })
        );
    }
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#9ca3af"/><text x="{:.1}" y="{:.1}" class="axis" text-anchor="middle">{}</text></svg>"##,
        top + plot_height,
        left + plot_width,
        top + plot_height,
        left + plot_width / 2.0,
        height - 6.0,
        escape(axis_label)
    );
    svg
}

/// One line of a trend chart: a value per x label.
pub struct Series {
    pub name: String,
    pub color: String,
    pub values: Vec<f64>,
}

/// Trend lines over days, with a y axis, dates along the bottom and a legend.
pub fn line_chart(title: &str, axis_label: &str, days: &[String], series: &[Series]) -> String {
    let width = 720.0;
    let left = 48.0;
    let right = 16.0;
    let top = 12.0;
    let plot_height = 200.0;
    let legend_rows = series.len().div_ceil(4).max(1) as f64;
    let height = top + plot_height + 40.0 + 18.0 * legend_rows;
    let plot_width = width - left - right;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0, f64::max);
    let (axis_max, step) = nice_scale(max, 4);
    let x_of = |i: usize| {
        if days.len() <= 1 {
            left + plot_width / 2.0
        } else {
            left + plot_width * i as f64 / (days.len() - 1) as f64
        }
    };
    let y_of = |v: f64| top + plot_height - plot_height * v / axis_max;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg"><title>{}</title>"#,
        escape(title),
        escape(title)
    );
    for i in 0..=4 {
        let value = step * i as f64;
        let y = y_of(value);
        let _ = write!(
            svg,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e5e7eb"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"##,
            left + plot_width,
            left - 6.0,
            y + 4.0,
            tick_label(value, step)
        );
    }
    let every = (days.len() / 6).max(1);
    for (i, day) in days.iter().enumerate() {
        if i % every == 0 || i + 1 == days.len() {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"#,
                x_of(i),
                top + plot_height + 14.0,
                escape(day.get(5..).unwrap_or(day))
            );
        }
    }
    let _ = write!(
        svg,
        r#"<text x="12" y="{:.1}" class="axis" transform="rotate(-90 12 {:.1})" text-anchor="middle">{}</text>"#,
        top + plot_height / 2.0,
        top + plot_height / 2.0,
        escape(axis_label)
    );
    for s in series {
        let points: Vec<String> = s
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x_of(i), y_of(*v)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
            colour(&s.color),
            points.join(" "),
            escape(&s.name)
        );
    }
    for (i, s) in series.iter().enumerate() {
        let x = left + (i % 4) as f64 * 170.0;
        let y = top + plot_height + 34.0 + 18.0 * (i / 4) as f64;
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{:.1}" width="12" height="4" fill="{}"/><text x="{:.1}" y="{y:.1}" class="label">{}</text>"#,
            y - 5.0,
            colour(&s.color),
            x + 16.0,
            escape(&s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Radius of an x–y chart's dots, in px.
const DOT_RADIUS: f64 = 3.0;

/// Moves dots that would cover one another (two versions trained on the same number of
/// labels, macro-F1 equal to accuracy) sideways, a dot's width apart and centred on their
/// true place, so each stays visible and keeps its tooltip; lines follow the moved dots.
/// Input and output: per series, its points in px.
fn dodge(series: Vec<Vec<(f64, f64)>>) -> Vec<Vec<(f64, f64)>> {
    let gap = 2.0 * DOT_RADIUS + 1.0;
    // Groups of dots closer than a dot's width, in drawing order.
    let mut groups: Vec<Vec<(usize, usize)>> = Vec::new();
    for (s, points) in series.iter().enumerate() {
        for (p, (x, y)) in points.iter().enumerate() {
            let near = groups.iter_mut().find(|group| {
                group.iter().any(|&(gs, gp)| {
                    let (gx, gy) = series[gs][gp];
                    (gx - x).abs() < gap && (gy - y).abs() < gap
                })
            });
            match near {
                Some(group) => group.push((s, p)),
                None => groups.push(vec![(s, p)]),
            }
        }
    }
    let mut placed = series.clone();
    for group in groups.iter().filter(|g| g.len() > 1) {
        let middle = (group.len() - 1) as f64 / 2.0;
        for (i, &(s, p)) in group.iter().enumerate() {
            placed[s][p].0 += (i as f64 - middle) * gap;
        }
    }
    placed
}

/// One line of an x–y chart: points (x, y), drawn in the order given.
pub struct XySeries {
    pub name: String,
    pub color: String,
    pub points: Vec<(f64, f64)>,
}

/// Lines through numeric points (a learning curve: a figure against a count), with both
/// axes on round steps from zero, a dot and a tooltip on each point, and a legend.
pub fn xy_chart(title: &str, x_label: &str, y_label: &str, series: &[XySeries]) -> String {
    let width = 720.0;
    let left = 56.0;
    let right = 24.0;
    let top = 12.0;
    let plot_height = 220.0;
    let legend_rows = series.len().div_ceil(4).max(1) as f64;
    let height = top + plot_height + 52.0 + 18.0 * legend_rows;
    let plot_width = width - left - right;
    let all = || series.iter().flat_map(|s| s.points.iter().copied());
    let (x_max, x_step) = nice_scale(all().map(|p| p.0).fold(0.0, f64::max), 5);
    let (y_max, y_step) = nice_scale(all().map(|p| p.1).fold(0.0, f64::max), 4);
    let x_of = |x: f64| left + plot_width * x / x_max;
    let y_of = |y: f64| top + plot_height - plot_height * y / y_max;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg"><title>{}</title>"#,
        escape(title),
        escape(title)
    );
    for i in 0..=4 {
        let value = y_step * i as f64;
        let y = y_of(value);
        let _ = write!(
            svg,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e5e7eb"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"##,
            left + plot_width,
            left - 6.0,
            y + 4.0,
            tick_label(value, y_step)
        );
    }
    for i in 0..=5 {
        let value = x_step * i as f64;
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"#,
            x_of(value),
            top + plot_height + 14.0,
            tick_label(value, x_step)
        );
    }
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#9ca3af"/><text x="{:.1}" y="{:.1}" class="axis" text-anchor="middle">{}</text><text x="12" y="{:.1}" class="axis" transform="rotate(-90 12 {:.1})" text-anchor="middle">{}</text>"##,
        top + plot_height,
        left + plot_width,
        top + plot_height,
        left + plot_width / 2.0,
        top + plot_height + 32.0,
        escape(x_label),
        top + plot_height / 2.0,
        top + plot_height / 2.0,
        escape(y_label)
    );
    let placed = dodge(
        series
            .iter()
            .map(|s| s.points.iter().map(|(x, y)| (x_of(*x), y_of(*y))).collect())
            .collect(),
    );
    for (s, at) in series.iter().zip(&placed) {
        let color = colour(&s.color);
        let points: Vec<String> = at.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
            points.join(" "),
            escape(&s.name)
        );
        for ((x, y), (cx, cy)) in s.points.iter().zip(at) {
            let _ = write!(
                svg,
                r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="{DOT_RADIUS}" fill="{color}"><title>{}: {} at {}</title></circle>"#,
                escape(&s.name),
                tick_label(*y, 0.01),
                tick_label(*x, 1.0)
            );
        }
    }
    for (i, s) in series.iter().enumerate() {
        let x = left + (i % 4) as f64 * 170.0;
        let y = top + plot_height + 50.0 + 18.0 * (i / 4) as f64;
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{:.1}" width="12" height="4" fill="{}"/><text x="{:.1}" y="{y:.1}" class="label">{}</text>"#,
            y - 5.0,
            colour(&s.color),
            x + 16.0,
            escape(&s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names_in_charts_are_escaped_and_colours_checked() {
        let svg = bar_chart(
            "Tags",
            "tickets",
            &[Bar {
                label: "<script>alert(1)</script>".into(),
                value: 3.0,
                color: "red\" onload=\"x".into(),
            }],
        );
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        assert!(!svg.contains("onload"));
        let lines = line_chart(
            "Volume",
            "tickets",
            &["2026-03-01".into(), "2026-03-02".into()],
            &[Series {
                name: "a&b".into(),
                color: "#123456".into(),
                values: vec![1.0, 4.0],
            }],
        );
        assert!(lines.contains("a&amp;b"));
        assert!(lines.contains("#123456"));
    }

    #[test]
    fn xy_points_sit_where_their_values_say() {
        let svg = xy_chart(
            "Curve <b>",
            "labels",
            "macro-F1",
            &[XySeries {
                name: "ngram".into(),
                color: "#2563eb".into(),
                points: vec![(0.0, 0.0), (50.0, 0.5), (100.0, 1.0)],
            }],
        );
        // x axis 0..100 over 640 px from 56; y axis 0..1 over 220 px from 12.
        assert!(
            svg.contains(r#"points="56.0,232.0 376.0,122.0 696.0,12.0""#),
            "{svg}"
        );
        assert!(svg.contains("Curve &lt;b&gt;"));
        assert!(svg.contains("ngram: 0.50 at 50"));
    }

    #[test]
    fn ticks_in_quarters_are_labelled_exactly() {
        assert_eq!(tick_label(0.25, 0.25), "0.25");
        assert_eq!(tick_label(0.75, 0.25), "0.75");
        assert_eq!(tick_label(1.0, 0.25), "1.00");
        assert_eq!(tick_label(5.0, 2.5), "5.0");
        assert_eq!(tick_label(40.0, 10.0), "40");
        assert_eq!(tick_label(0.3, 0.1), "0.3");
        // A chart whose values reach 0.83 is drawn on quarters, each labelled as such.
        let svg = line_chart(
            "Share",
            "share",
            &["2026-03-01".into(), "2026-03-02".into()],
            &[Series {
                name: "a".into(),
                color: "#123456".into(),
                values: vec![0.5, 0.83],
            }],
        );
        for label in [">0.25<", ">0.50<", ">0.75<", ">1.00<"] {
            assert!(svg.contains(label), "{label} missing: {svg}");
        }
        assert!(!svg.contains(">0.2<") && !svg.contains(">0.8<"), "{svg}");
    }

    #[test]
    fn dots_at_the_same_place_are_drawn_side_by_side() {
        // Two versions trained on 100 labels with the same macro-F1, and an accuracy equal to
        // it: three dots at one place.
        let svg = xy_chart(
            "Curve",
            "labels",
            "figure",
            &[
                XySeries {
                    name: "macro-F1".into(),
                    color: "#2563eb".into(),
                    points: vec![(100.0, 0.5), (100.0, 0.5), (200.0, 0.9)],
                },
                XySeries {
                    name: "accuracy".into(),
                    color: "#16a34a".into(),
                    points: vec![(100.0, 0.5)],
                },
            ],
        );
        let centres: Vec<&str> = svg
            .match_indices("<circle cx=\"")
            .map(|(at, _)| {
                let rest = &svg[at + 12..];
                &rest[..rest.find('"').unwrap()]
            })
            .collect();
        assert_eq!(centres.len(), 4);
        let mut distinct = centres.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "stacked dots: {centres:?}");
        // A lone dot stays where its value says: x 200 of 0..250 over 640 px from 56.
        assert!(centres.contains(&"568.0"), "{centres:?}");
    }

    #[test]
    fn axes_use_round_steps() {
        assert_eq!(nice_scale(37.0, 4), (40.0, 10.0));
        assert_eq!(nice_scale(0.83, 4), (1.0, 0.25));
        assert_eq!(nice_scale(0.0, 4), (1.0, 0.25));
    }
}
