//! The books at a moment, reconstructed from the log alone: the journal projection run in
//! memory over the events recorded up to that moment (no read model is consulted).

use std::collections::BTreeMap;

use futures_util::StreamExt;
use ledger::event::Position;
use ledger::store::{EventStore, read_all};

use crate::journal::Journal;
use crate::projection::{JournalLine, Projection, ReadSet};
use crate::worker::WorkerError;
use crate::worker::local::Until;

/// Debit and credit totals of one account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountTotals {
    pub debit: i64,
    pub credit: i64,
}

impl AccountTotals {
    /// `debit − credit`.
    #[must_use]
    pub fn balance(&self) -> i64 {
        self.debit.saturating_sub(self.credit)
    }
}

/// One customer's books in one currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CustomerBooks {
    /// Finalized invoice totals.
    pub invoiced: i64,
    /// Paid by charges against invoices.
    pub paid: i64,
    /// Given back by refunds.
    pub refunded: i64,
    /// Still receivable (invoiced, less paid, credited, voided and customer credit used).
    pub outstanding: i64,
    /// The customer balance: negative is credit the customer holds.
    pub balance: i64,
}

/// The books at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Books {
    /// The last log position included.
    pub position: i64,
    pub events: u64,
    /// Per currency, per account.
    pub accounts: BTreeMap<String, BTreeMap<String, AccountTotals>>,
    /// Per `(customer, currency)`.
    pub customers: BTreeMap<(String, String), CustomerBooks>,
}

#[derive(Debug, thiserror::Error)]
pub enum BooksError {
    #[error(transparent)]
    Worker(#[from] WorkerError),
    #[error("amounts overflow")]
    Overflow,
}

fn add(a: &mut i64, b: i64) -> Result<(), BooksError> {
    *a = a.checked_add(b).ok_or(BooksError::Overflow)?;
    Ok(())
}

impl Books {
    fn post(&mut self, l: &JournalLine) -> Result<(), BooksError> {
        let t = self
            .accounts
            .entry(l.currency.clone())
            .or_default()
            .entry(l.account.clone())
            .or_default();
        add(&mut t.debit, l.debit)?;
        add(&mut t.credit, l.credit)?;
        let Some(customer) = &l.customer else {
            return Ok(());
        };
        let c = self
            .customers
            .entry((customer.clone(), l.currency.clone()))
            .or_default();
        let net = l.debit.checked_sub(l.credit).ok_or(BooksError::Overflow)?;
        if l.account.starts_with("receivable:") {
            add(&mut c.outstanding, net)?;
            match l.entry.as_str() {
                "InvoiceFinalized" => add(&mut c.invoiced, net)?,
                "ChargeSucceeded" => add(&mut c.paid, -net)?,
                _ => {}
            }
        } else if l.account == "refunds" {
            add(&mut c.refunded, net)?;
        } else if l.account.starts_with("customer_balance:") {
            add(&mut c.balance, net)?;
        }
        Ok(())
    }

    /// Debits minus credits per currency: zero for every currency of balanced books.
    #[must_use]
    pub fn imbalance(&self) -> BTreeMap<String, i64> {
        self.accounts
            .iter()
            .map(|(currency, accounts)| {
                let sum = accounts
                    .values()
                    .fold(0i64, |s, t| s.saturating_add(t.balance()));
                (currency.clone(), sum)
            })
            .collect()
    }
}

/// The books of the events `until` admits, read from `events` in position order.
///
/// # Errors
/// Store failures, an event the journal cannot read, an overflow.
pub async fn books(events: &dyn EventStore, until: Until) -> Result<Books, BooksError> {
    let journal = Journal;
    let mut set = ReadSet::default();
    let mut books = Books::default();
    let mut log = std::pin::pin!(read_all(events, Position(0), 1_000));
    while let Some(event) = log.next().await {
        let event = event.map_err(WorkerError::from)?;
        if !until.admits(&event) {
            break;
        }
        for id in journal.reads(&event) {
            if !set.has_loaded(&id) {
                set.load(id, None);
            }
        }
        journal.apply(&mut set, &event).map_err(WorkerError::from)?;
        for line in set.take_journal() {
            books.post(&line)?;
        }
        books.position = event.position.0;
        books.events += 1;
    }
    Ok(books)
}
