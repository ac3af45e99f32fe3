//! The scheduler: turns schedules into queued backups, and watches health.
//!
//! A schedule's slots are its cron occurrences in the site's time zone
//! (`daily` is `0 0 * * *`, `weekly` `0 0 * * 1`, `monthly` `0 0 1 * *`),
//! each shifted by the site's jitter: a fixed offset in `[0, window)`
//! derived from the site's id, so a thousand daily sites do not start in the
//! same second, and a site always starts at the same time of day.
//!
//! On each tick, a site whose next slot (plus jitter) has passed gets one
//! backup queued — one, however many slots passed while the service was
//! down; those are reported as missed. A site is stale when its newest
//! completed backup is older than `stale_factor` × its schedule's period.
//! The repository is pruned on its own schedule (daily by default).

use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};

use super::Service;
use crate::catalog::{Backend, REPOSITORY_LANE, ScheduleOverview};
use crate::domain::{BackupEvent, Frequency, JobRequest, SiteId, Trigger, cron};
use crate::error::Result;

/// When verification runs unless told otherwise.
pub const DEFAULT_VERIFY_CRON: &str = "0 12 * * 6";

/// The scheduler state key of the fleet-wide verification.
const VERIFY_LANE: &str = "verification";

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How often it looks at schedules.
    pub tick: Duration,
    /// Sites start within this window after their slot.
    pub jitter_window: Duration,
    /// A site is stale past this many periods without a completed backup.
    pub stale_factor: f64,
    /// When to prune the repository (`None`: never, automatically).
    pub prune: Option<Frequency>,
    /// When to verify, deeply, each site's newest completed backup
    /// (`None`: never, automatically).
    pub verify: Option<Frequency>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            tick: Duration::from_secs(30),
            jitter_window: Duration::from_secs(3600),
            stale_factor: 1.5,
            prune: Some(Frequency::Daily),
            // Saturday noon UTC: away from the nightly backups.
            verify: Some(Frequency::Cron(DEFAULT_VERIFY_CRON.into())),
        }
    }
}

/// The site's fixed offset within the jitter window.
pub fn jitter(key: &str, window: Duration) -> SignedDuration {
    let window = window.as_secs().max(1);
    let hash = blake3::hash(key.as_bytes());
    let n = u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"));
    SignedDuration::from_secs((n % window) as i64)
}

fn cron_of(frequency: &Frequency) -> String {
    match frequency {
        Frequency::Daily => "0 0 * * *".into(),
        Frequency::Weekly => "0 0 * * 1".into(),
        Frequency::Monthly => "0 0 1 * *".into(),
        Frequency::Cron(expr) => expr.clone(),
    }
}

/// Cron expressions parsed once per scheduler pass: thousands of sites
/// share a handful of expressions.
#[derive(Default)]
struct Crons(std::collections::HashMap<String, croner::Cron>);

impl Crons {
    /// Slots of `frequency` in `tz` after `after` up to `until`: the latest
    /// one and how many there were (at most a bounded number are walked).
    fn due_slots(
        &mut self,
        frequency: &Frequency,
        tz: &str,
        after: Timestamp,
        until: Timestamp,
    ) -> Result<(Option<Timestamp>, u32)> {
        let expr = cron_of(frequency);
        let parsed = self.parsed(&expr)?;
        let mut latest = None;
        let mut count = 0u32;
        let mut cursor = after;
        while count < 10_000 {
            let next = cron::next_after_parsed(parsed, &expr, cursor, tz)?;
            if next > until {
                break;
            }
            latest = Some(next);
            count += 1;
            cursor = next;
        }
        Ok((latest, count))
    }

    /// [`Frequency::period_hours`] without parsing the expression again.
    fn period_hours(&mut self, frequency: &Frequency, from: Timestamp) -> Option<i64> {
        match frequency {
            Frequency::Cron(expr) => {
                let parsed = self.parsed(expr).ok()?;
                cron::period_hours_parsed(parsed, expr, from)
            }
            preset => preset.period_hours(from),
        }
    }

