//! [`Gateways`]: the gateways this process charges through, by name.

use std::sync::Arc;

use crate::gateway::Gateway;

/// The configured gateways. A charge goes to the gateway of its payment method
/// ([`route`](Gateways::route)); a bare token (`POST /payment/process` without a customer's method)
/// goes to the [default](Gateways::default_gateway).
///
/// In sandbox mode (the sandbox is the only gateway) the sandbox stands in for every gateway, so a
/// `stripe` or `paypal` payment method can be tried without keys. As soon as a real gateway is
/// configured, the sandbox is gone and a method at a gateway that is not configured is refused.
#[derive(Clone)]
pub struct Gateways {
    /// The default first, then the others; names are unique.
    all: Vec<Arc<dyn Gateway>>,
}

impl Gateways {
    /// Only `default`.
    pub fn new(default: Arc<dyn Gateway>) -> Self {
        Self { all: vec![default] }
    }

    /// Adds `gateway`, replacing one of the same name (the default keeps its place).
    #[must_use]
    pub fn with(mut self, gateway: Arc<dyn Gateway>) -> Self {
        match self.all.iter().position(|g| g.name() == gateway.name()) {
            Some(i) => self.all[i] = gateway,
            None => self.all.push(gateway),
        }
        self
    }

    /// Where bare tokens go.
    pub fn default_gateway(&self) -> &Arc<dyn Gateway> {
        &self.all[0]
    }

    /// The gateway named `name`, if configured.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Gateway>> {
        self.all.iter().find(|g| g.name() == name)
    }

    /// The gateway a payment method held at `name` is charged (and refunded) through: that
    /// gateway, or the sandbox in sandbox mode; `None` when it is not configured.
    pub fn route(&self, name: &str) -> Option<&Arc<dyn Gateway>> {
        self.get(name).or_else(|| self.sandbox_only())
    }

    /// Names of the configured gateways, the default first.
    pub fn names(&self) -> Vec<&'static str> {
        self.all.iter().map(|g| g.name()).collect()
    }

    fn sandbox_only(&self) -> Option<&Arc<dyn Gateway>> {
        match self.all.as_slice() {
            [only] if only.name() == "sandbox" => Some(only),
            _ => None,
        }
    }
}

impl From<Arc<dyn Gateway>> for Gateways {
    fn from(default: Arc<dyn Gateway>) -> Self {
        Self::new(default)
    }
}

impl<G: Gateway> From<Arc<G>> for Gateways {
    fn from(default: Arc<G>) -> Self {
        Self::new(default)
    }
}

impl std::fmt::Debug for Gateways {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::{
        ChargeOutcome, ChargeRequest, GatewayError, RefundOutcome, RefundRequest,
    };
    use crate::sandbox::SandboxGateway;

    struct Named(&'static str);

    #[async_trait::async_trait]
    impl Gateway for Named {
        fn name(&self) -> &'static str {
            self.0
        }
        async fn charge(&self, _: ChargeRequest) -> Result<ChargeOutcome, GatewayError> {
            Err(GatewayError::Timeout)
        }
        async fn refund(&self, _: RefundRequest) -> Result<RefundOutcome, GatewayError> {
            Err(GatewayError::Timeout)
        }
    }

    #[test]
    fn the_sandbox_alone_stands_in_for_every_gateway() {
        let g = Gateways::new(Arc::new(SandboxGateway::new()));
        assert_eq!(g.route("stripe").map(|g| g.name()), Some("sandbox"));
        assert_eq!(g.route("paypal").map(|g| g.name()), Some("sandbox"));
        assert!(g.get("stripe").is_none());
    }

    #[test]
    fn with_real_gateways_each_method_goes_to_its_own_and_unknown_ones_nowhere() {
        let g = Gateways::new(Arc::new(Named("stripe"))).with(Arc::new(Named("paypal")));
        assert_eq!(g.default_gateway().name(), "stripe");
        assert_eq!(g.route("paypal").map(|g| g.name()), Some("paypal"));
        assert_eq!(g.route("stripe").map(|g| g.name()), Some("stripe"));
        assert!(g.route("sandbox").is_none());
        let g = g.with(Arc::new(Named("stripe")));
        assert_eq!(g.names(), ["stripe", "paypal"]);
    }
}
