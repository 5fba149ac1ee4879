//! The charge object as the API shows it (Stripe's shape, RFC 3339 timestamps).

use commands::charge::{Charge, ChargeStatus, Rendered};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;

#[derive(Debug, Serialize, ToSchema)]
pub struct ChargeObject {
    /// `ch_…`
    pub id: String,
    /// Always `charge`.
    pub object: &'static str,
    /// In the currency's minor unit.
    pub amount: i64,
    /// Lowercase ISO-4217.
    pub currency: String,
    /// `pending`, `in_review` (held by fraud screening), `succeeded` or `failed`.
    pub status: String,
    pub paid: bool,
    /// Refunded and confirmed by the gateway, in minor units.
    pub amount_refunded: i64,
    /// Whether the whole amount is refunded.
    pub refunded: bool,
    /// Whether the gateway reported a dispute (chargeback) of this charge.
    pub disputed: bool,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub customer: Option<String>,
    pub payment_method: String,
    pub description: Option<String>,
    /// `sandbox`, `stripe` or `paypal`.
    pub gateway: String,
    pub gateway_charge_id: Option<String>,
    /// Authorized at the gateway and not captured yet (held in review, or between the two
    /// steps).
    pub authorized: bool,
    /// The gateway's risk level (Stripe Radar: `normal`, `elevated`, `highest`), when the charge
    /// was authorized first to screen it.
    pub risk_level: Option<String>,
    /// RFC 3339.
    pub created: String,
    pub livemode: bool,
}

impl ChargeObject {
    pub fn from_charge(c: &Charge) -> Self {
        ChargeObject {
            id: c.id.to_string(),
            object: "charge",
            amount: c.amount.amount_minor(),
            currency: c.amount.currency().code().to_string(),
            status: c.status.as_str().to_string(),
            paid: c.status == ChargeStatus::Succeeded,
            amount_refunded: c.amount_refunded(),
            refunded: c.amount_refunded() == c.amount.amount_minor(),
            disputed: !c.disputes.is_empty(),
            failure_code: c.failure_code.clone(),
            failure_message: c.failure_message.clone(),
            customer: c.customer_id.map(|id| id.to_string()),
            payment_method: c.payment_method.clone(),
            description: c.description.clone(),
            gateway: c.gateway.clone(),
            gateway_charge_id: c.gateway_charge_id.clone(),
            authorized: c.authorized,
            risk_level: c.risk_level.clone(),
            created: c.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            livemode: false,
        }
    }
}

/// The charge object as the read API shows it, whatever its status (a failed charge is a 200
/// with `status: failed` there; only the command that made it answers 402).
pub fn render_object(c: &Charge) -> Rendered {
    Rendered {
        status: 200,
        body: serde_json::to_string(&ChargeObject::from_charge(c)).unwrap_or_default(),
    }
}

/// The HTTP answer for a charge: 200 succeeded, 202 pending (the gateway's answer is not known
/// yet; the charge completes later with the same gateway key), 402 failed (`card_error`, with the
/// charge id in the error, as Stripe does).
pub fn render(c: &Charge) -> Rendered {
    match c.status {
        ChargeStatus::Failed => {
            let e = ApiError::card_declined(
                c.failure_code.as_deref().unwrap_or("card_declined"),
                c.failure_message
                    .as_deref()
                    .unwrap_or("Your card was declined."),
                c.id.to_string(),
            );
            Rendered {
                status: e.status.as_u16(),
                body: e.body().to_string(),
            }
        }
        status => Rendered {
            status: if matches!(status, ChargeStatus::Pending | ChargeStatus::InReview) {
                202
            } else {
                200
            },
            body: serde_json::to_string(&ChargeObject::from_charge(c)).unwrap_or_default(),
        },
    }
}
