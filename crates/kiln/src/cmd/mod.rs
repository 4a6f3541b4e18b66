pub mod admin;
pub mod bench;
pub mod serve;
