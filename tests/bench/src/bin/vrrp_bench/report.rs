//! Figures as printed.

/// The median of `v` and its value farthest from 0 (NaN for none); sorts `v`.
pub fn median_and_worst(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let median = if v.is_empty() {
        f64::NAN
    } else if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    let worst = v
        .iter()
        .copied()
        .max_by(|a, b| a.abs().total_cmp(&b.abs()))
        .unwrap_or(f64::NAN);
    (median, worst)
}

/// Seconds as text: `n/a`, `1.234 s`, or below a second `12.3 ms`.
pub fn duration_text(s: f64) -> String {
    if s.is_nan() {
        "n/a".into()
    } else if s.abs() >= 1.0 {
        format!("{s:.3} s")
    } else {
        format!("{:.1} ms", s * 1000.0)
    }
}
