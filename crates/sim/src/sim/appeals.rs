//! Appeals in the simulation: restricted owners who did not lift the restriction with the
//! code appeal it; simulated reviewers claim appeals from one queue during their working
//! hours and decide them, now and then wrongly; an appeal still undecided at the policy's
//! deadline escalates (and lifts, if the policy says so). Everything runs on the
//! simulation's clock and event queue, and every draw comes from streams of its own, so a
//! run where nobody appeals sends exactly the payments it sent before appeals existed.

use super::{rng_for, EventKind, Simulation};
use crate::clock::{DAY_MS, HOUR_MS, MINUTE_MS};
use crate::driver::{AppealTerms, Driver};
use crate::report::{AppealRecord, Recovery};
use crate::world::UserClass;
use crate::RunConfig;
use crate::SimError;
use std::collections::VecDeque;

/// Random stream of the owners' choice to appeal (per restricting payment).
const FILING_STREAM: u64 = 18;
/// Random stream of a review's length and correctness (per appeal).
const REVIEW_STREAM: u64 = 19;

/// One appeal, as the simulation follows it.
#[derive(Debug, Clone)]
struct Case {
    user: u32,
    /// Filed by an honest owner: the right outcome is an overturn.
    honest: bool,
    /// The service's id of the appeal.
    service_id: String,
    /// Its entry in the tally, when filed in the measured days.
    record: Option<usize>,
    decided: bool,
    /// The reviewer gets this one wrong.
    wrong: bool,
}

/// The review desk: the queue, the reviewers and the policy's terms.
#[derive(Debug, Default)]
pub(super) struct Desk {
    /// Read from the driver's policy at the first appeal.
    terms: Option<AppealTerms>,
    cases: Vec<Case>,
    /// Filed and not yet claimed, oldest first.
    waiting: VecDeque<u32>,
    /// When each reviewer is free again.
    busy_until_ms: Vec<i64>,
    /// A dispatch already queued for the next shift's start.
    dispatch_at_ms: Option<i64>,
}

impl<'a> Simulation<'a> {
    /// A restriction was imposed on `user`'s line by payment `plan_id` and its owner will
    /// not lift it with the code: they may appeal it a while later.
    pub(super) fn maybe_appeal(&mut self, user: u32, plan_id: u64, now_ms: i64) {
        let config: &'a RunConfig = self.config;
        let mix = &config.mix;
        let honest = self.world.users[user as usize].class == UserClass::Honest;
        let share = if honest { mix.honest.appeal_prob } else { mix.adversaries.restricted_fraudster_appeal_prob };
        let mut rng = rng_for(self.config.seed, FILING_STREAM, plan_id);
        if share <= 0.0 || rng.f64() >= share {
            return;
        }
        let [lo, hi] = mix.honest.appeal_after_minutes;
        let at = now_ms + i64::from(rng.u32(lo..=hi.max(lo))) * MINUTE_MS;
        self.push(at, EventKind::Appeal(user));
    }

    /// The owner files their appeal, if the line is still restricted.
    pub(super) fn file_appeal(&mut self, driver: &mut dyn Driver, user: u32, now_ms: i64) -> Result<(), SimError> {
        if self.states[user as usize].restricted_until_ms <= now_ms {
            // Lifted or run out before they wrote.
            return Ok(());
        }
        let Some(service_id) = driver.file_appeal(user, now_ms)? else { return Ok(()) };
        let terms = match self.desk.terms {
            Some(terms) => terms,
            None => *self.desk.terms.insert(driver.appeal_terms()?),
        };
        let honest = self.world.users[user as usize].class == UserClass::Honest;
        let deadline_ms = now_ms.saturating_add(terms.deadline_ms);
        let record = (now_ms >= self.measure_from_ms)
            .then(|| self.tally.appeal_filed(AppealRecord::filed(user, honest, now_ms, deadline_ms)));
        let case = self.desk.cases.len() as u32;
        self.desk.cases.push(Case { user, honest, service_id, record, decided: false, wrong: false });
        self.desk.waiting.push_back(case);
        self.push(deadline_ms, EventKind::AppealDeadline(case));
        self.dispatch_appeals(driver, now_ms)
    }

