//! Asking the gateway: a charge (or an authorization, to capture later), its capture or
//! cancel, and — once the gateway may have forgotten the key — looking the charge up instead.
//! Timeouts and 5xx are retried with the same key; a charge no attempt reached may fail over.

use std::time::Duration;

use gateways::{CaptureRequest, ChargeOutcome, ChargeRequest, GatewayError, Lookup};

use super::authorization::Settlement;
use super::failover::Fallback;
use super::service::GATEWAY_RETRY_DELAYS_MS;
use super::{Charge, ChargeCommand, ChargeService};

/// The command recording a gateway's outcome.
pub(super) fn command_of(outcome: ChargeOutcome) -> ChargeCommand {
    match outcome {
        ChargeOutcome::Succeeded { gateway_charge_id } => {
            ChargeCommand::RecordSuccess { gateway_charge_id }
        }
        ChargeOutcome::Accepted { gateway_charge_id } => {
            ChargeCommand::RecordProcessing { gateway_charge_id }
        }
        ChargeOutcome::Authorized {
            gateway_charge_id,
            risk_level,
        } => ChargeCommand::RecordAuthorization {
            gateway_charge_id,
            risk_level,
        },
        ChargeOutcome::Declined {
            gateway_charge_id,
            failure_code,
            message,
        } => ChargeCommand::RecordFailure {
            gateway_charge_id: Some(gateway_charge_id),
            failure_code: failure_code.as_str().to_string(),
            failure_message: message,
        },
    }
}

/// What a gateway call came to, once it answered.
pub(super) enum Called<T> {
    Answered(T),
    /// Refused (4xx): asking again will not help.
    Refused(String),
}

/// Why a gateway call gave no outcome.
pub(super) enum Unsettled {
    /// The gateway may have acted: ask it again with the same key.
    Unknown,
    /// No attempt reached it: nothing happened there.
    Unreachable(String),
}

impl ChargeService {
    /// Whether the charge's gateway may have forgotten its idempotency key (an hour of margin).
    pub(super) fn past_idempotency_window(&self, charge: &Charge) -> bool {
        let window = self
            .gateways
            .get(&charge.gateway)
            .and_then(|g| g.idempotency_window())
            .and_then(|w| chrono::Duration::from_std(w).ok());
        let since = charge.gateway_since.unwrap_or(charge.created);
        match window {
            Some(w) if self.clock.now() - since > w - chrono::Duration::hours(1) => {
                tracing::warn!(charge_id = %charge.id, gateway = %charge.gateway, %since, "charge pending beyond the gateway's idempotency window");
                true
            }
            _ => false,
        }
    }

    /// The gateway's outcome for the charge: asked with its key — or, once the gateway may have
    /// forgotten the key (asking again could then charge twice), looked up by it: found, its
    /// outcome; not there, the request never reached the gateway and is made now; a gateway
    /// that cannot be searched leaves the charge pending for a person to reconcile.
    pub(super) async fn ask(&self, charge: &Charge) -> Result<ChargeCommand, Unsettled> {
        if !self.past_idempotency_window(charge) {
            return self.call_gateway(charge).await;
        }
        let Some(gateway) = self.gateways.get(&charge.gateway) else {
            return Err(Unsettled::Unknown);
        };
        match gateway.find_charge(&charge.gateway_key).await {
            Ok(Lookup::Found(outcome)) => Ok(command_of(outcome)),
            Ok(Lookup::NotFound) => {
                tracing::warn!(charge_id = %charge.id, "the gateway never saw this charge; charging it now");
                self.call_gateway(charge).await
            }
            Ok(Lookup::Unsupported) => {
                tracing::error!(charge_id = %charge.id, gateway = %charge.gateway, "the gateway may have forgotten this charge's key and cannot be searched: not asked again; reconcile it by hand (or let its webhook settle it)");
                Err(Unsettled::Unknown)
            }
            Err(e) => {
                tracing::warn!(charge_id = %charge.id, error = %e, "looking the charge up failed; will try again");
                Err(Unsettled::Unknown)
            }
        }
    }

