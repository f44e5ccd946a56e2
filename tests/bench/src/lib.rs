//! What the benchmark binaries share: the lbd configs they generate, the HTTP framing and SYN
//! counting of their test servers, and CPU times read from /proc.

pub mod http_request;
pub mod lbd_config;
pub mod proc_stat;
pub mod tcp_segment;
