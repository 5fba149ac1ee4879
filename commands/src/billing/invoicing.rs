//! An invoice from draft to paid: drafted with the customer's taxes and credit, the credit moved
//! on the customer's balance, finalized with the next gapless number, and paid with the default
//! payment method; a failed payment is retried on the configured schedule (dunning).

use chrono::{DateTime, TimeDelta, Utc};
use ledger::event::Metadata;
use ledger::ids::{ChargeId, InvoiceId, SubscriptionId, TaxRateId};
use ledger::money::Money;

use super::Billing;
use crate::aggregate::Executed;
use crate::charge::{ChargeInput, ChargeStatus, IdempotencyDraft, Rendered, unrendered};
use crate::customer::{Customer, CustomerChanges, CustomerCommand, CustomerError};
use crate::error::CommandError;
use crate::invoice;
use crate::invoice::{
    BillingReason, DraftInput, Invoice, InvoiceCommand, InvoiceError, InvoiceStatus, ItemInput,
    Period,
};
use crate::pricing::TaxRate;
use crate::subscription::{BillingItem, Subscription, SubscriptionCommand};

/// An invoice to issue.
#[derive(Debug, Clone)]
pub struct InvoiceRequest {
    pub invoice_id: InvoiceId,
    pub customer: Customer,
    pub currency: ledger::money::Currency,
    pub subscription_id: Option<SubscriptionId>,
    pub period: Option<Period>,
    pub reason: BillingReason,
    pub items: Vec<ItemInput>,
}

/// Where the answer to a request goes: stored under its `Idempotency-Key` (when it has one)
/// with the flow's last event on the invoice, rendered by `render`.
#[derive(Clone, Copy)]
pub struct Reply<'a> {
    pub key: Option<&'a IdempotencyDraft>,
    pub render: &'a (dyn Fn(&Invoice) -> Rendered + Send + Sync),
}

impl Reply<'static> {
    /// No request waits for this answer (a scheduled job, an inner step).
    pub fn none() -> Self {
        Reply {
            key: None,
            render: &unrendered::<Invoice>,
        }
    }
}

/// A failed payment attempt.
struct Failure {
    charge_id: ChargeId,
    attempt: u32,
    code: String,
}

/// Failure code when the customer has no payment method to charge.
pub const NO_PAYMENT_METHOD: &str = "no_payment_method";

/// Subscription billing items as invoice items.
pub(super) fn items_of(lines: &[BillingItem], currency: ledger::money::Currency) -> Vec<ItemInput> {
    lines
        .iter()
        .map(|l| ItemInput {
            description: l.description.clone(),
            unit_amount: Money::new(l.unit_amount, currency),
            quantity: l.quantity,
            proration: l.proration,
            period: Some((l.period_start, l.period_end)),
        })
        .collect()
}

impl Billing {
    /// Drafts the invoice (unless it exists), then [`Billing::settle`]s it.
    ///
    /// # Errors
    /// Domain refusals (bad lines), store failures.
    pub async fn issue_invoice(
        &self,
        req: InvoiceRequest,
        metadata: &Metadata,
    ) -> Result<Invoice, CommandError> {
        let id = req.invoice_id;
        self.draft_invoice(req, None, metadata, None, &unrendered)
            .await?;
        self.settle(id, metadata).await
    }