    fn parsed(&mut self, expr: &str) -> Result<&croner::Cron> {
        Ok(match self.0.entry(expr.to_string()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(cron::parse(expr)?),
        })
    }
}

/// One site's share of a scheduler pass, computed before any catalog write.
struct SiteTurn {
    site: ScheduleOverview,
    /// The latest due slot, and how many slots were due.
    due: (Option<Timestamp>, u32),
    /// The schedule's nominal period, for the staleness check.
    period_hours: Option<i64>,
}

impl Service {
    /// One scheduler pass (the service calls it every tick; tests call it
    /// with a hand-moved clock).
    pub async fn scheduler_tick(&self) -> Result<()> {
        let now = self.now();
        let window = self.config.scheduler.jitter_window;
        let catalog = self.orchestrator.catalog();
        let mut crons = Crons::default();
        let mut turns = Vec::new();
        for site in catalog.schedule_overview().await? {
            // Slots are compared without their jitter: a slot is due once
            // its time plus the site's offset has passed.
            let offset = jitter(&site.schedule.site_id.to_string(), window);
            let since = site.state.last_slot_at.unwrap_or(site.schedule.created_at);
            let frequency = &site.schedule.frequency;
            match crons.due_slots(frequency, &site.timezone, since, now - offset) {
                Ok(due) => turns.push(SiteTurn {
                    period_hours: crons.period_hours(frequency, now),
                    due,
                    site,
                }),
                Err(e) => tracing::error!("scheduler: site {}: {e}", site.schedule.site_id),
            }
        }
        // Sites are independent. PostgreSQL commits several sites' changes
        // side by side (each commit waits for its disk); SQLite has one
        // writer anyway.
        let side_by_side = match catalog.backend() {
            Backend::Postgres => 4,
            Backend::Sqlite => 1,
        };
        futures::stream::iter(turns)
            .for_each_concurrent(side_by_side, |turn| async move {
                // One site's trouble must not hold up the others' schedules.
                if let Err(e) = self.schedule_site(&turn, now).await {
                    tracing::error!("scheduler: site {}: {e}", turn.site.schedule.site_id);
                }
            })
            .await;
        if let Some(prune) = &self.config.scheduler.prune
            && self
                .repository_slot(REPOSITORY_LANE, prune, now, window, &mut crons)
                .await?
        {
            self.enqueue(&JobRequest::Prune, None, "scheduler").await?;
        }
        if let Some(verify) = &self.config.scheduler.verify
            && self
                .repository_slot(VERIFY_LANE, verify, now, window, &mut crons)
                .await?
        {
            for backup in catalog.newest_completed_backups().await? {
                let request = JobRequest::Verify {
                    backup: backup.id,
                    deep: true,
                };
                if let Err(e) = self
                    .enqueue(&request, Some(backup.site_id), "scheduler")
                    .await
                {
                    tracing::error!("scheduler: cannot queue verification of {}: {e}", backup.id);
                }
            }
        }
        Ok(())
    }

    /// Whether a slot of a fleet-wide task (prune, verification) is due and
    /// this process claimed it. The first pass only starts the clock.
    async fn repository_slot(
        &self,
        lane: &str,
        frequency: &Frequency,
        now: Timestamp,
        window: Duration,
        crons: &mut Crons,
    ) -> Result<bool> {
        let catalog = self.orchestrator.catalog();
        let Some(since) = catalog.schedule_state(lane).await?.last_slot_at else {
            catalog.claim_slot(lane, None, now, 0).await?;
            return Ok(false);
        };
        let (latest, _) = crons.due_slots(frequency, "UTC", since, now - jitter(lane, window))?;
        Ok(match latest {
            Some(slot) => catalog.claim_slot(lane, Some(since), slot, 0).await?,
            None => false,
        })
    }

