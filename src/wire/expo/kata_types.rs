//! The metric families Kata itself emits, with their TYPE and HELP, under
//! the names kata-monitor outputs them (`go_*`/`process_*` already renamed
//! `kata_shim_*`).
//!
//! Owns: the tie-breaks of the merge's votes (`merge`): when as many sandboxes
//! declare one TYPE (or HELP text) for a family as another, the one Kata
//! defines wins, so a lone hostile guest cannot outvote the lone healthy
//! sandbox that emits a family. Never used to emit anything: output bytes
//! always come from a sandbox's body.
//!
//! Sources: the Go shim (`containerd-shim-kata-v2`: client_golang v1.22 Go
//! and process collectors, `kata_shim_*`, `kata_hypervisor_*`,
//! `kata_virtiofsd_*`, `kata_firecracker_*`), the runtime-rs shim
//! (`kata_shim_*`), Dragonball (`kata_hypervisor_*`) and the agent
//! (`kata_agent_*`, `kata_guest_*`), as in the shared `kata-metrics` samples
//! and kata-containers' sources (`src/agent/src/metrics.rs`,
//! `src/dragonball/src/hypervisor_metrics.rs`,
//! `src/runtime-rs/crates/runtimes/src/shim_metrics.rs`,
//! `src/runtime/pkg/containerd-shim-v2/shim_metrics.go`,
//! `src/runtime/virtcontainers/{sandbox,fc}_metrics.go`), plus two Go
//! collector families of older Kata releases (`go_memstats_gc_cpu_fraction`,
//! `go_memstats_lookups_total`). HELP texts are as Kata writes them (typos
//! included: `kata_guest_tasks` says "Guest system load."). Sorted by name
//! (bytewise) for a binary search; `tests` checks the order and the
//! fixtures against it.

use super::lex::Kind::{self, Counter as C, Gauge as G, Histogram as H, Summary as S};

/// A family as Kata defines it.
#[derive(Debug)]
pub struct KataFamily {
    pub name: &'static str,
    pub kind: Kind,
    /// HELP text, escaped as in the exposition (none needs escaping).
    pub help: &'static str,
}

const fn f(name: &'static str, kind: Kind, help: &'static str) -> KataFamily {
    KataFamily { name, kind, help }
}

