//! Every keyword keepalived.conf(5) documents, by the block it is written in: those the
//! converter translates ([`CONVERTED`]), and those it does not ([`IGNORED`]), each with what
//! keepalived does with it (and, where useful, what lbd does instead): the reason its warning
//! gives, as "`KEY` has no equivalent in lbd: ignored (REASON)".
//!
//! A context is the keyword of the block (`global_defs`, `vrrp_instance`, `HTTP_GET`...),
//! `top` for the file's top level, and `checker` for the options every checker takes. An entry
//! may name several contexts, separated by spaces. A keyword in no entry of its context is no
//! keepalived setting the converter knows: its warning says so.
//!
//! Where keepalived has a block of settings of its own that lbd has no use for (a
//! `vrrp_script`, a `bfd_instance`...), the block is reported, and so is each setting in it
//! ([`SETTING_BLOCKS`]). Blocks that hold lists (addresses, routes, interface names) are
//! reported as a whole.

/// Keywords the converter translates into lbd's config (or into a warning that depends on
/// their value), by context.
pub const CONVERTED: &[(&str, &str)] = &[
    ("top", "global_defs"),
    ("top", "vrrp_instance"),
    ("top", "vrrp_sync_group"),
    ("top", "virtual_server_group"),
    ("top", "virtual_server"),
    ("top", "static_ipaddress"),
    ("top", "static_routes"),
    ("top", "static_rules"),
    ("global_defs", "router_id"),
    ("global_defs", "default_interface"),
    ("global_defs", "lvs_sync_daemon"),
    ("global_defs", "lvs_timeouts"),
    ("global_defs", "vrrp_garp_master_repeat"),
    ("global_defs", "vrrp_garp_master_delay"),
    ("global_defs", "vrrp_min_garp"),
    ("global_defs", "vrrp_version"),
    ("global_defs", "vrrp_strict"),
    ("global_defs", "vrrp_rt_priority"),
    ("global_defs", "disable_local_igmp"),
    ("vrrp_sync_group", "group"),
    ("vrrp_instance", "state"),
    ("vrrp_instance", "interface"),
    ("vrrp_instance", "use_vmac"),
    ("vrrp_instance", "track_interface"),
    ("vrrp_instance", "unicast_src_ip"),
    ("vrrp_instance", "version"),
    ("vrrp_instance", "unicast_peer"),
    ("vrrp_instance", "garp_master_delay"),
    ("vrrp_instance", "garp_master_repeat"),
    ("vrrp_instance", "virtual_router_id"),
    ("vrrp_instance", "priority"),
    ("vrrp_instance", "advert_int"),
    ("vrrp_instance", "authentication"),
    ("vrrp_instance", "virtual_ipaddress"),
    ("vrrp_instance", "virtual_ipaddress_excluded"),
    ("vrrp_instance", "promote_secondaries"),
    ("vrrp_instance", "accept"),
    ("vrrp_instance", "no_accept"),
    ("vrrp_instance", "nopreempt"),
    ("vrrp_instance", "preempt"),
    ("vrrp_instance", "preempt_delay"),
    ("vrrp_instance", "strict_mode"),
    ("authentication", "auth_type"),
    ("authentication", "auth_pass"),
    ("virtual_server_group", "fwmark"),
    ("virtual_server", "lvs_sched"),
    ("virtual_server", "flag-1"),
    ("virtual_server", "flag-2"),
    ("virtual_server", "sh-port"),
    ("virtual_server", "sh-fallback"),
    ("virtual_server", "mh-port"),
    ("virtual_server", "mh-fallback"),
    ("virtual_server", "ops"),
    ("virtual_server", "lvs_method"),
    ("virtual_server", "persistence_timeout"),
    ("virtual_server", "persistence_granularity"),
    ("virtual_server", "protocol"),
    ("virtual_server", "quorum"),
    ("virtual_server", "hysteresis"),
    ("virtual_server", "ip_family"),
    ("virtual_server", "sorry_server"),
    ("virtual_server", "sorry_server_lvs_method"),
    ("virtual_server", "real_server"),
    ("virtual_server real_server", "virtualhost"),
    ("virtual_server real_server checker", "connect_timeout"),
    ("virtual_server real_server checker", "retry"),
    ("virtual_server real_server checker", "delay_before_retry"),
    ("virtual_server real_server checker", "warmup"),
    ("virtual_server real_server checker", "delay_loop"),
    ("virtual_server real_server", "inhibit_on_failure"),
    ("real_server", "weight"),
    ("real_server", "lvs_method"),
    ("real_server", "uthreshold"),
    ("real_server", "lthreshold"),
    ("real_server", "HTTP_GET"),
    ("real_server", "SSL_GET"),
    ("real_server", "TCP_CHECK"),
    ("real_server", "SMTP_CHECK"),
    ("real_server", "DNS_CHECK"),
    ("real_server", "MISC_CHECK"),
    ("real_server", "UDP_CHECK"),
    ("checker", "connect_ip"),
    ("checker", "connect_port"),
    ("checker", "bindto"),
    ("HTTP_GET SSL_GET", "url"),
    ("SSL_GET", "enable_sni"),
    ("SSL_GET", "sni_name"),
    ("url", "path"),
    ("url", "digest"),
    ("url", "status_code"),
    ("url", "virtualhost"),
    ("url", "regex"),
    ("url", "regex_options"),
    ("SMTP_CHECK", "helo_name"),
    ("DNS_CHECK", "type"),
    ("DNS_CHECK", "name"),
    ("MISC_CHECK", "misc_path"),
    ("MISC_CHECK", "misc_timeout"),
    ("MISC_CHECK", "misc_dynamic"),
    ("UDP_CHECK", "payload"),
    ("UDP_CHECK", "require_reply"),
];