    /// The reviewers' shift at `now_ms`: `Ok(its end)` while one is on, else `Err(when the
    /// next one starts)`.
    fn shift_at(&self, now_ms: i64) -> Result<i64, i64> {
        let r = &self.config.mix.reviewers;
        let first_ms = self.calendar.day(0).start_ms;
        let today = u32::try_from((now_ms - first_ms).div_euclid(DAY_MS)).unwrap_or(0);
        // A week always holds a working day (weekdays at least).
        for d in today..today + 8 {
            let day = self.calendar.day(d);
            let start = day.start_ms + i64::from(r.working_hours[0]) * HOUR_MS;
            let end = day.start_ms + i64::from(r.working_hours[1]) * HOUR_MS;
            if day.weekend && !r.weekends {
                continue;
            }
            if now_ms < start {
                return Err(start);
            }
            if now_ms < end {
                return Ok(end);
            }
        }
        Err(i64::MAX)
    }

    /// The end of the working time that runs on from a shift ending at `end_ms`: a shift
    /// that starts as the last one ends (a team working around the clock) continues it, so a
    /// review may run past midnight. At most a week ahead.
    fn working_until(&self, mut end_ms: i64) -> i64 {
        for _ in 0..7 {
            match self.shift_at(end_ms) {
                Ok(next_end) => end_ms = next_end,
                Err(_) => break,
            }
        }
        end_ms
    }

    /// Queues a dispatch at `at_ms` (the next shift's start), once.
    fn dispatch_later(&mut self, at_ms: i64) {
        if self.desk.dispatch_at_ms != Some(at_ms) && at_ms < i64::MAX {
            self.desk.dispatch_at_ms = Some(at_ms);
            self.push(at_ms, EventKind::AppealDispatch);
        }
    }

    /// Free reviewers claim waiting appeals, oldest first, while their shift leaves time to
    /// review them; what does not fit waits for the next shift.
    pub(super) fn dispatch_appeals(&mut self, driver: &mut dyn Driver, now_ms: i64) -> Result<(), SimError> {
        let config: &'a RunConfig = self.config;
        let r = &config.mix.reviewers;
        if self.desk.busy_until_ms.len() != r.count as usize {
            self.desk.busy_until_ms = vec![i64::MIN; r.count as usize];
        }
        if self.desk.dispatch_at_ms.is_some_and(|at| at <= now_ms) {
            self.desk.dispatch_at_ms = None;
        }
        while let Some(&case) = self.desk.waiting.front() {
            let shift_end = match self.shift_at(now_ms) {
                Ok(end) => self.working_until(end),
                Err(next) => {
                    self.dispatch_later(next);
                    return Ok(());
                }
            };
            // None free: the next decision dispatches again.
            let Some(reviewer) = self.desk.busy_until_ms.iter().position(|b| *b <= now_ms) else { return Ok(()) };
            let mut rng = rng_for(self.config.seed, REVIEW_STREAM, u64::from(case));
            let [lo, hi] = r.minutes_per_appeal;
            let done_ms = now_ms + i64::from(rng.u32(lo..=hi.max(lo))) * MINUTE_MS;
            if done_ms > shift_end {
                let next = self.shift_at(shift_end).map_or_else(|start| start, |_| shift_end);
                self.dispatch_later(next);
                return Ok(());
            }
            self.desk.waiting.pop_front();
            let c = &mut self.desk.cases[case as usize];
            c.wrong = rng.u32(..100) < r.error_rate_pct;
            driver.claim_appeal(&c.service_id, reviewer as u32, now_ms)?;
            if let Some(record) = c.record.and_then(|i| self.tally.appeal_mut(i)) {
                record.claimed_at_ms = Some(now_ms);
            }
            self.desk.busy_until_ms[reviewer] = done_ms;
            self.push(done_ms, EventKind::AppealDecide(case, reviewer as u32));
        }
        Ok(())
    }

