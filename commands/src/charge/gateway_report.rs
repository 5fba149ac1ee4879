//! What a gateway reports on its own (a webhook), applied to a charge: the outcome of a charge
//! we are still waiting for, refunds it confirmed — ours that were pending, and any made at the
//! gateway directly (its dashboard), so the books follow the money.
//!
//! Every report is idempotent: a report already reflected in the charge produces no events.

use ledger::event::{ExpectedVersion, Metadata, Position};
use ledger::ids::{ChargeId, RefundId};
use ledger::store::AppendError;

use super::dispute::{DisputeReport, decide_dispute};
use super::refund::{RefundCommand, RefundStatus, decide_refund};
use super::service::{Loaded, append_failure, apply as fold, stream_of};
use super::{Charge, ChargeCommand, ChargeEvent, ChargeService, ChargeStatus, decide, evolve};
use crate::error::CommandError;

/// Reloads after a concurrent append to the charge.
const CONFLICT_RETRY_MAX: usize = 8;

/// A gateway's report about one charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayReport {
    /// The charge took the money.
    Succeeded { gateway_charge_id: String },
    /// The charge failed.
    Failed {
        gateway_charge_id: String,
        failure_code: String,
        failure_message: String,
    },
    /// The gateway has refunded `amount_refunded` of the charge in all (cumulative).
    Refunded {
        amount_refunded: i64,
        /// The refunds the gateway listed, oldest first (may be empty).
        refunds: Vec<ListedRefund>,
        /// A stable reference of the report (the gateway's event id): names a refund made at the
        /// gateway directly, and stands for the refund id when the gateway listed none.
        reference: String,
    },
    /// A dispute opened, changed or closed.
    Dispute(DisputeReport),
}

/// A refund the gateway listed: its id, and our key when we made it (`metadata.billing_key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRefund {
    pub id: String,
    pub billing_key: Option<String>,
    /// In the charge's minor units, when the gateway said.
    pub amount: Option<i64>,
}

/// The events a report adds to `charge`; none when the charge already says as much. Pure.
pub fn decide_report(charge: &Charge, report: &GatewayReport) -> Vec<ChargeEvent> {
    match report {
        GatewayReport::Succeeded { gateway_charge_id } => outcome(
            charge,
            ChargeCommand::RecordSuccess {
                gateway_charge_id: gateway_charge_id.clone(),
            },
        ),
        GatewayReport::Failed {
            gateway_charge_id,
            failure_code,
            failure_message,
        } => outcome(
            charge,
            ChargeCommand::RecordFailure {
                gateway_charge_id: Some(gateway_charge_id.clone()),
                failure_code: failure_code.clone(),
                failure_message: failure_message.clone(),
            },
        ),
        GatewayReport::Refunded {
            amount_refunded,
            refunds,
            reference,
        } => refunded(charge, *amount_refunded, refunds, reference),
        GatewayReport::Dispute(d) => decide_dispute(charge, d)
            .into_iter()
            .map(ChargeEvent::Dispute)
            .collect(),
    }
}

fn outcome(charge: &Charge, command: ChargeCommand) -> Vec<ChargeEvent> {
    if charge.status != ChargeStatus::Pending {
        return Vec::new();
    }
    decide(Some(charge), command).unwrap_or_default()
}

fn refunded(
    charge: &Charge,
    total: i64,
    listed: &[ListedRefund],
    reference: &str,
) -> Vec<ChargeEvent> {
    if charge.status != ChargeStatus::Succeeded || total < 0 {
        return Vec::new();
    }
    let mut events = Vec::new();
    let mut state = charge.clone();
    let known = |state: &Charge, id: &str| {
        state
            .refunds
            .iter()
            .any(|r| r.gateway_refund_id.as_deref() == Some(id))
    };
    let confirm = |state: &mut Charge, events: &mut Vec<ChargeEvent>, refund_id, id: String| {
        let command = RefundCommand::RecordSuccess {
            refund_id,
            gateway_refund_id: id,
        };
        if let Ok(e) = decide_refund(state, command) {
            apply(
                state,
                e.into_iter().map(ChargeEvent::Refund).collect(),
                events,
            );
        }
    };
    // 1. Listed refunds that carry our key: exactly those of ours.
    for l in listed {
        let ours = l.billing_key.as_deref().and_then(|k| {
            state
                .refunds
                .iter()
                .find(|r| r.status == RefundStatus::Pending && r.gateway_key == k)
                .map(|r| r.id)
        });
        if let Some(refund_id) = ours {
            confirm(&mut state, &mut events, refund_id, l.id.clone());
        }
    }
    if !listed.is_empty() {
        // 2. The gateway listed its refunds: each one without our key and not booked yet was
        //    made at the gateway itself (its dashboard), for its own amount.
        for l in listed {
            if l.billing_key.is_some() || known(&state, &l.id) {
                continue;
            }
            if let Some(amount) = l.amount.filter(|a| *a > 0) {
                external_refund(&mut state, &mut events, &l.id, amount, l.id.clone());
            }
        }
        return events;
    }
    // 3. No list (Stripe's newer API versions list none): our pending refunds, oldest first, as
    //    far as the gateway's total covers them; what is left is a refund made at the gateway.
    let mut confirmed = state.amount_refunded();
    let pending: Vec<_> = state
        .refunds
        .iter()
        .filter(|r| r.status == RefundStatus::Pending)
        .map(|r| (r.id, r.amount.amount_minor()))
        .collect();
    for (refund_id, amount) in pending {
        match confirmed.checked_add(amount) {
            Some(after) if after <= total => {
                confirm(&mut state, &mut events, refund_id, reference.to_string());
                confirmed = after;
            }
            _ => break,
        }
    }
    let reserved = state
        .refunds
        .iter()
        .filter(|r| r.status == RefundStatus::Pending)
        .fold(0i64, |a, r| a.saturating_add(r.amount.amount_minor()));
    let external = total
        .checked_sub(state.amount_refunded())
        .and_then(|x| x.checked_sub(reserved))
        .unwrap_or(0);
    if external > 0 {
        external_refund(
            &mut state,
            &mut events,
            reference,
            external,
            reference.to_string(),
        );
    }
    events
}

