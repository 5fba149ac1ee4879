//! Failover: when a charge's gateway cannot be reached at all (no connection: the request never
//! left us, so nothing can have happened there) and the customer has a method at another
//! configured gateway, the charge moves there — recorded as `ChargeFailedOver` before the other
//! gateway is called, so recovery and webhooks follow it. Off unless configured
//! (`BILLING_GATEWAY_FAILOVER`). A gateway that answered badly (5xx) or too late (timeout) may
//! have acted: the charge then stays pending with it, never moved.

use ledger::ids::ChargeId;
use serde::{Deserialize, Serialize};

use super::{Charge, ChargeError, ChargeEvent, ChargeStatus};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeFailedOver {
    pub charge_id: ChargeId,
    pub from_gateway: String,
    pub to_gateway: String,
    /// The token at the new gateway.
    pub payment_method: String,
    /// What the first gateway's calls failed with.
    pub reason: String,
}

/// Another of the customer's methods, at another gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    pub gateway: String,
    pub payment_method: String,
}

/// The event moving a pending `charge` to `to`. Pure.
///
/// # Errors
/// The charge is not pending, or `to` is its gateway already.
pub fn decide_failover(
    charge: &Charge,
    to: &Fallback,
    reason: &str,
) -> Result<ChargeEvent, ChargeError> {
    if charge.status != ChargeStatus::Pending {
        return Err(ChargeError::OutcomeRecorded(charge.id));
    }
    if to.gateway == charge.gateway {
        return Err(ChargeError::GatewayNotConfigured(to.gateway.clone()));
    }
    Ok(ChargeEvent::FailedOver(ChargeFailedOver {
        charge_id: charge.id,
        from_gateway: charge.gateway.clone(),
        to_gateway: to.gateway.clone(),
        payment_method: to.payment_method.clone(),
        reason: reason.chars().take(500).collect(),
    }))
}

/// Folds the move into the charge.
pub(super) fn apply(c: &mut Charge, e: &ChargeFailedOver) {
    c.gateway.clone_from(&e.to_gateway);
    c.payment_method.clone_from(&e.payment_method);
}
