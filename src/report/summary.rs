//! The counter summary that ends `inspect`: every stage's counters, grouped by stage, zeros left
//! out so anomalies stand out (the JSON form lists every counter).

use std::collections::BTreeMap;
use std::io::{self, Write};

use crate::counters::Counters;

/// All counters of a run, by dotted name, in name order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub counters: BTreeMap<String, u64>,
}

impl Summary {
    /// Adds every counter of one stage (summing counters that share a name).
    pub fn add(&mut self, stage: &dyn Counters) {
        stage.visit(&mut |name, value| {
            *self.counters.entry(name.to_string()).or_default() += value;
        });
    }

    pub fn set(&mut self, name: &str, value: u64) {
        self.counters.insert(name.to_string(), value);
    }

    pub fn value(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    /// Writes the non-zero counters, one per line, grouped by the part of the name before the
    /// first dot.
    pub fn write_text(&self, w: &mut (impl Write + ?Sized)) -> io::Result<()> {
        let width = self
            .counters
            .keys()
            .map(String::len)
            .max()
            .unwrap_or(0)
            .max(24);
        let mut group = "";
        for (name, value) in &self.counters {
            if *value == 0 {
                continue;
            }
            let g = name.split('.').next().unwrap_or("");
            if g != group {
                writeln!(w, "{g}:")?;
                group = g;
            }
            writeln!(w, "  {name:<width$}  {}", thousands(*value))?;
        }
        Ok(())
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Two;
    impl Counters for Two {
        fn visit(&self, f: &mut dyn FnMut(&str, u64)) {
            f("tcp.gaps", 3);
            f("tcp.rst", 0);
        }
    }

    #[test]
    fn zero_counters_are_left_out_of_the_text() {
        let mut s = Summary::default();
        s.add(&Two);
        s.set("decoder.packets", 1_234_567);
        let mut out = Vec::new();
        s.write_text(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("decoder:\n"));
        assert!(text.contains("1,234,567"));
        assert!(text.contains("tcp.gaps"));
        assert!(!text.contains("tcp.rst"));
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }
}
