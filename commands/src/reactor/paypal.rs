//! PayPal's events, as reports about our charges. Pure: the body in, a translation out.
//!
//! Our charge's capture carries our idempotency key as `custom_id`; a refund names its capture by
//! its `up` link, and says how much of the capture is refunded in all
//! (`seller_payable_breakdown.total_refunded_amount`).

use gateways::paypal::amount::parse_value;
use ledger::money::Currency;
use serde_json::Value;

use super::{ChargeRef, Translated};
use crate::charge::{GatewayReport, ListedRefund};

/// What a PayPal event says, if it is one we act on.
pub fn translate(event_id: &str, event_type: &str, body: &Value) -> Translated {
    let resource = &body["resource"];
    let text = |v: &Value| v.as_str().map(str::to_string);
    match event_type {
        "PAYMENT.CAPTURE.COMPLETED" | "PAYMENT.CAPTURE.DENIED" => {
            let Some(capture) = text(&resource["id"]) else {
                return Translated::Unreadable("resource.id missing".into());
            };
            let charge = ChargeRef::new(resource["custom_id"].as_str(), [&capture]);
            let report = if event_type == "PAYMENT.CAPTURE.COMPLETED" {
                GatewayReport::Succeeded {
                    gateway_charge_id: capture,
                }
            } else {
                GatewayReport::Failed {
                    gateway_charge_id: capture,
                    failure_code: "card_declined".into(),
                    failure_message: "PayPal denied the capture.".into(),
                }
            };
            Translated::Report(charge, report)
        }
        "PAYMENT.CAPTURE.REFUNDED" => {
            let Some(capture) = capture_of(resource) else {
                return Translated::Unreadable("resource.links has no capture (rel up)".into());
            };
            let total = &resource["seller_payable_breakdown"]["total_refunded_amount"];
            let Some(amount_refunded) = minor(total) else {
                return Translated::Unreadable(
                    "seller_payable_breakdown.total_refunded_amount unreadable".into(),
                );
            };
            let charge = ChargeRef::new(resource["custom_id"].as_str(), [&capture]);
            Translated::Report(
                charge,
                GatewayReport::Refunded {
                    amount_refunded,
                    refunds: text(&resource["id"])
                        .map(|id| ListedRefund {
                            id,
                            billing_key: text(&resource["custom_id"]),
                            amount: minor(&resource["amount"]),
                        })
                        .into_iter()
                        .collect(),
                    reference: event_id.to_string(),
                },
            )
        }
        _ => Translated::Ignored,
    }
}

/// The capture a refund belongs to: its `up` link's last segment.
fn capture_of(resource: &Value) -> Option<String> {
    resource["links"]
        .as_array()?
        .iter()
        .filter(|l| l["rel"] == "up")
        .filter_map(|l| l["href"].as_str())
        .find_map(|href| {
            let (_, id) = href.rsplit_once("/captures/")?;
            (!id.is_empty() && !id.contains('/')).then(|| id.to_string())
        })
}

/// `{currency_code, value}` in minor units, exactly.
fn minor(amount: &Value) -> Option<i64> {
    let currency = Currency::parse(amount["currency_code"].as_str()?).ok()?;
    parse_value(amount["value"].as_str()?, currency.exponent())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_completed_capture_names_our_charge_by_custom_id() {
        let key = format!("charge-{}", ledger::ids::ChargeId::derived("p"));
        let body = json!({"resource": {"id": "8AD24597NK419553W", "status": "COMPLETED",
            "custom_id": key, "amount": {"currency_code": "USD", "value": "100.00"}}});
        match translate("WH-1", "PAYMENT.CAPTURE.COMPLETED", &body) {
            Translated::Report(c, GatewayReport::Succeeded { gateway_charge_id }) => {
                assert_eq!(c.charge_id, Some(ledger::ids::ChargeId::derived("p")));
                assert_eq!(gateway_charge_id, "8AD24597NK419553W");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            translate("WH-2", "PAYMENT.CAPTURE.DENIED", &body),
            Translated::Report(_, GatewayReport::Failed { .. })
        ));
    }

    #[test]
    fn a_refund_names_its_capture_and_the_total_refunded_in_minor_units() {
        let body = json!({"resource": {"id": "1LR28403PJ573210C", "status": "COMPLETED",
            "amount": {"currency_code": "JPY", "value": "500"},
            "seller_payable_breakdown": {"total_refunded_amount": {"currency_code": "JPY", "value": "1200"}},
            "links": [{"rel": "self", "href": "https://api.sandbox.paypal.com/v2/payments/refunds/1LR28403PJ573210C"},
                      {"rel": "up", "href": "https://api.sandbox.paypal.com/v2/payments/captures/8AD24597NK419553W"}]}});
        match translate("WH-3", "PAYMENT.CAPTURE.REFUNDED", &body) {
            Translated::Report(
                c,
                GatewayReport::Refunded {
                    amount_refunded,
                    refunds,
                    reference,
                },
            ) => {
                assert_eq!(c.gateway_ids, ["8AD24597NK419553W"]);
                assert_eq!(amount_refunded, 1200);
                assert_eq!(refunds[0].id, "1LR28403PJ573210C");
                assert_eq!(reference, "WH-3");
            }
            other => panic!("{other:?}"),
        }
        let mut bad = body.clone();
        bad["resource"]["seller_payable_breakdown"]["total_refunded_amount"]["value"] =
            json!("12.5");
        assert!(matches!(
            translate("WH-4", "PAYMENT.CAPTURE.REFUNDED", &bad),
            Translated::Unreadable(_)
        ));
        assert!(matches!(
            translate("WH-5", "CHECKOUT.ORDER.APPROVED", &body),
            Translated::Ignored
        ));
    }
}
