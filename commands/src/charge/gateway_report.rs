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
use super::service::{Loaded, append_failure, stream_of};
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
        /// The gateway's refund ids it listed, newest last (may be empty).
        gateway_refund_ids: Vec<String>,
        /// A stable reference of the report (the gateway's event id): names a refund made at the
        /// gateway directly, and stands for the refund id when the gateway listed none.
        reference: String,
    },
    /// A dispute opened, changed or closed.
    Dispute(DisputeReport),
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
            gateway_refund_ids,
            reference,
        } => refunded(charge, *amount_refunded, gateway_refund_ids, reference),
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

fn refunded(charge: &Charge, total: i64, ids: &[String], reference: &str) -> Vec<ChargeEvent> {
    if charge.status != ChargeStatus::Succeeded {
        return Vec::new();
    }
    let mut confirmed = charge.amount_refunded();
    let mut events = Vec::new();
    let mut state = charge.clone();
    // Our pending refunds, oldest first, as far as the gateway's total covers them.
    let pending: Vec<_> = charge
        .refunds
        .iter()
        .filter(|r| r.status == RefundStatus::Pending)
        .cloned()
        .collect();
    for (i, r) in pending.iter().enumerate() {
        let Some(after) = confirmed.checked_add(r.amount.amount_minor()) else {
            break;
        };
        if after > total {
            break;
        }
        let gateway_refund_id = ids.get(i).cloned().unwrap_or_else(|| reference.to_string());
        let command = RefundCommand::RecordSuccess {
            refund_id: r.id,
            gateway_refund_id,
        };
        if let Ok(e) = decide_refund(&state, command) {
            apply(
                &mut state,
                e.into_iter().map(ChargeEvent::Refund).collect(),
                &mut events,
            );
            confirmed = after;
        }
    }
    // Beyond ours (pending included): a refund made at the gateway itself.
    let reserved: i64 = state
        .refunds
        .iter()
        .filter(|r| r.status == RefundStatus::Pending)
        .map(|r| r.amount.amount_minor())
        .sum();
    let external = total - confirmed - reserved;
    if external > 0 && external <= state.refundable() {
        let refund_id = RefundId::derived(&format!("{}:{reference}", charge.id));
        let request = RefundCommand::Request {
            refund_id,
            amount: Some(external),
            reason: None,
            request_fingerprint: None,
        };
        if let Ok(e) = decide_refund(&state, request) {
            apply(
                &mut state,
                e.into_iter().map(ChargeEvent::Refund).collect(),
                &mut events,
            );
            let done = RefundCommand::RecordSuccess {
                refund_id,
                gateway_refund_id: ids.last().cloned().unwrap_or_else(|| reference.to_string()),
            };
            if let Ok(e) = decide_refund(&state, done) {
                apply(
                    &mut state,
                    e.into_iter().map(ChargeEvent::Refund).collect(),
                    &mut events,
                );
            }
        }
    }
    events
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
    /// is the gateway's event). Returns how many events were appended (0: nothing new) and the
    /// charge's position.
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
    ) -> Result<(usize, Position), CommandError> {
        let stream = stream_of(id)?;
        let mut loaded: Loaded = self.load(&stream).await?;
        for _ in 0..CONFLICT_RETRY_MAX {
            let Some(charge) = loaded.charge.as_ref().filter(|c| c.gateway == gateway) else {
                return Err(super::ChargeError::NotRequested.into());
            };
            let events = decide_report(charge, report);
            if events.is_empty() {
                return Ok((0, loaded.position));
            }
            let now = self.clock.now();
            let expected = ExpectedVersion::Exact(loaded.version);
            match self
                .append(&stream, expected, &events, now, metadata, None)
                .await
            {
                Ok(position) => return Ok((events.len(), position)),
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
            gateway_refund_ids: Vec::new(),
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
    fn a_refund_report_about_an_unsettled_charge_changes_nothing() {
        let c = charge(ChargeStatus::Pending, &[]);
        assert!(decide_report(&c, &refunded(100)).is_empty());
    }
}
