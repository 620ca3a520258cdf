//! Test-only fault points, compiled only into debug builds
//! (`#[cfg(debug_assertions)]`): a release binary has none of them.
//!
//! `FLASHGATE_FAULT_PANIC=POINT:N` makes the thread at `POINT` panic once it has
//! handled `N` records: `log_writer` (the group-commit writer thread, counting
//! records written) or `shard` (every shard actor, counting events each appended).
//! The black-box tests use it to prove that a panicking thread stops the whole
//! process instead of leaving a node that looks ready and answers nothing.

/// The environment variable that arms a panic fault point.
pub const PANIC_ENV: &str = "FLASHGATE_FAULT_PANIC";

/// After how many records the thread at `point` panics, if `value` (the
/// variable's value, `POINT:N` or `POINT` for N = 0) names that point.
pub fn parse_panic_after(value: &str, point: &str) -> Option<u64> {
    let (name, count) = match value.split_once(':') {
        Some((name, count)) => (name, count.trim().parse().ok()?),
        None => (value, 0),
    };
    (name.trim() == point).then_some(count)
}

/// Reads `PANIC_ENV` once, at the start of the thread that checks it.
pub fn panic_after(point: &str) -> Option<u64> {
    let value = std::env::var(PANIC_ENV).ok()?;
    let after = parse_panic_after(&value, point);
    if after.is_some() {
        tracing::warn!(point, value, "fault point armed: this thread will panic");
    }
    after
}

#[cfg(test)]
mod tests {
    use super::parse_panic_after;

    #[test]
    fn a_fault_point_is_armed_only_for_its_own_name() {
        assert_eq!(parse_panic_after("log_writer:25", "log_writer"), Some(25));
        assert_eq!(parse_panic_after("log_writer", "log_writer"), Some(0));
        assert_eq!(parse_panic_after("shard:3", "log_writer"), None);
        assert_eq!(parse_panic_after("log_writer:many", "log_writer"), None);
    }
}
