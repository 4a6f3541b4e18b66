//! Webhooks out. The outbox lives in the store (`kiln_store::hooks`): status changes queue
//! their deliveries in their own transactions. This module holds where a hook may point
//! (`target`); the sender and the hooks API build on it.

pub mod target;