/// Blocks whose settings are a context of their own: (context, keyword) → the context of
/// the settings in the block.
pub const SETTING_BLOCKS: &[(&str, &str, &str)] = &[
    ("top", "track_group", "track_group"),
    ("top", "track_file", "track_file"),
    ("top", "vrrp_track_file", "track_file"),
    ("top", "vrrp_track_process", "vrrp_track_process"),
    ("top", "bfd_instance", "bfd_instance"),
    ("top", "vrrp_script", "vrrp_script"),
    ("top", "garp_group", "garp_group"),
    ("top", "SSL", "SSL"),
    ("vrrp_instance", "auth_hmac", "auth_hmac"),
    ("real_server", "PING_CHECK", "PING_CHECK"),
    ("real_server", "FILE_CHECK", "FILE_CHECK"),
    ("real_server", "BFD_CHECK", "BFD_CHECK"),
];

const NOTIFY: &str =
    "lbd runs no scripts; role changes are in its log, remote syslog and status API";
const TRACK: &str = "lbd tracks interfaces and service quorum (quorum_priority_drop)";
const TRACK_SECTION: &str = "lbd tracks interfaces and service quorum; a VRRP instance's priority is lowered with quorum_priority_drop";
const TRACK_GROUP: &str = "track interfaces on each instance of the group (track_interfaces)";
const EMAIL: &str = "keepalived mails state changes through its SMTP server; lbd sends no mail: state changes are in its log, remote syslog ([node.syslog]) and status API";
const SMTP_ALERT: &str = "keepalived mails this object's state changes; lbd sends no mail: they are in its log, remote syslog ([node.syslog]) and status API";
const PROCESS_NAME: &str = "keepalived names its processes; lbd is one process, named lbd";
const NICE: &str = "keepalived sets the nice value of that process; lbd is one process, whose VRRP thread runs at a real-time priority (vrrp_realtime_priority)";
const NO_SWAP: &str =
    "keepalived locks that process's memory against swapping; lbd does not lock its memory";
const AFFINITY: &str = "keepalived pins that process to these CPUs; lbd's threads run on any CPU";
const RT_OTHER: &str = "keepalived runs that process with real-time scheduling; lbd gives real-time priority to its VRRP thread only (vrrp_realtime_priority)";
const RTTIME: &str = "keepalived limits the CPU time its real-time process may use without blocking; lbd sets no such limit";
const AUTO_PRIO: &str = "keepalived raises its own scheduling priority when its timers run late; lbd's VRRP thread has a fixed real-time priority (vrrp_realtime_priority)";
const SNMP: &str = "keepalived serves its MIBs (and traps) through an SNMP agent; lbd has no SNMP: its status and Prometheus metrics are on its control API";
const DBUS: &str = "keepalived offers its VRRP state over D-Bus; lbd has no D-Bus interface: its status is on its control API";
const FIFO: &str = "keepalived writes state changes to this FIFO (or has this script read them); lbd has none: its events are in its log, remote syslog and control API (lbctl events)";
const SCRIPT_USER: &str = "keepalived runs its scripts as this user, and with script security refuses scripts others can change; lbd runs only exec checks, as itself";
const RCV_BUFS: &str = "keepalived sizes that socket's receive buffer; lbd sizes its own";
const FIREWALL: &str = "keepalived adds firewall rules that drop traffic to the VIPs (no_accept) and IGMP/MLD on virtual MAC interfaces; lbd adds no firewall rules: it always accepts traffic to its VIPs";
const NFT_IPVS: &str = "keepalived marks a virtual_server_group's addresses with nftables and programs one firewall-mark service for them; lbd programs one IPVS service per address";
const GARP_LOWER: &str = "keepalived, as master, sends gratuitous ARPs again when it hears a lower-priority advert; lbd sends them only on becoming master (garp_count, garp_repeat_after)";
const GARP_REFRESH: &str = "keepalived repeats gratuitous ARPs periodically while master; lbd sends them only on becoming master (garp_count, garp_repeat_after)";
const GARP_INTERVAL: &str = "keepalived spaces gratuitous ARPs (unsolicited NAs) on an interface by this delay; lbd sends a round per VIP every 100ms, paced at 1000 packets a second";
const GARP_EXTRA: &str = "keepalived repeats gratuitous ARPs periodically on the VIPs' other interfaces; lbd puts every VIP on the instance's interface";
const DOWN_TIMER: &str = "keepalived takes over after this many missed adverts instead of 3; lbd waits the RFC's 3 advert intervals plus the skew time";
const LOWER_PRIO: &str = "keepalived, as master, answers (or, with this set, does not answer) a lower-priority advert with one of its own; lbd does not answer it (as before RFC 9568)";
const OWNER_IGNORE: &str = "keepalived's address owner (priority 255) ignores the adverts of other routers; lbd's yields only to another owner with a higher address";
const HIGHER_PRIO: &str = "keepalived, as master, sends one last advert before yielding to a higher priority; lbd yields at once";
const V3_CHECKSUM: &str = "keepalived leaves the pseudo-header out of VRRPv3 IPv4 checksums, as some routers do; lbd includes it, as RFC 5798 says";
const UNICAST_SRC: &str =
    "keepalived drops unicast adverts from addresses that are not unicast peers; lbd always does";