    /// Drafts the invoice unless it exists: lines taxed with `tax_rates`, or (when `None`) with
    /// the rates of the customer's location (none when it is tax exempt), and the customer's
    /// credit applied.
    ///
    /// # Errors
    /// Domain refusals (bad lines), store failures.
    pub async fn draft_invoice(
        &self,
        req: InvoiceRequest,
        tax_rates: Option<Vec<(TaxRateId, TaxRate)>>,
        metadata: &Metadata,
        draft_key: Option<&IdempotencyDraft>,
        render: &(dyn Fn(&Invoice) -> Rendered + Send + Sync),
    ) -> Result<Executed<Invoice>, CommandError> {
        let id = req.invoice_id;
        let loaded = self.executor.load::<Invoice>(&id).await?;
        if let Some(state) = loaded.state {
            return Ok(Executed {
                state,
                position: loaded.position,
                idempotency_stored: false,
            });
        }
        let c = &req.customer;
        let mut draft = self.dry_run(&req, tax_rates).await?;
        // A customer's first invoice fixes its currency (as on Stripe).
        if c.currency.is_none() {
            let fix = CustomerCommand::Update(CustomerChanges {
                currency: Some(req.currency),
                ..CustomerChanges::default()
            });
            self.executor
                .execute::<Customer>(&c.id, fix, metadata, None, &unrendered)
                .await?;
        }
        // The customer's balance, taken now (once per invoice, whatever the retries): its
        // credit for at most the invoice's total, or all it owes, added to what is due.
        let total = invoice::draft(draft.clone())?.totals.total;
        // Always asked (the snapshot may be stale, or a retry may find the credit already
        // taken): the customer decides on its current balance, once per invoice.
        if total > 0 {
            let source = format!("{id}:credit_applied");
            let apply = CustomerCommand::ApplyCredit {
                source: source.clone(),
                up_to: Money::new(total, req.currency),
            };
            let customer = self
                .executor
                .execute::<Customer>(&c.id, apply, metadata, None, &unrendered)
                .await?
                .state;
            // Positive: credit taken; negative: a debt collected with this invoice.
            let applied = customer
                .adjustment_sources
                .get(&source)
                .copied()
                .unwrap_or(0);
            draft.credit_applied = Money::new(applied.max(0), req.currency);
            draft.owed_applied = Money::new(applied.min(0).saturating_neg(), req.currency);
        }
        self.executor
            .execute::<Invoice>(
                &id,
                InvoiceCommand::Draft(draft),
                metadata,
                draft_key,
                render,
            )
            .await
    }

    /// The draft of `req` with its taxes and no credit yet, checked as `decide` would check it:
    /// a flow calls this before it records anything, so refused lines record nothing.
    ///
    /// # Errors
    /// The invoice domain's refusal of the lines or taxes; store failures.
    pub(super) async fn dry_run(
        &self,
        req: &InvoiceRequest,
        tax_rates: Option<Vec<(TaxRateId, TaxRate)>>,
    ) -> Result<DraftInput, CommandError> {
        let c = &req.customer;
        if let Some(have) = c.currency
            && have != req.currency
        {
            return Err(CommandError::Precondition(format!(
                "the customer is billed in {}, not {}",
                have.code(),
                req.currency.code()
            )));
        }
        let tax_rates = match (&c.tax_location, c.tax_exempt, tax_rates) {
            (_, true, _) => vec![],
            (_, false, Some(explicit)) => explicit,
            (Some(location), false, None) => {
                self.taxes
                    .applicable(self.executor.store().as_ref(), location)
                    .await?
            }
            (None, false, None) => vec![],
        };
        let draft = DraftInput {
            invoice_id: req.invoice_id,
            customer_id: c.id,
            currency: req.currency,
            subscription_id: req.subscription_id,
            period: req.period,
            billing_reason: req.reason,
            items: req.items.clone(),
            tax_rates,
            credit_applied: Money::zero(req.currency),
            owed_applied: Money::zero(req.currency),
        };
        invoice::draft(draft.clone())?;
        Ok(draft)
    }

    /// Finalizes the invoice (if it is a draft) and makes its first payment attempt (if it has
    /// none yet): brings an invoice forward from wherever a flow stopped.
    ///
    /// # Errors
    /// Store failures; [`InvoiceError::NotFound`].
    pub async fn settle(
        &self,
        id: InvoiceId,
        metadata: &Metadata,
    ) -> Result<Invoice, CommandError> {
        let invoice = self
            .finalize_invoice(id, metadata, Reply::none())
            .await?
            .state;
        if invoice.status != InvoiceStatus::Open {
            return Ok(invoice);
        }
        let attempt = match (invoice.attempt_count, invoice.unresolved_attempt()) {
            (0, _) => 1,
            (_, Some(attempt)) => attempt,
            _ => return Ok(invoice),
        };
        Ok(self
            .attempt_payment(&invoice, attempt, metadata, Reply::none())
            .await?
            .state)
    }

    /// Pays an open (or uncollectible) invoice now: the next attempt, finalizing a draft first.
    /// The reply is stored under its key with the payment's outcome.
    ///
    /// # Errors
    /// [`InvoiceError::NotOpen`] for a paid or void invoice; store failures.
    pub async fn pay_invoice(
        &self,
        id: InvoiceId,
        metadata: &Metadata,
        reply: Reply<'_>,
    ) -> Result<Executed<Invoice>, CommandError> {
        let was_draft = self.load_invoice(id).await?.status == InvoiceStatus::Draft;
        let finalized = self.finalize_invoice(id, metadata, Reply::none()).await?;
        let invoice = finalized.state.clone();
        match invoice.status {
            InvoiceStatus::Open | InvoiceStatus::Uncollectible => {}
            // Nothing was due (credit covered it): finalizing paid it — that is the answer.
            InvoiceStatus::Paid if was_draft => return Ok(finalized),
            other => return Err(InvoiceError::NotOpen(other).into()),
        }
        // An attempt without a recorded outcome is completed first: its charge, not a new one.
        let attempt = invoice
            .unresolved_attempt()
            .unwrap_or(invoice.attempt_count.saturating_add(1));
        self.attempt_payment(&invoice, attempt, metadata, reply)
            .await
    }

