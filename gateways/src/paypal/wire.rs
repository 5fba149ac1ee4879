//! The request bodies we send and the parts of PayPal's answers we read (orders, captures,
//! refunds, webhook verifications). Unknown fields are ignored; missing optional ones default.

use serde::Deserialize;
use serde_json::{Value, json};

use super::amount::PaypalAmount;
use super::ids;
use crate::gateway::ChargeRequest;

/// An order (`Prefer: return=representation`), as created or captured.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Order {
    pub id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub purchase_units: Vec<PurchaseUnit>,
}

/// A purchase unit: what is paid and, once captured, its captures.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct PurchaseUnit {
    pub amount: Option<PaypalAmount>,
    pub custom_id: Option<String>,
    #[serde(default)]
    pub payments: Payments,
}

/// A purchase unit's payments.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Payments {
    #[serde(default)]
    pub captures: Vec<Capture>,
}

/// A capture: the money taken (or not) for an order.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Capture {
    pub id: String,
    #[serde(default)]
    pub status: String,
    pub amount: Option<PaypalAmount>,
    pub status_details: Option<StatusDetails>,
}

/// Why a capture is `PENDING` (or `DECLINED`).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct StatusDetails {
    pub reason: Option<String>,
}

/// A refund of a capture.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Refund {
    pub id: String,
    #[serde(default)]
    pub status: String,
    pub amount: Option<PaypalAmount>,
}

/// The answer of `POST /v1/notifications/verify-webhook-signature`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Verification {
    pub verification_status: String,
}

impl Order {
    /// The first purchase unit (we create orders with exactly one).
    pub fn unit(&self) -> Option<&PurchaseUnit> {
        self.purchase_units.first()
    }

    /// The order's capture, once there is one.
    pub fn capture(&self) -> Option<&Capture> {
        self.unit().and_then(|u| u.payments.captures.first())
    }
}

/// `POST /v2/checkout/orders` for a charge of the vaulted payment source `vault_id`: intent
/// `CAPTURE`, one purchase unit carrying our idempotency key as `custom_id` (webhooks name our
/// charge by it). A renewal (`off_session`) is marked merchant-initiated.
pub(crate) fn order_body(req: &ChargeRequest, amount: &PaypalAmount, vault_id: &str) -> Value {
    let mut unit = json!({ "amount": amount, "custom_id": req.idempotency_key });
    if let Some(d) = req.description.as_deref().filter(|d| !d.is_empty()) {
        unit["description"] = json!(ids::description(d));
    }
    let mut paypal = json!({ "vault_id": vault_id });
    if req.off_session {
        paypal["stored_credential"] =
            json!({ "payment_initiator": "MERCHANT", "usage": "SUBSEQUENT" });
    }
    json!({
        "intent": "CAPTURE",
        "purchase_units": [unit],
        "payment_source": { "paypal": paypal },
    })
}

/// `POST /v2/payments/captures/{id}/refund`.
/// A refund of `amount`, carrying our idempotency key as `custom_id` (its webhook names our
/// refund by it).
pub(crate) fn refund_body(amount: &PaypalAmount, key: &str) -> Value {
    json!({ "amount": amount, "custom_id": key })
}

#[cfg(test)]
mod tests {
    use ledger::money::{Currency, Money};

    use super::*;

    fn request(off_session: bool, description: Option<&str>) -> ChargeRequest {
        ChargeRequest {
            idempotency_key: "charge-1".into(),
            amount: Money::new(1999, Currency::USD),
            payment_method: "vault_ok".into(),
            description: description.map(Into::into),
            customer_ref: Some("cus_1".into()),
            off_session,
            gateway_customer: None,
        }
    }

    #[test]
    fn an_order_captures_one_unit_named_by_our_key_from_the_vault() {
        let req = request(false, Some("Pro plan"));
        let amount = PaypalAmount::of(req.amount).unwrap();
        let body = order_body(&req, &amount, "vault_ok");
        assert_eq!(
            body,
            json!({
                "intent": "CAPTURE",
                "purchase_units": [{
                    "amount": { "currency_code": "USD", "value": "19.99" },
                    "custom_id": "charge-1",
                    "description": "Pro plan",
                }],
                "payment_source": { "paypal": { "vault_id": "vault_ok" } },
            })
        );
        let renewal = order_body(&request(true, None), &amount, "vault_ok");
        assert_eq!(
            renewal["payment_source"]["paypal"]["stored_credential"]["payment_initiator"],
            "MERCHANT"
        );
        assert!(renewal["purchase_units"][0].get("description").is_none());
    }

    #[test]
    fn answers_are_read_leniently() {
        let order: Order = serde_json::from_value(json!({
            "id": "O1", "status": "COMPLETED", "links": [],
            "purchase_units": [{ "reference_id": "default",
                "payments": { "captures": [{ "id": "C1", "status": "PENDING",
                    "status_details": { "reason": "PENDING_REVIEW" } }] } }],
        }))
        .unwrap();
        let capture = order.capture().unwrap();
        assert_eq!(
            (capture.id.as_str(), capture.status.as_str()),
            ("C1", "PENDING")
        );
        let minimal: Order =
            serde_json::from_value(json!({ "id": "O2", "status": "APPROVED" })).unwrap();
        assert!(minimal.capture().is_none() && minimal.unit().is_none());
    }
}
