//! Durations on the command line (`--timeout 30s`, `1m30s`, `500ms`) and in
//! output (`85 ms`, `1.3 s`). The units are those `flashgate serve` takes for
//! its own durations, such as `--standby-timeout 5s`.

use std::time::Duration;

/// Parses a duration written as one or more `<integer><unit>` parts, the unit
/// one of `ms`, `s`, `m`, `h`: `30s`, `500ms`, `1m30s`. A bare number is
/// refused, since its unit would be a guess.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let example = "write it as 30s, 500ms, 2m or 1m30s";
    if text.is_empty() {
        return Err(format!("the duration is empty; {example}"));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("{text:?} is not a duration; {example}"));
        }
        let (number, after) = rest.split_at(digits);
        let unit_length = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_length);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("{text:?}: {number} is too large"))?;
        let part = match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            "" => return Err(format!("{text:?} has no unit; {example}")),
            other => return Err(format!("{text:?}: unknown unit {other:?}; {example}")),
        };
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("{text:?} is too long"))?;
        rest = next;
    }
    Ok(total)
}

/// A duration for a person: milliseconds below a second (`85 ms`), seconds
/// with one decimal above (`1.3 s`).
pub fn show_duration(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_their_sums() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration(" 1m30s "), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1s250ms"), Ok(Duration::from_millis(1250)));
    }

    #[test]
    fn a_duration_without_a_known_unit_is_refused_with_an_example() {
        for bad in [
            "",
            "30",
            "30 s",
            "s",
            "3x",
            "1.5s",
            "-1s",
            "99999999999999999999s",
        ] {
            let error = parse_duration(bad).unwrap_err();
            assert!(
                error.contains("30s") || error.contains("too large"),
                "{bad:?}: {error}"
            );
        }
    }

    #[test]
    fn shown_in_the_unit_a_person_reads_best() {
        assert_eq!(show_duration(Duration::from_millis(85)), "85 ms");
        assert_eq!(show_duration(Duration::from_millis(1250)), "1.2 s");
        assert_eq!(show_duration(Duration::from_secs(30)), "30.0 s");
    }
}