const SKIP_ADV: &str = "keepalived does not compare the addresses of adverts from the master it already knows; lbd compares them in VRRPv2 (RFC 3768) and not in VRRPv3";
const LINKBEAT: &str = "keepalived polls link state (MII, ethtool, ioctl) instead of following netlink; lbd follows link state from netlink";
const MCAST_GROUP: &str = "lbd uses the RFC groups 224.0.0.18 and ff02::12";
const NOTIFY_PRIO: &str = "keepalived writes priority changes to its notify FIFOs; lbd has none: priority changes are in its log and status";
const ALPHA: &str = "lbd counts a real as up until its checks say otherwise (rise/fall)";
const LOG_FAILURES: &str = "keepalived logs every failed check, not only state changes; lbd logs state changes, and lbctl status shows each real's health";
const CHECK_SOURCE: &str =
    "checks leave from an ephemeral port of the address the kernel picks (or source_address)";
const BFD: &str = "lbd has no BFD";
const HMAC: &str = "keepalived signs its adverts with HMAC-SHA256 and checks its peers'; lbd sends plain adverts, so peers that enforce auth_hmac refuse them";
const TLS_COMPLIANT: &str = "keepalived ends TLS with a close_notify alert; lbd ends a check's connection with an RST once the response is judged";
const RELOAD: &str = "keepalived reloads at the time written in that file; lbd reloads on SIGHUP, lbctl reload, or when init hands it a new config";
const DUMP_FILES: &str = "keepalived writes its state, statistics or JSON dumps (SIGUSR1, SIGUSR2, SIGJSON) there; lbd's state is on its status API (lbctl status)";
const STARTUP_DELAY: &str = "keepalived waits this long before starting VRRP, for slow interfaces; lbd starts its instances as backup at once, and a backup waits a master-down interval before taking over";
const VMAC_PREFIX: &str = "keepalived names the macvlans it makes with this prefix; lbd names them vrrp.VRID (vrrp6.VRID), or virtual_mac_interface";
const START_STOP: &str = "keepalived runs this script when it starts (stops), for example to set firewall marks; lbd runs no such scripts: set the marks of fwmark services up outside lbd";
const SCRIPT_TIMEOUT: &str =
    "how long keepalived lets its start (stop) script run; lbd runs no such scripts";

