//! Histograms read back from the node's own Prometheus exposition (the
//! recorder's handles cannot be read in process): the cumulative buckets of
//! the series a filter selects, summed, and the quantiles of what a window
//! added, interpolated within a bucket as Prometheus' `histogram_quantile`
//! does. Pure: text in, numbers out.

/// Cumulative bucket counts by upper bound (`le`), ascending, with `+Inf`
/// last; plus the sum and count of the observations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Buckets {
    pub bounds: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl Buckets {
    /// What was added since `earlier` (the same series read before); a
    /// counter that went down (a restart of the recorder) counts from zero.
    pub fn since(&self, earlier: &Buckets) -> Buckets {
        let before = |le: f64| {
            earlier
                .bounds
                .iter()
                .find(|(bound, _)| *bound == le)
                .map_or(0.0, |(_, count)| *count)
        };
        let bounds = self
            .bounds
            .iter()
            .map(|(le, count)| (*le, (count - before(*le)).max(0.0)))
            .collect();
        Buckets {
            bounds,
            sum: (self.sum - earlier.sum).max(0.0),
            count: (self.count - earlier.count).max(0.0),
        }
    }

    /// The `q` quantile (0..=1), `None` without observations. Within a
    /// bucket the observations are taken as spread evenly; past the last
    /// finite bound the answer is that bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.bounds.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total;
        let mut lower = (0.0, 0.0);
        for &(le, count) in &self.bounds {
            if count >= rank {
                if le.is_infinite() {
                    return Some(lower.0);
                }
                let in_bucket = count - lower.1;
                if in_bucket <= 0.0 {
                    return Some(le);
                }
                return Some(lower.0 + (le - lower.0) * (rank - lower.1) / in_bucket);
            }
            lower = (le, count);
        }
        Some(lower.0)
    }

    /// The mean observation, `None` without observations.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }
}

/// A sample's labels, `(name, value)` in the order written.
type Labels<'a> = Vec<(&'a str, &'a str)>;

/// One sample line of the exposition: name, labels, value.
fn sample_line(line: &str) -> Option<(&str, Labels<'_>, f64)> {
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        other => other.parse().ok()?,
    };
    let (name, labels) = match head.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (head, ""),
    };
    let mut pairs = Vec::new();
    // Label values written by this node hold no `",` sequence (routes,
    // codes, SKU ids), so splitting on it is exact here.
    for pair in labels.split("\",").filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once("=\"")?;
        pairs.push((key.trim_start_matches(','), value.trim_end_matches('"')));
    }
    Some((name, pairs, value))
}

/// The histogram `name`, summed over the series whose labels `select`
/// accepts (labels without `le`).
pub fn read(text: &str, name: &str, select: impl Fn(&[(&str, &str)]) -> bool) -> Buckets {
    let bucket_name = format!("{name}_bucket");
    let sum_name = format!("{name}_sum");
    let count_name = format!("{name}_count");
    let mut buckets = Buckets::default();
    for line in text.lines() {
        let Some((metric, labels, value)) = sample_line(line) else {
            continue;
        };
        if metric == bucket_name {
            let Some(le) = labels.iter().find(|(key, _)| *key == "le") else {
                continue;
            };
            let le = match le.1 {
                "+Inf" => f64::INFINITY,
                other => match other.parse::<f64>() {
                    Ok(bound) => bound,
                    Err(_) => continue,
                },
            };
            let rest: Vec<(&str, &str)> = labels.into_iter().filter(|(k, _)| *k != "le").collect();
            if !select(&rest) {
                continue;
            }
            match buckets.bounds.iter_mut().find(|(bound, _)| *bound == le) {
                Some((_, count)) => *count += value,
                None => buckets.bounds.push((le, value)),
            }
        } else if metric == sum_name || metric == count_name {
            if !select(&labels) {
                continue;
            }
            if metric == sum_name {
                buckets.sum += value;
            } else {
                buckets.count += value;
            }
        }
    }
    buckets.bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE flashgate_http_request_duration_seconds histogram
flashgate_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/orders\",status=\"201\",le=\"0.001\"} 50
flashgate_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/orders\",status=\"201\",le=\"0.01\"} 90
flashgate_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/orders\",status=\"201\",le=\"+Inf\"} 100
flashgate_http_request_duration_seconds_sum{method=\"POST\",route=\"/v1/orders\",status=\"201\"} 0.5
flashgate_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/orders\",status=\"201\"} 100
flashgate_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/skus\",status=\"200\",le=\"0.001\"} 7
flashgate_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/skus\",status=\"200\",le=\"0.01\"} 7
flashgate_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/skus\",status=\"200\",le=\"+Inf\"} 7
flashgate_log_batch_records_bucket{le=\"1\"} 3
flashgate_log_batch_records_bucket{le=\"+Inf\"} 4
flashgate_log_batch_records_sum 10
flashgate_log_batch_records_count 4
";

    fn orders(labels: &[(&str, &str)]) -> bool {
        labels.contains(&("route", "/v1/orders")) && labels.contains(&("method", "POST"))
    }

    /// The selected series only, their buckets summed; quantiles interpolate
    /// within a bucket; a window's quantile is of what it added.
    #[test]
    fn reads_the_selected_series_and_interpolates_quantiles() {
        let buckets = read(TEXT, "flashgate_http_request_duration_seconds", orders);
        assert_eq!(
            buckets.bounds,
            vec![(0.001, 50.0), (0.01, 90.0), (f64::INFINITY, 100.0)]
        );
        assert_eq!(buckets.count, 100.0);
        assert_eq!(buckets.quantile(0.5), Some(0.001));
        let p70 = buckets.quantile(0.7).unwrap();
        assert!((p70 - 0.0055).abs() < 1e-9, "{p70}");
        // Past the last finite bound: that bound.
        assert_eq!(buckets.quantile(0.99), Some(0.01));
        let earlier = Buckets {
            bounds: vec![(0.001, 50.0), (0.01, 50.0), (f64::INFINITY, 50.0)],
            sum: 0.1,
            count: 50.0,
        };
        let window = buckets.since(&earlier);
        let p50 = window.quantile(0.5).unwrap();
        assert!((p50 - 0.006625).abs() < 1e-9, "{p50}");
        assert_eq!(Buckets::default().quantile(0.5), None);
        assert_eq!(window.since(&window).quantile(0.5), None);
        let batches = read(TEXT, "flashgate_log_batch_records", |_| true);
        assert_eq!(batches.mean(), Some(2.5));
    }
}
