//! Fetching the node config: HTTP and TFTP clients, URL variables, retries with backoff.
