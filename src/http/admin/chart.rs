//! The dashboard's chart of the last 24 hours, drawn on the server as SVG (no script):
//! the backlog (rows queued, all kinds) and the rows delivered, per sampled minute
//! (`store::backlog::history`). Two panels share the time axis, each scaled to its own
//! maximum, because a backlog of a million rows would flatten a few hundred deliveries a
//! minute to nothing.

use std::time::Duration;

use time::OffsetDateTime;

use crate::store::backlog::Minute;

/// The span the chart shows.
pub const SPAN: Duration = Duration::from_secs(24 * 3600);

const WIDTH: f64 = 720.0;
const LEFT: f64 = 8.0;
const RIGHT: f64 = WIDTH - 8.0;
const PANEL_HEIGHT: f64 = 80.0;
/// Where each panel's plot starts; the title sits above it.
const PANEL_TOPS: [f64; 2] = [22.0, 136.0];
const HEIGHT: f64 = 236.0;
/// Samples further apart than this are drawn as separate lines: no worker sampled the
/// minutes between, and a line across them would invent values.
const GAP: Duration = Duration::from_secs(150);

/// A panel's title, CSS class and the value it plots.
type Series = (&'static str, &'static str, fn(&Minute) -> i64);

/// What the template draws; every coordinate already computed.
#[derive(Debug, Clone, PartialEq)]
pub struct BacklogChart {
    pub width: f64,
    pub height: f64,
    pub samples: usize,
    pub panels: Vec<Panel>,
    /// `(x, label)` along the bottom: every six hours back from now.
    pub ticks: Vec<(f64, &'static str)>,
    pub axis_y: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub title: &'static str,
    /// `backlog` or `delivered`: the CSS class of its lines.
    pub class: &'static str,
    pub max: i64,
    pub title_y: f64,
    pub top: f64,
    pub bottom: f64,
    pub left: f64,
    pub right: f64,
    /// `points` attributes of the polylines, `x,y x,y ...`.
    pub lines: Vec<String>,
    /// Lone samples (no neighbour within the gap): drawn as dots.
    pub dots: Vec<(String, String)>,
}

impl BacklogChart {
    /// The chart of `minutes` (oldest first) in the day before `now`.
    pub fn new(minutes: &[Minute], now: OffsetDateTime) -> Self {
        let start = now - SPAN;
        let shown: Vec<&Minute> = minutes
            .iter()
            .filter(|m| m.at >= start && m.at <= now)
            .collect();
        let x_of = |at: OffsetDateTime| {
            let share = (at - start).as_seconds_f64() / SPAN.as_secs_f64();
            LEFT + share.clamp(0.0, 1.0) * (RIGHT - LEFT)
        };
        let series: [Series; 2] = [
            ("Backlog (rows queued)", "backlog", |m| {
                m.users + m.events + m.transactions
            }),
            ("Delivered per minute", "delivered", |m| m.delivered),
        ];
        let panels = series
            .iter()
            .zip(PANEL_TOPS)
            .map(|((title, class, value), top)| panel(title, class, top, &shown, &x_of, *value))
            .collect();
        let ticks = [
            (0.0, "24 h ago"),
            (0.25, "18 h"),
            (0.5, "12 h"),
            (0.75, "6 h"),
            (1.0, "now"),
        ]
        .into_iter()
        .map(|(share, label)| (LEFT + share * (RIGHT - LEFT), label))
        .collect();
        BacklogChart {
            width: WIDTH,
            height: HEIGHT,
            samples: shown.len(),
            panels,
            ticks,
            axis_y: HEIGHT - 4.0,
        }
    }
}

fn panel(
    title: &'static str,
    class: &'static str,
    top: f64,
    minutes: &[&Minute],
    x_of: &dyn Fn(OffsetDateTime) -> f64,
    value: fn(&Minute) -> i64,
) -> Panel {
    let bottom = top + PANEL_HEIGHT;
    let max = minutes.iter().map(|m| value(m).max(0)).max().unwrap_or(0);
    let y_of = |v: i64| {
        if max == 0 {
            bottom
        } else {
            bottom - (v.max(0) as f64 / max as f64) * PANEL_HEIGHT
        }
    };
    let mut segments: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut previous: Option<OffsetDateTime> = None;
    for m in minutes {
        let point = (x_of(m.at), y_of(value(m)));
        match (previous, segments.last_mut()) {
            (Some(p), Some(segment)) if (m.at - p).unsigned_abs() <= GAP => segment.push(point),
            _ => segments.push(vec![point]),
        }
        previous = Some(m.at);
    }
    let format = |(x, y): (f64, f64)| format!("{x:.1},{y:.1}");
    let (lines, dots): (Vec<_>, Vec<_>) = segments.into_iter().partition(|s| s.len() > 1);
    Panel {
        title,
        class,
        max,
        title_y: top - 6.0,
        top,
        bottom,
        left: LEFT,
        right: RIGHT,
        lines: lines
            .into_iter()
            .map(|s| s.into_iter().map(format).collect::<Vec<_>>().join(" "))
            .collect(),
        dots: dots
            .into_iter()
            .flatten()
            .map(|(x, y)| (format!("{x:.1}"), format!("{y:.1}")))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn minute(at: OffsetDateTime, queued: i64, delivered: i64) -> Minute {
        Minute {
            at,
            users: queued,
            events: 0,
            transactions: 0,
            delivered,
        }
    }

    #[test]
    fn samples_are_placed_on_the_day_and_scaled_to_each_panels_maximum() {
        let now = datetime!(2026-11-30 12:00 UTC);
        let minutes = [
            minute(now - Duration::from_secs(24 * 3600 + 60), 999, 999), // too old
            minute(now - Duration::from_secs(12 * 3600), 0, 50),
            minute(now - Duration::from_secs(12 * 3600 - 60), 500, 100),
            minute(now - Duration::from_secs(12 * 3600 - 120), 1000, 0),
            // An hour without samples, then one lone minute.
            minute(now, 250, 25),
        ];
        let chart = BacklogChart::new(&minutes, now);
        assert_eq!(chart.samples, 4);
        let [backlog, delivered] = &chart.panels[..] else {
            panic!("two panels")
        };
        assert_eq!((backlog.max, delivered.max), (1000, 100));
        let mid = LEFT + 0.5 * (RIGHT - LEFT);
        let step = (RIGHT - LEFT) * 60.0 / SPAN.as_secs_f64();
        let (top, bottom) = (backlog.top, backlog.bottom);
        assert_eq!(
            backlog.lines,
            vec![format!(
                "{mid:.1},{bottom:.1} {:.1},{:.1} {:.1},{top:.1}",
                mid + step,
                bottom - PANEL_HEIGHT / 2.0,
                mid + 2.0 * step
            )]
        );
        assert_eq!(
            backlog.dots,
            vec![(
                format!("{RIGHT:.1}"),
                format!("{:.1}", bottom - PANEL_HEIGHT / 4.0)
            )]
        );
        let d_top = delivered.top;
        assert!(delivered.lines[0].contains(&format!("{:.1},{d_top:.1}", mid + step)));
    }

    #[test]
    fn no_samples_draw_nothing() {
        let chart = BacklogChart::new(&[], datetime!(2026-11-30 12:00 UTC));
        assert_eq!(chart.samples, 0);
        assert!(
            chart
                .panels
                .iter()
                .all(|p| p.lines.is_empty() && p.dots.is_empty())
        );
    }
}
