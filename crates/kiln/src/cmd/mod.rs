pub mod admin;
pub mod bench;
pub mod bench_cpu;
pub mod bench_dispatch;
pub mod demo;
pub mod pipeline;
pub mod run;
pub mod serve;
