//! The service tables of the lbd configs the check benchmarks generate.

use std::net::SocketAddr;

/// lbd's `[service.sN]` tables for `reals`, `per_service` of them to a service: fwmark
/// services numbered from `first_fwmark`, weighted round robin, direct routing, each checked
/// by `check` (an inline table).
pub fn services(
    reals: impl IntoIterator<Item = SocketAddr>,
    per_service: usize,
    first_fwmark: usize,
    check: &str,
) -> String {
    let mut t = String::new();
    for (i, real) in reals.into_iter().enumerate() {
        let s = i / per_service;
        if i % per_service == 0 {
            t += &format!(
                "[service.s{s}]\nfwmark = {}\nscheduler = \"wrr\"\nforwarding = \"dr\"\ncheck = {check}\n",
                first_fwmark + s
            );
        }
        t += &format!("[[service.s{s}.real]]\naddress = \"{real}\"\n");
    }
    t
}

#[cfg(test)]
mod tests {
    use super::services;

    #[test]
    fn reals_are_grouped_into_services() {
        let reals = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:81"].map(|a| a.parse().unwrap());
        assert_eq!(
            services(reals, 2, 7, "{ type = \"tcp\" }"),
            "[service.s0]\nfwmark = 7\nscheduler = \"wrr\"\nforwarding = \"dr\"\ncheck = { type = \"tcp\" }\n\
             [[service.s0.real]]\naddress = \"10.0.0.1:80\"\n\
             [[service.s0.real]]\naddress = \"10.0.0.2:80\"\n\
             [service.s1]\nfwmark = 8\nscheduler = \"wrr\"\nforwarding = \"dr\"\ncheck = { type = \"tcp\" }\n\
             [[service.s1.real]]\naddress = \"10.0.0.3:81\"\n"
        );
    }
}