    /// Reviewer `reviewer` decides appeal `case`: an overturn lifts the restriction (if
    /// still in force) and pays the policy's compensation.
    pub(super) fn decide_appeal(
        &mut self,
        driver: &mut dyn Driver,
        case: u32,
        reviewer: u32,
        now_ms: i64,
    ) -> Result<(), SimError> {
        let terms = self.desk.terms.ok_or(SimError::Driver("an appeal decided before any was filed".into()))?;
        let c = &mut self.desk.cases[case as usize];
        c.decided = true;
        let (user, overturn, record) = (c.user, c.honest != c.wrong, c.record);
        let lifted = driver.decide_appeal(&c.service_id, user, overturn, now_ms)?;
        self.appeal_lifted(user, lifted, Recovery::Appeal, now_ms);
        if let Some(record) = record.and_then(|i| self.tally.appeal_mut(i)) {
            record.decided_at_ms = Some(now_ms);
            record.overturned = Some(overturn);
            // The service owes compensation on every overturn, lifted or not.
            record.compensation_minor = if overturn { terms.compensation_minor } else { 0 };
        }
        if let Some(busy) = self.desk.busy_until_ms.get_mut(reviewer as usize) {
            *busy = now_ms;
        }
        self.dispatch_appeals(driver, now_ms)
    }

    /// Appeal `case` reached its deadline: if undecided it escalates (it stays in the queue
    /// to be decided) and, under a policy that says so, lifts the restriction.
    pub(super) fn appeal_deadline(&mut self, driver: &mut dyn Driver, case: u32, now_ms: i64) -> Result<(), SimError> {
        let terms = self.desk.terms.ok_or(SimError::Driver("an appeal escalated before any was filed".into()))?;
        let c = &self.desk.cases[case as usize];
        if c.decided {
            return Ok(());
        }
        let (user, record) = (c.user, c.record);
        let lifted = driver.escalate_appeal(&c.service_id, user, terms.auto_lift_on_escalation, now_ms)?;
        let lifted = self.appeal_lifted(user, lifted, Recovery::Escalation, now_ms);
        if let Some(record) = record.and_then(|i| self.tally.appeal_mut(i)) {
            record.escalated_at_ms = Some(now_ms);
            record.escalation_lifted = lifted;
        }
        Ok(())
    }

    /// After the last measured day: no more payments, but users restricted at the end go on
    /// recovering (codes answered, appeals filed and decided, restrictions running out)
    /// until none is restricted, or until the longest restriction the policy allows has
    /// passed; whoever is still restricted then has not recovered. So time to recovery is
    /// never cut short by the end of the run.
    pub(super) fn recover_after_the_end(&mut self, driver: &mut dyn Driver) -> Result<(), SimError> {
        let end_ms = self.end_ms;
        self.tally.mark_end(end_ms);
        if !self.tally.restricted_after(end_ms) {
            self.tally.finish_at(end_ms);
            return Ok(());
        }
        let terms = match self.desk.terms {
            Some(terms) => terms,
            None => *self.desk.terms.insert(driver.appeal_terms()?),
        };
        let horizon_ms = end_ms.saturating_add(terms.max_restriction_ms);
        while let Some(event) = self.next_event() {
            if event.at_ms >= horizon_ms || !self.tally.restricted_after(event.at_ms) {
                break;
            }
            match event.kind {
                EventKind::Lift(user) => self.lift_with_code(driver, user, event.at_ms)?,
                EventKind::Appeal(user) => self.file_appeal(driver, user, event.at_ms)?,
                EventKind::AppealDispatch => self.dispatch_appeals(driver, event.at_ms)?,
                EventKind::AppealDecide(case, reviewer) => self.decide_appeal(driver, case, reviewer, event.at_ms)?,
                EventKind::AppealDeadline(case) => self.appeal_deadline(driver, case, event.at_ms)?,
                // Nobody pays after the end.
                _ => {}
            }
        }
        self.tally.finish_at(horizon_ms);
        Ok(())
    }

    /// The driver lifted (`lifted`) `user`'s restriction by `way`: the owner can pay again.
    /// Returns whether a restriction in force was lifted.
    fn appeal_lifted(&mut self, user: u32, lifted: bool, way: Recovery, now_ms: i64) -> bool {
        let state = &mut self.states[user as usize];
        if !lifted || state.restricted_until_ms <= now_ms {
            return false;
        }
        state.restricted_until_ms = 0;
        self.tally.restriction_lifted_by(user, now_ms, way);
        true
    }
}
