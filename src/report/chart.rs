//! The axes of pgdrill's SVG charts: from zero to a round top, ticks at round steps
//! (1, 2 or 5 times a power of ten), every label in one unit (`0 s, 20 s, 40 s`, never
//! `0 ms, 961 ms, 1.9 s`), so that a reader never converts between ticks.

use serde::Serialize;

/// What an axis measures, in its base unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// Milliseconds, labelled in ms, s, min or h.
    Millis,
    /// Bytes, labelled in B, KiB, MiB, GiB or TiB.
    Bytes,
    /// A number of things (drills), labelled in whole numbers.
    Count,
}

impl Quantity {
    /// The units an axis may be labelled in, smallest first, with their size in base units.
    fn units(self) -> &'static [(&'static str, f64)] {
        match self {
            Quantity::Millis => &[
                ("ms", 1.0),
                ("s", 1_000.0),
                ("min", 60_000.0),
                ("h", 3_600_000.0),
            ],
            Quantity::Bytes => &[
                ("B", 1.0),
                ("KiB", 1024.0),
                ("MiB", 1_048_576.0),
                ("GiB", 1_073_741_824.0),
                ("TiB", 1_099_511_627_776.0),
            ],
            Quantity::Count => &[("", 1.0)],
        }
    }
}

/// One tick of an axis.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Tick {
    /// Its value, in the base unit.
    pub value: f64,
    /// Its label: the value in the axis' unit, with the unit.
    pub label: String,
}

/// An axis from zero to a round top, with round ticks in one unit.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Axis {
    /// The unit every label is in (empty for a count).
    pub unit: &'static str,
    /// The axis' far end, in the base unit: the last tick, at or above the data's maximum.
    pub top: f64,
    /// The distance between ticks, in `unit`.
    pub step: f64,
    /// From zero to `top`.
    pub ticks: Vec<Tick>,
}

impl Axis {
    /// The axis for data from zero to `max` (base units); at least one step long.
    pub fn new(q: Quantity, max: f64) -> Axis {
        let units = q.units();
        let max = if max.is_finite() && max > 0.0 {
            max
        } else {
            0.0
        };
        // The largest unit the data reaches twice: ticks of whole numbers or halves, never
        // a row of small fractions.
        let (unit, size) = units
            .iter()
            .rev()
            .find(|(_, size)| max >= 2.0 * size)
            .copied()
            .unwrap_or(units[0]);
        let in_unit = max / size;
        // The smallest unit counts whole things (ms, bytes, drills): no step below one.
        let step = nice_step(in_unit / 4.0).max(if size == 1.0 { 1.0 } else { 0.0 });
        let steps = ((in_unit / step - 1e-9).ceil() as u64).max(1);
        let ticks = (0..=steps)
            .map(|i| {
                let v = i as f64 * step;
                Tick {
                    value: v * size,
                    label: if unit.is_empty() {
                        number(v)
                    } else {
                        format!("{} {unit}", number(v))
                    },
                }
            })
            .collect();
        Axis {
            unit,
            top: steps as f64 * step * size,
            step,
            ticks,
        }
    }

    /// Where `v` (base units) falls along the axis: 0 at zero, 1 at the top.
    pub fn frac(&self, v: f64) -> f64 {
        if self.top > 0.0 {
            (v / self.top).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// The round step (1, 2 or 5 times a power of ten) at or just above `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag)
}

/// A tick's number without float noise or trailing zeros: `0.6`, `20`, `2.5`.
fn number(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// A coordinate to a tenth of an SVG unit: finer is invisible and only makes the page noisy.
pub fn r1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// Whether `step` is 1, 2 or 5 times a power of ten.
    fn is_round(step: f64) -> bool {
        let mag = 10f64.powf(step.log10().floor());
        [1.0, 2.0, 5.0]
            .iter()
            .any(|m| ((step / mag) - m).abs() < 1e-9)
    }

    #[rstest]
    #[case(Quantity::Millis, 900.0, "ms", 1000.0)]
    #[case(Quantity::Millis, 1_500.0, "ms", 1500.0)]
    #[case(Quantity::Millis, 4_567.0, "s", 6000.0)]
    #[case(Quantity::Millis, 61_000.0, "s", 80_000.0)]
    #[case(Quantity::Millis, 1_800_000.0, "min", 1_800_000.0)]
    #[case(Quantity::Millis, 9_000_000.0, "h", 10_800_000.0)]
    #[case(Quantity::Bytes, 3.0 * 1_048_576.0, "MiB", 3.0 * 1_048_576.0)]
    #[case(Quantity::Bytes, 700.0, "B", 800.0)]
    #[case(Quantity::Count, 3.0, "", 3.0)]
    #[case(Quantity::Count, 0.0, "", 1.0)]
    #[case(Quantity::Count, 17.0, "", 20.0)]
    fn axes_end_on_a_round_top_in_one_unit(
        #[case] q: Quantity,
        #[case] max: f64,
        #[case] unit: &str,
        #[case] top: f64,
    ) {
        let a = Axis::new(q, max);
        assert_eq!((a.unit, a.top), (unit, top), "{a:?}");
        assert!(a.top >= max);
        assert!(is_round(a.step), "{a:?}");
        assert!((2..=7).contains(&a.ticks.len()), "{a:?}");
        for (i, t) in a.ticks.iter().enumerate() {
            let size = a.top / (a.step * (a.ticks.len() - 1) as f64);
            assert!((t.value - i as f64 * a.step * size).abs() < 1e-6, "{a:?}");
            if !unit.is_empty() {
                assert!(t.label.ends_with(&format!(" {unit}")), "{a:?}");
            }
        }
        assert_eq!(a.frac(a.top), 1.0);
        assert_eq!(a.frac(0.0), 0.0);
    }

    #[test]
    fn fractional_steps_print_without_float_noise() {
        let a = Axis::new(Quantity::Millis, 150_000.0);
        assert_eq!(a.unit, "min");
        let labels: Vec<&str> = a.ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["0 min", "1 min", "2 min", "3 min"]);
        let a = Axis::new(Quantity::Millis, 1_900.0);
        let labels: Vec<&str> = a.ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["0 ms", "500 ms", "1000 ms", "1500 ms", "2000 ms"]);
        assert_eq!(number(0.6000000001), "0.6");
    }
}
