//! Cron expressions (`croner`), in a site's time zone.
//!
//! croner works on jiff 0.2 date-times; this module is the one place that
//! converts from and to the jiff 1 timestamps used everywhere else.

use jiff::Timestamp;

use super::DomainError;

/// Parse a cron expression, with a clear error.
pub fn parse(expr: &str) -> Result<croner::Cron, DomainError> {
    expr.parse::<croner::Cron>().map_err(|e| {
        DomainError::new(
            "frequency",
            format!("{expr:?} is neither daily, weekly, monthly nor a valid cron expression ({e})"),
        )
    })
}

/// The first time strictly after `after` that `expr` fires, in time zone `tz`.
pub fn next_after(expr: &str, after: Timestamp, tz: &str) -> Result<Timestamp, DomainError> {
    next_after_parsed(&parse(expr)?, expr, after, tz)
}

/// The gap in hours (at least one) between the next two runs of a parsed
/// expression after `from`: a cron schedule's nominal period, for health
/// checks.
pub fn period_hours_parsed(cron: &croner::Cron, expr: &str, from: Timestamp) -> Option<i64> {
    let a = next_after_parsed(cron, expr, from, "UTC").ok()?;
    let b = next_after_parsed(cron, expr, a, "UTC").ok()?;
    Some(b.duration_since(a).as_hours().max(1))
}

/// [`next_after`] for an expression parsed once (the scheduler walks many
/// sites sharing a few expressions).
pub fn next_after_parsed(
    cron: &croner::Cron,
    expr: &str,
    after: Timestamp,
    tz: &str,
) -> Result<Timestamp, DomainError> {
    let bad_time = |e: jiff02::Error| {
        DomainError::new("frequency", format!("cannot compute the next run: {e}"))
    };
    let start = jiff02::Timestamp::from_nanosecond(after.as_nanosecond())
        .map_err(bad_time)?
        .in_tz(tz)
        .map_err(|_| DomainError::new("timezone", format!("unknown time zone {tz:?}")))?;
    let next = cron.find_next_occurrence(&start, false).map_err(|e| {
        DomainError::new(
            "frequency",
            format!("{expr:?} never fires after {after}: {e}"),
        )
    })?;
    Timestamp::from_nanosecond(next.timestamp().as_nanosecond())
        .map_err(|e| DomainError::new("frequency", format!("next run out of range: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_runs_in_the_site_zone() {
        let at: Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
        assert_eq!(
            next_after("0 3 * * *", at, "UTC").unwrap().to_string(),
            "2026-11-27T03:00:00Z"
        );
        // 03:00 in Paris (UTC+1 in November) is 02:00 UTC.
        assert_eq!(
            next_after("0 3 * * *", at, "Europe/Paris")
                .unwrap()
                .to_string(),
            "2026-11-27T02:00:00Z"
        );
        assert!(parse("61 * * * *").is_err());
        assert!(next_after("0 3 * * *", at, "Mars/Olympus").is_err());
    }
}
