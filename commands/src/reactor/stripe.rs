//! Stripe's events, as reports about our charges. Pure: the body in, a translation out.

use gateways::stripe::failure_code;
use serde_json::Value;

use super::{ChargeRef, Translated};
use crate::charge::dispute::DisputeReport;
use crate::charge::{GatewayReport, ListedRefund};

/// What a Stripe event says, if it is one we act on.
pub fn translate(event_id: &str, event_type: &str, body: &Value) -> Translated {
    let object = &body["data"]["object"];
    let text = |v: &Value| v.as_str().map(str::to_string);
    match event_type {
        "payment_intent.succeeded" | "payment_intent.payment_failed" => {
            let Some(pi) = text(&object["id"]) else {
                return Translated::Unreadable("data.object.id missing".into());
            };
            let charge = ChargeRef::new(object["metadata"]["billing_key"].as_str(), [&pi]);
            let report = if event_type == "payment_intent.succeeded" {
                GatewayReport::Succeeded {
                    gateway_charge_id: pi,
                }
            } else {
                let e = &object["last_payment_error"];
                GatewayReport::Failed {
                    gateway_charge_id: pi,
                    failure_code: failure_code(e["code"].as_str(), e["decline_code"].as_str())
                        .to_string(),
                    failure_message: text(&e["message"])
                        .unwrap_or_else(|| "The payment failed.".into()),
                }
            };
            Translated::Report(charge, report)
        }
        "charge.refunded" => {
            let Some(amount_refunded) = object["amount_refunded"].as_i64() else {
                return Translated::Unreadable("data.object.amount_refunded missing".into());
            };
            let ids = [&object["payment_intent"], &object["id"]];
            let ids: Vec<String> = ids.into_iter().filter_map(text).collect();
            let charge = ChargeRef::new(object["metadata"]["billing_key"].as_str(), &ids);
            if amount_refunded < 0 {
                return Translated::Unreadable("data.object.amount_refunded negative".into());
            }
            // Stripe lists newest first.
            let refunds = object["refunds"]["data"]
                .as_array()
                .map(|rs| {
                    rs.iter()
                        .rev()
                        .filter_map(|r| {
                            Some(ListedRefund {
                                id: text(&r["id"])?,
                                billing_key: text(&r["metadata"]["billing_key"]),
                                amount: r["amount"].as_i64(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            Translated::Report(
                charge,
                GatewayReport::Refunded {
                    amount_refunded,
                    refunds,
                    reference: event_id.to_string(),
                },
            )
        }
        "charge.dispute.created"
        | "charge.dispute.updated"
        | "charge.dispute.funds_withdrawn"
        | "charge.dispute.funds_reinstated"
        | "charge.dispute.closed" => {
            let (Some(id), Some(amount)) = (text(&object["id"]), object["amount"].as_i64()) else {
                return Translated::Unreadable("data.object.id or amount missing".into());
            };
            let ids = [&object["payment_intent"], &object["charge"]];
            let ids: Vec<String> = ids.into_iter().filter_map(text).collect();
            Translated::Report(
                ChargeRef::new(None, &ids),
                GatewayReport::Dispute(DisputeReport {
                    dispute_id: id,
                    amount,
                    reason: text(&object["reason"]).unwrap_or_else(|| "general".into()),
                    status: text(&object["status"]).unwrap_or_default(),
                    closed: event_type == "charge.dispute.closed",
                }),
            )
        }
        _ => Translated::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn payment_intent_events_name_the_charge_by_our_key_and_the_intent() {
        let key = format!("charge-{}", ledger::ids::ChargeId::derived("x"));
        let body = json!({"data": {"object": {"id": "pi_1", "metadata": {"billing_key": key},
            "last_payment_error": {"code": "card_declined", "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds."}}}});
        match translate("evt_1", "payment_intent.payment_failed", &body) {
            Translated::Report(c, GatewayReport::Failed { failure_code, .. }) => {
                assert_eq!(c.charge_id, Some(ledger::ids::ChargeId::derived("x")));
                assert_eq!(c.gateway_ids, ["pi_1"]);
                assert_eq!(failure_code, "insufficient_funds");
            }
            other => panic!("{other:?}"),
        }
        match translate("evt_2", "payment_intent.succeeded", &body) {
            Translated::Report(_, GatewayReport::Succeeded { gateway_charge_id }) => {
                assert_eq!(gateway_charge_id, "pi_1");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn charge_refunded_carries_the_cumulative_amount_and_the_refund_ids() {
        let body = json!({"data": {"object": {"id": "ch_1", "payment_intent": "pi_1",
            "amount_refunded": 700, "metadata": {},
            "refunds": {"data": [{"id": "re_2", "metadata": {"billing_key": "refund-x"}},
                {"id": "re_1", "metadata": {}}]}}}});
        match translate("evt_3", "charge.refunded", &body) {
            Translated::Report(
                c,
                GatewayReport::Refunded {
                    amount_refunded,
                    refunds,
                    reference,
                },
            ) => {
                assert_eq!(c.charge_id, None);
                assert_eq!(c.gateway_ids, ["pi_1", "ch_1"]);
                assert_eq!(amount_refunded, 700);
                let ids: Vec<_> = refunds.iter().map(|r| r.id.as_str()).collect();
                assert_eq!(ids, ["re_1", "re_2"], "oldest first");
                assert_eq!(refunds[1].billing_key.as_deref(), Some("refund-x"));
                assert_eq!(refunds[0].billing_key, None);
                assert_eq!(reference, "evt_3");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_types_are_left_alone_and_broken_objects_said_so() {
        assert!(matches!(
            translate("e", "customer.created", &json!({})),
            Translated::Ignored
        ));
        assert!(matches!(
            translate("e", "charge.refunded", &json!({"data": {"object": {}}})),
            Translated::Unreadable(_)
        ));
    }
}
