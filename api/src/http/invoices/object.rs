//! The invoice object (Stripe's shape).

use commands::charge::Rendered;
use commands::invoice::{Invoice, InvoiceLine};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct TaxAmount {
    /// `tr_…`
    pub tax_rate: String,
    /// Decimal string.
    pub percentage: String,
    pub inclusive: bool,
    pub amount: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LineObject {
    pub description: String,
    pub quantity: i64,
    pub unit_amount: i64,
    /// `unit_amount × quantity` (containing inclusive tax).
    pub amount: i64,
    pub proration: bool,
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    pub tax_amounts: Vec<TaxAmount>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreditNoteObject {
    /// `cn_…`
    pub id: String,
    pub amount: i64,
    pub reason: String,
    /// Issued after payment: refunded to the charge that paid.
    pub refund: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceObject {
    /// `in_…`
    pub id: String,
    /// Always `invoice`.
    pub object: &'static str,
    /// Gapless per issuer, set at finalization (`KB-000001`).
    pub number: Option<String>,
    pub customer: String,
    pub subscription: Option<String>,
    /// `draft`, `open`, `paid`, `void` or `uncollectible`.
    pub status: String,
    pub billing_reason: String,
    pub currency: String,
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    pub lines: Vec<LineObject>,
    pub subtotal: i64,
    pub tax: i64,
    pub total: i64,
    /// Customer credit used on this invoice.
    pub credit_applied: i64,
    /// What the customer owed (a positive balance), added to this invoice's amount due.
    pub owed_applied: i64,
    /// Credit the invoice gave back to the customer's balance (a negative total).
    pub credit_to_balance: i64,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub amount_remaining: i64,
    pub credit_notes: Vec<CreditNoteObject>,
    pub attempt_count: u32,
    /// `ch_…` of the payment.
    pub charge: Option<String>,
    pub last_failure_code: Option<String>,
    pub next_payment_attempt: Option<String>,
    pub created: String,
    pub finalized_at: Option<String>,
    pub paid_at: Option<String>,
    pub voided_at: Option<String>,
    pub livemode: bool,
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn snake<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn line(l: &InvoiceLine) -> LineObject {
    LineObject {
        description: l.description.clone(),
        quantity: l.quantity,
        unit_amount: l.unit_amount,
        amount: l.amount,
        proration: l.proration,
        period_start: l.period_start.map(rfc3339),
        period_end: l.period_end.map(rfc3339),
        tax_amounts: l
            .tax
            .iter()
            .map(|t| TaxAmount {
                tax_rate: t.tax_rate_id.to_string(),
                percentage: t.rate.percentage().to_string(),
                inclusive: t.rate.is_inclusive(),
                amount: t.amount,
            })
            .collect(),
    }
}

pub fn object(i: &Invoice) -> InvoiceObject {
    InvoiceObject {
        id: i.id.to_string(),
        object: "invoice",
        number: i.number.clone(),
        customer: i.customer_id.to_string(),
        subscription: i.subscription_id.map(|s| s.to_string()),
        status: snake(&i.status),
        billing_reason: snake(&i.billing_reason),
        currency: i.currency.code().to_string(),
        period_start: i.period.map(|p| rfc3339(p.0)),
        period_end: i.period.map(|p| rfc3339(p.1)),
        lines: i.lines.iter().map(line).collect(),
        subtotal: i.subtotal.amount_minor(),
        tax: i.tax.amount_minor(),
        total: i.total.amount_minor(),
        credit_applied: i.credit_applied.amount_minor(),
        owed_applied: i.owed().amount_minor(),
        credit_to_balance: i.credit_to_balance.amount_minor(),
        amount_due: i.amount_due.amount_minor(),
        amount_paid: i.amount_paid.amount_minor(),
        amount_remaining: i.amount_remaining.amount_minor(),
        credit_notes: i
            .credit_notes
            .iter()
            .map(|n| CreditNoteObject {
                id: n.id.to_string(),
                amount: n.amount.amount_minor(),
                reason: snake(&n.reason),
                refund: n.refund,
            })
            .collect(),
        attempt_count: i.attempt_count,
        charge: i.paid_by.map(|c| c.to_string()),
        last_failure_code: i.last_failure_code.clone(),
        next_payment_attempt: i.next_payment_attempt.map(rfc3339),
        created: rfc3339(i.created),
        finalized_at: i.finalized_at.map(rfc3339),
        paid_at: i.paid_at.map(rfc3339),
        voided_at: i.voided_at.map(rfc3339),
        livemode: false,
    }
}

pub fn render(i: &Invoice) -> Rendered {
    Rendered {
        status: 200,
        body: serde_json::to_string(&object(i)).unwrap_or_default(),
    }
}