/// Keywords the converter does not translate, by context, with what keepalived does with
/// them: the reason their warning gives.
pub const IGNORED: &[(&str, &str, &str)] = &[
    // The top level.
    ("top", "net_namespace", "keepalived runs in this network namespace; lbd runs in the appliance's own"),
    ("top", "net_namespace_ipvs", "keepalived programs IPVS in this network namespace; lbd programs the appliance's own"),
    ("top", "namespace_with_ipsets", "keepalived uses ipsets inside a network namespace on kernels before 3.13; lbd uses no namespace and no ipsets"),
    ("top", "instance", "keepalived names its pid files after this instance, to run several on one host; lbd is the appliance's one balancer"),
    ("top", "use_pid_dir", "keepalived writes its pid files in a directory of their own; lbd writes none: init supervises it"),
    ("top", "linkbeat_use_polling", LINKBEAT),
    ("top", "child_wait_time", "how long keepalived waits for its child processes to exit when it stops; lbd is one process"),
    ("top", "linkbeat_interfaces", LINKBEAT),
    ("top", "track_group", "keepalived faults these VRRP instances when a static address, route or rule of the group is lost; init configures lbd's static ones ([network]) and lbd does not fault instances on them"),
    ("top", "track_file", TRACK_SECTION),
    ("top", "vrrp_track_file", TRACK_SECTION),
    ("top", "vrrp_track_process", TRACK_SECTION),
    ("top", "vrrp_script", TRACK_SECTION),
    ("top", "bfd_instance", BFD),
    ("top", "garp_group", GARP_INTERVAL),
    ("top", "interface_up_down_delays", "keepalived delays the FAULT (BACKUP) transition after an interface goes down (up), to ride out link flaps; lbd acts on link changes at once"),
    ("top", "SSL", "HTTPS checks verify with tls_verify = true against the built-in public roots, or against ca_pem (the CA certificate's PEM text, inline in the check); they send no client certificate"),
    // global_defs.
    ("global_defs", "tmp_config_directory", "keepalived writes its copy of the config there while it reads it; lbd reads its TOML file directly"),
    ("global_defs", "config_save_dir", "keepalived saves its configuration before and after each reload there, for debugging; lbd keeps the running config when a new one is refused"),
    ("global_defs", "process_names", PROCESS_NAME),
    ("global_defs", "process_name", PROCESS_NAME),
    ("global_defs", "vrrp_process_name", PROCESS_NAME),
    ("global_defs", "checker_process_name", PROCESS_NAME),
    ("global_defs", "bfd_process_name", PROCESS_NAME),
    ("global_defs", "use_symlink_paths", "keepalived keeps symlinks in script paths instead of resolving them; lbd runs exec checks' commands as written"),
    ("global_defs", "set_supplementary_groups", "keepalived sets the supplementary groups of its scripts' processes; lbd runs exec checks as itself"),
    ("global_defs", "startup_script", START_STOP),
    ("global_defs", "startup_script_timeout", SCRIPT_TIMEOUT),
    ("global_defs", "shutdown_script", START_STOP),
    ("global_defs", "shutdown_script_timeout", SCRIPT_TIMEOUT),
    ("global_defs", "notification_email", EMAIL),
    ("global_defs", "notification_email_from", EMAIL),
    ("global_defs", "smtp_server", EMAIL),
    ("global_defs", "smtp_helo_name", EMAIL),
    ("global_defs", "smtp_connect_timeout", EMAIL),
    ("global_defs", "smtp_alert", EMAIL),
    ("global_defs", "smtp_alert_vrrp", EMAIL),
    ("global_defs", "smtp_alert_checker", EMAIL),
    ("global_defs", "no_email_faults", EMAIL),
    ("global_defs", "no_checker_emails", EMAIL),
    ("global_defs", "checker_log_all_failures", LOG_FAILURES),
    ("global_defs", "vrrp_mcast_group4", MCAST_GROUP),
    ("global_defs", "vrrp_mcast_group6", MCAST_GROUP),
    ("global_defs", "lvs_flush", "lbd never flushes: it adopts the kernel table and changes only what differs"),
    ("global_defs", "lvs_flush_on_stop", "lbd leaves the table in place when it stops, so connections survive a restart"),
    ("global_defs", "vrrp_garp_lower_prio_repeat", GARP_LOWER),
    ("global_defs", "vrrp_garp_lower_prio_delay", GARP_LOWER),
    ("global_defs", "vrrp_garp_master_refresh", GARP_REFRESH),
    ("global_defs", "vrrp_garp_master_refresh_repeat", GARP_REFRESH),
    ("global_defs", "vrrp_garp_interval", GARP_INTERVAL),
    ("global_defs", "vrrp_gna_interval", GARP_INTERVAL),
    ("global_defs", "vrrp_garp_extra_if", GARP_EXTRA),
    ("global_defs", "vrrp_down_timer_adverts", DOWN_TIMER),
    ("global_defs", "vrrp_lower_prio_no_advert", LOWER_PRIO),
    ("global_defs", "vrrp_higher_prio_send_advert", HIGHER_PRIO),
    ("global_defs", "v3_checksum_as_v2", V3_CHECKSUM),
    ("global_defs", "nftables", FIREWALL),
    ("global_defs", "nftables_priority", FIREWALL),
    ("global_defs", "nftables_counters", FIREWALL),
    ("global_defs", "nftables_ifindex", FIREWALL),
    ("global_defs", "nftables_ipvs", NFT_IPVS),
    ("global_defs", "nftables_ipvs_priority", NFT_IPVS),
    ("global_defs", "nftables_ipvs_start_fwmark", NFT_IPVS),
    ("global_defs", "vrrp_iptables", FIREWALL),
    ("global_defs", "vrrp_ipsets", FIREWALL),
    ("global_defs", "vrrp_check_unicast_src", UNICAST_SRC),
    ("global_defs", "vrrp_skip_check_adv_addr", SKIP_ADV),
    ("global_defs", "vrrp_notify_priority_changes", NOTIFY_PRIO),
    ("global_defs", "max_auto_priority", AUTO_PRIO),
    ("global_defs", "min_auto_priority_delay", AUTO_PRIO),
    ("global_defs", "vrrp_priority", NICE),
    ("global_defs", "checker_priority", NICE),
    ("global_defs", "bfd_priority", NICE),
    ("global_defs", "vrrp_no_swap", NO_SWAP),
    ("global_defs", "checker_no_swap", NO_SWAP),
    ("global_defs", "bfd_no_swap", NO_SWAP),
    ("global_defs", "vrrp_cpu_affinity", AFFINITY),
    ("global_defs", "checker_cpu_affinity", AFFINITY),
    ("global_defs", "bfd_cpu_affinity", AFFINITY),
    ("global_defs", "checker_rt_priority", RT_OTHER),
    ("global_defs", "bfd_rt_priority", RT_OTHER),
    ("global_defs", "vrrp_rlimit_rttime", RTTIME),
    ("global_defs", "checker_rlimit_rttime", RTTIME),
    ("global_defs", "bfd_rlimit_rttime", RTTIME),
    ("global_defs", "snmp_socket", SNMP),
    ("global_defs", "enable_snmp_vrrp", SNMP),
    ("global_defs", "enable_snmp_checker", SNMP),
    ("global_defs", "enable_snmp_rfc", SNMP),
    ("global_defs", "enable_snmp_rfcv2", SNMP),
    ("global_defs", "enable_snmp_rfcv3", SNMP),
    ("global_defs", "enable_traps", SNMP),
    ("global_defs", "snmp_vs_stats_update_interval", SNMP),
    ("global_defs", "snmp_rs_stats_update_interval", SNMP),
    ("global_defs", "enable_dbus", DBUS),
    ("global_defs", "dbus_service_name", DBUS),
    ("global_defs", "dbus_no_interface_name", DBUS),
    ("global_defs", "script_user", SCRIPT_USER),
    ("global_defs", "enable_script_security", SCRIPT_USER),
    ("global_defs", "notify_fifo", FIFO),
    ("global_defs", "notify_fifo_script", FIFO),
    ("global_defs", "vrrp_notify_fifo", FIFO),
    ("global_defs", "vrrp_notify_fifo_script", FIFO),
    ("global_defs", "lvs_notify_fifo", FIFO),
    ("global_defs", "lvs_notify_fifo_script", FIFO),
    ("global_defs", "fifo_write_vrrp_states_on_reload", FIFO),
    ("global_defs", "dynamic_interfaces", "keepalived accepts interfaces that do not exist yet, and follows them being deleted and made again; lbd keeps an instance in FAULT while its interface is missing or down"),
    ("global_defs", "vrrp_netlink_cmd_rcv_bufs", RCV_BUFS),
    ("global_defs", "vrrp_netlink_cmd_rcv_bufs_force", RCV_BUFS),
    ("global_defs", "vrrp_netlink_monitor_rcv_bufs", RCV_BUFS),
    ("global_defs", "vrrp_netlink_monitor_rcv_bufs_force", RCV_BUFS),
    ("global_defs", "lvs_netlink_cmd_rcv_bufs", RCV_BUFS),
    ("global_defs", "lvs_netlink_cmd_rcv_bufs_force", RCV_BUFS),
    ("global_defs", "lvs_netlink_monitor_rcv_bufs", RCV_BUFS),
    ("global_defs", "lvs_netlink_monitor_rcv_bufs_force", RCV_BUFS),
    ("global_defs", "process_monitor_rcv_bufs", RCV_BUFS),
    ("global_defs", "process_monitor_rcv_bufs_force", RCV_BUFS),
    ("global_defs", "vrrp_rx_bufs_policy", RCV_BUFS),
    ("global_defs", "vrrp_rx_bufs_multiplier", RCV_BUFS),
    ("global_defs", "rs_init_notifies", "keepalived runs the real servers' notify scripts at start too; lbd runs no scripts"),
    ("global_defs", "umask", "keepalived creates its pid, dump and FIFO files with this umask; lbd keeps no such files"),
    ("global_defs", "vrrp_startup_delay", STARTUP_DELAY),
    ("global_defs", "vrrp_delay_after_boot", STARTUP_DELAY),
    ("global_defs", "log_unknown_vrids", "keepalived logs adverts for VRIDs it does not run; lbd counts them as dropped (vrid) in its status"),
    ("global_defs", "vmac_prefix", VMAC_PREFIX),
    ("global_defs", "vmac_addr_prefix", VMAC_PREFIX),
    ("global_defs", "random_seed", "seeds keepalived's ${_RANDOM} substitutions; the converter does not expand ${_RANDOM}"),
    ("global_defs", "reload_check_config", "keepalived checks a new config before it reloads; lbd always does, and keeps the running config when the new one is refused"),
    ("global_defs", "include_check", "keepalived makes missing or unreadable include files errors; the converter warns about each"),
    ("global_defs", "reload_time_file", RELOAD),
    ("global_defs", "reload_repeat", RELOAD),
    ("global_defs", "reload_file", "keepalived creates this file while it reads its config, so updates can wait; lbd reads a new config whole and validates it before using it"),
    ("global_defs", "data_use_instance", DUMP_FILES),
    ("global_defs", "state_file_location", DUMP_FILES),
    ("global_defs", "stats_file_location", DUMP_FILES),
    ("global_defs", "json_file_location", DUMP_FILES),
    ("global_defs", "json_version", DUMP_FILES),
    ("global_defs", "iproute_usr_dir", "keepalived reads iproute2's name tables (route tables, realms) from there; lbd configures no routes or rules"),
    ("global_defs", "iproute_etc_dir", "keepalived reads iproute2's name tables (route tables, realms) from there; lbd configures no routes or rules"),
    // Static track groups, track files and processes, BFD, scripts.
    ("track_group", "group", "the VRRP instances keepalived faults when a static address, route or rule of this track group is lost"),
    ("track_file", "file", "the file keepalived reads a number from whenever it changes"),
    ("track_file", "weight", "what keepalived multiplies the number read by to move priorities (0: a non-zero number means FAULT)"),
    ("track_file", "init_file", "keepalived creates (or overwrites) the file with this value at start"),
    ("vrrp_track_process", "process", "the process (name and arguments) keepalived counts the running copies of"),
    ("vrrp_track_process", "param_match", "how the arguments of a running process must match (initial, partial)"),
    ("vrrp_track_process", "weight", "how far keepalived moves the priority of the instances tracking the process (0: FAULT while too few run)"),
    ("vrrp_track_process", "quorum", "the fewest running copies keepalived counts as up"),
    ("vrrp_track_process", "quorum_max", "the most running copies keepalived counts as up"),
    ("vrrp_track_process", "fork_delay", "how long keepalived waits after the quorum is back before it counts the process up"),
    ("vrrp_track_process", "terminate_delay", "how long keepalived waits after the quorum is lost before it counts the process down"),
    ("vrrp_track_process", "delay", "sets keepalived's fork_delay and terminate_delay"),
    ("vrrp_track_process", "full_command", "keepalived matches the whole command line, not the process name"),
    ("bfd_instance", "neighbor_ip", "the peer keepalived runs a BFD session with (RFC 5880)"),
    ("bfd_instance", "neighbour_ip", "the peer keepalived runs a BFD session with (RFC 5880)"),
    ("bfd_instance", "source_ip", "the source address of keepalived's BFD packets"),
    ("bfd_instance", "min_rx", "an interval keepalived negotiates for its BFD session"),
    ("bfd_instance", "min_tx", "an interval keepalived negotiates for its BFD session"),
    ("bfd_instance", "idle_tx", "an interval keepalived negotiates for its BFD session"),
    ("bfd_instance", "multiplier", "the BFD packets keepalived may miss before the session is down"),
    ("bfd_instance", "passive", "keepalived waits for the peer to start the BFD session"),
    ("bfd_instance", "ttl", "the TTL of keepalived's BFD packets"),
    ("bfd_instance", "hoplimit", "the hop limit of keepalived's BFD packets"),
    ("bfd_instance", "max_hops", "how far the TTL of received BFD packets may have dropped"),
    ("bfd_instance", "multihop", "keepalived uses the multihop BFD port 4784 (RFC 5883)"),
    ("bfd_instance", "weight", "keepalived moves the priority of the instances tracking the session by this weight"),
    ("bfd_instance", "vrrp", "keepalived sends the session's events to its VRRP process only"),
    ("bfd_instance", "checker", "keepalived sends the session's events to its checker process only"),
    ("vrrp_script", "script", "the program keepalived runs periodically; its exit status moves the priority of the instances tracking the script"),
    ("vrrp_script", "interval", "how often keepalived runs the script"),
    ("vrrp_script", "timeout", "how long keepalived lets the script run before it counts as failed"),
    ("vrrp_script", "weight", "how far keepalived moves the priority of the instances tracking the script (0: FAULT while it fails)"),
    ("vrrp_script", "rise", "the successes after which keepalived counts the script up"),
    ("vrrp_script", "fall", "the failures after which keepalived counts the script down"),
    ("vrrp_script", "user", "the user (and group) keepalived runs the script as"),
    ("vrrp_script", "init_fail", "keepalived counts the script failed until it first succeeds"),
    // vrrp_sync_group.
    ("vrrp_sync_group", "track_interface", TRACK_GROUP),
    ("vrrp_sync_group", "track_script", TRACK_GROUP),
    ("vrrp_sync_group", "track_file", TRACK_GROUP),
    ("vrrp_sync_group", "track_process", TRACK_GROUP),
    ("vrrp_sync_group", "track_bfd", TRACK_GROUP),
    ("vrrp_sync_group", "notify_master", NOTIFY),
    ("vrrp_sync_group", "notify_backup", NOTIFY),
    ("vrrp_sync_group", "notify_fault", NOTIFY),
    ("vrrp_sync_group", "notify_stop", NOTIFY),
    ("vrrp_sync_group", "notify_deleted", NOTIFY),
    ("vrrp_sync_group", "notify", NOTIFY),
    ("vrrp_sync_group", "notify_priority_changes", NOTIFY_PRIO),
    ("vrrp_sync_group", "smtp_alert", SMTP_ALERT),
    ("vrrp_sync_group", "global_tracking", "keepalived lets the tracking weights of the group's members apply (deprecated); lbd faults the whole group when one member faults"),
    ("vrrp_sync_group", "sync_group_tracking_weight", "keepalived lets the members of the group track with differing weights; lbd faults the whole group when one member faults"),
    // garp_group.
    ("garp_group", "garp_interval", "the delay keepalived leaves between gratuitous ARPs on the group's interfaces"),
    ("garp_group", "gna_interval", "the delay keepalived leaves between unsolicited neighbour adverts on the group's interfaces"),
    ("garp_group", "interface", "the interface keepalived applies the group's delays to"),
    ("garp_group", "interfaces", "the interfaces (on one switch) keepalived applies the group's delays to together"),
    // vrrp_instance.
    ("vrrp_instance", "vrf", "keepalived sends unicast adverts in this VRF when the instance has no interface; lbd sends them on the instance's interface"),
    ("vrrp_instance", "use_vmac_addr", "keepalived makes a macvlan on each other interface a VIP is on; lbd puts every VIP on the instance's interface (or its macvlan)"),
    ("vrrp_instance", "vmac_xmit_base", "keepalived sends and receives adverts on the base interface instead of the macvlan; lbd sends them from the macvlan, with the virtual MAC"),
    ("vrrp_instance", "use_ipvlan", "keepalived puts the VIPs on an ipvlan interface it makes; lbd puts them on the interface, or on a macvlan with the virtual MAC (virtual_mac)"),
    ("vrrp_instance", "native_ipv6", "forces IPv6 in keepalived (deprecated: the VIPs decide); lbd takes the family from the VIPs"),
    ("vrrp_instance", "dont_track_primary", "lbd always faults an instance whose interface is down"),
    ("vrrp_instance", "track_script", TRACK),
    ("vrrp_instance", "track_file", TRACK),
    ("vrrp_instance", "track_process", TRACK),
    ("vrrp_instance", "track_bfd", TRACK),
    ("vrrp_instance", "mcast_src_ip", "lbd sends from the interface's primary address"),
    ("vrrp_instance", "mcast_dst_ip", MCAST_GROUP),
    ("vrrp_instance", "track_src_ip", "keepalived faults the instance when its source address goes away; lbd faults it only while the interface has no address"),
    ("vrrp_instance", "check_unicast_src", UNICAST_SRC),
    ("vrrp_instance", "unicast_fault_no_peer", "keepalived faults an instance whose unicast peer list is empty instead of using multicast; lbd uses multicast when there are no unicast_peers"),
    ("vrrp_instance", "unicast_ttl", "the TTL of keepalived's unicast adverts; lbd sends them with TTL 255, as the RFCs require"),
    ("vrrp_instance", "old_unicast_checksum", "keepalived computes VRRPv3 checksums of unicast adverts as versions up to 1.3.6 did; lbd computes them as RFC 5798 says"),
    ("vrrp_instance", "v3_checksum_as_v2", V3_CHECKSUM),
    ("vrrp_instance", "garp_lower_prio_delay", GARP_LOWER),
    ("vrrp_instance", "garp_lower_prio_repeat", GARP_LOWER),
    ("vrrp_instance", "garp_master_refresh", GARP_REFRESH),
    ("vrrp_instance", "garp_master_refresh_repeat", GARP_REFRESH),
    ("vrrp_instance", "garp_extra_if", GARP_EXTRA),
    ("vrrp_instance", "down_timer_adverts", DOWN_TIMER),
    ("vrrp_instance", "timer_expired_backup", "keepalived sends a nopreempt master that ran late back to backup, in case another took over; lbd does not second-guess its timers"),
    ("vrrp_instance", "lower_prio_no_advert", LOWER_PRIO),
    ("vrrp_instance", "higher_prio_send_advert", HIGHER_PRIO),
    ("vrrp_instance", "auth_hmac", HMAC),
    ("vrrp_instance", "no_virtual_ipaddress", "keepalived runs the instance without VIPs, for its state alone; lbd's instances move addresses, so one without VIPs is left out"),
    ("vrrp_instance", "virtual_routes", "keepalived adds these routes while master and removes them when it leaves master; lbd moves addresses only"),
    ("vrrp_instance", "virtual_rules", "keepalived adds these policy rules while master and removes them when it leaves master; lbd moves addresses only"),
    ("vrrp_instance", "skip_check_adv_addr", SKIP_ADV),
    ("vrrp_instance", "debug", "a debug level keepalived does not implement"),
    ("vrrp_instance", "notify_master", NOTIFY),
    ("vrrp_instance", "notify_backup", NOTIFY),
    ("vrrp_instance", "notify_fault", NOTIFY),
    ("vrrp_instance", "notify_stop", NOTIFY),
    ("vrrp_instance", "notify", NOTIFY),
    ("vrrp_instance", "notify_master_rx_lower_pri", NOTIFY),
    ("vrrp_instance", "notify_deleted", NOTIFY),
    ("vrrp_instance", "notify_priority_changes", NOTIFY_PRIO),
    ("vrrp_instance", "smtp_alert", "state changes go to the log, remote syslog and status API"),
    ("vrrp_instance", "kernel_rx_buf_size", RCV_BUFS),
    ("vrrp_instance", "linkbeat_use_polling", LINKBEAT),
    ("auth_hmac", "key", "a key keepalived signs (with active_key) and checks adverts with"),
    ("auth_hmac", "active_key", "the key keepalived signs its adverts with"),
    ("auth_hmac", "anti_replay", "how keepalived refuses replayed adverts (time or monotonic sequence numbers)"),
    ("auth_hmac", "time_window", "how old a signed advert keepalived still takes"),
    ("auth_hmac", "mode", "whether keepalived refuses unsigned adverts (enforce), takes them (permissive), or also sends unsigned ones (receive-only)"),
    // virtual_server and real_server.
    ("virtual_server", "flag-3", "no scheduler uses flag-3"),
    ("virtual_server", "persistence_engine", "lbd programs no persistence engine (sip)"),
    ("virtual_server", "ha_suspend", "lbd checks reals whether or not this node holds the VIP"),
    ("virtual_server real_server", "smtp_alert", SMTP_ALERT),
    ("virtual_server real_server", "snmp_name", "the name keepalived's SNMP agent gives this server; lbd has no SNMP: services are named after their address in its status and metrics"),
    ("virtual_server real_server", "alpha", ALPHA),
    ("virtual_server", "omega", "keepalived runs the quorum and real-server down scripts when it stops; lbd runs no scripts and leaves the table in place when it stops"),
    ("virtual_server", "quorum_up", "lbd runs no scripts; quorum changes are in its log and status"),
    ("virtual_server", "quorum_down", "lbd runs no scripts; quorum changes are in its log and status"),
    ("virtual_server", "sorry_server_inhibit", "lbd adds the sorry server when no real is up and removes it otherwise"),
    ("real_server", "notify_up", "lbd runs no scripts; health changes are in its log, remote syslog and status API"),
    ("real_server", "notify_down", "lbd runs no scripts; health changes are in its log, remote syslog and status API"),
    ("real_server", "PING_CHECK", "keepalived pings the real (ICMP echo); lbd has no ICMP check"),
    ("real_server", "FILE_CHECK", "keepalived takes the real down (or moves its weight) by the number in a track_file; lbd tracks no files"),
    ("real_server", "BFD_CHECK", "keepalived takes the real down with a BFD session; lbd has no BFD"),
    // Checkers.
    ("checker", "bind_if", CHECK_SOURCE),
    ("checker", "bind_port", CHECK_SOURCE),
    ("checker", "fwmark", CHECK_SOURCE),
    ("checker", "alpha", ALPHA),
    ("checker", "log_all_failures", LOG_FAILURES),
    ("HTTP_GET SSL_GET", "http_protocol", "lbd's HTTP checks send HTTP/1.0 with Connection: close (keepalived's 1.0C)"),
    ("HTTP_GET SSL_GET", "fast_recovery", "keepalived checks every url without delay_loop between them after start or a failure; lbd checks one url each run"),
    ("SSL_GET url", "tls_compliant", TLS_COMPLIANT),
    ("url", "regex_no_match", "lbd's body match must match"),
    ("url", "regex_stack", "the PCRE2 JIT stack keepalived gives complex regexes; lbd's regex needs none"),
    ("url", "regex_min_offset", "keepalived matches the regex only from this offset of the body; lbd matches the whole body"),
    ("url", "regex_max_offset", "keepalived starts a match of the regex no later than this offset of the body; lbd matches the whole body"),
    ("MISC_CHECK", "user", "lbd runs check commands as itself"),
    ("UDP_CHECK", "min_reply_length", "lbd checks the start of the reply (expect_hex), not its length"),
    ("UDP_CHECK", "max_reply_length", "lbd checks the start of the reply (expect_hex), not its length"),
    ("FILE_CHECK", "track_file", "the track_file whose number keepalived reads into the real's state and weight"),
    ("FILE_CHECK", "dynamic", "keepalived adds the number read (times weight) to the real's weight"),
    ("FILE_CHECK", "weight", "what keepalived multiplies the number read by"),
    ("BFD_CHECK", "name", "the bfd_instance whose session keepalived takes the real down with"),
    ("SSL", "password", "the password of the private key keepalived's SSL_GET checks use"),
    ("SSL", "ca", "the CA file keepalived's SSL_GET checks load"),
    ("SSL", "certificate", "the client certificate keepalived's SSL_GET checks present"),
    ("SSL", "key", "the private key of that client certificate"),
    // Deprecated or undocumented spellings keepalived still takes.
    ("global_defs", "lvs_process_name", PROCESS_NAME),
    ("global_defs", "lvs_flush_onstop", "lbd leaves the table in place when it stops, so connections survive a restart"),
    ("global_defs", "vrrp_rlimit_rtime", RTTIME),
    ("global_defs", "checker_rlimit_rtime", RTTIME),
    ("global_defs", "bfd_rlimit_rtime", RTTIME),
    ("global_defs", "enable_snmp_keepalived", SNMP),
    ("global_defs", "state_dump_file", DUMP_FILES),
    ("global_defs", "stats_dump_file", DUMP_FILES),
    ("global_defs", "json_dump_file", DUMP_FILES),
    ("global_defs", "vrrp_vmac_garp_intvl", GARP_EXTRA),
    ("global_defs", "vrrp_owner_ignore_adverts", OWNER_IGNORE),
    ("vrrp_instance", "owner_ignore_adverts", OWNER_IGNORE),
    ("vrrp_instance", "vmac_garp_intvl", GARP_EXTRA),
    ("vrrp_instance", "thread_timer_expired", "keepalived sends a nopreempt master that ran late back to backup, in case another took over; lbd does not second-guess its timers"),
    ("virtual_server", "hashed", "a service flag the kernel sets by itself; lbd leaves it to the kernel"),
];

