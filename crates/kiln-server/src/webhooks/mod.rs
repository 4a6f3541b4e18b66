//! Webhooks out. The outbox lives in the store (`kiln_store::hooks`): status changes queue
//! their deliveries in their own transactions. Here: where a hook may point (`target`), what
//! it is sent (`payload`) and the sender that sends it (`sender`).

pub mod payload;
pub mod sender;
pub mod target;

pub use sender::{start, Envelope, Sender};
