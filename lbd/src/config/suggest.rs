//! "Did you mean …?": the nearest valid key or name to a misspelt one.

/// Edit distance between `a` and `b` (Damerau–Levenshtein, optimal string alignment: an
/// adjacent transposition counts as one edit), compared case-insensitively.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a misspelling of it: at most
/// one edit for short words, a third of the length for longer ones. Ties go to the first.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("unmanagd", "unmanaged"), 1);
        assert_eq!(distance("sheduler", "scheduler"), 1);
        assert_eq!(distance("shceduler", "scheduler"), 1);
        assert_eq!(distance("VI_INTT", "VI_INT"), 1);
        assert_eq!(distance("abc", "abc"), 0);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("Priority", "priority"), 0);
    }

    #[test]
    fn nearest_picks_a_close_one_or_none() {
        let keys = ["hostname", "log_level", "sysctl", "syslog", "api_listen"];
        assert_eq!(nearest("hostnmae", keys), Some("hostname"));
        assert_eq!(nearest("sysclt", keys), Some("sysctl"));
        assert_eq!(nearest("frobnicate", keys), None);
        // A short word needs a near match: "x" is not "ttl".
        assert_eq!(nearest("x", ["ttl", "port"]), None);
        assert_eq!(nearest("prot", ["ttl", "port"]), Some("port"));
    }
}