/// Options of an address in `virtual_ipaddress` (those of `ip address add`): whether each
/// takes a value, and what keepalived does with it. `dev` is the converter's own concern.
pub const VIP_OPTIONS: &[(&str, bool, &str)] = &[
    ("brd", true, "keepalived gives the address this broadcast address; lbd adds VIPs with the kernel's default"),
    ("scope", true, "keepalived adds the address with this scope; lbd adds VIPs with global scope"),
    ("label", true, "keepalived names the address (an alias such as eth0:1, as ip address add label does); lbd adds VIPs without a label"),
    ("peer", true, "keepalived adds a point-to-point address with this peer; lbd adds plain VIPs"),
    ("preferred_lft", true, "keepalived sets the address's preferred lifetime (0 deprecates an IPv6 address); lbd adds VIPs with the kernel's default"),
    ("track_group", true, "keepalived takes this for static addresses only"),
    ("home", false, "keepalived marks the IPv6 address as a Mobile IPv6 home address; lbd does not"),
    ("-nodad", false, "keepalived skips duplicate address detection for the IPv6 address; lbd always does for VIPs"),
    ("mngtmpaddr", false, "keepalived lets the kernel make temporary addresses from this IPv6 prefix; lbd does not"),
    ("noprefixroute", false, "keepalived adds the address without its prefix route; lbd's VIPs come with theirs"),
    ("autojoin", false, "keepalived joins the multicast group of a multicast address; lbd does not"),
    ("no_track", false, "keepalived stays master when the address is deleted behind its back (without it, it leaves master); lbd does not leave master for a deleted VIP"),
    ("use_vmac", false, "keepalived puts this address on a macvlan of its own; lbd puts every VIP on the instance's interface, or its macvlan (virtual_mac)"),
];