    /// The first of `fallbacks` at a configured gateway other than the charge's.
    pub(super) fn fallback<'f>(
        &self,
        charge: &Charge,
        fallbacks: &'f [Fallback],
    ) -> Option<&'f Fallback> {
        fallbacks
            .iter()
            .find(|f| f.gateway != charge.gateway && self.gateways.get(&f.gateway).is_some())
    }

    /// Calls the gateway (to charge, or to authorize a charge captured later), retrying
    /// timeouts and 5xx with the same key.
    pub(super) async fn call_gateway(&self, charge: &Charge) -> Result<ChargeCommand, Unsettled> {
        let request = ChargeRequest {
            idempotency_key: charge.gateway_key.clone(),
            amount: charge.amount,
            payment_method: charge.payment_method.clone(),
            description: charge.description.clone(),
            customer_ref: charge.customer_id.map(|c| c.to_string()),
            off_session: charge.off_session,
            gateway_customer: charge.gateway_customer.clone(),
        };
        let Some(gateway) = self.gateways.get(&charge.gateway) else {
            tracing::error!(charge_id = %charge.id, gateway = %charge.gateway, "the charge's gateway is not configured; charge left pending");
            return Err(Unsettled::Unknown);
        };
        let called = self
            .retrying(charge, || async {
                // Authorized first only where the gateway can (not after a failover elsewhere).
                if charge.capture_later && gateway.authorizes() {
                    gateway.authorize(request.clone()).await
                } else {
                    gateway.charge(request.clone()).await
                }
            })
            .await?;
        Ok(match called {
            Called::Answered(outcome) => command_of(outcome),
            Called::Refused(message) => ChargeCommand::RecordFailure {
                gateway_charge_id: None,
                failure_code: "invalid_payment_method".to_string(),
                failure_message: message,
            },
        })
    }

    /// Captures or cancels the charge's authorization, retrying timeouts and 5xx with the step's
    /// own key. A refusal is settled by what the payment is now (see [`Self::after_refusal`]).
    pub(super) async fn settle(
        &self,
        charge: &Charge,
        settlement: &Settlement,
    ) -> Result<ChargeCommand, Unsettled> {
        let (Some(gateway), Some(authorization)) = (
            self.gateways.get(&charge.gateway),
            charge.gateway_charge_id.clone(),
        ) else {
            tracing::error!(charge_id = %charge.id, gateway = %charge.gateway, "the authorization's gateway is not configured; charge left pending");
            return Err(Unsettled::Unknown);
        };
        let request = CaptureRequest {
            idempotency_key: format!("{}:{}", charge.gateway_key, settlement.step()),
            gateway_charge_id: authorization.clone(),
            amount: charge.amount,
        };
        let failed = |code: &str, message: String| ChargeCommand::RecordFailure {
            gateway_charge_id: Some(authorization.clone()),
            failure_code: code.to_string(),
            failure_message: message,
        };
        match settlement {
            Settlement::Capture => {
                match self
                    .retrying(charge, || gateway.capture(request.clone()))
                    .await?
                {
                    // Still only authorized: asked again later.
                    Called::Answered(ChargeOutcome::Authorized { .. }) => Err(Unsettled::Unknown),
                    Called::Answered(outcome) => Ok(command_of(outcome)),
                    Called::Refused(message) => {
                        tracing::warn!(charge_id = %charge.id, %message, "the gateway refused the capture; looking the payment up");
                        self.after_refusal(charge, failed("capture_failed", message))
                            .await
                    }
                }
            }
            Settlement::Cancel {
                failure_code,
                failure_message,
            } => match self
                .retrying(charge, || gateway.void(request.clone()))
                .await?
            {
                Called::Answered(()) => Ok(failed(failure_code, failure_message.clone())),
                Called::Refused(message) => {
                    tracing::warn!(charge_id = %charge.id, %message, "the gateway refused to cancel the authorization; looking the payment up");
                    self.after_refusal(charge, failed(failure_code, failure_message.clone()))
                        .await
                }
            },
        }
    }

    /// A capture or cancel the gateway refused: an earlier attempt whose answer was lost (and
    /// whose key the gateway has forgotten), the gateway's dashboard, or an expired hold may
    /// have settled the payment. What the gateway holds now decides: taken, the charge
    /// succeeded (even one we meant to cancel: the money is there, and says so loudly); still
    /// held, asked again later; released or never there, `failure`.
    async fn after_refusal(
        &self,
        charge: &Charge,
        failure: ChargeCommand,
    ) -> Result<ChargeCommand, Unsettled> {
        let Some(gateway) = self.gateways.get(&charge.gateway) else {
            return Err(Unsettled::Unknown);
        };
        match gateway.find_charge(&charge.gateway_key).await {
            Ok(Lookup::Found(ChargeOutcome::Succeeded { gateway_charge_id })) => {
                if matches!(
                    super::authorization::settlement(charge),
                    Some(Settlement::Cancel { .. })
                ) {
                    tracing::error!(charge_id = %charge.id, "an authorization we meant to cancel was captured at the gateway: recorded as succeeded; refund it if it should not stand");
                    metrics::counter!("billing_gateway_disagreements_total").increment(1);
                }
                Ok(ChargeCommand::RecordSuccess { gateway_charge_id })
            }
            Ok(Lookup::Found(
                ChargeOutcome::Authorized { .. } | ChargeOutcome::Accepted { .. },
            )) => Err(Unsettled::Unknown),
            Ok(
                Lookup::Found(ChargeOutcome::Declined { .. })
                | Lookup::NotFound
                | Lookup::Unsupported,
            ) => Ok(failure),
            Err(e) => {
                tracing::warn!(charge_id = %charge.id, error = %e, "looking the payment up failed; will try again");
                Err(Unsettled::Unknown)
            }
        }
    }

    /// Calls the gateway until it answers, retrying timeouts and 5xx (every retry with the same
    /// key); a 4xx is an answer too (`Refused`).
    pub(super) async fn retrying<T, F, Fut>(
        &self,
        charge: &Charge,
        mut call: F,
    ) -> Result<Called<T>, Unsettled>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, GatewayError>>,
    {
        // Whether every attempt failed to connect (then nothing happened at the gateway).
        let mut unreachable = true;
        let mut delays = GATEWAY_RETRY_DELAYS_MS.iter();
        loop {
            match call().await {
                Ok(answer) => return Ok(Called::Answered(answer)),
                Err(GatewayError::InvalidRequest(message)) => {
                    return Ok(Called::Refused(message));
                }
                Err(e) => match delays.next() {
                    Some(ms) => {
                        unreachable &= matches!(e, GatewayError::Unreachable(_));
                        tracing::warn!(charge_id = %charge.id, error = %e, "gateway call failed; retrying with the same key");
                        tokio::time::sleep(Duration::from_millis(*ms)).await;
                    }
                    None => {
                        tracing::warn!(charge_id = %charge.id, error = %e, "gateway outcome unknown; charge left pending");
                        return Err(match e {
                            GatewayError::Unreachable(m) if unreachable => {
                                Unsettled::Unreachable(m)
                            }
                            _ => Unsettled::Unknown,
                        });
                    }
                },
            }
        }
    }
}

/// Counts the decision screening made on an authorization's risk level.
pub(super) fn count_gateway_assessment(charge: &Charge) {
    if let Some(a) = &charge.fraud {
        metrics::counter!("billing_fraud_decisions_total", "decision" => a.decision.as_str())
            .increment(1);
    }
}