    /// A negative total (a downgrade's credit) goes back to the customer's balance and, for a
    /// draft, the invoice is finalized with the next gapless number. Each step is recorded once,
    /// however often this runs; the reply is stored with the finalization.
    ///
    /// # Errors
    /// Store failures; [`InvoiceError::NotFound`].
    pub async fn finalize_invoice(
        &self,
        id: InvoiceId,
        metadata: &Metadata,
        reply: Reply<'_>,
    ) -> Result<Executed<Invoice>, CommandError> {
        let loaded = self.executor.load::<Invoice>(&id).await?;
        let invoice = loaded.state.ok_or(InvoiceError::NotFound)?;
        let credit = invoice
            .credit_to_balance
            .checked_neg()
            .map_err(InvoiceError::from)?;
        if !credit.is_zero() {
            let command = CustomerCommand::AdjustBalance {
                amount: credit,
                reason: format!("credit from invoice {id}"),
                source: Some(format!("{id}:credit_to_balance")),
            };
            self.executor
                .execute::<Customer>(&invoice.customer_id, command, metadata, None, &unrendered)
                .await?;
        }
        if invoice.status != InvoiceStatus::Draft {
            return Ok(Executed {
                state: invoice,
                position: loaded.position,
                idempotency_stored: false,
            });
        }
        let number = self.number_for(id, metadata).await?;
        let finalize = InvoiceCommand::Finalize {
            number,
            due_date: None,
        };
        self.executor
            .execute::<Invoice>(&id, finalize, metadata, reply.key, reply.render)
            .await
    }

    pub(super) async fn load_invoice(&self, id: InvoiceId) -> Result<Invoice, CommandError> {
        Ok(self
            .executor
            .load::<Invoice>(&id)
            .await?
            .state
            .ok_or(InvoiceError::NotFound)?)
    }

    /// Attempt `attempt` (1 = the first) to pay `invoice` with the customer's default payment
    /// method. A success pays the invoice (and recovers a past-due subscription); a failure is
    /// recorded with the next retry, or ends the subscription's dunning. An outcome the gateway
    /// left unknown changes nothing more: the charge's recovery completes it, and the next run
    /// records it (`Invoice::unresolved_attempt`).
    ///
    /// # Errors
    /// Store failures; domain refusals (the invoice is not open).
    pub async fn attempt_payment(
        &self,
        invoice: &Invoice,
        attempt: u32,
        metadata: &Metadata,
        reply: Reply<'_>,
    ) -> Result<Executed<Invoice>, CommandError> {
        let id = invoice.id;
        let charge_id = ChargeId::derived(&format!("{id}:{attempt}"));
        let customer = self
            .executor
            .load::<Customer>(&invoice.customer_id)
            .await?
            .state
            .ok_or(CustomerError::NotFound)?;
        let start = InvoiceCommand::AttemptPayment { charge_id, attempt };
        let started = self
            .executor
            .execute::<Invoice>(&id, start, metadata, None, &unrendered)
            .await?;
        // An attempt charged before (its outcome lost) is completed with the charge it made —
        // the same token and amount — whatever the customer's methods are now.
        let earlier = self.charges.get(charge_id).await?;
        let (method, amount) = match &earlier {
            Some(charge) => (
                Some((
                    charge.payment_method.clone(),
                    charge.gateway.clone(),
                    charge.gateway_customer.clone(),
                )),
                charge.amount,
            ),
            None => (
                customer.default_method().map(|pm| {
                    (
                        pm.token.clone(),
                        pm.gateway.as_str().to_string(),
                        pm.gateway_customer.clone(),
                    )
                }),
                invoice.amount_due,
            ),
        };
        let failure_code = match method {
            None => NO_PAYMENT_METHOD.to_string(),
            Some((token, gateway, gateway_customer)) => {
                let input = ChargeInput {
                    charge_id,
                    amount,
                    customer_id: Some(customer.id),
                    payment_method: token,
                    gateway: Some(gateway),
                    // Like Stripe's invoice payments: the customer is not there to authenticate.
                    off_session: true,
                    risk: crate::charge::fraud::RiskFacts::default(),
                    fallbacks: Vec::new(),
                    gateway_customer,
                    description: Some(format!(
                        "Invoice {}",
                        invoice.number.as_deref().unwrap_or("draft")
                    )),
                };
                let done = self
                    .charges
                    .charge(input, metadata.clone(), None, &unrendered)
                    .await?;
                match done.charge.status {
                    // (Invoice payments are not screened: never in review.)
                    ChargeStatus::Pending | ChargeStatus::InReview => return Ok(started),
                    ChargeStatus::Succeeded => {
                        return self
                            .record_payment(invoice, charge_id, metadata, reply)
                            .await;
                    }
                    ChargeStatus::Failed => done
                        .charge
                        .failure_code
                        .unwrap_or_else(|| "card_declined".to_string()),
                }
            }
        };
        let failure = Failure {
            charge_id,
            attempt,
            code: failure_code,
        };
        self.record_failure(invoice, failure, metadata, reply).await
    }