/// An option of an address in `virtual_ipaddress`: whether it takes a value, and what
/// keepalived does with it.
pub fn vip_option(opt: &str) -> Option<(bool, &'static str)> {
    VIP_OPTIONS
        .iter()
        .find(|(o, _, _)| *o == opt)
        .map(|(_, value, why)| (*value, *why))
}

/// The checkers: their options are theirs, then those every checker takes (`checker`).
const CHECKERS: &[&str] = &[
    "HTTP_GET",
    "SSL_GET",
    "TCP_CHECK",
    "SMTP_CHECK",
    "DNS_CHECK",
    "MISC_CHECK",
    "UDP_CHECK",
    "PING_CHECK",
];

/// Whether an entry's contexts (space-separated) take a keyword written in `ctx`.
fn in_ctx(list: &str, ctx: &str) -> bool {
    list.split(' ')
        .any(|c| c == ctx || (c == "checker" && CHECKERS.contains(&ctx)))
}

/// What keepalived does with `key` in `ctx`, when the converter does not translate it.
pub fn reason(ctx: &str, key: &str) -> Option<&'static str> {
    IGNORED
        .iter()
        .find(|(c, k, _)| *k == key && in_ctx(c, ctx))
        .map(|(_, _, why)| *why)
}

/// Whether the converter translates `key` in `ctx`.
pub fn converted(ctx: &str, key: &str) -> bool {
    CONVERTED.iter().any(|(c, k)| *k == key && in_ctx(c, ctx))
}

/// The context of the settings of the block `key` opens in `ctx`, if they are settings.
pub fn block_context(ctx: &str, key: &str) -> Option<&'static str> {
    SETTING_BLOCKS
        .iter()
        .find(|(c, k, _)| *c == ctx && *k == key)
        .map(|(_, _, inner)| *inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn each_keyword_once_in_its_context() {
        let mut seen = BTreeSet::new();
        for (ctxs, key) in CONVERTED
            .iter()
            .copied()
            .chain(IGNORED.iter().map(|(c, k, _)| (*c, *k)))
        {
            for c in ctxs.split(' ') {
                assert!(seen.insert((c, key)), "{c} {key} listed twice");
            }
        }
        for (_, _, why) in IGNORED {
            assert!(!why.is_empty());
        }
        assert_eq!(block_context("top", "vrrp_track_file"), Some("track_file"));
        assert!(reason("SSL_GET", "tls_compliant").is_some());
        assert!(converted("checker", "retry"));
    }
}
