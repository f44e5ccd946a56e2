//! What the benchmark binaries share: the lbd configs and IPVS tables they generate, the HTTP
//! framing and SYN counting of their test servers, and CPU times read from /proc.

pub mod http_request;
pub mod ipvs_table;
pub mod lbd_config;
pub mod proc_stat;
pub mod tcp_segment;
