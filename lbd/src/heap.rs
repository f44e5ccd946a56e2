//! The daemon's heap policy: the memory one reload used stays for the next.
//!
//! A full apply of a large config allocates several MiB (the parsed services, the plan, the
//! encoded requests) and frees it when done. With glibc's defaults the freed top of the heap
//! goes back to the kernel once it passes 128 KiB, and every block of 128 KiB or more gets a
//! mapping of its own that is unmapped when freed, so each large reload takes its pages again
//! one fault at a time (about 2,300 faults for 1,000 services × 10 reals). A fault is a
//! microsecond on hardware and tens of microseconds in an emulated guest.
//!
//! Growing the heap in large steps also lets the kernel back it with transparent huge pages
//! where they are on (Debian's kernels turn them on for every mapping, except on machines of
//! less than 512 MiB), one fault per 2 MiB. Where they are off, [`pretouch`] takes
//! the pages a large reload needs once, right after the first apply.

/// What the heap grows by beyond the request, and keeps at its top when trimming.
pub const GROWTH: usize = 8 << 20;
/// Free memory at the top of the heap beyond this goes back to the kernel.
pub const TRIM_ABOVE: usize = 32 << 20;
/// Blocks at least this large get a mapping of their own (glibc's largest setting).
pub const OWN_MAPPING_FROM: usize = 32 << 20;

/// What lbd takes and touches once running: about what the first full apply of a large
/// config needs (1,000 services × 10 reals peaks near 9 MiB), kept in the heap for every
/// reload.
pub const PRETOUCHED: usize = 16 << 20;

/// The smallest page: touching one byte in each faults the whole block in.
const PAGE: usize = 4096;

/// Takes `bytes` of heap, touches every page of it and gives it back to the allocator, which
/// keeps it (see [`keep_for_reloads`], which must come first): later allocations up to that
/// size take no page faults.
pub fn pretouch(bytes: usize) {
    let mut block: Vec<u8> = Vec::with_capacity(bytes);
    for page in block.spare_capacity_mut().iter_mut().step_by(PAGE) {
        page.write(0);
    }
    std::hint::black_box(&block);
}

/// Applies the policy to the process's allocator. Call once at start, before threads.
/// Returns which settings the allocator refused (none with glibc).
pub fn keep_for_reloads() -> Vec<&'static str> {
    let settings = [
        ("M_TOP_PAD", libc::M_TOP_PAD, GROWTH),
        ("M_TRIM_THRESHOLD", libc::M_TRIM_THRESHOLD, TRIM_ABOVE),
        ("M_MMAP_THRESHOLD", libc::M_MMAP_THRESHOLD, OWN_MAPPING_FROM),
    ];
    settings
        .into_iter()
        .filter(|&(_, param, value)| {
            // SAFETY: mallopt takes plain integers and changes only allocator tunables.
            unsafe { libc::mallopt(param, value as libc::c_int) != 1 }
        })
        .map(|(name, _, _)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// glibc accepts every setting, and afterwards a large block freed at the top of the heap
    /// stays mapped: allocating it again costs no page faults.
    #[test]
    fn a_freed_large_block_is_reused_without_faults() {
        assert_eq!(keep_for_reloads(), Vec::<&str>::new());
        let size = 4 << 20;
        let touch = |v: &mut Vec<u8>| {
            for i in (0..size).step_by(4096) {
                v[i] = 1;
            }
        };
        let mut first = vec![0u8; size];
        touch(&mut first);
        drop(first);
        let before = minor_faults();
        let mut again = vec![0u8; size];
        touch(&mut again);
        let faults = minor_faults() - before;
        std::hint::black_box(&again);
        // Other test threads allocate too; a fresh mapping would take about 1,024 faults.
        assert!(
            faults < 256,
            "{faults} page faults for a block freed just before"
        );
    }

    /// Memory touched at start serves a later allocation of that size without faults.
    #[test]
    fn pretouched_memory_serves_later_allocations_without_faults() {
        assert_eq!(keep_for_reloads(), Vec::<&str>::new());
        let size = 3 << 20;
        std::thread::spawn(move || {
            pretouch(4 << 20);
            let before = minor_faults();
            let mut v: Vec<u8> = Vec::with_capacity(size);
            for page in v.spare_capacity_mut().iter_mut().step_by(PAGE) {
                page.write(1);
            }
            std::hint::black_box(&v);
            let faults = minor_faults() - before;
            // Untouched, the block would take 768.
            assert!(faults < 64, "{faults} page faults after pretouch");
        })
        .join()
        .expect("the thread");
    }

    fn minor_faults() -> u64 {
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage fills the struct it is given.
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
        u.ru_minflt as u64
    }
}