/// Books a refund of `amount` made at the gateway itself (named by `name`, the gateway's id
/// `gateway_refund_id`), if the charge has that much left to refund.
fn external_refund(
    state: &mut Charge,
    events: &mut Vec<ChargeEvent>,
    name: &str,
    amount: i64,
    gateway_refund_id: String,
) {
    if amount > state.refundable() {
        return;
    }
    let refund_id = RefundId::derived(&format!("{}:{name}", state.id));
    let request = RefundCommand::Request {
        refund_id,
        amount: Some(amount),
        reason: None,
        request_fingerprint: None,
    };
    let Ok(requested) = decide_refund(state, request) else {
        return;
    };
    apply(
        state,
        requested.into_iter().map(ChargeEvent::Refund).collect(),
        events,
    );
    let done = RefundCommand::RecordSuccess {
        refund_id,
        gateway_refund_id,
    };
    if let Ok(e) = decide_refund(state, done) {
        apply(
            state,
            e.into_iter().map(ChargeEvent::Refund).collect(),
            events,
        );
    }
}

/// Folds `new` into `state` and keeps them in `events`.
fn apply(state: &mut Charge, new: Vec<ChargeEvent>, events: &mut Vec<ChargeEvent>) {
    for e in new {
        if let Some(next) = evolve(Some(state.clone()), &e, state.created) {
            *state = next;
        }
        events.push(e);
    }
}

