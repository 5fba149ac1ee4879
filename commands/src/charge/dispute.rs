//! Disputes (chargebacks) of a charge, as the gateway reports them: opened, then closed won or
//! lost. Money moves with them as it does at Stripe: a dispute withdraws its amount from the
//! balance when opened (an inquiry — status `warning_*` — withdraws nothing, until it escalates
//! to a chargeback: `DisputeFundsWithdrawn`), and a won dispute gives it back.

use chrono::{DateTime, Utc};
use ledger::ids::ChargeId;
use serde::{Deserialize, Serialize};

use super::{Charge, ChargeStatus};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeDisputed {
    pub charge_id: ChargeId,
    /// The gateway's dispute id (`dp_…`).
    pub dispute_id: String,
    /// Disputed, in the charge's currency's minor unit.
    pub amount: i64,
    /// The gateway's reason (`fraudulent`, `general`, …).
    pub reason: String,
    /// The gateway's status when opened.
    pub status: String,
    /// Whether the amount left our balance (not for an inquiry).
    pub funds_withdrawn: bool,
}

/// An inquiry became a chargeback: its amount left our balance now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisputeFundsWithdrawn {
    pub charge_id: ChargeId,
    pub dispute_id: String,
    pub amount: i64,
    /// The gateway's status that said so (`needs_response`, `lost`, …).
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisputeClosed {
    pub charge_id: ChargeId,
    pub dispute_id: String,
    /// `won`, `lost`, `warning_closed`, …
    pub status: String,
    /// Whether the withdrawn amount came back (a won dispute).
    pub funds_reinstated: bool,
}

/// One dispute of a charge, as folded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispute {
    pub id: String,
    pub amount: i64,
    pub reason: String,
    pub status: String,
    pub funds_withdrawn: bool,
    pub closed: bool,
    pub opened: DateTime<Utc>,
}

/// What the gateway says about a dispute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeReport {
    pub dispute_id: String,
    pub amount: i64,
    pub reason: String,
    pub status: String,
    /// `charge.dispute.closed` (else created or updated).
    pub closed: bool,
}

/// The events a dispute report adds; none when the charge says as much already. A closing
/// report about a dispute never seen opened (deliveries out of order) opens it first.
pub fn decide_dispute(charge: &Charge, report: &DisputeReport) -> Vec<DisputeEvent> {
    if charge.status != ChargeStatus::Succeeded
        || report.amount <= 0
        || report.amount > charge.amount.amount_minor()
    {
        return Vec::new();
    }
    let existing = charge.disputes.iter().find(|d| d.id == report.dispute_id);
    let mut events = Vec::new();
    let withdrawn = match existing {
        Some(d) if d.closed => return Vec::new(),
        // An inquiry escalated (Stripe: `charge.dispute.funds_withdrawn`, or any status that is
        // no longer `warning_*`): the money leaves now.
        Some(d) if !d.funds_withdrawn && !report.status.starts_with("warning_") => {
            events.push(DisputeEvent::FundsWithdrawn(DisputeFundsWithdrawn {
                charge_id: charge.id,
                dispute_id: report.dispute_id.clone(),
                amount: d.amount,
                status: report.status.clone(),
            }));
            true
        }
        Some(d) => d.funds_withdrawn,
        None => {
            // An inquiry withdraws nothing; a closing report of a real dispute (won or lost)
            // means its funds were withdrawn when it opened.
            let funds_withdrawn = !report.status.starts_with("warning_");
            events.push(DisputeEvent::Opened(ChargeDisputed {
                charge_id: charge.id,
                dispute_id: report.dispute_id.clone(),
                amount: report.amount,
                reason: report.reason.clone(),
                status: report.status.clone(),
                funds_withdrawn,
            }));
            funds_withdrawn
        }
    };
    if report.closed {
        events.push(DisputeEvent::Closed(DisputeClosed {
            charge_id: charge.id,
            dispute_id: report.dispute_id.clone(),
            status: report.status.clone(),
            funds_reinstated: withdrawn && report.status == "won",
        }));
    }
    events
}

/// The dispute events of a charge stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisputeEvent {
    Opened(ChargeDisputed),
    FundsWithdrawn(DisputeFundsWithdrawn),
    Closed(DisputeClosed),
}