#[rustfmt::skip]
static FAMILIES: [KataFamily; 98] = [
    f("kata_agent_io_stat", G, "Agent process IO statistics."),
    f("kata_agent_proc_stat", G, "Agent process statistics."),
    f("kata_agent_proc_status", G, "Agent process status."),
    f("kata_agent_scrape_count", C, "Metrics scrape count"),
    f("kata_agent_threads", G, "Agent process threads"),
    f("kata_agent_total_rss", G, "Agent process total RSS size"),
    f("kata_agent_total_time", G, "Agent process total time"),
    f("kata_agent_total_vm", G, "Agent process total VM size"),
    f("kata_firecracker_api_server", G, "Metrics related to the internal API server."),
    f("kata_firecracker_block", G, "Block Device associated metrics."),
    f("kata_firecracker_get_api_requests", G, "Metrics specific to GET API Requests for counting user triggered actions and/or failures."),
    f("kata_firecracker_i8042", G, "Metrics specific to the i8042 device."),
    f("kata_firecracker_latencies_us", G, "Performance metrics related for the moment only to snapshots."),
    f("kata_firecracker_logger", G, "Metrics for the logging subsystem."),
    f("kata_firecracker_mmds", G, "Metrics for the MMDS functionality."),
    f("kata_firecracker_net", G, "Network-related metrics."),
    f("kata_firecracker_patch_api_requests", G, "Metrics specific to PATCH API Requests for counting user triggered actions and/or failures."),
    f("kata_firecracker_put_api_requests", G, "Metrics specific to PUT API Requests for counting user triggered actions and/or failures."),
    f("kata_firecracker_rtc", G, "Metrics specific to the RTC device."),
    f("kata_firecracker_seccomp", G, "Metrics for the seccomp filtering."),
    f("kata_firecracker_signals", G, "Metrics related to signals."),
    f("kata_firecracker_uart", G, "Metrics specific to the UART device."),
    f("kata_firecracker_vcpu", G, "Metrics specific to VCPUs' mode of functioning."),
    f("kata_firecracker_vmm", G, "Metrics specific to the machine manager as a whole."),
    f("kata_firecracker_vsock", G, "Vsock-related metrics."),
    f("kata_guest_cpu_time", G, "Guest CPU statistics."),
    f("kata_guest_diskstat", G, "Disks statistics in system."),
    f("kata_guest_filesystem_bytes", G, "Guest filesystem space usage in bytes."),
    f("kata_guest_filesystem_inodes", G, "Guest filesystem inode usage."),
    f("kata_guest_load", G, "Guest system load."),
    f("kata_guest_meminfo", G, "Statistics about memory usage in the system."),
    f("kata_guest_netdev_stat", G, "Guest net devices statistics."),
    f("kata_guest_tasks", G, "Guest system load."),
    f("kata_guest_vm_stat", G, "Guest virtual memory statistics."),
    f("kata_hypervisor_fds", G, "Open FDs for hypervisor."),
    f("kata_hypervisor_io_stat", G, "Process IO statistics."),
    f("kata_hypervisor_netdev", G, "Net devices statistics."),
    f("kata_hypervisor_proc_stat", G, "Hypervisor process statistics."),
    f("kata_hypervisor_proc_status", G, "Hypervisor process status."),
    f("kata_hypervisor_scrape_count", C, "Hypervisor metrics scrape count."),
    f("kata_hypervisor_seccomp", G, "Hypervisor metrics for the seccomp filtering."),
    f("kata_hypervisor_signals", G, "Hypervisor metrics related to signals."),
    f("kata_hypervisor_threads", G, "Hypervisor process threads."),
    f("kata_hypervisor_vcpu", G, "Hypervisor metrics specific to VCPUs' mode of functioning."),
    f("kata_shim_agent_rpc_durations_histogram_milliseconds", H, "RPC latency distributions."),
    f("kata_shim_fds", G, "Kata containerd shim v2 open FDs."),
    f("kata_shim_go_gc_duration_seconds", S, "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles."),
    f("kata_shim_go_gc_gogc_percent", G, "Heap size target percentage configured by the user, otherwise 100. This value is set by the GOGC environment variable, and the runtime/debug.SetGCPercent function. Sourced from /gc/gogc:percent."),
    f("kata_shim_go_gc_gomemlimit_bytes", G, "Go runtime memory limit configured by the user, otherwise math.MaxInt64. This value is set by the GOMEMLIMIT environment variable, and the runtime/debug.SetMemoryLimit function. Sourced from /gc/gomemlimit:bytes."),
    f("kata_shim_go_goroutines", G, "Number of goroutines that currently exist."),
    f("kata_shim_go_info", G, "Information about the Go environment."),
    f("kata_shim_go_memstats_alloc_bytes", G, "Number of bytes allocated in heap and currently in use. Equals to /memory/classes/heap/objects:bytes."),
    f("kata_shim_go_memstats_alloc_bytes_total", C, "Total number of bytes allocated in heap until now, even if released already. Equals to /gc/heap/allocs:bytes."),
    f("kata_shim_go_memstats_buck_hash_sys_bytes", G, "Number of bytes used by the profiling bucket hash table. Equals to /memory/classes/profiling/buckets:bytes."),
    f("kata_shim_go_memstats_frees_total", C, "Total number of heap objects frees. Equals to /gc/heap/frees:objects + /gc/heap/tiny/allocs:objects."),
    f("kata_shim_go_memstats_gc_cpu_fraction", G, "The fraction of this program's available CPU time used by the GC since the program started."),
    f("kata_shim_go_memstats_gc_sys_bytes", G, "Number of bytes used for garbage collection system metadata. Equals to /memory/classes/metadata/other:bytes."),
    f("kata_shim_go_memstats_heap_alloc_bytes", G, "Number of heap bytes allocated and currently in use, same as go_memstats_alloc_bytes. Equals to /memory/classes/heap/objects:bytes."),
    f("kata_shim_go_memstats_heap_idle_bytes", G, "Number of heap bytes waiting to be used. Equals to /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes."),
    f("kata_shim_go_memstats_heap_inuse_bytes", G, "Number of heap bytes that are in use. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes"),
    f("kata_shim_go_memstats_heap_objects", G, "Number of currently allocated objects. Equals to /gc/heap/objects:objects."),
    f("kata_shim_go_memstats_heap_released_bytes", G, "Number of heap bytes released to OS. Equals to /memory/classes/heap/released:bytes."),
    f("kata_shim_go_memstats_heap_sys_bytes", G, "Number of heap bytes obtained from system. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes + /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes."),
    f("kata_shim_go_memstats_last_gc_time_seconds", G, "Number of seconds since 1970 of last garbage collection."),
    f("kata_shim_go_memstats_lookups_total", C, "Total number of pointer lookups."),
    f("kata_shim_go_memstats_mallocs_total", C, "Total number of heap objects allocated, both live and gc-ed. Semantically a counter version for go_memstats_heap_objects gauge. Equals to /gc/heap/allocs:objects + /gc/heap/tiny/allocs:objects."),
    f("kata_shim_go_memstats_mcache_inuse_bytes", G, "Number of bytes in use by mcache structures. Equals to /memory/classes/metadata/mcache/inuse:bytes."),
    f("kata_shim_go_memstats_mcache_sys_bytes", G, "Number of bytes used for mcache structures obtained from system. Equals to /memory/classes/metadata/mcache/inuse:bytes + /memory/classes/metadata/mcache/free:bytes."),
    f("kata_shim_go_memstats_mspan_inuse_bytes", G, "Number of bytes in use by mspan structures. Equals to /memory/classes/metadata/mspan/inuse:bytes."),
    f("kata_shim_go_memstats_mspan_sys_bytes", G, "Number of bytes used for mspan structures obtained from system. Equals to /memory/classes/metadata/mspan/inuse:bytes + /memory/classes/metadata/mspan/free:bytes."),
    f("kata_shim_go_memstats_next_gc_bytes", G, "Number of heap bytes when next garbage collection will take place. Equals to /gc/heap/goal:bytes."),
    f("kata_shim_go_memstats_other_sys_bytes", G, "Number of bytes used for other system allocations. Equals to /memory/classes/other:bytes."),
    f("kata_shim_go_memstats_stack_inuse_bytes", G, "Number of bytes obtained from system for stack allocator in non-CGO environments. Equals to /memory/classes/heap/stacks:bytes."),
    f("kata_shim_go_memstats_stack_sys_bytes", G, "Number of bytes obtained from system for stack allocator. Equals to /memory/classes/heap/stacks:bytes + /memory/classes/os-stacks:bytes."),
    f("kata_shim_go_memstats_sys_bytes", G, "Number of bytes obtained from system. Equals to /memory/classes/total:byte."),
    f("kata_shim_go_sched_gomaxprocs_threads", G, "The current runtime.GOMAXPROCS setting, or the number of operating system threads that can execute user-level Go code simultaneously. Sourced from /sched/gomaxprocs:threads."),
    f("kata_shim_go_threads", G, "Number of OS threads created."),
    f("kata_shim_io_stat", G, "Kata containerd shim v2 process IO statistics."),
    f("kata_shim_pod_overhead_cpu", G, "Kata Pod overhead for CPU resources(percent)."),
    f("kata_shim_pod_overhead_memory_in_bytes", G, "Kata Pod overhead for memory resources(bytes)."),
    f("kata_shim_proc_stat", G, "Kata containerd shim v2 process statistics."),
    f("kata_shim_proc_status", G, "Kata containerd shim v2 process status."),
    f("kata_shim_process_cpu_seconds_total", C, "Total user and system CPU time spent in seconds."),
    f("kata_shim_process_max_fds", G, "Maximum number of open file descriptors."),
    f("kata_shim_process_network_receive_bytes_total", C, "Number of bytes received by the process over the network."),
    f("kata_shim_process_network_transmit_bytes_total", C, "Number of bytes sent by the process over the network."),
    f("kata_shim_process_open_fds", G, "Number of open file descriptors."),
    f("kata_shim_process_resident_memory_bytes", G, "Resident memory size in bytes."),
    f("kata_shim_process_start_time_seconds", G, "Start time of the process since unix epoch in seconds."),
    f("kata_shim_process_virtual_memory_bytes", G, "Virtual memory size in bytes."),
    f("kata_shim_process_virtual_memory_max_bytes", G, "Maximum amount of virtual memory available in bytes."),
    f("kata_shim_rpc_durations_histogram_milliseconds", H, "RPC latency distributions."),
    f("kata_shim_threads", G, "Kata containerd shim v2 process threads."),
    f("kata_virtiofsd_fds", G, "Open FDs for virtiofsd."),
    f("kata_virtiofsd_io_stat", G, "Process IO statistics."),
    f("kata_virtiofsd_proc_stat", G, "Virtiofsd process statistics."),
    f("kata_virtiofsd_proc_status", G, "Virtiofsd process status."),
    f("kata_virtiofsd_threads", G, "Virtiofsd process threads."),
];