impl ChargeService {
    /// Applies `report` from `gateway` to charge `id` (recorded with `metadata`, whose causation
    /// is the gateway's event). Returns how many events were appended (0: nothing new), the
    /// charge's position and its status after them.
    ///
    /// # Errors
    /// An unknown charge, or one charged through another gateway (`NotRequested`: a gateway
    /// speaks only of its own charges); store failures.
    pub async fn apply_gateway_report(
        &self,
        id: ChargeId,
        gateway: &str,
        report: &GatewayReport,
        metadata: &Metadata,
    ) -> Result<(usize, Position, ChargeStatus), CommandError> {
        let stream = stream_of(id)?;
        let mut loaded: Loaded = self.load(&stream).await?;
        for _ in 0..CONFLICT_RETRY_MAX {
            let Some(charge) = loaded.charge.as_ref().filter(|c| c.gateway == gateway) else {
                return Err(super::ChargeError::NotRequested.into());
            };
            let events = decide_report(charge, report);
            if events.is_empty() {
                return Ok((0, loaded.position, charge.status));
            }
            let now = self.clock.now();
            let expected = ExpectedVersion::Exact(loaded.version);
            match self
                .append(&stream, expected, &events, now, metadata, None)
                .await
            {
                Ok(position) => {
                    let status = fold(Some(charge.clone()), &events, now)
                        .map_or(charge.status, |c| c.status);
                    return Ok((events.len(), position, status));
                }
                Err(AppendError::WrongExpectedVersion { .. }) => {
                    loaded = self.load(&stream).await?;
                }
                Err(e) => return Err(append_failure(e)),
            }
        }
        Err(CommandError::Conflict(stream.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use ledger::money::{Currency, Money};

    use super::*;

    fn charge(status: ChargeStatus, refunds: &[(i64, RefundStatus)]) -> Charge {
        let id = ChargeId::derived("report");
        let mut c = Charge {
            id,
            amount: Money::new(1000, Currency::USD),
            customer_id: None,
            payment_method: "pm_card_visa".into(),
            description: None,
            gateway: "stripe".into(),
            gateway_key: format!("charge-{id}"),
            off_session: false,
            gateway_customer: None,
            request_fingerprint: None,
            status,
            gateway_charge_id: None,
            failure_code: None,
            failure_message: None,
            created: Utc::now(),
            refunds: Vec::new(),
            disputes: Vec::new(),
            fraud: None,
            review_closed: None,
            processing: false,
            gateway_since: None,
            capture_later: false,
            authorized: false,
            risk_level: None,
        };
        for (i, (amount, s)) in refunds.iter().enumerate() {
            c.refunds.push(super::super::refund::Refund {
                id: RefundId::derived(&format!("r{i}")),
                amount: Money::new(*amount, Currency::USD),
                reason: None,
                gateway_key: format!("refund-{i}"),
                request_fingerprint: None,
                status: *s,
                gateway_refund_id: None,
                failure_reason: None,
                created: Utc::now(),
            });
        }
        c
    }

    fn refunded(total: i64) -> GatewayReport {
        GatewayReport::Refunded {
            amount_refunded: total,
            refunds: Vec::new(),
            reference: "evt_1".into(),
        }
    }

    fn fold(c: &Charge, events: &[ChargeEvent]) -> Charge {
        events
            .iter()
            .fold(c.clone(), |s, e| evolve(Some(s), e, Utc::now()).unwrap())
    }

    #[test]
    fn an_outcome_completes_a_pending_charge_once() {
        let c = charge(ChargeStatus::Pending, &[]);
        let ok = GatewayReport::Succeeded {
            gateway_charge_id: "pi_1".into(),
        };
        let events = decide_report(&c, &ok);
        assert_eq!(events.len(), 1);
        let done = fold(&c, &events);
        assert_eq!(done.status, ChargeStatus::Succeeded);
        assert!(
            decide_report(&done, &ok).is_empty(),
            "reported again: nothing"
        );
        let failed = GatewayReport::Failed {
            gateway_charge_id: "pi_1".into(),
            failure_code: "card_declined".into(),
            failure_message: "no".into(),
        };
        assert!(
            decide_report(&done, &failed).is_empty(),
            "a settled charge stays as it is"
        );
    }

    #[test]
    fn refunds_confirm_pending_ones_in_order_then_record_the_rest_as_made_at_the_gateway() {
        let c = charge(
            ChargeStatus::Succeeded,
            &[
                (300, RefundStatus::Succeeded),
                (200, RefundStatus::Pending),
                (100, RefundStatus::Pending),
            ],
        );
        // The gateway has 500 refunded: ours of 300 and the first pending one.
        let after = fold(&c, &decide_report(&c, &refunded(500)));
        assert_eq!(after.amount_refunded(), 500);
        assert_eq!(after.refunds[2].status, RefundStatus::Pending);
        assert!(decide_report(&after, &refunded(500)).is_empty());
        // 900: the last pending one (100), and 300 refunded at the gateway directly.
        let after = fold(&after, &decide_report(&after, &refunded(900)));
        assert_eq!(after.amount_refunded(), 900);
        assert_eq!(after.refunds.len(), 4);
        assert_eq!(after.refunds[3].amount.amount_minor(), 300);
        assert!(decide_report(&after, &refunded(900)).is_empty());
        // Never beyond the charge, whatever is reported.
        assert!(decide_report(&after, &refunded(5_000)).is_empty());
    }

    #[test]
    fn listed_refunds_are_matched_by_our_key_and_the_others_booked_for_their_own_amounts() {
        let c = charge(ChargeStatus::Succeeded, &[(600, RefundStatus::Pending)]);
        let ours = c.refunds[0].gateway_key.clone();
        let listed = |with_ours: bool| GatewayReport::Refunded {
            amount_refunded: if with_ours { 900 } else { 300 },
            refunds: [
                with_ours.then(|| ListedRefund {
                    id: "re_ours".into(),
                    billing_key: Some(ours.clone()),
                    amount: Some(600),
                }),
                Some(ListedRefund {
                    id: "re_dashboard".into(),
                    billing_key: None,
                    amount: Some(300),
                }),
            ]
            .into_iter()
            .flatten()
            .collect(),
            reference: "evt_9".into(),
        };
        // Only the dashboard's refund so far: booked; ours stays pending (its own call decides).
        let after = fold(&c, &decide_report(&c, &listed(false)));
        assert_eq!(after.amount_refunded(), 300);
        assert_eq!(after.refunds[0].status, RefundStatus::Pending);
        assert_eq!(
            after.refunds[1].gateway_refund_id.as_deref(),
            Some("re_dashboard")
        );
        assert!(
            decide_report(&after, &listed(false)).is_empty(),
            "booked once"
        );
        // Then ours appears under its key: confirmed with its own id.
        let after = fold(&after, &decide_report(&after, &listed(true)));
        assert_eq!(after.amount_refunded(), 900);
        assert_eq!(
            after.refunds[0].gateway_refund_id.as_deref(),
            Some("re_ours")
        );
        assert!(decide_report(&after, &listed(true)).is_empty());
    }

    #[test]
    fn a_negative_or_absurd_total_changes_nothing() {
        let c = charge(ChargeStatus::Succeeded, &[]);
        assert!(decide_report(&c, &refunded(-5)).is_empty());
        assert!(decide_report(&c, &refunded(i64::MAX)).is_empty());
    }

    #[test]
    fn a_refund_report_about_an_unsettled_charge_changes_nothing() {
        let c = charge(ChargeStatus::Pending, &[]);
        assert!(decide_report(&c, &refunded(100)).is_empty());
    }
}
