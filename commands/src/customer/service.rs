//! Customer commands that touch personal data: sealing it with the customer's data key before
//! it goes into an event, opening it to answer, and erasing it by destroying the key.

use std::sync::Arc;

use ledger::event::Metadata;
use ledger::ids::CustomerId;
use ledger::vault::{Vault, VaultError};

use super::{Customer, CustomerCommand, PersonalData};
use crate::aggregate::{Executed, Executor};
use crate::charge::{IdempotencyDraft, Rendered};
use crate::clock::Clock;
use crate::error::CommandError;

/// A customer with its personal data opened (`None` once erased).
#[derive(Debug, Clone)]
pub struct CustomerView {
    pub customer: Customer,
    pub personal: Option<PersonalData>,
}

#[derive(Clone)]
pub struct CustomerService {
    executor: Executor,
    vault: Vault,
    clock: Arc<dyn Clock>,
}

impl CustomerService {
    pub fn new(executor: Executor, vault: Vault, clock: Arc<dyn Clock>) -> Self {
        Self {
            executor,
            vault,
            clock,
        }
    }

    /// `personal` sealed for customer `id`, to carry in an event.
    ///
    /// # Errors
    /// [`CommandError::Vault`] (an erased customer cannot get personal data again).
    pub async fn seal(
        &self,
        id: CustomerId,
        personal: &PersonalData,
    ) -> Result<String, CommandError> {
        let json = serde_json::to_vec(personal)
            .map_err(|e| CommandError::Vault(VaultError::Unauthentic(e.to_string())))?;
        Ok(self.vault.seal(&id.to_string(), &json).await?)
    }

    /// The customer with its personal data opened.
    ///
    /// # Errors
    /// [`CommandError::Vault`] when sealed data does not authenticate (a wrong master key).
    pub async fn view(&self, customer: Customer) -> Result<CustomerView, CommandError> {
        let personal = match &customer.personal {
            None => None,
            Some(sealed) => self
                .vault
                .open(&customer.id.to_string(), sealed)
                .await?
                .map(|bytes| {
                    serde_json::from_slice(&bytes)
                        .map_err(|e| VaultError::Unauthentic(e.to_string()))
                })
                .transpose()?,
        };
        Ok(CustomerView { customer, personal })
    }

    /// Loads customer `id` with its personal data opened.
    ///
    /// # Errors
    /// [`CommandError::Customer`] `NotFound`, store or vault failures.
    pub async fn load(&self, id: CustomerId) -> Result<CustomerView, CommandError> {
        let loaded = self.executor.load::<Customer>(&id).await?;
        let customer = loaded.state.ok_or(super::CustomerError::NotFound)?;
        self.view(customer).await
    }

    /// GDPR erasure: records `CustomerPersonalDataErased`, then destroys the data key. A retry
    /// after a failure between the two finds the event and destroys the key.
    ///
    /// # Errors
    /// Store or vault failures; [`CommandError::Customer`] `NotFound`.
    pub async fn erase(
        &self,
        id: CustomerId,
        metadata: &Metadata,
        draft: Option<&IdempotencyDraft>,
        render: &(dyn Fn(&Customer) -> Rendered + Send + Sync),
    ) -> Result<Executed<Customer>, CommandError> {
        let done = self
            .executor
            .execute::<Customer>(
                &id,
                CustomerCommand::ErasePersonalData,
                metadata,
                draft,
                render,
            )
            .await?;
        self.vault.shred(&id.to_string(), self.clock.now()).await?;
        Ok(done)
    }

    pub fn executor(&self) -> &Executor {
        &self.executor
    }
}