    async fn record_payment(
        &self,
        invoice: &Invoice,
        charge_id: ChargeId,
        metadata: &Metadata,
        reply: Reply<'_>,
    ) -> Result<Executed<Invoice>, CommandError> {
        let paid = InvoiceCommand::RecordPayment {
            charge_id,
            amount: invoice.amount_due,
        };
        let done = self
            .executor
            .execute::<Invoice>(&invoice.id, paid, metadata, reply.key, reply.render)
            .await?;
        if let Some(sub) = invoice.subscription_id {
            let recovered = SubscriptionCommand::PaymentSucceeded {
                invoice_id: invoice.id,
            };
            self.executor
                .execute::<Subscription>(&sub, recovered, metadata, None, &unrendered)
                .await?;
        }
        Ok(done)
    }

    async fn record_failure(
        &self,
        invoice: &Invoice,
        failure: Failure,
        metadata: &Metadata,
        reply: Reply<'_>,
    ) -> Result<Executed<Invoice>, CommandError> {
        let attempt = failure.attempt;
        let next_attempt_at = self.next_attempt(invoice, attempt);
        let failed = InvoiceCommand::RecordPaymentFailure {
            charge_id: failure.charge_id,
            attempt,
            failure_code: failure.code,
            next_attempt_at,
        };
        let done = self
            .executor
            .execute::<Invoice>(&invoice.id, failed, metadata, reply.key, reply.render)
            .await?;
        if let Some(sub) = invoice.subscription_id {
            let mut commands = vec![SubscriptionCommand::PaymentFailed {
                invoice_id: invoice.id,
                attempt,
            }];
            if next_attempt_at.is_none() {
                commands.push(SubscriptionCommand::DunningExhausted {
                    invoice_id: invoice.id,
                    outcome: self.config.when_exhausted,
                });
            }
            let store = self.executor.store().clone();
            let before = store
                .stream_version(&super::subscribing::stream(sub)?)
                .await?;
            let mut last = None;
            for command in commands {
                let done = self
                    .executor
                    .execute::<Subscription>(&sub, command, metadata, None, &unrendered)
                    .await?;
                last = Some(done.state);
            }
            // Canceled by dunning: what the last period still owes (metered usage, pending
            // prorations) is invoiced and finalized, not charged — the card keeps failing; it
            // stays open for `/pay` (Stripe's final invoice).
            if let Some(state) = last {
                let customer = self.customer(state.customer_id).await?;
                for (id, reason, lines) in self.invoiced_now(sub, before).await? {
                    let request = InvoiceRequest {
                        invoice_id: id,
                        customer: customer.clone(),
                        currency: state.currency(),
                        subscription_id: Some(sub),
                        period: Some(state.current_period()),
                        reason,
                        items: items_of(&lines, state.currency()),
                    };
                    self.draft_invoice(request, None, metadata, None, &unrendered)
                        .await?;
                    self.finalize_invoice(id, metadata, Reply::none()).await?;
                }
            }
        }
        Ok(done)
    }

    /// When attempt `attempt + 1` is due: `retry_days[attempt − 1]` days after the invoice was
    /// finalized (its first attempt), or never when the schedule is used up.
    fn next_attempt(&self, invoice: &Invoice, attempt: u32) -> Option<DateTime<Utc>> {
        let index = usize::try_from(attempt).ok()?.checked_sub(1)?;
        let days = *self.config.retry_days.get(index)?;
        let from = invoice.finalized_at.unwrap_or(invoice.created);
        from.checked_add_signed(TimeDelta::days(i64::from(days)))
    }
}