    /// Queue the site's backup if a slot is due, and judge its health.
    async fn schedule_site(&self, turn: &SiteTurn, now: Timestamp) -> Result<()> {
        let site = &turn.site;
        let schedule = &site.schedule;
        let key = schedule.site_id.to_string();
        let (latest, count) = turn.due;
        if let Some(slot) = latest
            && self
                .orchestrator
                .catalog()
                .claim_slot(&key, site.state.last_slot_at, slot, count - 1)
                .await?
        {
            self.enqueue_backup(&key, schedule.configuration, Trigger::Schedule, "scheduler")
                .await?;
            if count > 1 {
                self.orchestrator
                    .record_event(BackupEvent::ScheduleMissed {
                        site_id: schedule.site_id,
                        missed_slots: count - 1,
                        last_slot_at: slot,
                    })
                    .await?;
            }
        }
        // A site never backed up is judged from when it got its schedule.
        let reference = site.newest_completed.unwrap_or(schedule.created_at);
        self.check_stale(site, turn.period_hours, reference, now)
            .await
    }

    /// Mark the site stale (raising an event) or healthy again.
    async fn check_stale(
        &self,
        site: &ScheduleOverview,
        period_hours: Option<i64>,
        reference: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        let Some(period) = period_hours else {
            return Ok(());
        };
        let allowed = SignedDuration::from_secs_f64(
            period as f64 * 3600.0 * self.config.scheduler.stale_factor,
        );
        let stale = now.duration_since(reference) > allowed;
        let key = site.schedule.site_id.to_string();
        match (stale, site.state.stale_since) {
            (true, None) => {
                self.orchestrator
                    .catalog()
                    .set_stale(&key, Some(now))
                    .await?;
                self.orchestrator
                    .record_event(BackupEvent::SiteStale {
                        site_id: site.schedule.site_id,
                        last_backup_at: site.newest_completed,
                        period_hours: period,
                    })
                    .await?;
            }
            (false, Some(_)) => self.orchestrator.catalog().set_stale(&key, None).await?,
            _ => {}
        }
        Ok(())
    }

    /// Sites currently stale.
    pub async fn stale_sites(&self) -> Result<Vec<SiteId>> {
        let stale = self.orchestrator.catalog().stale_sites().await?;
        Ok(stale.into_iter().map(|(id, _)| id).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_stable_and_bounded() {
        let w = Duration::from_secs(3600);
        let a = jitter("01JD3SITEA", w);
        assert_eq!(a, jitter("01JD3SITEA", w));
        let spread: std::collections::HashSet<i64> = (0..1000)
            .map(|i| jitter(&format!("site-{i}"), w).as_secs())
            .collect();
        assert!(spread.iter().all(|s| (0..3600).contains(s)));
        assert!(spread.len() > 600, "offsets spread over the window");
    }

    #[test]
    fn catch_up_counts_missed_slots() {
        let after: Timestamp = "2026-11-20T12:00:00Z".parse().unwrap();
        let until: Timestamp = "2026-11-24T06:00:00Z".parse().unwrap();
        let (latest, count) = Crons::default()
            .due_slots(&Frequency::Daily, "UTC", after, until)
            .unwrap();
        assert_eq!(count, 4, "21st, 22nd, 23rd, 24th at midnight");
        assert_eq!(latest.unwrap().to_string(), "2026-11-24T00:00:00Z");
        let (none, zero) = Crons::default()
            .due_slots(
                &Frequency::Weekly,
                "UTC",
                after,
                "2026-11-22T00:00:00Z".parse().unwrap(),
            )
            .unwrap();
        assert!(none.is_none() && zero == 0);
        // Midnight in Tokyo is 15:00 UTC the day before.
        let (tokyo, _) = Crons::default()
            .due_slots(
                &Frequency::Daily,
                "Asia/Tokyo",
                after,
                "2026-11-21T00:00:00Z".parse().unwrap(),
            )
            .unwrap();
        assert_eq!(tokyo.unwrap().to_string(), "2026-11-20T15:00:00Z");
    }
}