/// The family Kata defines under output name `name`, if any.
pub fn lookup(name: &[u8]) -> Option<&'static KataFamily> {
    FAMILIES
        .binary_search_by(|f| f.name.as_bytes().cmp(name))
        .ok()
        .map(|i| &FAMILIES[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_and_unique() {
        for w in FAMILIES.windows(2) {
            assert!(w[0].name.as_bytes() < w[1].name.as_bytes(), "{}", w[1].name);
        }
    }

    #[test]
    fn lookups() {
        for fam in &FAMILIES {
            assert_eq!(lookup(fam.name.as_bytes()).unwrap().name, fam.name);
        }
        assert_eq!(lookup(b"kata_guest_load").unwrap().kind, G);
        assert_eq!(
            lookup(b"kata_shim_rpc_durations_histogram_milliseconds")
                .unwrap()
                .kind,
            H
        );
        assert_eq!(lookup(b"kata_shim_go_gc_duration_seconds").unwrap().kind, S);
        assert_eq!(lookup(b"kata_agent_scrape_count").unwrap().kind, C);
        for absent in [
            &b""[..],
            b"go_goroutines",
            b"kata_guest",
            b"kata_guest_load_x",
            b"zzz",
        ] {
            assert!(lookup(absent).is_none());
        }
    }

    /// Every family of the fixture bodies (real shapes of every shim) is in
    /// the table with the TYPE and HELP the body gives it.
    #[test]
    fn fixtures_agree_with_the_table() {
        let bodies: [&str; 4] = [
            include_str!("../../../tests/fixtures/default.prom"),
            include_str!("../../../tests/fixtures/small.prom"),
            include_str!("../../../tests/fixtures/large.prom"),
            include_str!("../../../tests/fixtures/rs-dragonball.prom"),
        ];
        let mut seen = 0;
        for line in bodies.iter().flat_map(|b| b.lines()) {
            let Some(rest) = line.strip_prefix("# ") else {
                continue;
            };
            let mut parts = rest.splitn(3, ' ');
            let (kw, name, text) = (parts.next(), parts.next(), parts.next());
            let (Some(kw), Some(name), Some(text)) = (kw, name, text) else {
                continue;
            };
            let out = if name.starts_with("go_") || name.starts_with("process_") {
                format!("kata_shim_{name}")
            } else {
                name.to_string()
            };
            let fam = lookup(out.as_bytes()).unwrap_or_else(|| panic!("{out} not in the table"));
            match kw {
                "HELP" => assert_eq!(fam.help, text, "{out}"),
                "TYPE" => assert_eq!(fam.kind.as_str(), text, "{out}"),
                _ => continue,
            }
            seen += 1;
        }
        assert!(seen > 200, "{seen}");
    }
}