/// Folds a dispute event into its charge.
pub(super) fn apply(c: &mut Charge, e: &DisputeEvent, at: DateTime<Utc>) {
    match e {
        DisputeEvent::Opened(o) => c.disputes.push(Dispute {
            id: o.dispute_id.clone(),
            amount: o.amount,
            reason: o.reason.clone(),
            status: o.status.clone(),
            funds_withdrawn: o.funds_withdrawn,
            closed: false,
            opened: at,
        }),
        DisputeEvent::FundsWithdrawn(w) => {
            if let Some(d) = c.disputes.iter_mut().find(|d| d.id == w.dispute_id) {
                d.status.clone_from(&w.status);
                d.funds_withdrawn = true;
            }
        }
        DisputeEvent::Closed(cl) => {
            if let Some(d) = c.disputes.iter_mut().find(|d| d.id == cl.dispute_id) {
                d.status.clone_from(&cl.status);
                d.closed = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ledger::money::{Currency, Money};

    use super::*;
    use crate::charge::{ChargeEvent, evolve};

    fn charge() -> Charge {
        let id = ChargeId::derived("disputed");
        Charge {
            id,
            amount: Money::new(2000, Currency::USD),
            customer_id: None,
            payment_method: "pm_card_visa".into(),
            description: None,
            gateway: "stripe".into(),
            gateway_key: format!("charge-{id}"),
            off_session: false,
            gateway_customer: None,
            request_fingerprint: None,
            status: ChargeStatus::Succeeded,
            gateway_charge_id: Some("pi_1".into()),
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
        }
    }

    fn report(status: &str, closed: bool) -> DisputeReport {
        DisputeReport {
            dispute_id: "dp_1".into(),
            amount: 2000,
            reason: "fraudulent".into(),
            status: status.into(),
            closed,
        }
    }

    fn fold(c: Charge, events: Vec<DisputeEvent>) -> Charge {
        events.into_iter().fold(c, |c, e| {
            evolve(Some(c), &ChargeEvent::Dispute(e), Utc::now()).unwrap()
        })
    }

    #[test]
    fn opened_then_won_withdraws_and_gives_back_once() {
        let c = charge();
        let opened = decide_dispute(&c, &report("needs_response", false));
        assert!(matches!(&opened[..], [DisputeEvent::Opened(o)] if o.funds_withdrawn));
        let c = fold(c, opened);
        assert!(decide_dispute(&c, &report("needs_response", false)).is_empty());
        let closed = decide_dispute(&c, &report("won", true));
        assert!(matches!(&closed[..], [DisputeEvent::Closed(cl)] if cl.funds_reinstated));
        let c = fold(c, closed);
        assert!(c.disputes[0].closed);
        assert!(decide_dispute(&c, &report("won", true)).is_empty());
    }

    #[test]
    fn a_close_seen_first_opens_the_dispute_too_and_inquiries_move_no_money() {
        let lost = decide_dispute(&charge(), &report("lost", true));
        match &lost[..] {
            [DisputeEvent::Opened(o), DisputeEvent::Closed(cl)] => {
                assert!(o.funds_withdrawn && !cl.funds_reinstated);
            }
            other => panic!("{other:?}"),
        }
        let inquiry = decide_dispute(&charge(), &report("warning_closed", true));
        match &inquiry[..] {
            [DisputeEvent::Opened(o), DisputeEvent::Closed(cl)] => {
                assert!(!o.funds_withdrawn && !cl.funds_reinstated);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_inquiry_that_escalates_withdraws_once_and_a_won_close_gives_it_back() {
        let c = fold(
            charge(),
            decide_dispute(&charge(), &report("warning_needs_response", false)),
        );
        assert!(!c.disputes[0].funds_withdrawn);
        assert!(decide_dispute(&c, &report("warning_under_review", false)).is_empty());
        let escalated = decide_dispute(&c, &report("needs_response", false));
        assert!(
            matches!(&escalated[..], [DisputeEvent::FundsWithdrawn(w)] if w.amount == 2000),
            "{escalated:?}"
        );
        let c = fold(c, escalated);
        assert!(c.disputes[0].funds_withdrawn);
        assert!(decide_dispute(&c, &report("needs_response", false)).is_empty());
        let won = decide_dispute(&c, &report("won", true));
        assert!(matches!(&won[..], [DisputeEvent::Closed(cl)] if cl.funds_reinstated));
        // An escalation first seen in the close (lost): withdrawn, never given back.
        let inquiry = fold(
            charge(),
            decide_dispute(&charge(), &report("warning_needs_response", false)),
        );
        match &decide_dispute(&inquiry, &report("lost", true))[..] {
            [DisputeEvent::FundsWithdrawn(_), DisputeEvent::Closed(cl)] => {
                assert!(!cl.funds_reinstated)
            }
            other => panic!("{other:?}"),
        }
        // An inquiry closed as an inquiry: nothing moved.
        match &decide_dispute(&inquiry, &report("warning_closed", true))[..] {
            [DisputeEvent::Closed(cl)] => assert!(!cl.funds_reinstated),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn disputes_beyond_the_charge_or_of_unsettled_charges_are_not_believed() {
        let mut r = report("needs_response", false);
        r.amount = 2001;
        assert!(decide_dispute(&charge(), &r).is_empty());
        let mut pending = charge();
        pending.status = ChargeStatus::Pending;
        assert!(decide_dispute(&pending, &report("needs_response", false)).is_empty());
    }
}
